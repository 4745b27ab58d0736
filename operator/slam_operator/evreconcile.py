"""Reconcile one Evaluation: observe (API server, store), decide (evstatus), act (kube.py).

Status is written only when it changed. The store is read for progress and, once the Job
succeeded, for the summary; its URL comes from the Secret the spec (or the operator) names and is
never written anywhere.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import threading
from collections.abc import Callable
from typing import Any

from slam import summary as summaries
from slam.api.evaluation import EvaluationSpec
from slam.store import Store
from slam_operator import evjob
from slam_operator.conditions import merge, transitions
from slam_operator.evstatus import Decision, Observed, decide
from slam_operator.kube import Kube

log = logging.getLogger("slam_operator.evaluation")
IMAGE = os.environ.get("SLAM_IMAGE", "ghcr.io/slam-operator/slam:0.1.0")
MAX_REASON = 1024  # keeps status well under 16 KB whatever the evaluation's size

_stores: dict[str, Store] = {}
_stores_lock = threading.Lock()


def store_for(url: str) -> Store | None:
    """One open Store per URL for the whole operator (reconciles and probes share it)."""
    try:
        with _stores_lock:
            if url not in _stores:
                _stores[url] = Store.open(url)
            return _stores[url]
    except Exception as e:  # noqa: BLE001 - progress is best effort; the Job does the work
        log.warning("results store unavailable: %s: %s", type(e).__name__,
                    str(e).replace(url, "<store URL>")[:300])
        return None


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(microsecond=0)


def observe(kube: Kube, body: dict, now: dt.datetime) -> tuple[Observed, Store | None]:
    ns, name = body["metadata"]["namespace"], body["metadata"]["name"]
    spec = EvaluationSpec.model_validate(body["spec"])
    mds = {t.model_deployment_ref.name: None for t in spec.targets if t.model_deployment_ref}
    for md in mds:
        mds[md] = kube.get_model_deployment(ns, md)
    missing = []
    store = None
    for field, ref in evjob.secret_refs(spec):
        value, problem = kube.secret_value(ns, ref.name, ref.key)
        if problem:
            missing.append(f"{field}: {problem}")
        elif field == "spec.store.urlSecretRef":
            store = store_for(value)
    sa = evjob.service_account_name(name, spec)
    sa_present = kube.service_account_exists(ns, sa)
    missing_sa = None
    if spec.service_account_name and not sa_present:
        missing_sa = f"spec.serviceAccountName: ServiceAccount {sa} not found in namespace {ns}"
    job_name = evjob.job_name(name, spec.run_id)
    job = kube.get_job(ns, job_name)
    progress = None
    if store is not None:
        run = store.find_run(name, spec.run_id, ns)
        if run is not None:
            progress = store.progress(run.id)
    message = None
    if job is not None and any(c.get("type") == "Failed" and c.get("status") == "True"
                               for c in (job.get("status") or {}).get("conditions") or []):
        message = kube.job_termination_message(ns, job_name)
    return Observed(body, mds, missing, job, progress, message, now, missing_sa,
                    sa_present), store


def status_for(body: dict, d: Decision, obs: Observed, store: Store | None,
               now: str) -> dict[str, Any]:
    spec, old = body["spec"], body.get("status") or {}
    run_id = spec.get("runId", "1")
    same_run = old.get("runId") == run_id
    status: dict[str, Any] = {
        "observedGeneration": body["metadata"].get("generation"),
        "phase": d.phase,
        "runId": run_id,
        "startTime": d.start_time,
        "jobName": evjob.job_name(body["metadata"]["name"], run_id)
        if (obs.job or d.create_job or (same_run and old.get("jobName"))) else None,
    }
    if d.conditions:
        status["conditions"] = merge(old.get("conditions") if same_run else None, d.conditions,
                                     body["metadata"].get("generation") or 0, now)
    elif same_run:
        status["conditions"] = old.get("conditions")
    terminal = d.phase in ("Succeeded", "Failed")
    status["completionTime"] = (old.get("completionTime") if same_run and
                                old.get("completionTime") and terminal else d.completion_time)
    if obs.progress:
        done, failed, total = obs.progress
        status["progress"] = {"done": done, "failed": failed, "total": total,
                              "display": f"{done}/{total}"}
    elif same_run and old.get("progress"):
        status["progress"] = old["progress"]
    if d.phase == "Succeeded" and store is not None:
        if same_run and old.get("summary") and old.get("phase") == "Succeeded":
            status |= {k: old.get(k) for k in ("summary", "leader", "recommendation")}
        else:
            status |= summary_status(store, body)
    return status


def summary_status(store: Store, body: dict) -> dict[str, Any]:
    ns, name = body["metadata"]["namespace"], body["metadata"]["name"]
    run = store.find_run(name, body["spec"].get("runId", "1"), ns)
    if run is None:
        return {}
    rep = summaries.build(store, run.id)

    def r(x: float | None, n: int = 4) -> float | None:
        return None if x is None else round(float(x), n)

    rows = []
    for t in rep.targets:
        rows.append({k: v for k, v in {
            "target": t.target,
            "successRate": r(t.success_rate),
            "similarity": r(t.similarity.estimate) if t.similarity else None,
            "judgeWinRate": r(t.judge_win_rate),
            "humanWinRate": r(t.human_win_rate),
            "ttftP50Ms": r(t.ttft.p50, 1) if t.ttft else None,
            "ttftP95Ms": r(t.ttft.p95, 1) if t.ttft else None,
            "e2eP50Ms": r(t.e2e.p50, 1) if t.e2e else None,
            "e2eP95Ms": r(t.e2e.p95, 1) if t.e2e else None,
            "tokensPerSecond": r(t.tokens_per_second, 2),
            "costPer1kRequestsUSD": r(t.cost.per_1k_usd, 6) if t.cost else None,
        }.items() if v is not None})
    return {"summary": rows, "leader": rep.leader,
            "recommendation": {"target": rep.recommendation,
                               "reason": rep.reason[:MAX_REASON]}}


def reconcile_evaluation(kube: Kube, body: dict, adopt: Callable[[dict, dict], None],
                         post_event: Callable[[dict, str, str, str], None]) -> Decision:
    now = _now()
    obs, store = observe(kube, body, now)
    d = decide(obs)
    ns, name = body["metadata"]["namespace"], body["metadata"]["name"]
    spec = EvaluationSpec.model_validate(body["spec"])
    # The Job's own ServiceAccount, made with the Job and put back while the run needs it (an
    # account left by an earlier Evaluation of the same name may be garbage-collected late).
    if not spec.service_account_name and not obs.service_account_present and (
            d.create_job or d.phase == "Running"):
        sa = evjob.build_service_account(name, ns)
        adopt(sa, body)
        kube.create_service_account(ns, sa)
    if d.create_job:
        job = evjob.build_scoring_job(evjob.JobInput(name, ns, spec, d.endpoints, IMAGE))
        adopt(job, body)
        kube.create_job(ns, job)
    iso = now.strftime("%Y-%m-%dT%H:%M:%SZ")
    new = status_for(body, d, obs, store, iso)
    old = body.get("status") or {}
    changed = {k: v for k, v in new.items() if old.get(k) != v}
    if changed:
        # Keys no longer present are cleared, so a new run does not inherit the last summary.
        for key in ("summary", "leader", "recommendation", "progress", "completionTime"):
            if key in old and key not in new:
                changed[key] = None
        kube.patch_evaluation_status(ns, name, changed)
        for c in transitions(old.get("conditions") if old.get("runId") == new["runId"] else None,
                             new.get("conditions") or []):
            post_event(body, "Normal" if c["status"] == "True" else "Warning", c["reason"],
                       f"{c['type']}: {c['message']}"[:1024])
    return d
