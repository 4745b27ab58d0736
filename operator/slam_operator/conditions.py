"""Kubernetes-shaped conditions: set without losing lastTransitionTime, roll up into Ready.
Also the operator's one clock format (RFC 3339, seconds, UTC), which conditions carry. Pure."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

CondStatus = Literal["True", "False", "Unknown"]


@dataclass(frozen=True)
class Cond:
    type: str
    status: CondStatus
    reason: str
    message: str = ""


def merge(
    old: list[dict] | None, new: list[Cond], generation: int, now: str
) -> list[dict]:
    """The new conditions as dicts; lastTransitionTime moves only when the status changes."""
    previous = {c["type"]: c for c in old or []}
    out = []
    for c in new:
        prev = previous.get(c.type)
        changed = prev is None or prev.get("status") != c.status
        out.append({
            "type": c.type,
            "status": c.status,
            "reason": c.reason,
            "message": c.message,
            "observedGeneration": generation,
            "lastTransitionTime": now if changed else prev.get("lastTransitionTime", now),
        })
    return out


def roll_up(parts: list[Cond], ready_reason: str = "Ready", ready_message: str = "") -> Cond:
    """Ready is True when every part is True; otherwise the first part that is not explains why.

    Parts are in causal order (ModelResolved before Available), so the reason is the root
    cause. Any False part makes Ready False; Unknown parts alone make it Unknown.
    """
    blocking = [c for c in parts if c.status != "True"]
    if not blocking:
        return Cond("Ready", "True", ready_reason, ready_message)
    status = "False" if any(c.status == "False" for c in blocking) else "Unknown"
    first = blocking[0]
    return Cond("Ready", status, first.reason, f"{first.type}: {first.message}")


def transitions(old: list[dict] | None, new: list[dict], quiet: tuple[str, ...] = ()
                ) -> list[dict]:
    """Conditions whose status or reason changed (what deserves an Event). A Ready that is not
    True repeats the reason of the part that blocks it (roll_up): when that part changed too,
    its Event already says it, and Ready's would only be a copy. A `quiet` condition's first
    appearance as True is no news either."""
    previous = {c["type"]: (c.get("status"), c.get("reason")) for c in old or []}
    changed = [c for c in new if previous.get(c["type"]) != (c["status"], c["reason"])
               and not (c["type"] in quiet and c["type"] not in previous
                        and c["status"] == "True")]
    causes = {c["reason"] for c in changed if c["type"] != "Ready"}
    return [c for c in changed
            if not (c["type"] == "Ready" and c["status"] != "True" and c["reason"] in causes)]


def is_true(conditions: Iterable[dict] | None, type_: str) -> bool:
    """Whether the condition `type_` is present with status "True" (any object's conditions)."""
    return any(c.get("type") == type_ and c.get("status") == "True" for c in conditions or ())


def find(conditions: Iterable[dict] | None, type_: str) -> dict | None:
    return next((c for c in conditions or () if c.get("type") == type_), None)


def now() -> dt.datetime:
    """The current time, UTC, whole seconds (what status timestamps hold)."""
    return dt.datetime.now(dt.UTC).replace(microsecond=0)


def timestamp(t: dt.datetime) -> str:
    """RFC 3339 as Kubernetes writes it: 2026-11-28T08:26:51Z."""
    return t.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_timestamp(ts: str) -> dt.datetime:
    return dt.datetime.fromisoformat(ts.replace("Z", "+00:00"))
