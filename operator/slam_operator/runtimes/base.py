"""What every runtime module shares: its input, the cache path, probes, the HF token env var."""

from __future__ import annotations

from dataclasses import dataclass

from slam.api.modeldeployment import ModelDeploymentSpec

CACHE_DIR = "/data"  # model cache volume (PVC or emptyDir)
HEALTH_PATH = "/health"  # TGI, vLLM, SGLang and llama.cpp all answer 200 here once loaded


@dataclass(frozen=True)
class RuntimeInput:
    spec: ModelDeploymentSpec
    revision: str  # commit SHA when resolved, else the spec's revision
    hf_endpoint: str  # Hub base URL the pod downloads from
    image: str | None = None  # the operator's image for this runtime (else the module's default)
    kv_cache_gib: int | None = None  # vLLM on CPU: VLLM_CPU_KVCACHE_SPACE


def hf_env(inp: RuntimeInput) -> list[dict]:
    """HF_TOKEN as a Secret reference (never a value), the cache and the Hub endpoint."""
    env = [
        {"name": "HF_ENDPOINT", "value": inp.hf_endpoint},
        {"name": "HF_HOME", "value": CACHE_DIR},
    ]
    ref = inp.spec.hf_token_secret_ref
    if ref is not None:
        env.append({
            "name": "HF_TOKEN",
            "valueFrom": {"secretKeyRef": {"name": ref.name, "key": ref.key}},
        })
    return sorted(env, key=lambda e: e["name"])


def probes(port_name: str = "http") -> dict:
    """Readiness/liveness on the health endpoint; a startup probe long enough for a download.

    Model downloads of 15 GB take minutes: the startup probe allows one hour (360 × 10 s)
    before liveness applies, as KubeAI does for its model servers.
    """
    def get() -> dict:
        return {"path": HEALTH_PATH, "port": port_name}

    return {
        "startupProbe": {"httpGet": get(), "periodSeconds": 10, "failureThreshold": 360},
        "readinessProbe": {"httpGet": get(), "periodSeconds": 5, "failureThreshold": 3},
        "livenessProbe": {"httpGet": get(), "periodSeconds": 30, "failureThreshold": 3},
    }


def base_container(inp: RuntimeInput, image: str, args: list[str], env: list[dict]) -> dict:
    spec = inp.spec
    return {
        "name": "server",
        "image": spec.image or inp.image or image,
        "args": [*args, *(spec.extra_args or [])],
        "env": sorted(env, key=lambda e: e["name"]),
        "ports": [{"name": "http", "containerPort": spec.port, "protocol": "TCP"}],
        # A server that exits leaves the tail of its log in lastState.terminated.message, which
        # the operator puts in the Available condition.
        "terminationMessagePolicy": "FallbackToLogsOnError",
        **probes(),
    }
