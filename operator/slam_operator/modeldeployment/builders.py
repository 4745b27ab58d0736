"""Pure builders: the Deployment, Service and model-cache PVC of a ModelDeployment.

They never touch the API and are deterministic (sorted env, stable labels), so golden tests pin
their output. Owner references are added by the handler (kopf.adopt).
"""

from __future__ import annotations

from dataclasses import dataclass

from slam.api.modeldeployment import ModelDeploymentSpec
from slam_operator import runtimes
from slam_operator.names import (
    BUILT_BY_ANNOTATION,
    COMPONENT_LABEL,
    GPU_RESOURCE,
    INSTANCE_LABEL,
    INSTANCE_TYPE_LABEL,
    MANAGED_BY,
    MANAGED_BY_LABEL,
    MODEL_DEPLOYMENT_LABEL,
    NAME_LABEL,
    OPERATOR_VERSION,
    REVISION_ANNOTATION,
)
from slam_operator.runtimes.base import CACHE_DIR, RuntimeInput

# TGI and NCCL use shared memory between shards; Docker's 64 MiB default is too small
# (TGI's docs run with --shm-size 1g).
SHM_SIZE = "1Gi"


@dataclass(frozen=True)
class ServedModel:
    """Which ModelDeployment, and the facts its pods depend on."""

    name: str
    namespace: str
    spec: ModelDeploymentSpec
    revision: str
    hf_endpoint: str = "https://huggingface.co"
    image: str | None = None  # the operator's configured image for this runtime, if any
    kv_cache_gib: int | None = None  # vLLM on CPU (gpu.cpu_kv_cache_gib)


def labels(t: ServedModel) -> dict[str, str]:
    return {
        MANAGED_BY_LABEL: MANAGED_BY,
        NAME_LABEL: "slam-model",
        INSTANCE_LABEL: t.name,
        COMPONENT_LABEL: t.spec.runtime,
        MODEL_DEPLOYMENT_LABEL: t.name,
    }


def selector(t: ServedModel) -> dict[str, str]:
    return {MODEL_DEPLOYMENT_LABEL: t.name}


def cache_claim_name(t: ServedModel) -> str:
    return f"{t.name}-model-cache"


def endpoint(t: ServedModel) -> str:
    """Base URL of the OpenAI-compatible API inside the cluster."""
    return f"http://{t.name}.{t.namespace}.svc.cluster.local:{t.spec.port}/v1"


def _resources(spec: ModelDeploymentSpec) -> dict:
    requests: dict[str, str] = {}
    limits: dict[str, str] = {}
    if spec.resources and spec.resources.cpu:
        requests["cpu"] = spec.resources.cpu
    if spec.resources and spec.resources.memory:
        requests["memory"] = limits["memory"] = spec.resources.memory
    if spec.gpu_count:
        limits[GPU_RESOURCE] = str(spec.gpu_count)
    out = {}
    if requests:
        out["requests"] = requests
    if limits:
        out["limits"] = limits
    return out


def _pod_spec(t: ServedModel) -> dict:
    spec = t.spec
    container = runtimes.container(RuntimeInput(spec, t.revision, t.hf_endpoint, t.image,
                                                t.kv_cache_gib))
    container["resources"] = _resources(spec)
    container["volumeMounts"] = [
        {"name": "model-cache", "mountPath": CACHE_DIR},
        {"name": "shm", "mountPath": "/dev/shm"},
    ]
    cache_volume = (
        {"name": "model-cache", "persistentVolumeClaim": {"claimName": cache_claim_name(t)}}
        if spec.model_cache and spec.model_cache.enabled
        else {"name": "model-cache", "emptyDir": {}}
    )
    pod: dict = {
        "containers": [container],
        "volumes": [
            cache_volume,
            {"name": "shm", "emptyDir": {"medium": "Memory", "sizeLimit": SHM_SIZE}},
        ],
    }
    if spec.instance_type:
        pod["nodeSelector"] = {INSTANCE_TYPE_LABEL: spec.instance_type}
    if spec.gpu_count:
        # EKS GPU node groups carry this taint so that only GPU workloads land there.
        pod["tolerations"] = [
            {"key": GPU_RESOURCE, "operator": "Exists", "effect": "NoSchedule"}
        ]
    return pod


def build_deployment(t: ServedModel) -> dict:
    spec = t.spec
    uses_claim = bool(spec.model_cache and spec.model_cache.enabled)
    # A ReadWriteOnce cache cannot be mounted by a surge pod on another node, and a surge pod
    # would need a second GPU: such deployments replace pods instead of rolling.
    strategy = (
        {"type": "Recreate"}
        if uses_claim
        else {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}}
    )
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": t.name, "namespace": t.namespace, "labels": labels(t),
                     "annotations": {BUILT_BY_ANNOTATION: OPERATOR_VERSION}},
        "spec": {
            "replicas": spec.replicas,
            "selector": {"matchLabels": selector(t)},
            "strategy": strategy,
            "template": {
                "metadata": {
                    "labels": labels(t),
                    "annotations": {REVISION_ANNOTATION: t.revision},
                },
                "spec": _pod_spec(t),
            },
        },
    }


def build_service(t: ServedModel) -> dict:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": t.name, "namespace": t.namespace, "labels": labels(t)},
        "spec": {
            "type": "ClusterIP",
            "selector": selector(t),
            "ports": [
                {"name": "http", "port": t.spec.port, "targetPort": "http", "protocol": "TCP"}
            ],
        },
    }


def build_cache_claim(t: ServedModel) -> dict | None:
    cache = t.spec.model_cache
    if not cache or not cache.enabled:
        return None
    spec: dict = {
        "accessModes": ["ReadWriteOnce"],
        "resources": {"requests": {"storage": cache.size}},
    }
    if cache.storage_class_name:
        spec["storageClassName"] = cache.storage_class_name
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {"name": cache_claim_name(t), "namespace": t.namespace, "labels": labels(t)},
        "spec": spec,
    }


def build_children(t: ServedModel) -> list[dict]:
    """Everything a ModelDeployment owns, in creation order."""
    claim = build_cache_claim(t)
    return [*([claim] if claim else []), build_service(t), build_deployment(t)]
