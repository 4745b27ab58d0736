"""What an Evaluation's status should be, and whether its scoring Job should be created. Pure.

Phases: Pending (a target, Secret or ServiceAccount is missing) -> WaitingForTargets
(ModelDeployments not Ready; `readyTimeoutSeconds` ends it in Failed) -> Running (the Job exists)
-> Succeeded | Failed. A run is identified by `spec.runId`: changing it starts a new run (a new
Job; the old run's results stay in the store). Other spec changes while a run is in progress do
not touch the running Job -- the run keeps the spec it started with -- and apply to the next run.

`decide` is the phase machine, `compose` the whole status from it, `summary_status` the compact
per-target summary from the store's report, `changes` the patch that moves the old status to the
new one. tests/operator/evaluation/test_status.py has a row per transition.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from slam import judgebias, summary
from slam.api.evaluation import DecisionSpec, EvaluationSpec
from slam.summary import EvaluationReport
from slam_operator import pods as podstatus
from slam_operator.conditions import (
    Cond,
    find,
    is_true,
    merge,
    parse_timestamp,
    roll_up,
    timestamp,
)
from slam_operator.evaluation.job import job_name
from slam_operator.names import RETRY_ANNOTATION

TERMINAL = ("Succeeded", "Failed")
MAX_REASON = 1024  # keeps status well under 16 KB whatever the evaluation's size
# Status keys that belong to one run: cleared when a new run starts without them.
RUN_KEYS = ("summary", "leader", "recommendation", "plan", "progress", "completionTime",
            "retry")


@dataclass(frozen=True)
class Observed:
    """Everything one reconcile read: the Evaluation, its targets, Secrets, Job and store."""

    name: str
    namespace: str
    generation: int
    spec: EvaluationSpec
    status: Mapping[str, Any]  # the status as it is now
    model_deployments: Mapping[str, dict | None]  # by name, None when absent
    missing_secrets: list[str]  # human-readable: "spec.targets[0]...: Secret x key y"
    job: dict | None  # this run's Job, if it exists
    progress: tuple[int, int, int] | None  # (done, failed, total) from the store
    termination_message: str | None  # the failed scoring pod's
    now: datetime
    missing_service_account: str | None = None  # spec.serviceAccountName names none
    service_account_present: bool = True  # the Job's ServiceAccount (named or our own) exists
    summary: dict[str, Any] | None = None  # summary_status() of the store, once it is needed
    missing_config_map: str | None = None  # spec.promptSet.configMap: absent, or no such key
    job_pods: tuple[dict, ...] = ()  # pods.pod_view() of this run's Job's pods
    store_problem: str | None = None  # the store could not be opened or read: masked URL, error
    store_read: bool = False  # the store was opened and read (progress is what it holds)
    retry_requested: str | None = None  # the slam.dev/retry annotation's value
    run_pk: int | None = None  # this run's key in the store, once the scoring pod began it

    @property
    def same_run(self) -> bool:
        return self.status.get("runId") == self.spec.run_id

    @property
    def attempt(self) -> Attempt:
        return attempt(self.spec, self.status, self.retry_requested)


@dataclass(frozen=True)
class Attempt:
    """Which attempt of the run this is: 0, then one more per slam.dev/retry value."""

    number: int
    token: str | None  # the annotation value this attempt took in
    starting: bool  # a new value asks for a retry of the ended run now


def attempt(spec: EvaluationSpec, status: Mapping[str, Any], requested: str | None) -> Attempt:
    """A new run takes in the annotation as it is (a value set before does not retry it); a
    later new value retries the run once it has ended (Succeeded or Failed)."""
    if status.get("runId") != spec.run_id:
        return Attempt(0, requested, False)
    retry = status.get("retry") or {}
    number, token = int(retry.get("attempt") or 0), retry.get("token")
    if requested and requested != token and status.get("phase") in TERMINAL:
        return Attempt(number + 1, requested, True)
    return Attempt(number, token, False)


def retry_hint(name: str) -> str:
    """The command that sends only the failed or missing answers again, in the same run."""
    return (f"kubectl annotate evaluation {name} {RETRY_ANNOTATION}=$(date +%s) --overwrite "
            "sends again only the answers that failed or are missing")


@dataclass
class Decision:
    phase: str
    conditions: list[Cond]
    create_job: bool = False
    endpoints: dict[str, str] = field(default_factory=dict)  # target -> ModelDeployment URL
    details: dict[str, dict] = field(default_factory=dict)  # target -> what serves it (Job)
    start_time: str | None = None
    completion_time: str | None = None
    unavailable: tuple[str, ...] = ()  # targets whose ModelDeployment is not Ready mid-run


def in_flight(spec: Mapping[str, Any], status: Mapping[str, Any] | None) -> bool:
    """Whether the run needs following: not finished, or finished under another runId."""
    status = status or {}
    return not (status.get("phase") in TERMINAL
                and status.get("runId") == EvaluationSpec.model_validate(spec).run_id)


def needs_summary(spec: EvaluationSpec, status: Mapping[str, Any], job: dict | None) -> bool:
    """The store's report is read once: when this run's Job has completed and the status does
    not hold this run's summary yet."""
    if job is None or not is_true((job.get("status") or {}).get("conditions"), "Complete"):
        return False
    kept = (status.get("runId") == spec.run_id and status.get("phase") == "Succeeded"
            and status.get("summary"))
    return not kept


