"""The operator's settings, read from its environment and checked in one place.

A value that is not usable stops the operator at start with a message that names the variable,
the value, what it must be, and the Helm chart value that sets it: `SLAM_MAX_WORKERS='abc'`
otherwise surfaced as a bare `int()` traceback, and `0` as a refusal deep inside kopf.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

DEFAULT_SCORING_IMAGE = "ghcr.io/slam-operator/slam-scoring:0.1.0"

# Environment variable -> the chart value that sets it (charts/slam-operator/values.yaml).
CHART_VALUES = {
    "SLAM_RESYNC_SECONDS": "operator.resyncSeconds",
    "SLAM_MAX_WORKERS": "operator.maxWorkers",
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
    # Reconciles at once: the work queue's workers, on kopf's handler threads (as many).
    max_workers: int = Field(32, ge=1, alias="SLAM_MAX_WORKERS")
    # Connections kopf may open for its own requests, on top of one per watch stream.
    api_connections: int = Field(32, ge=1, alias="SLAM_API_CONNECTIONS")
    # Prometheus /metrics; 0 turns it off.
    metrics_port: int = Field(9090, ge=0, le=65535, alias="SLAM_METRICS_PORT")
    metrics_addr: str = Field("0.0.0.0", min_length=1, alias="SLAM_METRICS_ADDR")
    # kopf's liveness endpoint (/healthz); 0 turns it off.
    health_port: int = Field(8080, ge=0, le=65535, alias="SLAM_HEALTH_PORT")
    log_level: Literal["info", "debug"] = Field("info", alias="SLAM_LOG_LEVEL")
    # Seconds to wait for the Hugging Face Hub before a model counts as unresolved for now.
    hub_timeout_seconds: float = Field(10.0, gt=0, alias="SLAM_HUB_TIMEOUT_SECONDS")
    # Comma-separated; empty: every namespace.
    watch_namespaces_csv: str = Field("", alias="SLAM_WATCH_NAMESPACES")
    scoring_image: str = Field("", alias="SLAM_SCORING_IMAGE")
    legacy_image: str = Field("", alias="SLAM_IMAGE")  # the scoring image's older name

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


def _explain(err: ValidationError, environ: Mapping[str, str]) -> str:
    lines = []
    for e in err.errors():
        var = str(e["loc"][0]) if e["loc"] else "?"
        chart = CHART_VALUES.get(var)
        where = f" (the Helm chart's {chart})" if chart else ""
        lines.append(f"{var}={environ.get(var, '')!r}: {e['msg']}; set {var}{where} to a "
                     f"valid value or unset it for the default")
    return "\n".join(lines)


def from_env(environ: Mapping[str, str] | None = None) -> Settings:
    """The settings in `environ` (default: this process's environment); an empty variable
    counts as unset. Raises SettingsError naming every unusable variable."""
    environ = os.environ if environ is None else environ
    given = {k: v for k, v in environ.items() if k.startswith("SLAM_") and v.strip() != ""}
    try:
        return Settings.model_validate(given)
    except ValidationError as e:
        raise SettingsError(_explain(e, environ)) from None
