"""Every ModelDeployment worker blocked on a Hub that does not answer: kopf's indices and the
Evaluations' reconciles go on (each kind reconciles on a pool of its own, and the indices run on
kopf's event loop), while the ModelDeployments wait their turn."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from kubernetes import client
from prometheus_client.parser import text_string_to_metric_families

from tests.controlplane.cluster import ControlPlane
from tests.fakes.hub import FakeHub, Repo
from tests.operator.conftest import GROUP, VERSION, eventually, metrics_port
from tests.operator.evaluation.test_cluster import evaluation, get_ev
from tests.operator.modeldeployment.test_cluster import create_md

WORKERS = 2


@pytest.fixture(scope="module")
def hanging_hub() -> Iterator[FakeHub]:
    hub = FakeHub(hang_seconds=600).start()
    hub.repos["org/hangs"] = Repo(behaviour="hang")
    hub.repos["org/answers"] = Repo(parameters=134_515_008)
    yield hub
    hub.release.set()  # the blocked lookups answer, the workers finish
    hub.stop()


@pytest.fixture(scope="module")
def few_workers(control_plane: ControlPlane, hanging_hub: FakeHub) -> Iterator[int]:
    """The operator with two ModelDeployment workers and a Hub timeout longer than the test;
    yields its metrics port."""
    from kopf.testing import KopfRunner

    mp = pytest.MonkeyPatch()
    mp.setenv("KUBECONFIG", str(control_plane.kubeconfig))
    mp.setenv("HF_ENDPOINT", hanging_hub.url)
    mp.setenv("SLAM_MAX_WORKERS", str(WORKERS))
    mp.setenv("SLAM_HUB_TIMEOUT_SECONDS", "600")
    port = metrics_port()
    runner = KopfRunner(["run", "--all-namespaces", "--standalone", "-m",
                         "slam_operator.handlers"], timeout=60)
    try:
        with runner:
            yield port
            hanging_hub.release.set()
    finally:
        mp.undo()
    assert runner.exit_code == 0, runner.output


def gauge(port: int, name: str, label: str, value: str) -> float:
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
    return sum(s.value for f in text_string_to_metric_families(text) for s in f.samples
               if s.name == name and s.labels.get(label) == value)


def md(name: str, model: str) -> dict:
    return {"apiVersion": f"{GROUP}/{VERSION}", "kind": "ModelDeployment",
            "metadata": {"name": name},
            "spec": {"model": {"id": model}, "runtime": "vllm", "instanceType": "g5.xlarge"}}


def test_indices_and_evaluations_proceed_while_every_model_worker_is_blocked(
        k8s, namespace, few_workers, hanging_hub) -> None:
    port = few_workers
    for i in range(WORKERS):
        create_md(k8s, namespace, md(f"stuck-{i}", "org/hangs"))
    # Both workers are inside a Hub request that will not end during the test.
    eventually(lambda: sum(p.startswith("/api/models/org/hangs")
                           for p, _ in hanging_hub.requests) >= WORKERS, 30,
               "both workers asking the hanging Hub")
    before = gauge(port, "slam_model_deployments", "ready", "Unknown")
    create_md(k8s, namespace, md("waits", "org/answers"))

    # The index over ModelDeployments counts the new one (slam_model_deployments)...
    eventually(lambda: gauge(port, "slam_model_deployments", "ready", "Unknown") >= before + 1,
               30, "the ModelDeployment index updated")
    # ...an Evaluation is reconciled (its target does not exist: Pending, saying so)...
    api = client.CustomObjectsApi(k8s)
    api.create_namespaced_custom_object(GROUP, VERSION, namespace, "evaluations",
                                        evaluation("quality", "http://127.0.0.1:9/v1"))

    def pending() -> dict:
        status = get_ev(k8s, namespace, "quality").get("status") or {}
        assert status.get("phase") == "Pending", status
        return status
    status = eventually(pending, 30, "the Evaluation reconciled")
    assert any("smollm2" in (c.get("message") or "") for c in status["conditions"]), status
    # ...and the Evaluations' index counts it by phase (slam_evaluations).
    eventually(lambda: gauge(port, "slam_evaluations", "phase", "Pending") >= 1, 30,
               "the Evaluation index updated")
    # Meanwhile the third ModelDeployment still waits for a worker: the block was real.
    waits = api.get_namespaced_custom_object(GROUP, VERSION, namespace, "modeldeployments",
                                             "waits")
    assert not waits.get("status"), waits.get("status")
    assert not any(p.startswith("/api/models/org/answers") for p, _ in hanging_hub.requests)

    # Once the Hub answers, the workers are free and it is reconciled.
    hanging_hub.release.set()
    eventually(lambda: (api.get_namespaced_custom_object(
        GROUP, VERSION, namespace, "modeldeployments", "waits").get("status") or {}
    ).get("resolvedRevision"), 60, "the waiting ModelDeployment reconciled")
