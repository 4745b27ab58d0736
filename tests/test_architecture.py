"""The shape the code keeps: pure modules stay pure, so they can be tested and reused without a
cluster, an operator framework or a web app (STYLE.md: pure builders, plans, status decisions,
statistics as pure functions)."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.controlplane.cluster import REPO

# Builders, plans, status decisions, statistics and rating logic.
PURE = [
    "slam_operator.names", "slam_operator.conditions", "slam_operator.plan",
    "slam_operator.runtimes", "slam_operator.modeldeployment.builders",
    "slam_operator.modeldeployment.status", "slam_operator.modeldeployment.gpu",
    "slam_operator.evaluation.job", "slam_operator.evaluation.status",
    "slam_operator.evaluation.plan",
    "slam.stats", "slam.decision", "slam.judgebias", "slam.compare", "slam.summary",
    "slam.cost", "slam.metrics", "slam.api.evaluation",
    "slam.api.modeldeployment", "slam_dashboard.rating",
]
FRAMEWORKS = ("kubernetes", "kopf", "streamlit")


def test_pure_modules_import_no_cluster_client_operator_framework_or_web_app() -> None:
    # A fresh interpreter per module: what one import drags in must not hide behind another.
    script = ("import importlib, json, sys; importlib.import_module(sys.argv[1]); "
              f"print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in "
              f"{FRAMEWORKS!r})))")
    dragged = {}
    for module in PURE:
        out = subprocess.run([sys.executable, "-c", script, module], capture_output=True,
                             text=True, cwd=REPO, check=True).stdout
        found = json.loads(out)
        if found:
            dragged[module] = found[:5]
    assert not dragged, f"pure modules importing frameworks: {dragged}"
