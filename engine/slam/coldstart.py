"""A self-hosted target's cold start: from the scale-up that asked for a server pod to the
run's first token, split where Kubernetes tells the steps apart. Pure.

The operator records the start of a ModelDeployment's last server pod (its status.lastStartup,
copied into the run's target details when the run starts): when a run's hold asked for it, when
the pod was created, bound to a node, its container running and the pod Ready. The parts:

- scale-up → pod created: the Deployment and ReplicaSet controllers;
- created → scheduled: the scheduler (on EKS, also a node being added by the autoscaler);
- scheduled → container running: the image pulled, or present, and the container created;
- running → Ready: the server fetching and loading the model until its health check passes;
- Ready → first token: the run's first answer (its scoring pod starting, its first request).

A pod that no run asked for (the model was already up, or scaled by hand) has no scale-up: its
start is shown, and the run's first token is not counted against it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from slam import timeline

PARTS = (
    ("requestedAt", "created", "scale-up → pod created"),
    ("created", "scheduled", "pod created → scheduled"),
    ("scheduled", "started", "scheduled → container running (image, container)"),
    ("started", "ready", "container running → Ready (model fetched and loaded)"),
)


def _time(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


@dataclass(frozen=True)
class ColdStart:
    pod: str
    parts: tuple[tuple[str, float], ...]  # (what, seconds), in order
    to_ready_s: float  # from the scale-up (or the pod's creation) to Ready
    first_token_s: float | None  # from the scale-up to the run's first token
    requested: bool  # a run's scale-up asked for this pod
    requested_at: datetime | None = None  # when it did

    @property
    def total_s(self) -> float:
        return self.first_token_s if self.first_token_s is not None else self.to_ready_s


def first_token_at(rows: Iterable[Mapping[str, Any]]) -> datetime | None:
    """When the run's first token arrived: the earliest successful answer's start plus its
    time to first token."""
    times = [timeline.aware(r["started_at"]) + timedelta(milliseconds=r["ttft_ms"] or 0.0)
             for r in rows if r.get("error_class") is None and r.get("started_at") is not None]
    return min(times) if times else None


def cold_start(startup: Mapping[str, Any] | None, first_token: datetime | None
               ) -> ColdStart | None:
    """The cold start from a ModelDeployment's status.lastStartup and the run's first token;
    None without a complete start-up record."""
    if not startup:
        return None
    at = {k: _time(startup.get(k)) for k in ("requestedAt", "created", "scheduled", "started",
                                              "ready")}
    if any(at[k] is None for k in ("created", "scheduled", "started", "ready")):
        return None
    parts = tuple((label, max(0.0, (at[b] - at[a]).total_seconds()))
                  for a, b, label in PARTS if at[a] is not None)
    begin = at["requestedAt"] or at["created"]
    first = None
    if at["requestedAt"] is not None and first_token is not None and first_token >= at["ready"]:
        parts += (("Ready → first token (the run's first answer)",
                   (first_token - at["ready"]).total_seconds()),)
        first = (first_token - begin).total_seconds()
    return ColdStart(str(startup.get("pod") or ""), parts,
                     max(0.0, (at["ready"] - begin).total_seconds()), first,
                     at["requestedAt"] is not None, at["requestedAt"])
