"""Exports of a run: Markdown (the summary table), JSON (summary and records), CSV (records)."""

from __future__ import annotations

import csv
import dataclasses
import io
import json
from collections import Counter
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from slam.metrics import TargetStats

CSV_COLUMNS = [
    "target", "prompt_id", "sample", "started_at", "attempts", "ttft_ms", "e2e_ms",
    "itl_mean_ms", "itl_p50_ms", "itl_p95_ms", "itl_max_ms", "prompt_tokens",
    "completion_tokens", "tokens_source", "finish_reason", "error_class", "error_message",
    "status_code", "text",
]


@dataclasses.dataclass(frozen=True)
class RunReport:
    evaluation: str
    run_id: str
    reference: str
    store: str  # display URL (password masked)
    stats: Sequence[TargetStats]
    responses: Sequence[dict[str, Any]]
    targets: Sequence[dict[str, Any]] = ()


def target_order(targets: Sequence[dict[str, Any]]) -> list[str]:
    """The reference first, then the candidates by name."""
    return [t["name"] for t in sorted(targets, key=lambda t: (not t["is_reference"], t["name"]))]


def _fmt(value: float | None, digits: int = 0) -> str:
    return "–" if value is None else f"{value:,.{digits}f}"


SUMMARY_HEADERS = ["target", "ok", "TTFT p50", "TTFT p95", "e2e p50", "e2e p95", "tok/s",
                   "req/s"]


def summary_rows(report: RunReport) -> list[list[str]]:
    rows = []
    for s in report.stats:
        name = s.target + (" (reference)" if s.target == report.reference else "")
        rows.append([
            name, f"{s.succeeded}/{s.requests} ({s.success_rate:.0%})",
            _fmt(s.ttft_p50_ms), _fmt(s.ttft_p95_ms), _fmt(s.e2e_p50_ms), _fmt(s.e2e_p95_ms),
            _fmt(s.tokens_per_second, 1), _fmt(s.throughput_rps, 2),
        ])
    return rows


def to_markdown(report: RunReport) -> str:
    lines = [
        f"# {report.evaluation} — run {report.run_id}",
        "",
        f"Reference: **{report.reference}**. Store: `{report.store}`. "
        "Latencies in milliseconds over successful requests; tokens/s is the median per request.",
        "",
        "| " + " | ".join(SUMMARY_HEADERS) + " |",
        "|" + "|".join("---" for _ in SUMMARY_HEADERS) + "|",
    ]
    lines += ["| " + " | ".join(row) + " |" for row in summary_rows(report)]
    errors = Counter((r["target"], r["error_class"]) for r in report.responses
                     if r["error_class"])
    if errors:
        lines += ["", "Errors:", ""]
        lines += [f"- {t}: {n} × {cls}" for (t, cls), n in sorted(errors.items())]
    return "\n".join(lines) + "\n"


def _jsonable(value: Any) -> Any:
    return value.isoformat() if isinstance(value, datetime) else value


def to_json(report: RunReport) -> str:
    doc = {
        "evaluation": report.evaluation,
        "runId": report.run_id,
        "reference": report.reference,
        "targets": [dataclasses.asdict(s) | {"success_rate": s.success_rate}
                    for s in report.stats],
        "responses": [{k: _jsonable(r.get(k)) for k in CSV_COLUMNS} for r in report.responses],
    }
    return json.dumps(doc, indent=2, ensure_ascii=False) + "\n"


def to_csv(report: RunReport) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, CSV_COLUMNS, extrasaction="ignore")
    writer.writeheader()
    for r in report.responses:
        writer.writerow({k: _jsonable(r.get(k)) for k in CSV_COLUMNS})
    return out.getvalue()


FORMATS = {"md": to_markdown, "json": to_json, "csv": to_csv}
