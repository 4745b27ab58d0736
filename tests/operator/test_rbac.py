"""The operator works with nothing but the ClusterRole in manifests/operator/rbac.yaml."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import yaml
from kopf.testing import KopfRunner
from kubernetes import client, utils

from tests.controlplane.cluster import REPO, ControlPlane
from tests.operator.conftest import GROUP, MDS, VERSION, eventually


def _kubeconfig_for_token(cp: ControlPlane, token: str, path: Path) -> Path:
    cfg = yaml.safe_load(cp.kubeconfig.read_text())
    cfg["users"][0]["user"] = {"token": token}
    path.write_text(yaml.safe_dump(cfg))
    return path


def test_operator_runs_with_least_privilege(control_plane, k8s, namespace, fake_hub,
                                            tmp_path, monkeypatch, caplog) -> None:
    caplog.set_level(logging.DEBUG)
    folder = REPO / "manifests" / "operator"
    for name in ("namespace.yaml", "rbac.yaml"):
        try:
            utils.create_from_yaml(k8s, str(folder / name))
        except utils.FailToCreateError as e:
            if any(x.status != 409 for x in e.api_exceptions):
                raise
    token = client.CoreV1Api(k8s).create_namespaced_service_account_token(
        "slam-operator", "slam-system", {"spec": {"expirationSeconds": 3600}}).status.token
    kubeconfig = _kubeconfig_for_token(control_plane, token, tmp_path / "kubeconfig")
    monkeypatch.setenv("KUBECONFIG", str(kubeconfig))
    monkeypatch.setenv("HF_ENDPOINT", fake_hub.url)
    runner = KopfRunner(["run", "--all-namespaces", "--standalone", "-m",
                         "slam_operator.handlers"], timeout=60)
    with runner:
        client.CustomObjectsApi(k8s).create_namespaced_custom_object(
            GROUP, VERSION, namespace, MDS,
            {"apiVersion": f"{GROUP}/{VERSION}", "kind": "ModelDeployment",
             "metadata": {"name": "rbac"},
             "spec": {"model": {"id": "mistralai/Mistral-7B-Instruct-v0.2"},
                      "instanceType": "g5.xlarge",
                      "hfTokenSecretRef": {"name": "absent", "key": "token"}}})
        # Reading the (missing) Secret is allowed: the condition names it, not a 403.
        eventually(lambda: any(
            c["reason"] == "TokenSecretNotFound" and "not found" in c["message"]
            for c in client.CustomObjectsApi(k8s).get_namespaced_custom_object(
                GROUP, VERSION, namespace, MDS, "rbac").get("status", {}).get("conditions", [])
        ), what="TokenSecretNotFound with the service account's rights")
        client.CustomObjectsApi(k8s).patch_namespaced_custom_object(
            GROUP, VERSION, namespace, MDS, "rbac", {"spec": {"hfTokenSecretRef": None}})
        eventually(lambda: client.AppsV1Api(k8s).read_namespaced_deployment("rbac", namespace),
                   what="Deployment created with the service account's rights")
        # An Evaluation: Secrets and the prompt ConfigMap checked, the store read, the scoring
        # Job created.
        client.CoreV1Api(k8s).create_namespaced_config_map(namespace, client.V1ConfigMap(
            metadata=client.V1ObjectMeta(name="prompts"),
            data={"p.yaml": "- {id: a, template: hi}"}))
        for name, key, value in (("slam-store", "url", f"sqlite:///{tmp_path / 'r.db'}"),
                                 ("openai", "api-key", "rbac-test-key")):
            client.CoreV1Api(k8s).create_namespaced_secret(namespace, client.V1Secret(
                metadata=client.V1ObjectMeta(name=name), string_data={key: value}))
        client.CustomObjectsApi(k8s).create_namespaced_custom_object(
            GROUP, VERSION, namespace, "evaluations",
            {"apiVersion": f"{GROUP}/{VERSION}", "kind": "Evaluation",
             "metadata": {"name": "rbac"},
             "spec": {"promptSet": {"configMap": {"name": "prompts", "key": "p.yaml"}},
                      "reference": "api",
                      "targets": [
                          {"name": "api", "external": {
                              "baseUrl": "http://127.0.0.1:9/v1", "model": "gpt-4",
                              "apiKeySecretRef": {"name": "openai", "key": "api-key"}}},
                          {"name": "other", "external": {"baseUrl": "http://127.0.0.1:9/v1",
                                                         "model": "x"}}]}})
        eventually(lambda: client.BatchV1Api(k8s).read_namespaced_job("rbac-run-1", namespace),
                   what="scoring Job created with the service account's rights")
        eventually(lambda: client.CustomObjectsApi(k8s).get_namespaced_custom_object(
            GROUP, VERSION, namespace, "evaluations", "rbac")["status"]["phase"] == "Running",
            what="Evaluation Running")
        time.sleep(1)
    assert runner.exit_code == 0
    # An RBAC denial reads: ... is forbidden: User "system:serviceaccount:..." cannot <verb> ...
    who = 'User \\"system:serviceaccount:slam-system:slam-operator\\" cannot'
    denied = [r.getMessage() for r in caplog.records
              if who in r.getMessage() or who.replace("\\", "") in r.getMessage()]
    assert not denied, denied[:5]