def _ready(md: dict) -> bool:
    st = md.get("status") or {}
    return is_true(st.get("conditions"), "Ready") and bool(st.get("endpoint"))


def _job_is(job: dict, type_: str) -> bool:
    return is_true((job.get("status") or {}).get("conditions"), type_)


def _room(job: dict) -> str:
    """What the scoring pod asks of a node, for an Unschedulable message."""
    containers = ((job.get("spec") or {}).get("template") or {}).get("spec", {}).get(
        "containers") or [{}]
    req = (containers[0].get("resources") or {}).get("requests") or {}
    asks = " and ".join(f"{v} {k}" for k, v in req.items())
    return (f"the scoring pod requests {asks}: " if asks else "") + \
        "free that room on a node or add one (the Job starts its pod once it is scheduled)"


def decide(obs: Observed) -> Decision:
    spec, status = obs.spec, obs.status
    start = status.get("startTime") if obs.same_run and status.get("startTime") \
        else timestamp(obs.now)
    retry = obs.attempt
    # A finished run stays finished until runId changes or a retry is asked for.
    if obs.same_run and status.get("phase") in TERMINAL and obs.job is None \
            and status.get("jobName") and not retry.starting:
        return Decision(status["phase"], [], start_time=start,
                        completion_time=status.get("completionTime"))
    # A retry waits for its targets from when it was asked for, not from the run's start.
    waiting_since = ((status.get("retry") or {}).get("startTime") if retry.number
                     and not retry.starting else None) or \
        (timestamp(obs.now) if retry.starting else start)

    refs = {t.name: t.model_deployment_ref.name for t in spec.targets
            if t.model_deployment_ref is not None}
    missing_mds = sorted({n for n in refs.values() if obs.model_deployments.get(n) is None})
    sa, cm = obs.missing_service_account, obs.missing_config_map
    problems = ([f"ModelDeployment {n} not found" for n in missing_mds] + obs.missing_secrets
                + ([cm] if cm else []) + ([sa] if sa else []))
    if problems:
        if obs.missing_secrets:
            reason, fix = ("SecretNotFound", "; create them (kubectl create secret generic NAME "
                           "--from-literal=KEY=...) or fix the references")
        elif cm:
            reason, fix = "ConfigMapNotFound", ""  # the problem already says how to fix it
        elif missing_mds:
            reason, fix = "ModelDeploymentNotFound", "; create it or fix the name"
        else:
            reason, fix = ("ServiceAccountNotFound", " (kubectl create serviceaccount "
                           f"{spec.service_account_name}), or remove the field to let the "
                           "operator make one")
        resolved = Cond("TargetsResolved", "False", reason, "; ".join(problems) + fix)
        parts = [resolved, Cond("TargetsReady", "Unknown", "TargetsNotResolved"),
                 Cond("JobComplete", "Unknown", "NotStarted")]
        return Decision("Pending", [*parts, roll_up(parts)], start_time=start)
    resolved = Cond("TargetsResolved", "True", "Resolved",
                    f"{len(spec.targets)} targets, {len(refs)} ModelDeployments")

    mds = {n: obs.model_deployments[n] for n in refs.values()}
    endpoints = {t: mds[md]["status"]["endpoint"] for t, md in refs.items() if _ready(mds[md])}
    pending = sorted({md for md in refs.values() if not _ready(mds[md])})
    if pending and obs.job is None:
        waited = (obs.now - parse_timestamp(waiting_since)).total_seconds()
        limit = spec.ready_timeout_seconds
        if waited > limit:
            ready = Cond("TargetsReady", "False", "TargetsNotReady",
                         f"not Ready after {limit} s (spec.readyTimeoutSeconds): "
                         f"{', '.join(pending)}; see kubectl describe modeldeployment")
            parts = [resolved, ready, Cond("JobComplete", "False", "NotStarted")]
            return Decision("Failed", [*parts, roll_up(parts)], start_time=start,
                            completion_time=timestamp(obs.now))
        scaled = spec.scaled()
        names = [f"{md} (scaled up to {scaled[md].replicas} for this run)" if md in scaled
                 else md for md in pending]
        ready = Cond("TargetsReady", "False", "WaitingForTargets",
                     f"waiting for {', '.join(names)} to be Ready "
                     f"({int(waited)} s of {limit} s)")
        parts = [resolved, ready, Cond("JobComplete", "Unknown", "NotStarted")]
        return Decision("WaitingForTargets", [*parts, roll_up(parts)], start_time=start)
    ready = Cond("TargetsReady", "True", "Ready", "every ModelDeployment is Ready")
    unavailable = tuple(sorted(t for t, md in refs.items() if not _ready(mds[md])))
    if pending:
        # Mid-run (the Job exists): said as it is, for the whole run; the run goes on.
        ready = Cond("TargetsReady", "False", "TargetUnavailable",
                     "not Ready during the run: " + "; ".join(
                         f"{md} ({_not_ready_why(mds[md])})" for md in pending)
                     + ". Requests to it are retried by the scoring pod's client and recorded "
                     "as failed when it stays away; once the run ends, " + retry_hint(obs.name))

    if obs.job is None:
        parts = [resolved, ready, Cond("JobComplete", "False", "Starting", "creating the Job")]
        return Decision("Running", [*parts, roll_up(parts)], create_job=True,
                        endpoints=endpoints, start_time=start,
                        details={t: target_details(md, mds[md]) for t, md in refs.items()})
    name = obs.job["metadata"]["name"]
    if _job_is(obs.job, "Complete"):
        phase, job = _completed(obs, name)
        # An ended run is judged on its answers; a target gone after the end does not matter.
        parts = [resolved, job] if phase in TERMINAL else [resolved, ready, job]
        return Decision(phase, [resolved, ready, job, roll_up(parts)], endpoints=endpoints,
                        start_time=start, completion_time=timestamp(obs.now)
                        if phase in TERMINAL else None, unavailable=unavailable)
    if _job_is(obs.job, "Failed"):
        why = (obs.termination_message or "").strip() or "no termination message"
        job = Cond("JobComplete", "False", "JobFailed",
                   f"Job {name} failed: {why[-1400:]} (kubectl logs job/{name}); "
                   + retry_hint(obs.name))
        parts = [resolved, job]
        return Decision("Failed", [resolved, ready, job, roll_up(parts)], endpoints=endpoints,
                        start_time=start, completion_time=timestamp(obs.now),
                        unavailable=unavailable)
    done = f" ({obs.progress[0]}/{obs.progress[2]} requests)" if obs.progress else ""
    job = Cond("JobComplete", "False", "Running", f"Job {name} running{done}")
    if found := podstatus.problem(list(obs.job_pods), crash_hint=f"kubectl logs job/{name}",
                                  unschedulable_hint=_room(obs.job)):
        job = Cond("JobComplete", "False", found[0], f"Job {name} cannot run: {found[1]}")
    parts = [resolved, ready, job]
    return Decision("Running", [*parts, roll_up(parts)], endpoints=endpoints, start_time=start,
                    unavailable=unavailable)


