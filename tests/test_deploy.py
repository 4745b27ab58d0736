"""What platform teams install beside the operator: Argo CD health checks and the Grafana
dashboard. (Their behaviour on live objects and live metrics: tests/operator.)"""

from __future__ import annotations

import yaml

from tests.argocd import ARGOCD, health


def test_the_argocd_cm_snippet_carries_exactly_the_health_checks() -> None:
    cm = yaml.safe_load((ARGOCD / "argocd-cm.yaml").read_text())
    assert (cm["kind"], cm["metadata"]["name"]) == ("ConfigMap", "argocd-cm")
    for kind in ("ModelDeployment", "Evaluation"):
        key = f"resource.customizations.health.slam.dev_{kind}"
        assert cm["data"][key] == (ARGOCD / f"slam.dev_{kind}.lua").read_text(), \
            f"{key} differs from deploy/argocd/slam.dev_{kind}.lua: regenerate the snippet"


def test_a_new_object_or_one_the_operator_has_not_seen_yet_is_progressing() -> None:
    for kind in ("ModelDeployment", "Evaluation"):
        assert health(kind, {"metadata": {"generation": 1}})["status"] == "Progressing"
        seen_before = {"metadata": {"generation": 3}, "status": {
            "observedGeneration": 2, "phase": "Succeeded",
            "conditions": [{"type": "Ready", "status": "True", "reason": "Ready"}]}}
        assert health(kind, seen_before) == {
            "status": "Progressing",
            "message": "waiting for the slam operator to observe generation 3"}
