"""The Evaluation operator survives its own restart and the API server's; runs are repeatable
(spec.runId) and deleting an Evaluation removes its Jobs while the results stay in the store."""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator

import pytest
from kubernetes import client

from slam.store import Store
from tests.conftest import STUB_API_KEY
from tests.controlplane.cluster import ControlPlane
from tests.operator.conftest import GROUP, VERSION, eventually
from tests.operator.test_evaluation_cluster import (
    EVS,
    evaluation,
    get_ev,
    run_job_as_kubelet,
    secret,
    wait_phase,
)


@contextlib.contextmanager
def running_operator(cp: ControlPlane) -> Iterator[None]:
    from kopf.testing import KopfRunner
    mp = pytest.MonkeyPatch()
    mp.setenv("KUBECONFIG", str(cp.kubeconfig))
    if "SLAM_METRICS_PORT" not in os.environ:
        from tests.controlplane.cluster import free_port
        os.environ["SLAM_METRICS_PORT"] = str(free_port())
    logging.getLogger().setLevel(logging.INFO)
    runner = KopfRunner(["run", "--all-namespaces", "--standalone", "-m",
                         "slam_operator.handlers"], timeout=60)
    try:
        with runner:
            yield
    finally:
        mp.undo()
    assert runner.exit_code == 0, runner.output


def jobs(k8s, ns: str) -> list[str]:
    return sorted(j.metadata.name for j in client.BatchV1Api(k8s).list_namespaced_job(ns).items)


def test_restarts_reruns_and_deletion(control_plane, k8s, namespace, llama, stub,
                                      tmp_path) -> None:
    store_url = f"sqlite:///{tmp_path / 'results.db'}"
    secret(k8s, namespace, "slam-store", "url", store_url)
    secret(k8s, namespace, "openai", "api-key", STUB_API_KEY)
    body = evaluation("again", stub.base_url)
    body["spec"]["targets"][1] = {"name": "local", "external": {"baseUrl": llama.base_url,
                                                                "model": llama.alias}}
    objects = client.CustomObjectsApi(k8s)
    with running_operator(control_plane):
        objects.create_namespaced_custom_object(GROUP, VERSION, namespace, EVS, body)
        wait_phase(k8s, namespace, "again", "Running")
        assert jobs(k8s, namespace) == ["again-run-1"]
    # The operator is down while the scoring process runs (killed mid-run, from its view).
    assert run_job_as_kubelet(k8s, namespace, "again-run-1", {}, tmp_path) == 0
    with running_operator(control_plane):
        ev = wait_phase(k8s, namespace, "again", "Succeeded")
        assert jobs(k8s, namespace) == ["again-run-1"]  # resumed, not recreated
        assert ev["status"]["progress"]["display"] == "6/6"
        store = Store.open(store_url)
        rows = store.responses(store.find_run("again", "1", namespace).id)
        assert len(rows) == len({(r["target"], r["prompt_id"], r["sample"]) for r in rows}) == 6

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
