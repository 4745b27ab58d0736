"""Prometheus metrics the operator serves (prometheus-client): probe latency histograms, probe
errors, reconcile counts, the reconciles' API requests, Evaluations by phase and ModelDeployments
by readiness. Served on $SLAM_METRICS_PORT (default
9090) at /metrics."""

from __future__ import annotations

from collections.abc import Collection, Mapping

from prometheus_client import Counter, Gauge, Histogram, start_http_server

# Seconds: from a fast local model's TTFT to a slow API's full answer.
BUCKETS = (0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 4, 8, 16, 32, 64)

PROBE_TTFT = Histogram("slam_probe_ttft_seconds", "Time to first token of latency probes.",
                       ["namespace", "target"], buckets=BUCKETS)
PROBE_E2E = Histogram("slam_probe_e2e_seconds", "End-to-end latency of latency probes.",
                      ["namespace", "target"], buckets=BUCKETS)
PROBE_ERRORS = Counter("slam_probe_errors_total", "Latency probes that failed.",
                       ["namespace", "target", "error"])
RECONCILES = Counter("slam_reconciles_total", "Reconciles by kind.", ["kind"])
API_REQUESTS = Counter("slam_api_requests_total",
                       "Kubernetes API requests of the operator's reconciles (not kopf's watches)",
                       ["kind", "call"])  # kind: read or write; call: e.g. "create Service"
QUEUE_DEPTH = Gauge("slam_workqueue_depth",
                    "ModelDeployments waiting for a reconcile (each once, however many events).")


# Objects by state, read from the operator's kopf indices when /metrics is scraped.
EVALUATIONS = Gauge("slam_evaluations", "Evaluations by phase (New: not reconciled yet).",
                    ["phase"])
MODEL_DEPLOYMENTS = Gauge("slam_model_deployments", "ModelDeployments by Ready status.",
                          ["ready"])
EVALUATION_PHASES = ("New", "Pending", "WaitingForTargets", "Running", "Succeeded", "Failed")
READY_STATES = ("True", "False", "Unknown")


def count_from(ev: Mapping[str, Collection], md: Mapping[str, Collection]) -> None:
    """Serve slam_evaluations and slam_model_deployments from the kopf indices `ev_phases` and
    `md_ready` (live views: each scrape counts what they hold then)."""
    for phase in EVALUATION_PHASES:
        EVALUATIONS.labels(phase).set_function(lambda p=phase: len(ev.get(p, ())))
    for state in READY_STATES:
        MODEL_DEPLOYMENTS.labels(state).set_function(lambda s=state: len(md.get(s, ())))


_serving: list[int] = []


def serve(port: int, addr: str) -> int:
    """Start the /metrics server once per process (an operator restarted in-process keeps it)."""
    if not _serving:
        start_http_server(port, addr=addr)
        _serving.append(port)
    return _serving[0]


def observe_probe(namespace: str, target: str, result) -> None:
    if result.error_class:
        PROBE_ERRORS.labels(namespace, target, result.error_class).inc()
        return
    if result.ttft_ms is not None:
        PROBE_TTFT.labels(namespace, target).observe(result.ttft_ms / 1000.0)
    if result.e2e_ms is not None:
        PROBE_E2E.labels(namespace, target).observe(result.e2e_ms / 1000.0)
