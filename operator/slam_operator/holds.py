"""Scale holds: an Evaluation with `scaling` keeps the ModelDeployments it targets up for its
run, and they go back down when it ends. Pure.

A hold is an entry in the ModelDeployment's annotation `slam.dev/scale-holds` (JSON, by
Evaluation name): the Evaluation's uid, the replicas it needs, the replicas to leave afterwards
(None: the ModelDeployment's own spec.replicas) and when it was taken. The Evaluation's
reconcile takes its holds once its targets are resolved; the ModelDeployment's reconcile serves
max(spec.replicas, every live hold) and is the one place that releases them: a hold whose
Evaluation has ended (Succeeded or Failed after the hold was taken), is being deleted or is gone
is dropped there, with `after` applied to spec.replicas.

So spec.replicas stays the user's (GitOps, `kubectl scale`, an autoscaler): the run only raises
the floor while it lasts. And nothing depends on the operator living through the run: the holds
are in the API server, and any later reconcile of the ModelDeployment (an Evaluation's event,
the resync, the operator's restart) releases what has ended.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

from slam_operator.conditions import parse_timestamp

HOLDS_ANNOTATION = "slam.dev/scale-holds"
ENDED = ("Succeeded", "Failed")


@dataclass(frozen=True)
class Hold:
    uid: str  # the Evaluation's: one deleted and created again under its name holds nothing
    replicas: int
    since: str  # RFC 3339, when it was taken
    after: int | None = None


def read(annotations: Mapping[str, str] | None) -> dict[str, Hold]:
    """The holds in a ModelDeployment's annotations. An entry that does not parse (an edit by
    hand) holds nothing."""
    raw = (annotations or {}).get(HOLDS_ANNOTATION)
    try:
        entries = json.loads(raw) if raw else {}
    except ValueError:
        return {}
    holds: dict[str, Hold] = {}
    for name, e in entries.items() if isinstance(entries, dict) else ():
        try:
            after = e.get("after")
            holds[name] = Hold(str(e["uid"]), max(0, int(e["replicas"])), str(e["since"]),
                               None if after is None else max(0, int(after)))
        except (AttributeError, KeyError, TypeError, ValueError):
            continue
    return holds


def dump(holds: Mapping[str, Hold]) -> str | None:
    """The annotation's value (None removes it)."""
    if not holds:
        return None
    return json.dumps({n: asdict(h) for n, h in sorted(holds.items())}, separators=(",", ":"))


def live(hold: Hold, evaluation: Mapping[str, Any] | None) -> bool:
    """Whether the Evaluation that took `hold` still needs it: it exists (the same object, not
    being deleted) and has not ended since the hold was taken (a retried run takes it again)."""
    if evaluation is None:
        return False
    meta = evaluation.get("metadata") or {}
    if meta.get("uid") != hold.uid or meta.get("deletionTimestamp"):
        return False
    status = evaluation.get("status") or {}
    if status.get("phase") not in ENDED:
        return True
    ended = status.get("completionTime")
    if not ended:
        return False
    try:
        return parse_timestamp(ended) < parse_timestamp(hold.since)
    except ValueError:
        return False


def replicas(spec_replicas: int, holds: Mapping[str, Hold]) -> int:
    """What the ModelDeployment serves: its own count, or more while runs hold it up."""
    return max([spec_replicas, *(h.replicas for h in holds.values())])


@dataclass(frozen=True)
class Release:
    kept: dict[str, Hold]
    dropped: tuple[str, ...]
    spec_replicas: int | None  # set spec.replicas to this (a dropped hold's `after`)


def release(holds: Mapping[str, Hold], evaluations: Mapping[str, Mapping[str, Any] | None]
            ) -> Release:
    """Split `holds` into the live and the ended (by `evaluations`, name -> the Evaluation or
    None). The `after` of the latest-taken ended hold that has one becomes spec.replicas."""
    kept = {n: h for n, h in holds.items() if live(h, evaluations.get(n))}
    dropped = sorted((h.since, n) for n, h in holds.items() if n not in kept)
    afters = [holds[n].after for _, n in dropped if holds[n].after is not None]
    return Release(kept, tuple(n for _, n in dropped), afters[-1] if afters else None)


def take(holds: Mapping[str, Hold], name: str, uid: str, wanted: int, after: int | None,
         now: str) -> dict[str, Hold] | None:
    """`holds` with Evaluation `name`'s hold as it should be, or None when it already is (a
    hold keeps the time it was first taken)."""
    old = holds.get(name)
    if old is not None and old.uid == uid and old.replicas == wanted and old.after == after:
        return None
    since = old.since if old is not None and old.uid == uid else now
    return {**holds, name: Hold(uid, wanted, since, after)}
