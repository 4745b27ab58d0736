"""kopf handlers: thin entry points that read, delegate to `reconcile`, and return.

Run with `python -m slam_operator` (or `kopf run -m slam_operator.handlers --all-namespaces`).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import threading
from typing import Any

import kopf
from kubernetes import client, config

from slam.api.common import GROUP, VERSION, ProbeSpec
from slam.api.evaluation import EvaluationSpec
from slam.generate import Endpoint
from slam.store import Store
from slam_operator import evjob, evreconcile, metrics
from slam_operator.builders import MANAGED_BY, OWNER_LABEL
from slam_operator.hub import CachedHub
from slam_operator.kube import Kube
from slam_operator.probes import probe_loop
from slam_operator.reconcile import reconcile

MD = (GROUP, VERSION, "modeldeployments")
CHILD_LABELS = {"app.kubernetes.io/managed-by": MANAGED_BY}
# How often every ModelDeployment is re-checked even without events (drift, Hub retries).
RESYNC_SECONDS = float(os.environ.get("SLAM_RESYNC_SECONDS", "300"))
log = logging.getLogger("slam_operator")


def _plain(body: Any) -> dict[str, Any]:
    """kopf's Body view as a plain, detached dict."""
    return json.loads(json.dumps(dict(body), default=dict))


def _post_event(body: dict[str, Any], type_: str, reason: str, message: str) -> None:
    kopf.event(body, type=type_, reason=reason, message=message)


def _adopt(child: dict[str, Any], owner: dict[str, Any]) -> None:
    kopf.adopt(child, owner=owner)


def _backoff(retry: int) -> float:
    """Hub retries: 5 s, 10 s, 20 s ... at most 5 minutes."""
    return float(min(300, 5 * 2 ** min(retry, 6)))


_local = threading.local()


def _kube() -> Kube:
    """A client per handler thread: urllib3 connections are not shared between threads."""
    if not hasattr(_local, "kube"):
        _local.kube = Kube(client.ApiClient())
    return _local.kube


def _reconcile(memo: kopf.Memo, body: dict[str, Any]):
    meta = body["metadata"]
    # dict.setdefault is atomic: two threads never get different locks for one object.
    with memo.locks.setdefault((meta["namespace"], meta["name"]), threading.Lock()):
        metrics.RECONCILES.labels("ModelDeployment").inc()
        return reconcile(_kube(), memo.hub, body, _adopt, _post_event)


@kopf.on.login()
def operator_login(**kwargs: Any) -> kopf.ConnectionInfo | None:
    """In a pod: its service account. Elsewhere: $KUBECONFIG, read when the operator starts."""
    return kopf.login_with_service_account(**kwargs) or kopf.login_with_kubeconfig(**kwargs)