def target_details(name: str, md: dict) -> dict[str, Any]:
    """What the run stores about a ModelDeployment target (the report's cost and the answers'
    configuration) and the model name the Job asks for: its runtime, model, served model name,
    instance type, GPUs and replicas, and the generation,
    revision, image and arguments its pods serve."""
    spec, st = md.get("spec") or {}, md.get("status") or {}
    served = st.get("served") or {}
    model = spec.get("model") or {}
    details = {"modelDeployment": name, "runtime": spec.get("runtime"),
               "model": model.get("id"),
               # The name its server answers to (vLLM, TGI and SGLang answer 404 to any other).
               "servedModelName": st.get("servedModelName") or model.get("servedName")
               or model.get("id"),
               "instanceType": spec.get("instanceType"), "gpus": spec.get("gpus"),
               # What served the run: spec.replicas, or more while runs hold it up.
               "replicas": (st.get("replicas") or {}).get("desired") or spec.get("replicas"),
               "generation": served.get("generation"),
               "revision": served.get("revision") or st.get("resolvedRevision"),
               "image": served.get("image"), "args": served.get("args"),
               "startup": st.get("lastStartup")}
    return {k: v for k, v in details.items() if v is not None}


def target_states(obs: Observed) -> list[dict[str, Any]]:
    """Each ModelDeployment target's state now, for the store's target_states: available or
    not (and why), the generation, revision and arguments its pods serve, a rollout under way,
    timed by the ModelDeployment's own last condition transition (Ready or RolledOut)."""
    out = []
    for t in obs.spec.targets:
        if t.model_deployment_ref is None:
            continue
        md = obs.model_deployments.get(t.model_deployment_ref.name)
        if md is None:
            out.append({"target": t.name, "at": obs.now, "available": False,
                        "reason": f"ModelDeployment {t.model_deployment_ref.name} not found"})
            continue
        st = md.get("status") or {}
        conditions = st.get("conditions")
        times = [parse_timestamp(c["lastTransitionTime"]) for c in
                 (find(conditions, "Ready"), find(conditions, "RolledOut"))
                 if c and c.get("lastTransitionTime")]
        served = st.get("served") or {}
        rolled = find(conditions, "RolledOut") or {}
        generation = (md.get("metadata") or {}).get("generation")
        rolling = rolled.get("status") == "False" and served and generation is not None \
            and served.get("generation") != generation
        available = _ready(md)
        out.append({
            "target": t.name, "at": max(times) if times else obs.now, "available": available,
            "reason": None if available else _not_ready_why(md),
            "generation": served.get("generation"), "revision": served.get("revision"),
            "image": served.get("image"), "args": served.get("args"),
            "rolling_to": generation if rolling else None})
    return out


