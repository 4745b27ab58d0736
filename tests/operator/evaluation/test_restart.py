"""The Evaluation operator survives its own restart and the API server's; runs are repeatable
(spec.runId) and deleting an Evaluation removes its Jobs while the results stay in the store."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

from kubernetes import client

from slam.store import Store
from tests.conftest import STUB_API_KEY
from tests.controlplane.cluster import ControlPlane, free_port
from tests.operator.conftest import GROUP, VERSION, eventually
from tests.operator.evaluation.test_cluster import (
    EVS,
    evaluation,
    finish_job_as_kubelet,
    get_ev,
    run_job_as_kubelet,
    secret,
    start_job_as_kubelet,
    wait_phase,
)
from tests.servers import Stub, spawn, stop, wait_http


@contextlib.contextmanager
def operator_process(cp: ControlPlane, workdir: Path, kubeconfig: Path | None = None,
                     env: dict[str, str] | None = None) -> Iterator[subprocess.Popen]:
    """The operator as its own process, with its container's command (`python -m slam_operator`,
    the chart's Deployment), ready once its liveness endpoint answers; stopped with SIGTERM
    unless the test kills it first."""
    workdir.mkdir(parents=True, exist_ok=True)
    health = free_port()
    log = workdir / "operator.log"
    proc = spawn([sys.executable, "-m", "slam_operator"], log, marker=workdir,
                 env={"KUBECONFIG": str(kubeconfig or cp.kubeconfig),
                      "SLAM_METRICS_PORT": str(free_port()),
                      "SLAM_HEALTH_PORT": str(health), "SLAM_PROGRESS_SECONDS": "1",
                      **(env or {})})
    try:
        wait_http(f"http://127.0.0.1:{health}/healthz", proc, log, timeout=90)
        yield proc
    finally:
        stop(proc)


def jobs(k8s, ns: str) -> list[str]:
    return sorted(j.metadata.name for j in client.BatchV1Api(k8s).list_namespaced_job(ns).items)


def test_restarts_reruns_and_deletion(control_plane, k8s, namespace, llama,
                                      tmp_path) -> None:
    # A slow API stand-in (8 tokens, 1 s apart) keeps the scoring process busy long enough to
    # kill the operator while it runs; the local target (llama.cpp) answers within seconds.
    slow = Stub(tmp_path / "slow-api", tokens=8, interval=1.0, api_key=STUB_API_KEY).start()
    store_url = f"sqlite:///{tmp_path / 'results.db'}"
    secret(k8s, namespace, "slam-store", "url", store_url)
    secret(k8s, namespace, "openai", "api-key", STUB_API_KEY)
    body = evaluation("again", slow.base_url)
    body["spec"]["targets"][1] = {"name": "local", "external": {"baseUrl": llama.base_url,
                                                                "model": llama.alias}}
    objects = client.CustomObjectsApi(k8s)
    try:
        with operator_process(control_plane, tmp_path / "operator-1") as first:
            objects.create_namespaced_custom_object(GROUP, VERSION, namespace, EVS, body)
            wait_phase(k8s, namespace, "again", "Running")
            assert jobs(k8s, namespace) == ["again-run-1"]
            scoring = start_job_as_kubelet(k8s, namespace, "again-run-1", {}, tmp_path)
            # The operator reports progress while the run goes on (from the store, every 1 s).
            eventually(lambda: get_ev(k8s, namespace, "again")["status"]
                       .get("progress", {}).get("done", 0) >= 1, 60, "progress reported")
            os.killpg(first.pid, signal.SIGKILL)  # mid-run: no graceful shutdown
            first.wait(10)
            assert scoring.proc.poll() is None, "the scoring process ended before the kill"

        with operator_process(control_plane, tmp_path / "operator-2"):
            assert finish_job_as_kubelet(k8s, namespace, scoring) == 0, scoring.log.read_text()
            ev = wait_phase(k8s, namespace, "again", "Succeeded")
            assert jobs(k8s, namespace) == ["again-run-1"]  # resumed, not recreated
            store = Store.open(store_url)
            assert ev["status"]["progress"]["display"] == "6/6"
            rows = store.responses(store.find_run("again", "1", namespace).id)
            assert len(rows) == len({(r["target"], r["prompt_id"], r["sample"])
                                     for r in rows}) == 6
            assert all(r["error_class"] is None for r in rows), rows

            # The API server restarts; the operator's watches recover and a re-run is picked up.
            control_plane.restart_apiserver()
            objects.patch_namespaced_custom_object(GROUP, VERSION, namespace, EVS, "again",
                                                   {"spec": {"runId": "2"}})
            ev = eventually(lambda: (s := get_ev(k8s, namespace, "again")["status"])["runId"] == "2"
                            and s["phase"] == "Running" and s, 90, "run 2 Running")
            assert "summary" not in ev and ev["jobName"] == "again-run-2"
            assert jobs(k8s, namespace) == ["again-run-1", "again-run-2"]
            assert run_job_as_kubelet(k8s, namespace, "again-run-2", {}, tmp_path) == 0
            wait_phase(k8s, namespace, "again", "Succeeded")
            assert {r.run_id for r in store.runs()} == {"1", "2"}

            # Deleting the Evaluation removes its Jobs (owner references); results stay.
            objects.delete_namespaced_custom_object(GROUP, VERSION, namespace, EVS, "again")
            eventually(lambda: jobs(k8s, namespace) == [], 60, "Jobs garbage-collected")
            assert len(store.responses(store.find_run("again", "1", namespace).id)) == 6
    finally:
        slow.stop()
    for name in ("operator-1", "operator-2"):
        log = (tmp_path / name / "operator.log").read_text()
        assert STUB_API_KEY not in log


def test_a_target_held_up_by_a_run_goes_back_down_although_the_operator_died_meanwhile(
        control_plane, k8s, namespace, fake_hub, stub, tmp_path) -> None:
    """The operator is killed once it has scaled a target up for a run; the Evaluation is
    deleted while no operator runs. The next operator scales the target back to zero."""
    from tests.operator.evaluation.test_cluster import llamacpp_md
    from tests.operator.evaluation.test_scaling import wait_replicas

    secret(k8s, namespace, "slam-store", "url", "sqlite:////tmp/unused.db")
    secret(k8s, namespace, "openai", "api-key", STUB_API_KEY)
    objects = client.CustomObjectsApi(k8s)
    env = {"HF_ENDPOINT": fake_hub.url}
    with operator_process(control_plane, tmp_path / "operator-1", env=env) as first:
        llamacpp_md(k8s, namespace, replicas=0)
        wait_replicas(k8s, namespace, "smollm2", 0)
        objects.create_namespaced_custom_object(GROUP, VERSION, namespace, EVS, evaluation(
            "held", stub.base_url, scaling={"replicas": 1}))
        wait_replicas(k8s, namespace, "smollm2", 1)
        os.killpg(first.pid, signal.SIGKILL)
        first.wait(10)

    objects.delete_namespaced_custom_object(GROUP, VERSION, namespace, EVS, "held")
    assert client.AppsV1Api(k8s).read_namespaced_deployment("smollm2", namespace).spec \
        .replicas == 1  # nobody has released it yet

    with operator_process(control_plane, tmp_path / "operator-2", env=env):
        wait_replicas(k8s, namespace, "smollm2", 0, timeout=60)
        eventually(lambda: not objects.list_namespaced_custom_object(
            GROUP, VERSION, namespace, EVS)["items"], 30, "Evaluation deleted")
        md = objects.get_namespaced_custom_object(GROUP, VERSION, namespace, "modeldeployments",
                                                  "smollm2")
        assert "slam.dev/scale-holds" not in (md["metadata"].get("annotations") or {})
