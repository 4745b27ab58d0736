"""Operator and dashboard manifests are accepted by the real API server (server-side dry run)."""

from __future__ import annotations

import pytest
from kubernetes import utils

from tests.controlplane.cluster import REPO


@pytest.mark.parametrize("path", ["manifests/operator/deployment.yaml",
                                  "manifests/dashboard/deployment.yaml"])
def test_manifest_is_accepted(k8s, namespace, path) -> None:
    namespaced = "dashboard" in path
    objs = utils.create_from_yaml(k8s, str(REPO / path), namespace=namespace if namespaced
                                  else None, dry_run="All") if namespaced else None
    if not namespaced:
        # The operator's objects live in slam-system; create it for the dry run.
        from kubernetes import client
        try:
            client.CoreV1Api(k8s).create_namespace({"metadata": {"name": "slam-system"}})
        except client.ApiException as e:
            if e.status != 409:
                raise
        objs = utils.create_from_yaml(k8s, str(REPO / path), dry_run="All")
    kinds = sorted(type(o).__name__ for group in objs for o in group)
    assert kinds == ["V1Deployment", "V1Service"]
