"""The operator's environment: an unusable value stops it at start with a message that names the
variable, the value and the chart value to fix, and nothing else starts."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from slam_operator.settings import SettingsError, from_env


def test_unset_and_empty_variables_give_the_defaults() -> None:
    s = from_env({"SLAM_MAX_WORKERS": "", "SLAM_WATCH_NAMESPACES": " "})
    assert (s.resync_seconds, s.max_workers, s.api_connections) == (300.0, 32, 32)
    assert (s.metrics_port, s.health_port, s.log_level) == (9090, 8080, "info")
    assert s.watch_namespaces == []
    assert s.scoring_job_image == "ghcr.io/slam-operator/slam-scoring:0.1.0"


def test_values_are_read_and_converted() -> None:
    s = from_env({"SLAM_RESYNC_SECONDS": "12.5", "SLAM_MAX_WORKERS": " 8 ",
                  "SLAM_WATCH_NAMESPACES": "team-a, team-b,,", "SLAM_METRICS_PORT": "0",
                  "SLAM_IMAGE": "old/scoring:1", "SLAM_LOG_LEVEL": "DEBUG"})
    assert (s.resync_seconds, s.max_workers, s.metrics_port) == (12.5, 8, 0)
    assert s.log_level == "debug"
    assert s.watch_namespaces == ["team-a", "team-b"]
    assert s.scoring_job_image == "old/scoring:1"  # the older name still works
    assert from_env({"SLAM_IMAGE": "old/scoring:1",
                     "SLAM_SCORING_IMAGE": "new/scoring:2"}).scoring_job_image == "new/scoring:2"


@pytest.mark.parametrize("var, value, chart", [
    ("SLAM_MAX_WORKERS", "abc", "operator.maxWorkers"),
    ("SLAM_MAX_WORKERS", "0", "operator.maxWorkers"),
    ("SLAM_API_CONNECTIONS", "-1", "operator.apiConnections"),
    ("SLAM_RESYNC_SECONDS", "0", "operator.resyncSeconds"),
    ("SLAM_RESYNC_SECONDS", "5m", "operator.resyncSeconds"),
    ("SLAM_METRICS_PORT", "70000", "metrics.port"),
    ("SLAM_LOG_LEVEL", "verbose", "operator.logLevel"),
])
def test_an_unusable_value_is_named_with_its_chart_value(var, value, chart) -> None:
    with pytest.raises(SettingsError) as e:
        from_env({var: value})
    message = str(e.value)
    assert message.startswith(f"{var}={value!r}: ")
    assert f"the Helm chart's {chart}" in message


def test_every_unusable_value_is_named_at_once() -> None:
    with pytest.raises(SettingsError) as e:
        from_env({"SLAM_MAX_WORKERS": "many", "SLAM_PROGRESS_SECONDS": "-3",
                  "SLAM_HEALTH_PORT": "8080"})
    lines = str(e.value).splitlines()
    assert sorted(line.split("=")[0] for line in lines) == ["SLAM_MAX_WORKERS",
                                                           "SLAM_PROGRESS_SECONDS"]


def test_the_operator_refuses_to_start_and_says_which_variable(tmp_path) -> None:
    """`python -m slam_operator` (the chart's container command) with a bad value exits 2 before
    connecting anywhere, with the variable in its message and no traceback; a secret elsewhere in
    its environment is not echoed."""
    env = {**os.environ, "SLAM_MAX_WORKERS": "abc", "SLAM_HEALTH_PORT": "0",
           "SLAM_METRICS_PORT": "0", "OPENAI_API_KEY": "sk-never-printed",
           "KUBECONFIG": str(tmp_path / "no-such-kubeconfig")}
    done = subprocess.run([sys.executable, "-m", "slam_operator"], env=env, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 2, done.stderr
    assert "SLAM_MAX_WORKERS='abc'" in done.stderr
    assert "operator.maxWorkers" in done.stderr
    assert "Traceback" not in done.stderr
    assert "sk-never-printed" not in done.stderr + done.stdout