def _not_ready_why(md: dict) -> str:
    ready = find((md.get("status") or {}).get("conditions"), "Ready") or {}
    why = ready.get("reason") or "not Ready"
    if ready.get("message"):
        why += f": {ready['message'][:200]}"
    return why


def _completed(obs: Observed, name: str) -> tuple[str, Cond]:
    """A Job that succeeded: Succeeded only when the store holds every answer of the run."""
    if obs.store_problem:
        return "Running", Cond(
            "JobComplete", "Unknown", "Verifying",
            f"Job {name} succeeded; waiting for the results store to confirm that it holds "
            "every answer (see StoreReachable)")
    done, _, total = obs.progress or (0, 0, 0)
    if obs.progress is None or done < total:
        held = f"{done} of {total} answers ({total - done} missing)" if obs.progress \
            else f"no answer of run {obs.spec.run_id}"
        return "Failed", Cond(
            "JobComplete", "False", "AnswersMissing",
            f"Job {name} succeeded, but the results store holds {held}; {retry_hint(obs.name)}")
    return "Succeeded", Cond("JobComplete", "True", "Completed", f"Job {name} succeeded")


def store_condition(obs: Observed) -> Cond | None:
    """StoreReachable, once the store has been tried: False with the masked URL and the error
    while it does not answer. Informational: the run's own phase says what it means."""
    if obs.store_problem:
        return Cond("StoreReachable", "False", "StoreUnreachable",
                    f"cannot read the results store {obs.store_problem}; a running scoring pod "
                    "keeps its answers in memory, pauses when 32 wait, and saves them when the "
                    "store is back (README: store outages)")
    if obs.store_read:
        return Cond("StoreReachable", "True", "Reachable", "the results store answers")
    return None


def judge_condition(obs: Observed) -> Cond | None:
    """JudgeIndependent: False when the judge is a target or of a target's model family (its
    verdicts may favour that target); absent without a judge. Informational: not part of Ready."""
    judge = obs.spec.scorers.judge if obs.spec.scorers else None
    if judge is None:
        return None
    models: dict[str, str | None] = {}
    for t in obs.spec.targets:
        if t.external is not None:
            models[t.name] = t.external.model
        elif t.recorded is not None:
            models[t.name] = t.recorded.model
        else:
            md = obs.model_deployments.get(t.model_deployment_ref.name) or {}
            models[t.name] = ((md.get("spec") or {}).get("model") or {}).get("id")
    found = judgebias.self_judging(judge.target, judge.external.model if judge.external else None,
                                   obs.spec.reference, models)
    if found:
        return Cond("JudgeIndependent", "False", found[0], found[1])
    return Cond("JudgeIndependent", "True", "Independent",
                "the judge is neither a target nor of a target's model family")


