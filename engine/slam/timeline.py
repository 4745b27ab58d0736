"""Which configuration of a ModelDeployment served each answer, and when a target was away.

During a cluster run the operator appends a row to the store's `target_states` whenever a
ModelDeployment target changes: it stops or starts being Ready, or its pods start running
another generation of its spec (another revision, other runtime arguments), timed by the
ModelDeployment's own condition transitions. Each answer belongs to the state in effect when
its request started. Pure functions over plain rows (the store's dicts).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

# What makes two states different enough to record (the reason's wording alone does not).
KEYS = ("available", "generation", "revision", "image", "args", "rolling_to")


def changed(last: Mapping[str, Any] | None, new: Mapping[str, Any]) -> bool:
    """Whether `new` is worth a row after `last` (the target's latest row)."""
    return last is None or any(last.get(k) != new.get(k) for k in KEYS)


def aware(t: datetime) -> datetime:
    return t if t.tzinfo else t.replace(tzinfo=UTC)  # SQLite returns naive UTC


def _by_target(states: Iterable[Mapping[str, Any]]) -> dict[str, list[Mapping[str, Any]]]:
    out: dict[str, list[Mapping[str, Any]]] = defaultdict(list)
    for s in sorted(states, key=lambda s: (aware(s["at"]), s["id"])):
        out[s["target"]].append(s)
    return out


def served_by(responses: Sequence[Mapping[str, Any]], states: Sequence[Mapping[str, Any]]
              ) -> dict[int, int]:
    """Response id -> the id of the state in effect when it started (the latest one at or
    before its start; the first one for answers started before any was recorded)."""
    timelines = _by_target(states)
    out = {}
    for r in responses:
        timeline = timelines.get(r["target"])
        if not timeline:
            continue
        started = aware(r["started_at"])
        current = timeline[0]
        for s in timeline:
            if aware(s["at"]) > started:
                break
            current = s
        out[r["id"]] = current["id"]
    return out


def configuration(s: Mapping[str, Any]) -> str:
    """One state's configuration in a few words."""
    if s.get("generation") is None:
        return "an unknown configuration"
    text = f"generation {s['generation']}"
    details = []
    if s.get("revision"):
        details.append(f"revision {s['revision'][:12]}")
    if s.get("args"):
        details.append("args " + " ".join(s["args"])[:160])
    if details:
        text += f" ({'; '.join(details)})"
    if s.get("rolling_to") is not None:
        text += f", while generation {s['rolling_to']} was rolling out (either may have answered)"
    return text


def _clock(t: datetime) -> str:
    return aware(t).strftime("%H:%M:%S")


def unavailable(states: Sequence[Mapping[str, Any]], end: datetime | None
                ) -> dict[str, list[tuple[datetime, datetime | None, str]]]:
    """Per target, the windows it was not available: (from, to or None if still, why)."""
    out: dict[str, list[tuple[datetime, datetime | None, str]]] = {}
    for target, timeline in _by_target(states).items():
        windows = []
        since: Mapping[str, Any] | None = None
        for s in timeline:
            if not s["available"] and since is None:
                since = s
            elif s["available"] and since is not None:
                windows.append((aware(since["at"]), aware(s["at"]), since.get("reason") or ""))
                since = None
        if since is not None:
            windows.append((aware(since["at"]), aware(end) if end else None,
                            since.get("reason") or ""))
        if windows:
            out[target] = windows
    return out


def notes(responses: Sequence[Mapping[str, Any]], states: Sequence[Mapping[str, Any]],
          end: datetime | None = None) -> list[str]:
    """What the report says about the targets' states during the run: when one was away, and
    how a target's answers split over the configurations that served them."""
    if not states:
        return []
    out = []
    for target, windows in sorted(unavailable(states, end).items()):
        parts = []
        for start, stop, why in windows:
            span = (f"{_clock(start)}-{_clock(stop)} UTC ({(stop - start).total_seconds():.0f}"
                    " s)" if stop else f"from {_clock(start)} UTC to the end")
            parts.append(span + (f": {why[:200]}" if why else ""))
        out.append(f"{target} was unavailable during the run: {'; '.join(parts)}")
    by_id = {s["id"]: s for s in states}
    assigned = served_by(responses, states)
    split: dict[str, Counter[str]] = defaultdict(Counter)
    for r in responses:
        if r["id"] in assigned:
            split[r["target"]][configuration(by_id[assigned[r["id"]]])] += 1
    for target, timeline in sorted(_by_target(states).items()):
        counts = split.get(target, Counter())
        if len(counts) > 1:
            order = list(dict.fromkeys(configuration(s) for s in timeline))
            shares = ", ".join(f"{counts[c]} by {c}" for c in order if counts[c])
            out.append(f"{target}'s ModelDeployment changed during the run: {shares}")
    return out
