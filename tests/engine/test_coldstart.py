"""A self-hosted target's cold start, part by part (slam.coldstart)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from slam import coldstart

STARTUP = {"pod": "smollm2-7d9f-abcde", "requestedAt": "2026-12-03T10:00:00Z",
           "created": "2026-12-03T10:00:01Z", "scheduled": "2026-12-03T10:00:04Z",
           "started": "2026-12-03T10:00:34Z", "ready": "2026-12-03T10:02:14Z"}


def row(started: str, ttft_ms: float | None, error: str | None = None) -> dict:
    # As SQLite returns them: naive UTC.
    return {"started_at": datetime.fromisoformat(started), "ttft_ms": ttft_ms,
            "error_class": error}


def test_each_part_of_a_cold_start_from_the_scale_up_to_the_first_token() -> None:
    first = coldstart.first_token_at([
        row("2026-12-03T10:02:30", 500.0), row("2026-12-03T10:02:20", 9000.0, "Timeout"),
        row("2026-12-03T10:02:25", 1500.0)])
    assert first == datetime(2026, 12, 3, 10, 2, 26, 500000, tzinfo=UTC)
    cs = coldstart.cold_start(STARTUP, first)
    assert cs is not None and cs.requested and cs.pod == "smollm2-7d9f-abcde"
    assert cs.parts == (
        ("scale-up → pod created", 1.0), ("pod created → scheduled", 3.0),
        ("scheduled → container running (image, container)", 30.0),
        ("container running → Ready (model fetched and loaded)", 100.0),
        ("Ready → first token (the run's first answer)", 12.5))
    assert cs.to_ready_s == 134.0
    assert cs.first_token_s == cs.total_s == pytest.approx(146.5)
    assert sum(sec for _, sec in cs.parts) == pytest.approx(cs.total_s)


def test_a_pod_no_run_asked_for_is_not_a_cold_start_of_the_run() -> None:
    started = {k: v for k, v in STARTUP.items() if k != "requestedAt"}
    cs = coldstart.cold_start(started, datetime(2026, 12, 4, tzinfo=UTC))
    assert cs is not None and not cs.requested and cs.first_token_s is None
    assert cs.parts[0][0] == "pod created → scheduled" and cs.to_ready_s == 133.0


def test_without_a_whole_record_there_is_nothing_to_show() -> None:
    assert coldstart.cold_start(None, None) is None
    assert coldstart.cold_start({k: v for k, v in STARTUP.items() if k != "started"},
                                None) is None
    assert coldstart.first_token_at([row("2026-12-03T10:02:30", None, "Timeout")]) is None
