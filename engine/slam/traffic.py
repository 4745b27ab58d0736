"""The team's traffic by hour of day: 24 counts, from the spec or from a file of request
timestamps (an API usage export), for sizing replicas hour by hour (slam.cost.size).

A timestamps file has one request per line: ISO 8601 (`2026-11-02T09:14:03Z`) or Unix seconds;
a CSV's first field that parses as a time is taken (a header line is skipped). Each hour of the
day gets the mean count over the days the file covers (first to last timestamp, whole days),
in the profile's time zone.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError


class TrafficProfileError(ValueError):
    """A traffic profile that cannot be read; the message names the field or file and line."""


@dataclass(frozen=True)
class Profile:
    hourly: tuple[float, ...]  # requests in hour 0..23 of the day
    source: str  # where it came from, in words

    @property
    def per_day(self) -> float:
        return sum(self.hourly)


def flat(requests_per_day: float) -> Profile:
    return Profile(tuple([requests_per_day / 24.0] * 24),
                   f"{requests_per_day:,.0f} requests/day spread evenly (spec.cost.requestsPerDay)")


def _parse_time(value: str, tz: ZoneInfo) -> datetime | None:
    value = value.strip().strip('"')
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        pass
    else:
        if not math.isfinite(seconds):
            return None
        if seconds > 1e11:  # milliseconds, as many exports write them
            seconds /= 1000.0
        if seconds < 946684800:  # before 2000: an id or a count, not a request's time
            return None
        return datetime.fromtimestamp(seconds, UTC).astimezone(tz)
    try:
        at = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return (at if at.tzinfo else at.replace(tzinfo=UTC)).astimezone(tz)


def from_timestamps(text: str, where: str, timezone: str = "UTC") -> Profile:
    try:
        tz = ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise TrafficProfileError(f"spec.cost.trafficProfile.timezone: unknown time zone "
                                  f"{timezone!r} (use an IANA name such as Europe/Berlin)"
                                  ) from None
    times: list[datetime] = []
    for n, row in enumerate(csv.reader(io.StringIO(text)), start=1):
        if not row or not any(cell.strip() for cell in row):
            continue
        at = next((t for cell in row if (t := _parse_time(cell, tz)) is not None), None)
        if at is None:
            if n == 1:  # a header
                continue
            raise TrafficProfileError(f"{where} line {n}: no timestamp (ISO 8601 or Unix "
                                      f"seconds) in {','.join(row)[:80]!r}")
        times.append(at)
    if not times:
        raise TrafficProfileError(f"{where}: no timestamps; one request per line, ISO 8601 or "
                                  "Unix seconds")
    first, last = min(times), max(times)
    days = max(1, math.ceil((last.date() - first.date() + timedelta(days=1)).days))
    counts = [0] * 24
    for t in times:
        counts[t.hour] += 1
    return Profile(tuple(c / days for c in counts),
                   f"{len(times):,} request timestamps over {days} day{'s' * (days != 1)} in "
                   f"{where} ({timezone})")


def resolve(spec: Mapping[str, Any] | None, base_dir: Path | None = None) -> Profile | None:
    """The profile of spec.cost.trafficProfile (camelCase, as stored): hourly counts as they
    are, or a file read now (relative to `base_dir`)."""
    if not spec:
        return None
    if spec.get("hourly") is not None:
        return Profile(tuple(float(x) for x in spec["hourly"]),
                       spec.get("source") or "spec.cost.trafficProfile.hourly")
    if spec.get("file"):
        path = Path(spec["file"])
        if not path.is_absolute() and base_dir is not None:
            path = base_dir / path
        try:
            text = path.read_text()
        except OSError as e:
            raise TrafficProfileError(f"spec.cost.trafficProfile.file: cannot read {path}: "
                                      f"{e.strerror or e}") from None
        return from_timestamps(text, str(spec["file"]), spec.get("timezone") or "UTC")
    raise TrafficProfileError("spec.cost.trafficProfile.configMap: read in a cluster; without "
                              "one, point spec.cost.trafficProfile.file at a local copy")


def resolved_spec(spec: dict, base_dir: Path | None = None, text: str | None = None,
                  where: str = "") -> dict:
    """The Evaluation spec (wire form) with a timestamps file turned into hourly counts and
    their source, so the report, the status and the dashboard all read the same 24 numbers
    from the run's stored spec. `text`: the file's contents when the caller has them (a
    ConfigMap read from the manifests)."""
    tp = (spec.get("cost") or {}).get("trafficProfile")
    if not tp or tp.get("hourly") is not None:
        return spec
    profile = (from_timestamps(text, where, tp.get("timezone") or "UTC") if text is not None
               else resolve(tp, base_dir))
    assert profile is not None
    cost = dict(spec["cost"])
    cost["trafficProfile"] = {"hourly": [round(x, 3) for x in profile.hourly],
                              "source": profile.source}
    return {**spec, "cost": cost}
