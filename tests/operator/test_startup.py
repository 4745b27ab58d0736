"""The operator started in a cluster that already holds many objects: kopf lists every watched
kind (pods, Deployments, Services... of all the namespaces it serves) before it runs any handler,
and the operator must get through that listing and take its ModelDeployments over."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from kubernetes import client

from slam_operator.names import MANAGED_BY, MANAGED_BY_LABEL
from tests.operator.conftest import RESYNC_SECONDS
from tests.operator.evaluation.test_restart import operator_process
from tests.operator.modeldeployment.test_cluster import create_md, md, wait_condition

# More objects carrying the operator's label than kopf worked on at once with the worker limit the
# operator once set (128): each listed object's worker waits until every kind is listed, so the
# 129th never started and the operator never reconciled anything after a restart. Objects without
# the label are not even listed (server-side label selectors).
OTHERS = 160


def test_an_operator_started_among_many_objects_takes_its_model_deployments_over(
        control_plane, k8s, namespace, fake_hub, tmp_path) -> None:
    core = client.CoreV1Api(k8s)
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda i: core.create_namespaced_service(namespace, {
            "metadata": {"name": f"other-{i}", "labels": {MANAGED_BY_LABEL: MANAGED_BY}},
            "spec": {"ports": [{"port": 80}]}}), range(OTHERS)))
    create_md(k8s, namespace, md("waiting"))  # applied while no operator runs
    env = {"HF_ENDPOINT": fake_hub.url, "SLAM_WATCH_NAMESPACES": namespace,
           "SLAM_RESYNC_SECONDS": str(RESYNC_SECONDS)}
    with operator_process(control_plane, tmp_path / "operator", env=env):
        wait_condition(k8s, namespace, "waiting", "Available", "False", "ReplicasNotReady",
                       timeout=60)
    log = (tmp_path / "operator" / "operator.log").read_text()
    assert "Traceback" not in log, log[log.index("Traceback") - 300:][:3000]
