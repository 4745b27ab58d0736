"""A cluster with a real node (tests/controlplane/node.py): its own control plane with a
scheduler, the CRDs, and the operator and llama.cpp images loaded into the node's containerd.

Separate from the `control_plane` fixture on purpose: there, no pod ever runs and the operator
tests play the kubelet; here the kubelet is real.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from kubernetes import client, config

from tests.controlplane.cluster import REPO, ControlPlane, apply_crds
from tests.controlplane.node import Node, missing_tools
from tests.images.built import image


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/node/" in str(item.fspath):
            item.add_marker(pytest.mark.node)
            item.add_marker(pytest.mark.slow)


@dataclass
class Cluster:
    cp: ControlPlane
    node: Node
    api: client.ApiClient

    @property
    def core(self) -> client.CoreV1Api:
        return client.CoreV1Api(self.api)

    @property
    def apps(self) -> client.AppsV1Api:
        return client.AppsV1Api(self.api)

    @property
    def batch(self) -> client.BatchV1Api:
        return client.BatchV1Api(self.api)

    def namespace(self) -> str:
        name = f"n-{uuid.uuid4().hex[:8]}"
        self.core.create_namespace({"metadata": {"name": name}})
        return name

    def wait(self, what: str, check: Callable[[], object], timeout: float = 180,
             explain: Callable[[], str] = lambda: "") -> object:
        """Poll `check` until it returns something truthy; fail with `explain()` on timeout."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.node._check_alive()
            if result := check():
                return result
            time.sleep(0.5)
        pytest.fail(f"{what} not within {timeout}s: {explain()}")

    def pods_report(self, namespace: str) -> str:
        lines = []
        for p in self.core.list_namespaced_pod(namespace).items:
            states = [(c.name, c.state.to_dict(), c.restart_count)
                      for c in p.status.container_statuses or []]
            lines.append(f"{p.metadata.name} {p.status.phase} {p.status.conditions} {states}")
        events = self.core.list_namespaced_event(namespace).items
        lines += [f"event {e.involved_object.name}: {e.reason} {e.message}" for e in events[-20:]]
        return "\n".join(lines) + "\n" + self.node.log_tail("kubelet", 15)

    def finished(self, namespace: str, job: str, timeout: float = 180) -> client.V1Pod:
        """Wait for a Job's pod to terminate; return it (termination message in its status)."""
        def done() -> client.V1Pod | None:
            pods = self.core.list_namespaced_pod(namespace, label_selector=f"job-name={job}")
            for p in pods.items:
                if p.status.phase in ("Succeeded", "Failed"):
                    return p
            return None
        return self.wait(f"job {job} finished", done, timeout,
                         lambda: self.pods_report(namespace))


@pytest.fixture(scope="session")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    if missing := missing_tools():
        pytest.fail(f"the node tests need Debian packages {missing}: run `make system-deps`")
    workdir = Path(tmp_path_factory.mktemp("node-cluster"))
    cp = ControlPlane(workdir / "cp", with_scheduler=True)
    cp.start()
    node = None
    try:
        apply_crds(cp, REPO / "crds")
        node = Node(cp, workdir / "node", images=[image("operator"), image("llamacpp")]).start()
        print(f"node ready, seconds per step: {node.timings}")
        yield Cluster(cp, node, config.new_client_from_config(str(cp.kubeconfig)))
    finally:
        if node is not None:
            node.stop()
        cp.stop()
