"""Upgrading from the previous release (tests/upgrade/0.1.0): the cluster as that release left it
(its CRDs, objects written for them, and what its operator made of them: tests/upgrade/capture.py),
then this release's CRDs (as `helm upgrade` applies them) and operator. The old objects still
validate and reconcile, and nothing the user did not change is rebuilt: no model server
restarts, no scoring Job is re-run."""

from __future__ import annotations

import copy
import time
from pathlib import Path

import yaml
from kubernetes import client

from slam_operator.names import BUILT_BY_ANNOTATION, OPERATOR_VERSION
from tests.controlplane.cluster import REPO, ControlPlane, apply_crds
from tests.operator.conftest import (
    GROUP,
    MDS,
    RESYNC_SECONDS,
    VERSION,
    chart_rbac_kubeconfig,
    eventually,
    rbac_denials,
)
from tests.operator.evaluation.test_restart import operator_process
from tests.upgrade.capture import SECRETS

PREVIOUS = REPO / "tests" / "upgrade" / "0.1.0"
PLURAL = {"ModelDeployment": MDS, "Evaluation": "evaluations"}
OWNER = {"Deployment": "ModelDeployment", "Service": "ModelDeployment", "Job": "Evaluation",
         "ServiceAccount": "Evaluation"}


def _restore_previous_release(k8s: client.ApiClient, ns: str) -> None:
    """Objects, their kopf annotations and status, and their children, as 0.1.0 left them."""
    core, custom = client.CoreV1Api(k8s), client.CustomObjectsApi(k8s)
    for name, data in SECRETS.items():
        core.create_namespaced_secret(ns, client.V1Secret(
            metadata=client.V1ObjectMeta(name=name), string_data=data))
    state = yaml.safe_load((PREVIOUS / "state.yaml").read_text())
    owners = {}
    for obj in yaml.safe_load_all((PREVIOUS / "objects.yaml").read_text()):
        created = custom.create_namespaced_custom_object(GROUP, VERSION, ns,
                                                         PLURAL[obj["kind"]], obj)
        owners[obj["kind"]] = created
    for saved in state["objects"]:
        plural, name = PLURAL[saved["kind"]], saved["name"]
        custom.patch_namespaced_custom_object(GROUP, VERSION, ns, plural, name,
                                              {"metadata": {"annotations": saved["annotations"]}})
        custom.patch_namespaced_custom_object_status(GROUP, VERSION, ns, plural, name,
                                                     {"status": saved["status"]})
    for child in state["children"]:
        child = copy.deepcopy(child)
        owner = owners[OWNER[child["kind"]]]
        child["metadata"]["ownerReferences"] = [{
            "apiVersion": f"{GROUP}/{VERSION}", "kind": owner["kind"],
            "name": owner["metadata"]["name"], "uid": owner["metadata"]["uid"],
            "controller": True, "blockOwnerDeletion": True}]
        create = {"Deployment": client.AppsV1Api(k8s).create_namespaced_deployment,
                  "Service": core.create_namespaced_service,
                  "Job": client.BatchV1Api(k8s).create_namespaced_job,
                  "ServiceAccount": core.create_namespaced_service_account}[child["kind"]]
        create(ns, child)


def _server(k8s: client.ApiClient, ns: str) -> client.V1Deployment:
    return client.AppsV1Api(k8s).read_namespaced_deployment("mistral", ns)


def _jobs(k8s: client.ApiClient, ns: str) -> list[tuple[str, str]]:
    return [(j.metadata.name, j.metadata.uid)
            for j in client.BatchV1Api(k8s).list_namespaced_job(ns).items]


def test_an_upgrade_from_the_previous_release_restarts_nothing(
        control_plane: ControlPlane, k8s: client.ApiClient, namespace: str, fake_hub,
        tmp_path: Path) -> None:
    custom = client.CustomObjectsApi(k8s)
    try:
        apply_crds(control_plane, PREVIOUS / "crds")
        _restore_previous_release(k8s, namespace)
    finally:
        # This release's CRDs, as `helm upgrade` applies them (also restoring them for the other
        # tests should the old state be rejected).
        apply_crds(control_plane, REPO / "crds")
    # The old objects validate against the new schema on update (additive fields, defaults).
    for name, plural in (("mistral", MDS), ("support-replies", "evaluations")):
        custom.patch_namespaced_custom_object(GROUP, VERSION, namespace, plural, name,
                                              {"metadata": {"labels": {"upgraded": "yes"}}})
    server = _server(k8s, namespace)
    old_template = server.spec.template.spec.containers[0].termination_message_policy
    jobs = _jobs(k8s, namespace)
    assert old_template == "File" and [n for n, _ in jobs] == ["support-replies-run-1"]

    kubeconfig, account = chart_rbac_kubeconfig(control_plane, k8s, tmp_path / "kubeconfig")
    env = {"HF_ENDPOINT": fake_hub.url, "SLAM_WATCH_NAMESPACES": namespace,
           "SLAM_RESYNC_SECONDS": str(RESYNC_SECONDS)}
    logs = []
    for attempt in ("upgraded", "restarted"):  # the new operator's pod, then a later restart
        workdir = tmp_path / attempt
        with operator_process(control_plane, workdir, kubeconfig, env):
            # It has taken the objects over: a status field 0.1.0 did not have is written.
            eventually(lambda: custom.get_namespaced_custom_object(
                GROUP, VERSION, namespace, "evaluations", "support-replies")["status"].get("plan"),
                what="this release's status.plan on the old Evaluation")
            time.sleep(4 * RESYNC_SECONDS)  # several resyncs
            now = _server(k8s, namespace)
            assert (now.metadata.uid, now.metadata.generation) == (
                server.metadata.uid, server.metadata.generation), \
                f"{attempt}: the model server's Deployment was rebuilt (its pods would restart)"
            assert _jobs(k8s, namespace) == jobs, f"{attempt}: the scoring Job was replaced"
            ev = custom.get_namespaced_custom_object(GROUP, VERSION, namespace, "evaluations",
                                                     "support-replies")
            assert ev["status"]["phase"] == "Running"
        logs.append((workdir / "operator.log").read_text())

    # A change the user makes is applied with this release's pod template.
    with operator_process(control_plane, tmp_path / "changed", kubeconfig, env):
        custom.patch_namespaced_custom_object(GROUP, VERSION, namespace, MDS, "mistral",
                                              {"spec": {"replicas": 2}})
        changed = eventually(lambda: (d := _server(k8s, namespace)).spec.replicas == 2 and d,
                             what="the changed ModelDeployment applied")
        assert changed.metadata.annotations[BUILT_BY_ANNOTATION] == OPERATOR_VERSION
        assert changed.spec.template.spec.containers[0].termination_message_policy == \
            "FallbackToLogsOnError"
    logs.append((tmp_path / "changed" / "operator.log").read_text())
    denied = rbac_denials("\n".join(logs).splitlines(), account)
    assert not denied, denied[:5]
