"""The operator's settings, read from its environment and checked in one place, once: when the
process starts (`python -m slam_operator`, or kopf's start-up handler when kopf runs the
handlers module), then passed down. No operator module reads the environment itself, and none
reads anything at import.

A value that is not usable stops the operator at start with a message that names the variable,
the value, what it must be, and the Helm chart value that sets it: `SLAM_MAX_WORKERS='abc'`
otherwise surfaced as a bare `int()` traceback, and `0` as a refusal deep inside kopf.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator

DEFAULT_SCORING_IMAGE = "ghcr.io/slam-operator/slam-scoring:0.1.0"
DEFAULT_HUB = "https://huggingface.co"
DEFAULT_HUB_TIMEOUT_SECONDS = 10.0
# What the operator reads besides its own SLAM_* variables.
OTHER_VARIABLES = ("HF_ENDPOINT", "KUBECONFIG")

# Environment variable -> the chart value that sets it (charts/slam-operator/values.yaml).
CHART_VALUES = {
    "SLAM_RESYNC_SECONDS": "operator.resyncSeconds",
    "SLAM_MAX_WORKERS": "operator.maxWorkers",
    "SLAM_EVALUATION_WORKERS": "operator.evaluationWorkers",
    "SLAM_API_CONNECTIONS": "operator.apiConnections",
    "SLAM_METRICS_PORT": "metrics.port",
    "SLAM_LOG_LEVEL": "operator.logLevel",
    "SLAM_WATCH_NAMESPACES": "watchNamespaces",
}


class SettingsError(ValueError):
    """One line per unusable variable; the operator exits with it."""


class Settings(BaseModel):
    """Field aliases are the variables; defaults are what the operator uses when one is unset."""

    model_config = ConfigDict(frozen=True, extra="ignore", str_strip_whitespace=True)

    # How often every ModelDeployment is re-checked even without events (drift, Hub retries).
    resync_seconds: float = Field(300.0, gt=0, alias="SLAM_RESYNC_SECONDS")
    # How often a running Evaluation's progress is read from the store.
    progress_seconds: float = Field(10.0, gt=0, alias="SLAM_PROGRESS_SECONDS")
    # ModelDeployments reconciled at once: their controller's workers (a thread each).
    max_workers: int = Field(32, ge=1, alias="SLAM_MAX_WORKERS")
    # Evaluations reconciled at once, on a pool of their own.
    evaluation_workers: int = Field(8, ge=1, alias="SLAM_EVALUATION_WORKERS")
    # Connections kopf may open for its own requests, on top of one per watch stream.
    api_connections: int = Field(32, ge=1, alias="SLAM_API_CONNECTIONS")
    # Prometheus /metrics; 0 turns it off.
    metrics_port: int = Field(9090, ge=0, le=65535, alias="SLAM_METRICS_PORT")
    metrics_addr: str = Field("0.0.0.0", min_length=1, alias="SLAM_METRICS_ADDR")
    # kopf's liveness endpoint (/healthz); 0 turns it off.
    health_port: int = Field(8080, ge=0, le=65535, alias="SLAM_HEALTH_PORT")
    log_level: Literal["info", "debug"] = Field("info", alias="SLAM_LOG_LEVEL")
    # Seconds to wait for the Hugging Face Hub before a model counts as unresolved for now.
    hub_timeout_seconds: float = Field(DEFAULT_HUB_TIMEOUT_SECONDS, gt=0,
                                       alias="SLAM_HUB_TIMEOUT_SECONDS")
    # Comma-separated; empty: every namespace.
    watch_namespaces_csv: str = Field("", alias="SLAM_WATCH_NAMESPACES")
    scoring_image: str = Field("", alias="SLAM_SCORING_IMAGE")
    legacy_image: str = Field("", alias="SLAM_IMAGE")  # the scoring image's older name
    # Each runtime's image, as serving operators configure their engines' images; a
    # ModelDeployment's spec.image still wins.
    tgi_image: str = Field("", alias="SLAM_TGI_IMAGE")
    vllm_image: str = Field("", alias="SLAM_VLLM_IMAGE")
    vllm_cpu_image: str = Field("", alias="SLAM_VLLM_CPU_IMAGE")
    sglang_image: str = Field("", alias="SLAM_SGLANG_IMAGE")
    llamacpp_image: str = Field("", alias="SLAM_LLAMACPP_IMAGE")
    # The Hugging Face Hub (or a mirror): where models are resolved and pods download them.
    hf_endpoint: str = Field(DEFAULT_HUB, pattern=r"^https?://\S+$", alias="HF_ENDPOINT")
    # Outside a pod: the kubeconfig to connect with (unset: ~/.kube/config).
    kubeconfig: str | None = Field(None, alias="KUBECONFIG")
    # The latency probes' store when an Evaluation names none (a secret: never printed).
    store_url: SecretStr | None = Field(None, alias="SLAM_STORE_URL")

    @field_validator("log_level", mode="before")
    @classmethod
    def _any_case(cls, value: object) -> object:
        return value.lower() if isinstance(value, str) else value

    @property
    def watch_namespaces(self) -> list[str]:
        return [n.strip() for n in self.watch_namespaces_csv.split(",") if n.strip()]

    @property
    def scoring_job_image(self) -> str:
        return self.scoring_image or self.legacy_image or DEFAULT_SCORING_IMAGE

    @property
    def hub(self) -> str:
        return self.hf_endpoint.rstrip("/")

    @property
    def runtime_images(self) -> dict[str, str]:
        """The configured image per runtime (runtimes.image_key); unset ones are absent."""
        given = {"tgi": self.tgi_image, "vllm": self.vllm_image,
                 "vllm-cpu": self.vllm_cpu_image, "sglang": self.sglang_image,
                 "llamacpp": self.llamacpp_image}
        return {runtime: image for runtime, image in given.items() if image}


def _explain(err: ValidationError, environ: Mapping[str, str]) -> str:
    lines = []
    for e in err.errors():
        var = str(e["loc"][0]) if e["loc"] else "?"
        chart = CHART_VALUES.get(var)
        where = f" (the Helm chart's {chart})" if chart else ""
        shown = "(hidden)" if var == "SLAM_STORE_URL" else repr(environ.get(var, ""))
        lines.append(f"{var}={shown}: {e['msg']}; set {var}{where} to a "
                     f"valid value or unset it for the default")
    return "\n".join(lines)


def from_env(environ: Mapping[str, str] | None = None) -> Settings:
    """The settings in `environ` (default: this process's environment); an empty variable
    counts as unset. Raises SettingsError naming every unusable variable."""
    environ = os.environ if environ is None else environ
    given = {k: v for k, v in environ.items()
             if (k.startswith("SLAM_") or k in OTHER_VARIABLES) and v.strip() != ""}
    try:
        return Settings.model_validate(given)
    except ValidationError as e:
        raise SettingsError(_explain(e, environ)) from None
