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
    assert (s.evaluation_workers, s.hub, s.runtime_images, s.store_url) == (
        8, "https://huggingface.co", {}, None)


def test_everything_the_operator_reads_is_read_here() -> None:
    """The Hub, the kubeconfig, the runtimes' images and the probes' store come from this one
    reading of the environment, not from modules reading it on their own."""
    s = from_env({"HF_ENDPOINT": "http://mirror.internal:8080/", "KUBECONFIG": "/k/config",
                  "SLAM_LLAMACPP_IMAGE": "reg/llamacpp:1", "SLAM_VLLM_IMAGE": "",
                  "SLAM_VLLM_CPU_IMAGE": "reg/vllm-cpu:1",
                  "SLAM_STORE_URL": "postgresql+psycopg://slam:hunter2@db/slam",
                  "SLAM_EVALUATION_WORKERS": "3"})
    assert s.hub == "http://mirror.internal:8080"
    assert s.kubeconfig == "/k/config" and s.evaluation_workers == 3
    assert s.runtime_images == {"llamacpp": "reg/llamacpp:1", "vllm-cpu": "reg/vllm-cpu:1"}
    assert s.store_url.get_secret_value().endswith("@db/slam")
    assert "hunter2" not in repr(s) and "hunter2" not in str(s)


def test_a_bad_hub_address_is_named() -> None:
    with pytest.raises(SettingsError) as e:
        from_env({"HF_ENDPOINT": "huggingface.co"})
    assert str(e.value).startswith("HF_ENDPOINT='huggingface.co': ")


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
    ("SLAM_EVALUATION_WORKERS", "none", "operator.evaluationWorkers"),
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
