"""What an Evaluation's status should be, and whether its scoring Job should be created. Pure.

Phases: Pending (a target or Secret is missing) -> WaitingForTargets (ModelDeployments not Ready;
`readyTimeoutSeconds` ends it in Failed) -> Running (the Job exists) -> Succeeded | Failed.
A run is identified by `spec.runId`: changing it starts a new run (a new Job; the old run's
results stay in the store). Other spec changes while a run is in progress do not touch the
running Job — the run keeps the spec it started with — and apply to the next run.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from slam_operator.conditions import Cond, roll_up

RUNNING_PHASES = ("Pending", "WaitingForTargets", "Running")


@dataclass(frozen=True)
class Observed:
    evaluation: dict
    model_deployments: dict[str, dict | None]  # by name, None when absent
    missing_secrets: list[str]  # human-readable: "spec.targets[0]...: Secret x key y"
    job: dict | None  # this run's Job, if it exists
    progress: tuple[int, int, int] | None  # (done, failed, total) from the store
    termination_message: str | None  # the failed scoring pod's
    now: datetime
    missing_service_account: str | None = None  # spec.serviceAccountName names none
    service_account_present: bool = True  # the Job's ServiceAccount (named or our own) exists


@dataclass
class Decision:
    phase: str
    conditions: list[Cond]
    create_job: bool = False
    endpoints: dict[str, str] = field(default_factory=dict)  # target -> ModelDeployment URL
    start_time: str | None = None
    completion_time: str | None = None


def _ready(md: dict) -> bool:
    return any(c.get("type") == "Ready" and c.get("status") == "True"
               for c in (md.get("status") or {}).get("conditions") or []) and \
        bool((md.get("status") or {}).get("endpoint"))


def _job_condition(job: dict, type_: str) -> bool:
    return any(c.get("type") == type_ and c.get("status") == "True"
               for c in (job.get("status") or {}).get("conditions") or [])


def _iso(t: datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def _parse(ts: str) -> datetime:
    return datetime.fromisoformat(ts.replace("Z", "+00:00"))


def decide(obs: Observed) -> Decision:
    ev = obs.evaluation
    spec = ev["spec"]
    status = ev.get("status") or {}
    run_id = spec.get("runId", "1")
    same_run = status.get("runId") == run_id
    start = status.get("startTime") if same_run and status.get("startTime") else _iso(obs.now)
    # A finished run stays finished until runId changes.
    if same_run and status.get("phase") in ("Succeeded", "Failed") and obs.job is None \
            and status.get("jobName"):
        return Decision(status["phase"], [], start_time=start,
                        completion_time=status.get("completionTime"))

    refs = [t["modelDeploymentRef"]["name"] for t in spec["targets"]
            if t.get("modelDeploymentRef")]
    missing_mds = sorted({n for n in refs if obs.model_deployments.get(n) is None})
    sa = obs.missing_service_account
    problems = ([f"ModelDeployment {n} not found" for n in missing_mds] + obs.missing_secrets
                + ([sa] if sa else []))
    if problems:
        if obs.missing_secrets:
            reason, fix = ("SecretNotFound", "; create them (kubectl create secret generic NAME "
                           "--from-literal=KEY=...) or fix the references")
        elif missing_mds:
            reason, fix = "ModelDeploymentNotFound", "; create it or fix the name"
        else:
            reason, fix = ("ServiceAccountNotFound", " (kubectl create serviceaccount "
                           f"{spec['serviceAccountName']}), or remove the field to let the "
                           "operator make one")
        resolved = Cond("TargetsResolved", "False", reason, "; ".join(problems) + fix)
        parts = [resolved, Cond("TargetsReady", "Unknown", "TargetsNotResolved"),
                 Cond("JobComplete", "Unknown", "NotStarted")]
        return Decision("Pending", [*parts, roll_up(parts)], start_time=start)
    resolved = Cond("TargetsResolved", "True", "Resolved",
                    f"{len(spec['targets'])} targets, {len(refs)} ModelDeployments")

    endpoints = {t["name"]: obs.model_deployments[t["modelDeploymentRef"]["name"]]["status"][
        "endpoint"] for t in spec["targets"] if t.get("modelDeploymentRef")
        and _ready(obs.model_deployments[t["modelDeploymentRef"]["name"]])}
    pending = sorted({n for n in refs if not _ready(obs.model_deployments[n])})
    if pending and obs.job is None:
        waited = (obs.now - _parse(start)).total_seconds()
        limit = spec.get("readyTimeoutSeconds", 3600)
        if waited > limit:
            ready = Cond("TargetsReady", "False", "TargetsNotReady",
                         f"not Ready after {limit} s (spec.readyTimeoutSeconds): "
                         f"{', '.join(pending)}; see kubectl describe modeldeployment")
            parts = [resolved, ready, Cond("JobComplete", "False", "NotStarted")]
            return Decision("Failed", [*parts, roll_up(parts)], start_time=start,
                            completion_time=_iso(obs.now))
        ready = Cond("TargetsReady", "False", "WaitingForTargets",
                     f"waiting for {', '.join(pending)} to be Ready "
                     f"({int(waited)} s of {limit} s)")
        parts = [resolved, ready, Cond("JobComplete", "Unknown", "NotStarted")]
        return Decision("WaitingForTargets", [*parts, roll_up(parts)], start_time=start)
    ready = Cond("TargetsReady", "True", "Ready", "every ModelDeployment is Ready")

    if obs.job is None:
        parts = [resolved, ready, Cond("JobComplete", "False", "Starting", "creating the Job")]
        return Decision("Running", [*parts, roll_up(parts)], create_job=True,
                        endpoints=endpoints, start_time=start)
    name = obs.job["metadata"]["name"]
    if _job_condition(obs.job, "Complete"):
        job = Cond("JobComplete", "True", "Completed", f"Job {name} succeeded")
        parts = [resolved, ready, job]
        return Decision("Succeeded", [*parts, roll_up(parts)], endpoints=endpoints,
                        start_time=start, completion_time=_iso(obs.now))
    if _job_condition(obs.job, "Failed"):
        why = (obs.termination_message or "").strip() or "no termination message"
        job = Cond("JobComplete", "False", "JobFailed",
                   f"Job {name} failed: {why[-1500:]} (kubectl logs job/{name})")
        parts = [resolved, ready, job]
        return Decision("Failed", [*parts, roll_up(parts)], endpoints=endpoints,
                        start_time=start, completion_time=_iso(obs.now))
    done = f" ({obs.progress[0]}/{obs.progress[2]} requests)" if obs.progress else ""
    job = Cond("JobComplete", "False", "Running", f"Job {name} running{done}")
    parts = [resolved, ready, job]
    return Decision("Running", [*parts, roll_up(parts)], endpoints=endpoints, start_time=start)