@kopf.on.startup()
def operator_startup(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
    """Connect to the API server and set kopf's behaviour."""
    try:
        config.load_incluster_config()
    except config.ConfigException:
        config.load_kube_config(config_file=os.environ.get("KUBECONFIG"))
    memo.hub = CachedHub()
    memo.locks = {}
    # kopf would otherwise post an Event for every handler run; ours say what changed.
    settings.posting.level = logging.WARNING
    # Handlers are synchronous (the kubernetes client blocks on I/O): run enough at once that
    # hundreds of ModelDeployments converge without queueing behind each other.
    settings.execution.max_workers = int(os.environ.get("SLAM_MAX_WORKERS", "32"))
    # Recover quickly when the API server restarts or a watch silently stalls.
    settings.watching.server_timeout = 60
    settings.watching.client_timeout = 90
    settings.watching.reconnect_backoff = 1.0


@kopf.on.resume(*MD)
@kopf.on.create(*MD)
@kopf.on.update(*MD)
def modeldeployment_changed(body: kopf.Body, memo: kopf.Memo, retry: int, **_: Any) -> None:
    """Reconcile a created, changed or resumed ModelDeployment."""
    result = _reconcile(memo, _plain(body))
    if result.hub_unknown:
        raise kopf.TemporaryError("the Hugging Face Hub did not answer", delay=_backoff(retry))


@kopf.timer(*MD, interval=RESYNC_SECONDS, initial_delay=RESYNC_SECONDS)
def modeldeployment_resync(body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    """Re-check on a schedule: repairs drift no event reported and retries the Hub."""
    _reconcile(memo, _plain(body))


@kopf.on.event("apps", "v1", "deployments", labels=CHILD_LABELS)
@kopf.on.event("", "v1", "services", labels=CHILD_LABELS)
def modeldeployment_child_event(body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    """Reconcile the owner when a child changes (status, a hand edit) or is deleted."""
    owner = (body.metadata.labels or {}).get(OWNER_LABEL)
    if not owner:
        return
    md = _kube().get_model_deployment(body.metadata.namespace, owner)
    if md is not None and not md["metadata"].get("deletionTimestamp"):
        _reconcile(memo, md)


# --- Evaluation ----------------------------------------------------------------------------------

EV = (GROUP, VERSION, "evaluations")
# How often a running Evaluation's progress is read from the store.
PROGRESS_SECONDS = float(os.environ.get("SLAM_PROGRESS_SECONDS", "10"))


def _reconcile_evaluation(memo: kopf.Memo, body: dict[str, Any]):
    meta = body["metadata"]
    with memo.locks.setdefault(("ev", meta["namespace"], meta["name"]), threading.Lock()):
        metrics.RECONCILES.labels("Evaluation").inc()
        return evreconcile.reconcile_evaluation(_kube(), body, _adopt, _post_event)


@kopf.on.resume(*EV)
@kopf.on.create(*EV)
@kopf.on.update(*EV, field="spec")
def evaluation_changed(body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    """Reconcile a created, changed or resumed Evaluation."""
    _reconcile_evaluation(memo, _plain(body))


@kopf.timer(*EV, interval=PROGRESS_SECONDS, idle=0)
def evaluation_progress(body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    """Follow targets, the Job and the store's progress while a run is in flight."""
    phase = (body.get("status") or {}).get("phase")
    run_id = (body.get("status") or {}).get("runId")
    if phase in ("Succeeded", "Failed") and run_id == body["spec"].get("runId", "1"):
        return
    _reconcile_evaluation(memo, _plain(body))


@kopf.on.event("batch", "v1", "jobs", labels={evjob.EVALUATION_LABEL: kopf.PRESENT})
def evaluation_job_event(body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    """Reconcile the owning Evaluation when its Job changes (completes, fails, is deleted)."""
    owner = (body.metadata.labels or {}).get(evjob.EVALUATION_LABEL)
    ev = _kube().get_evaluation(body.metadata.namespace, owner)
    if ev is not None and not ev["metadata"].get("deletionTimestamp"):
        _reconcile_evaluation(memo, ev)


# --- latency probes and metrics ------------------------------------------------------------------


@kopf.on.startup()
def operator_metrics(memo: kopf.Memo, **_: Any) -> None:
    """Serve Prometheus metrics."""
    if os.environ.get("SLAM_METRICS_PORT") != "0":
        memo.metrics_port = metrics.serve()


def _probe_store(namespace: str, ref: dict | None) -> Store | None:
    """The Evaluation's store (its Secret), else the operator's $SLAM_STORE_URL, else none."""
    url = None
    if ref:
        url, _ = _kube().secret_value(namespace, ref["name"], ref["key"])
    url = url or os.environ.get("SLAM_STORE_URL")
    return evreconcile.store_for(url) if url else None


@kopf.daemon(*MD, when=lambda spec, **_: bool(spec.get("probe")), cancellation_timeout=5.0)
async def modeldeployment_probe(name: str, namespace: str, spec: kopf.Spec,
                                stopped: kopf.DaemonStopped, **_: Any) -> None:
    """Probe a ModelDeployment's endpoint on its schedule while it is Ready."""
    probe = ProbeSpec.model_validate(dict(spec["probe"]))
    store = await asyncio.to_thread(_probe_store, namespace, None)

    def targets() -> list[tuple[str, Endpoint]]:
        md = _kube().get_model_deployment(namespace, name) or {}
        st = md.get("status") or {}
        ready = any(c.get("type") == "Ready" and c.get("status") == "True"
                    for c in st.get("conditions") or [])
        if not ready or not st.get("endpoint"):
            return []
        return [(name, Endpoint(name, st["endpoint"], st.get("servedModelName") or name))]

    await probe_loop(namespace, targets, probe, store, stopped.wait)


@kopf.daemon(*EV, when=lambda spec, **_: bool(spec.get("probe")), cancellation_timeout=5.0)
async def evaluation_probe(name: str, namespace: str, spec: kopf.Spec,
                           stopped: kopf.DaemonStopped, **_: Any) -> None:
    """Probe an Evaluation's external targets (e.g. the OpenAI API) on its schedule."""
    ev_spec = EvaluationSpec.model_validate(json.loads(json.dumps(dict(spec), default=dict)))
    store_ref = evjob.store_ref(ev_spec)
    store = await asyncio.to_thread(_probe_store, namespace, store_ref.model_dump())
    endpoints = []
    for t in ev_spec.targets:
        if t.external is None:
            continue
        key = None
        if t.external.api_key_secret_ref:
            ref = t.external.api_key_secret_ref
            key, problem = await asyncio.to_thread(_kube().secret_value, namespace, ref.name,
                                                   ref.key)
            if problem:
                log.warning("probe of %s/%s skipped: %s", name, t.name, problem)
                continue
        endpoints.append((f"{name}/{t.name}", Endpoint(t.name, t.external.base_url.rstrip("/"),
                                                       t.external.model, key)))
    await probe_loop(namespace, lambda: endpoints, ev_spec.probe, store, stopped.wait)


@kopf.on.delete(*EV, when=lambda spec, **_: bool((spec.get("store") or {}).get(
    "deleteResultsOnDelete")))
def evaluation_deleted(body: kopf.Body, **_: Any) -> None:
    """spec.store.deleteResultsOnDelete: remove this evaluation's results from the store."""
    ns, name = body.metadata.namespace, body.metadata.name
    ref = evjob.store_ref(EvaluationSpec.model_validate(_plain(body)["spec"]))
    url, problem = _kube().secret_value(ns, ref.name, ref.key)
    if problem:
        raise kopf.TemporaryError(f"cannot delete results: {problem}", delay=30)
    store = evreconcile.store_for(url)
    if store is None:
        raise kopf.TemporaryError("cannot delete results: the store is unavailable", delay=30)
    removed = store.delete_evaluation(name, ns)
    log.info("deleted %d run(s) of %s/%s from the results store", removed, ns, name)