def inline_prompts(spec: EvaluationSpec) -> int | None:
    """How many prompts the run will have, when the spec alone tells (an inline prompt set)."""
    source = spec.prompt_set
    if source.inline is None:
        return None
    return min(len(source.inline), source.limit or len(source.inline))


@functools.lru_cache(maxsize=256)
def _plan_lines(decision_json: str, candidates: int, prompts: int) -> tuple[str, ...]:
    dspec = DecisionSpec.model_validate_json(decision_json)
    return tuple(row.line()[:512] for row in summary.plan(dspec, candidates, prompts))


def plan_lines(spec: EvaluationSpec, prompts: int) -> list[str]:
    """status.plan before the run: what the margins need against the prompts there are (the
    planner's search is cached: reconciles repeat it)."""
    dspec = spec.decision or DecisionSpec()
    return list(_plan_lines(dspec.model_dump_json(by_alias=True), len(spec.targets) - 1,
                            prompts))


def compose(obs: Observed, d: Decision) -> dict[str, Any]:
    """The whole status for this decision."""
    old, run_id, same_run = obs.status, obs.spec.run_id, obs.same_run
    status: dict[str, Any] = {
        "observedGeneration": obs.generation,
        "phase": d.phase,
        "runId": run_id,
        "startTime": d.start_time,
        "jobName": job_name(obs.name, run_id, obs.attempt.number)
        if (obs.job or d.create_job or (same_run and old.get("jobName"))) else None,
    }
    retry = obs.attempt
    if retry.number or retry.token:
        status["retry"] = {"attempt": retry.number, **({"token": retry.token} if retry.token
                                                      else {})}
        if retry.number:
            status["retry"]["startTime"] = timestamp(obs.now) if retry.starting else \
                (old.get("retry") or {}).get("startTime") or timestamp(obs.now)
    if d.conditions:
        extra = [c for c in (store_condition(obs), judge_condition(obs)) if c is not None]
        status["conditions"] = merge(old.get("conditions") if same_run else None,
                                     [*d.conditions, *extra], obs.generation,
                                     timestamp(obs.now))
    elif same_run:
        status["conditions"] = old.get("conditions")
    terminal = d.phase in TERMINAL
    status["completionTime"] = (old.get("completionTime") if same_run and
                                old.get("completionTime") and terminal else d.completion_time)
    if obs.progress:
        done, failed, total = obs.progress
        status["progress"] = {"done": done, "failed": failed, "total": total,
                              "display": f"{done}/{total}"}
    elif same_run and old.get("progress"):
        status["progress"] = old["progress"]
    if (prompts := inline_prompts(obs.spec)) is not None:
        status["plan"] = plan_lines(obs.spec, prompts)
    if d.phase == "Succeeded":
        if obs.summary is not None:
            status |= obs.summary
        elif same_run and old.get("summary") and old.get("phase") == "Succeeded":
            status |= {k: old.get(k) for k in ("summary", "leader", "recommendation", "plan")}
    return status


def changes(old: Mapping[str, Any], new: Mapping[str, Any]) -> dict[str, Any]:
    """The merge patch from `old` to `new`; run keys `new` no longer has are cleared, so a new
    run does not inherit the last one's summary. Empty when nothing changed."""
    patch = {k: v for k, v in new.items() if old.get(k) != v}
    if patch:
        patch |= {k: None for k in RUN_KEYS if k in old and k not in new}
    return patch


def summary_status(rep: EvaluationReport) -> dict[str, Any]:
    """status.summary (a row per target, with each candidate's decision), status.leader,
    status.recommendation and status.plan (what the margins need)."""
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
            "goodputRPS": r(t.capacity.goodput_per_replica, 4) if t.capacity else None,
            "monthlyUSD": r(t.monthly_usd, 2),
            "monthlyScaleToZeroUSD": r(t.sizing.scale_to_zero_monthly_usd, 2)
            if t.sizing else None,
            "breakEvenRequestsPerDay": r(t.break_even_requests_per_day, 0),
            "coldStartSeconds": r(t.cold_start.total_s, 1)
            if t.cold_start and t.cold_start.requested else None,
            "runSpendUSD": r(t.run_spend.usd, 6) if t.run_spend else None,
            "decision": t.decision.verdict if t.decision else None,
        }.items() if v is not None})
    return {"summary": rows, "leader": rep.leader,
            "recommendation": {"target": rep.recommendation,
                               "reason": rep.reason[:MAX_REASON]},
            "plan": [row.line()[:512] for row in rep.plan]}
