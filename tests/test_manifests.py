"""The dashboard's plain manifest is accepted by the real API server (server-side dry run).
(The operator's manifests are rendered from the Helm chart: tests/test_chart.py.)"""

from __future__ import annotations

from kubernetes import utils

from tests.controlplane.cluster import REPO


def test_dashboard_manifest_is_accepted(k8s, namespace) -> None:
    objs = utils.create_from_yaml(k8s, str(REPO / "manifests/dashboard/deployment.yaml"),
                                  namespace=namespace, dry_run="All")
    kinds = sorted(type(o).__name__ for group in objs for o in group)
    assert kinds == ["V1Deployment", "V1Service"]
