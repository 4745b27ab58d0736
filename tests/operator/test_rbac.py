"""The operator limited to listed namespaces (the chart's watchNamespaces) works with the
chart's Roles alone. (Cluster-wide, every operator cluster test runs under the chart's
ClusterRole: tests/operator/conftest.py.)"""

from __future__ import annotations

import logging
import time

from kopf.testing import KopfRunner
from kubernetes import client

from tests.operator.conftest import (
    GROUP,
    MDS,
    VERSION,
    chart_rbac_kubeconfig,
    eventually,
    rbac_denials,
)


def test_operator_runs_in_listed_namespaces_with_roles_only(
        control_plane, k8s, namespace, fake_hub, tmp_path, monkeypatch, caplog) -> None:
    """The chart with watchNamespaces: Roles in the listed namespaces, no cluster-wide rights
    but reading CRDs; the operator works there and leaves every other namespace alone."""
    caplog.set_level(logging.DEBUG)
    elsewhere = f"{namespace}-other"
    client.CoreV1Api(k8s).create_namespace({"metadata": {"name": elsewhere}})
    kubeconfig, account = chart_rbac_kubeconfig(
        control_plane, k8s, tmp_path / "kubeconfig",
        {"crds": {"install": False}, "watchNamespaces": [namespace],
         "serviceAccount": {"name": "slam-operator-ns"}, "rbac": {"create": True}},
        release="slam-ns")
    monkeypatch.setenv("KUBECONFIG", str(kubeconfig))
    monkeypatch.setenv("HF_ENDPOINT", fake_hub.url)
    monkeypatch.setenv("SLAM_WATCH_NAMESPACES", namespace)
    # No /metrics server from this run: it would bind the default port for the whole test
    # process, and the `operator` fixture's later runs read metrics from their own port.
    monkeypatch.setenv("SLAM_METRICS_PORT", "0")
    ignored = {"apiVersion": f"{GROUP}/{VERSION}", "kind": "ModelDeployment",
               "metadata": {"name": "not-mine"},
               "spec": {"model": {"id": "mistralai/Mistral-7B-Instruct-v0.2"},
                        "instanceType": "g5.xlarge"}}
    client.CustomObjectsApi(k8s).create_namespaced_custom_object(
        GROUP, VERSION, elsewhere, MDS, ignored)
    # As the image runs it: python -m slam_operator reads SLAM_WATCH_NAMESPACES.
    runner = KopfRunner(["run", "--namespace", namespace, "--standalone", "-m",
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
    # The other namespace's object was never touched: no status, no child.
    other = client.CustomObjectsApi(k8s).get_namespaced_custom_object(
        GROUP, VERSION, elsewhere, MDS, "not-mine")
    assert "status" not in other
    assert not client.AppsV1Api(k8s).list_namespaced_deployment(elsewhere).items
    denied = rbac_denials([r.getMessage() for r in caplog.records], account)
    assert not denied, denied[:5]
    client.CoreV1Api(k8s).delete_namespace(elsewhere)
