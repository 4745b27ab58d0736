"""The Evaluation's phase machine and status, without a cluster: one row per transition."""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import replace

import pytest

from slam.api.evaluation import Evaluation, EvaluationSpec
from slam.evalplan import build
from slam.promptsets import PromptSet
from slam_operator import pods
from slam_operator.evaluation import status
from slam_operator.evaluation.plan import plan
from slam_operator.evaluation.status import Observed

NOW = dt.datetime(2026, 11, 28, 12, 0, 0, tzinfo=dt.UTC)
SPEC = {
    "promptSet": {"file": "p.yaml"}, "reference": "gpt4", "readyTimeoutSeconds": 600,
    "targets": [
        {"name": "gpt4", "external": {"baseUrl": "https://api.openai.com/v1", "model": "gpt-4",
                                      "apiKeySecretRef": {"name": "openai", "key": "api-key"}}},
        {"name": "mistral", "modelDeploymentRef": {"name": "mistral-7b"}},
    ],
}
URL = "http://mistral-7b.team.svc.cluster.local:8080/v1"


def md(ready: bool = True) -> dict:
    conditions = [{"type": "Ready", "status": "True" if ready else "False"}]
    return {"status": {"conditions": conditions, **({"endpoint": URL} if ready else {})}}


def job(condition: str | None = None, run: str = "1") -> dict:
    conds = [{"type": condition, "status": "True"}] if condition else []
    return {"metadata": {"name": f"pep-run-{run}"}, "status": {"conditions": conds}}


def observed(status_: dict | None = None, spec: dict | None = None, **kw) -> Observed:
    base = dict(name="pep", namespace="team", generation=3,
                spec=EvaluationSpec.model_validate({**SPEC, **(spec or {})}),
                status=status_ or {}, model_deployments={"mistral-7b": md()},
                missing_secrets=[], job=None, progress=None, termination_message=None, now=NOW)
    return Observed(**{**base, **kw})


def started(minutes_ago: int, phase: str = "WaitingForTargets", run: str = "1", **more) -> dict:
    t = (NOW - dt.timedelta(minutes=minutes_ago)).strftime("%Y-%m-%dT%H:%M:%SZ")
    return {"phase": phase, "runId": run, "startTime": t, **more}


def conditions(d: status.Decision) -> dict[str, tuple[str, str]]:
    return {c.type: (c.status, c.reason) for c in d.conditions}


# (case, observed, phase, {condition: (status, reason)}, create_job)
ROWS = [
    ("a ModelDeployment is missing",
     observed(model_deployments={"mistral-7b": None}), "Pending",
     {"TargetsResolved": ("False", "ModelDeploymentNotFound"), "Ready": ("False",
                                                                         "ModelDeploymentNotFound")},
     False),
    ("a Secret is missing (named before the ModelDeployment)",
     observed(model_deployments={"mistral-7b": None},
              missing_secrets=["spec.targets[0].external.apiKeySecretRef: Secret openai gone"]),
     "Pending", {"TargetsResolved": ("False", "SecretNotFound")}, False),
    ("the prompt set's ConfigMap is missing",
     observed(missing_config_map="spec.promptSet.configMap: ConfigMap p not found"), "Pending",
     {"TargetsResolved": ("False", "ConfigMapNotFound")}, False),
    ("spec.serviceAccountName names no account",
     observed(spec={"serviceAccountName": "irsa"}, service_account_present=False,
              missing_service_account="spec.serviceAccountName: ServiceAccount irsa not found"),
     "Pending", {"TargetsResolved": ("False", "ServiceAccountNotFound")}, False),
    ("a ModelDeployment is not Ready yet",
     observed(started(5), model_deployments={"mistral-7b": md(ready=False)}),
     "WaitingForTargets", {"TargetsReady": ("False", "WaitingForTargets"),
                           "JobComplete": ("Unknown", "NotStarted")}, False),
    ("not Ready after readyTimeoutSeconds",
     observed(started(11), model_deployments={"mistral-7b": md(ready=False)}), "Failed",
     {"TargetsReady": ("False", "TargetsNotReady"), "Ready": ("False", "TargetsNotReady")},
     False),
    ("every target Ready and no Job yet",
     observed(started(1)), "Running", {"JobComplete": ("False", "Starting")}, True),
    ("the Job runs",
     observed(started(3, "Running"), job=job(), progress=(3, 0, 10)), "Running",
     {"JobComplete": ("False", "Running"), "Ready": ("False", "Running")}, False),
    ("a target stops being Ready mid-run: the run goes on, and TargetsReady says so",
     observed(started(3, "Running"), job=job(), model_deployments={"mistral-7b": md(False)}),
     "Running", {"TargetsReady": ("False", "TargetUnavailable"),
                 "JobComplete": ("False", "Running")}, False),
    ("the Job completed with every answer in the store",
     observed(started(9, "Running"), job=job("Complete"), progress=(10, 1, 10)), "Succeeded",
     {"JobComplete": ("True", "Completed"), "Ready": ("True", "Ready")}, False),
    ("the Job completed, an answer missing from the store",
     observed(started(9, "Running"), job=job("Complete"), progress=(9, 0, 10)), "Failed",
     {"JobComplete": ("False", "AnswersMissing"), "Ready": ("False", "AnswersMissing")}, False),
    ("the Job completed and the store does not answer: not Succeeded until it confirms",
     observed(started(9, "Running"), job=job("Complete"), store_problem="db: refused"),
     "Running", {"JobComplete": ("Unknown", "Verifying")}, False),
    ("a target gone after the run ended does not fail it",
     observed(started(9, "Running"), job=job("Complete"), progress=(10, 0, 10),
              model_deployments={"mistral-7b": md(False)}), "Succeeded",
     {"TargetsReady": ("False", "TargetUnavailable"), "Ready": ("True", "Ready")}, False),
    ("the Job failed",
     observed(started(9, "Running"), job=job("Failed"), termination_message="store: refused"),
     "Failed", {"JobComplete": ("False", "JobFailed")}, False),
    ("a new slam.dev/retry value after the run ended starts a retry",
     observed(started(60, "Failed", jobName="pep-run-1", retry={"token": "1"}),
              retry_requested="2"), "Running", {"JobComplete": ("False", "Starting")}, True),
    ("a slam.dev/retry value already taken in retries nothing",
     observed(started(60, "Failed", jobName="pep-run-1", retry={"token": "2"}),
              retry_requested="2"), "Failed", {}, False),
    ("a retry asked for while the run is still running waits for its end",
     observed(started(3, "Running", retry={"token": "1"}), job=job(), retry_requested="2",
              progress=(3, 0, 10)), "Running", {"JobComplete": ("False", "Running")}, False),
    ("a finished run whose Job was deleted stays finished",
     observed(started(60, "Succeeded", jobName="pep-run-1")), "Succeeded", {}, False),
    ("a new runId after a finished run starts a new run",
     observed(started(60, "Succeeded", jobName="pep-run-1"), spec={"runId": "2"}), "Running",
     {"JobComplete": ("False", "Starting")}, True),
]


@pytest.mark.parametrize(("obs", "phase", "expected", "create_job"),
                         [r[1:] for r in ROWS], ids=[r[0] for r in ROWS])
def test_phase_machine(obs: Observed, phase: str, expected: dict, create_job: bool) -> None:
    d = status.decide(obs)
    assert d.phase == phase
    assert {k: v for k, v in conditions(d).items() if k in expected} == expected
    assert d.create_job is create_job
    if d.conditions:  # Ready is always the roll-up, last
        assert d.conditions[-1].type == "Ready"


def test_messages_say_what_to_fix() -> None:
    pending = status.decide(observed(missing_secrets=["spec.store.urlSecretRef: Secret s gone"]))
    assert "kubectl create secret generic" in pending.conditions[0].message
    waited = status.decide(observed(started(11), model_deployments={"mistral-7b": md(False)}))
    assert "spec.readyTimeoutSeconds" in waited.conditions[1].message
    assert "mistral-7b" in waited.conditions[1].message
    failed = status.decide(observed(started(9, "Running"), job=job("Failed"),
                                    termination_message="cannot open the results store"))
    assert "cannot open the results store" in failed.conditions[2].message
    assert "kubectl logs job/pep-run-1" in failed.conditions[2].message


def test_a_scoring_pod_that_cannot_start_says_why_and_what_it_asks_for() -> None:
    scheduler = "0/2 nodes are available: 2 Insufficient cpu."
    pod = pods.pod_view("pep-run-1-x7k2p", {"phase": "Pending", "conditions": [
        {"type": "PodScheduled", "status": "False", "reason": "Unschedulable",
         "message": scheduler}]})
    running = job()
    running["spec"] = {"template": {"spec": {"containers": [
        {"resources": {"requests": {"cpu": "1", "memory": "2Gi"}}}]}}}
    d = status.decide(observed(started(3, "Running"), job=running, job_pods=(pod,)))
    assert d.phase == "Running"  # a Job waits for a node; the cluster autoscaler may add one
    assert conditions(d)["JobComplete"] == ("False", "Unschedulable")
    assert conditions(d)["Ready"] == ("False", "Unschedulable")
    msg = d.conditions[2].message
    assert msg.startswith("Job pep-run-1 cannot run: pod pep-run-1-x7k2p cannot be scheduled: "
                          "0/2 nodes are available: 2 Insufficient cpu; ")
    assert "requests 1 cpu and 2Gi memory" in msg
    pulling = pods.pod_view("pep-run-1-x7k2p", {"containerStatuses": [{
        "name": "scoring", "state": {"waiting": {"reason": "ImagePullBackOff",
                                                 "message": 'Back-off pulling image "s"'}}}]})
    d = status.decide(observed(started(3, "Running"), job=job(), job_pods=(pulling,)))
    assert conditions(d)["JobComplete"] == ("False", "ImagePullBackOff")
    assert 'container scoring: ImagePullBackOff: Back-off pulling image "s"' in \
        d.conditions[2].message
    scheduled = pods.pod_view("pep-run-1-x7k2p", {"phase": "Running", "conditions": [
        {"type": "PodScheduled", "status": "True"}]})
    d = status.decide(observed(started(3, "Running"), job=job(), job_pods=(scheduled,)))
    assert conditions(d)["JobComplete"] == ("False", "Running")


def test_running_endpoints_and_times() -> None:
    d = status.decide(observed(started(1)))
    assert d.endpoints == {"mistral": URL}
    assert d.start_time == "2026-11-28T11:59:00Z" and d.completion_time is None
    done = status.decide(observed(started(9, "Running"), job=job("Complete"),
                                  progress=(10, 0, 10)))
    assert done.completion_time == "2026-11-28T12:00:00Z"


def test_an_ended_run_says_how_to_retry_and_a_retry_sends_only_what_is_missing() -> None:
    missing = observed(started(9, "Running"), job=job("Complete"), progress=(37, 2, 40))
    d = status.decide(missing)
    message = conditions_msg(d, "JobComplete")
    assert "holds 37 of 40 answers (3 missing)" in message
    assert "kubectl annotate evaluation pep slam.dev/retry=$(date +%s) --overwrite" in message
    ended = status.compose(missing, d)
    assert ended["phase"] == "Failed" and ended["completionTime"]
    # The annotation is set: retry 1 of the same run, its own Job, sending only what is missing.
    retried = observed(ended, retry_requested="1764", job=None, progress=(37, 2, 40))
    d = status.decide(retried)
    new = status.compose(retried, d)
    assert new["phase"] == "Running" and new["runId"] == "1"
    assert new["jobName"] == "pep-run-1-retry-1"
    assert new["retry"] == {"attempt": 1, "token": "1764", "startTime": "2026-11-28T12:00:00Z"}
    patch = status.changes(ended, new)
    assert patch["completionTime"] is None  # the run is running again
    [action] = [a for a in plan(retried, d, "slam:test") if a.kind == "Job"]
    assert action.name == "pep-run-1-retry-1"
    env = {e["name"]: e.get("value") for e in
           action.obj["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["SLAM_RETRY_FAILED"] == "true"
    # The next reconcile follows retry 1's Job, and its end ends the run.
    following = observed(new, retry_requested="1764", job=job("Complete"),
                         progress=(40, 0, 40))
    assert following.attempt == status.Attempt(1, "1764", False)
    done = status.compose(following, status.decide(following))
    assert done["phase"] == "Succeeded" and done["retry"]["attempt"] == 1
    # A new runId starts at attempt 0 and takes the annotation in as it is: no retry of it.
    fresh = observed(done, spec={"runId": "2"}, retry_requested="1764")
    assert fresh.attempt == status.Attempt(0, "1764", False)
    assert status.compose(fresh, status.decide(fresh))["jobName"] == "pep-run-2"


def conditions_msg(d: status.Decision, type_: str) -> str:
    return next(c.message for c in d.conditions if c.type == type_)


def test_the_store_condition_names_the_store_without_its_password_and_events_once() -> None:
    from slam_operator.conditions import transitions
    from slam_operator.stores import unreachable
    url = "postgresql+psycopg://slam:s3cret@db.team:5432/slam"
    problem = unreachable(url, OSError("connection to db.team failed: refused (s3cret)"))
    assert "s3cret" not in problem and "postgresql+psycopg://slam:***@db.team:5432/slam" in problem
    running = observed(started(3, "Running"), job=job(), progress=None, store_problem=problem)
    st = status.compose(running, status.decide(running))
    cond = next(c for c in st["conditions"] if c["type"] == "StoreReachable")
    assert (cond["status"], cond["reason"]) == ("False", "StoreUnreachable")
    assert "***@db.team" in cond["message"] and "s3cret" not in str(st)
    # Reachable from the start: no Event; unreachable: one Warning; back: one Normal.
    fine = observed(started(3, "Running"), job=job(), progress=(3, 0, 10), store_read=True)
    ok = status.compose(fine, status.decide(fine))["conditions"]
    assert "StoreReachable" not in [c["type"] for c in transitions(
        None, ok, quiet=("StoreReachable",))]
    down = [c for c in transitions(ok, st["conditions"], quiet=("StoreReachable",))
            if c["type"] == "StoreReachable"]
    assert [c["status"] for c in down] == ["False"]
    again = status.compose(replace(running, store_problem=problem + " (2)"),
                           status.decide(running))["conditions"]
    assert not [c for c in transitions(st["conditions"], again, quiet=("StoreReachable",))
                if c["type"] == "StoreReachable"]
    back = [c for c in transitions(st["conditions"], ok, quiet=("StoreReachable",))
            if c["type"] == "StoreReachable"]
    assert [c["status"] for c in back] == ["True"]


def test_compose_progress_summary_and_clearing_a_new_run() -> None:
    obs = observed(started(9, "Running"), job=job("Complete"), progress=(10, 1, 10),
                   summary={"summary": [{"target": "gpt4"}], "leader": "mistral",
                            "recommendation": {"target": "mistral", "reason": "cheaper"}})
    new = status.compose(obs, status.decide(obs))
    assert new["phase"] == "Succeeded" and new["leader"] == "mistral"
    assert new["progress"] == {"done": 10, "failed": 1, "total": 10, "display": "10/10"}
    assert new["jobName"] == "pep-run-1" and new["observedGeneration"] == 3
    assert status.changes(new, new) == {}  # written only when it changed
    # runId 2: the last run's summary, leader and progress are cleared, not inherited
    again = observed(new, spec={"runId": "2"})
    fresh = status.compose(again, status.decide(again))
    patch = status.changes(new, fresh)
    assert patch["runId"] == "2" and patch["phase"] == "Running"
    assert {k: patch[k] for k in ("summary", "leader", "recommendation", "progress")} == \
        dict.fromkeys(("summary", "leader", "recommendation", "progress"))


def test_the_summary_is_read_once_and_following_stops_when_finished() -> None:
    spec = EvaluationSpec.model_validate(SPEC)
    assert status.needs_summary(spec, started(1, "Running"), job("Complete"))
    assert not status.needs_summary(spec, started(1, "Running"), job())
    kept = started(1, "Succeeded", summary=[{"target": "gpt4"}])
    assert not status.needs_summary(spec, kept, job("Complete"))
    assert status.in_flight(SPEC, started(1, "Running"))
    assert not status.in_flight(SPEC, started(1, "Failed"))
    assert status.in_flight({**SPEC, "runId": "2"}, started(1, "Succeeded"))


def test_plan_creates_the_account_with_the_job_and_puts_it_back_mid_run() -> None:
    first = observed(started(1), service_account_present=False)
    actions = plan(first, status.decide(first), "slam:test")
    assert [(a.verb, a.kind, a.name) for a in actions] == [
        ("create", "ServiceAccount", "pep-scoring"), ("create", "Job", "pep-run-1")]
    midrun = observed(started(3, "Running"), job=job(), service_account_present=False)
    assert [a.kind for a in plan(midrun, status.decide(midrun), "slam:test")] == \
        ["ServiceAccount"]
    steady = replace(midrun, service_account_present=True)
    assert plan(steady, status.decide(steady), "slam:test") == []
    named = observed(started(1), spec={"serviceAccountName": "irsa"})
    assert [a.kind for a in plan(named, status.decide(named), "slam:test")] == ["Job"]


@pytest.mark.parametrize(("judge", "reason"), [
    ({"target": "gpt4"}, "SelfJudging"),  # the reference judges itself
    ({"external": {"baseUrl": "https://api.openai.com/v1", "model": "gpt-4o"}}, "SameFamily"),
    ({"external": {"baseUrl": "https://x/v1", "model": "mistral-large"}}, "SameFamily"),
    ({"external": {"baseUrl": "https://x/v1", "model": "claude-3-5-sonnet"}}, "Independent"),
])
def test_a_judge_that_may_favour_a_target_is_a_condition_from_the_start(judge: dict,
                                                                        reason: str) -> None:
    mds = {"mistral-7b": {**md(), "spec": {"model": {"id": "mistralai/Mistral-7B-Instruct"}}}}
    obs = observed(spec={"scorers": {"judge": judge}}, model_deployments=mds)
    st = status.compose(obs, status.decide(obs))
    cond = next(c for c in st["conditions"] if c["type"] == "JudgeIndependent")
    assert (cond["status"], cond["reason"]) == (
        "True" if reason == "Independent" else "False", reason)
    if reason == "SelfJudging":
        assert cond["message"].startswith("the judge is the reference target gpt4")
    # Informational: the roll-up Ready does not wait for it.
    ready = next(c for c in st["conditions"] if c["type"] == "Ready")
    assert ready["reason"] != reason
    assert "JudgeIndependent" not in {c["type"] for c in status.compose(
        observed(), status.decide(observed()))["conditions"]}


def test_an_inline_prompt_set_gets_its_plan_in_the_status_before_the_run() -> None:
    inline = [{"id": f"p{i}", "messages": [{"role": "user", "content": "hi"}]} for i in range(40)]
    obs = observed(spec={"promptSet": {"inline": inline, "limit": 30},
                         "decision": {"similarity": {"atLeast": -0.05, "assumed": 0, "sd": 0.1}}},
                   model_deployments={"mistral-7b": md(ready=False)})
    st = status.compose(obs, status.decide(obs))
    assert st["phase"] == "WaitingForTargets" and len(st["plan"]) == 4
    assert st["plan"][0].startswith("human win rate > 0.45 (assuming 0.5, sd 0.5 per prompt): "
                                    "1078 prompts")
    assert "the prompt set has 30 (short by 1048" in st["plan"][0]
    assert "similarity difference > -0.05" in st["plan"][2] and "has 30 (short by 163" in \
        st["plan"][2]
    assert "plan" not in status.compose(observed(), status.decide(observed()))  # a file: unknown


def md_serving(generation: int, served: int, ready: bool = True, rolled: bool = True,
               reason: str = "MinimumReplicasAvailable") -> dict:
    conditions = [
        {"type": "Ready", "status": "True" if ready else "False",
         "reason": "Ready" if ready else reason, "message": "" if ready else "0/1 available",
         "lastTransitionTime": "2026-11-28T11:58:00Z"},
        {"type": "RolledOut", "status": "True" if rolled else "False",
         "reason": "RolledOut" if rolled else "Unschedulable",
         "lastTransitionTime": "2026-11-28T11:59:30Z"}]
    return {"metadata": {"generation": generation},
            "spec": {"runtime": "vllm", "model": {"id": "mistralai/Mistral-7B"},
                     "instanceType": "g5.xlarge", "gpus": 1, "replicas": 1},
            "status": {"conditions": conditions, **({"endpoint": URL} if ready else {}),
                       "resolvedRevision": "f00d",
                       "served": {"generation": served, "revision": "beef", "image": "vllm:1",
                                  "args": ["--max-model-len", "4096"]}}}


@pytest.mark.parametrize("model, status_name, asked", [
    ({"id": "mistralai/Mistral-7B", "servedName": "mistral"}, "mistral", "mistral"),
    ({"id": "mistralai/Mistral-7B"}, "mistralai/Mistral-7B", "mistralai/Mistral-7B"),
    # A status written before servedModelName existed: the spec says what the server answers to.
    ({"id": "mistralai/Mistral-7B", "servedName": "mistral"}, None, "mistral"),
])
def test_the_scoring_job_asks_for_the_model_by_the_name_its_server_answers_to(
        model: dict, status_name: str | None, asked: str) -> None:
    """vLLM (like TGI and SGLang) answers 404 "The model `mistral-7b` does not exist" to a
    request for any other model name than its --served-model-name: the Job must ask for that
    name, not the ModelDeployment's."""
    served = md_serving(3, 3)
    served["spec"]["model"] = model
    if status_name:
        served["status"]["servedModelName"] = status_name
    obs = observed(started(1), model_deployments={"mistral-7b": served})
    [action] = [a for a in plan(obs, status.decide(obs), "slam:test") if a.kind == "Job"]
    env = {e["name"]: e.get("value") for e in
           action.obj["spec"]["template"]["spec"]["containers"][0]["env"]}
    # What `slam job run` in the Job's pod builds from its environment.
    ev = Evaluation.model_validate(json.loads(env["SLAM_EVALUATION"]))
    job_plan = build(ev, PromptSet("p", "p.yaml", ()),
                     env={"SLAM_SECRET_OPENAI__API_KEY": "k"},
                     endpoints=json.loads(env["SLAM_ENDPOINTS"]),
                     details=json.loads(env["SLAM_TARGET_DETAILS"]))
    [target] = [t for t in job_plan.targets if t.name == "mistral"]
    assert target.endpoint.model == asked
    assert target.endpoint.base_url == URL


def test_the_job_is_told_what_serves_each_target_and_states_are_timed_by_the_target() -> None:
    obs = observed(started(1), model_deployments={"mistral-7b": md_serving(3, 3)})
    d = status.decide(obs)
    assert d.details == {"mistral": {
        "modelDeployment": "mistral-7b", "runtime": "vllm", "model": "mistralai/Mistral-7B",
        "servedModelName": "mistralai/Mistral-7B", "instanceType": "g5.xlarge", "gpus": 1,
        "replicas": 1, "generation": 3,
        "revision": "beef", "image": "vllm:1", "args": ["--max-model-len", "4096"]}}
    [action] = [a for a in plan(obs, d, "slam:test") if a.kind == "Job"]
    env = {e["name"]: e.get("value") for e in
           action.obj["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert '"generation": 3' in env["SLAM_TARGET_DETAILS"]
    # Mid-run, generation 4 is applied and its surge pod cannot start: the old pods serve.
    rolling = observed(started(3, "Running"), job=job(),
                       model_deployments={"mistral-7b": md_serving(4, 3, rolled=False)})
    [s] = status.target_states(rolling)
    assert (s["available"], s["generation"], s["rolling_to"]) == (True, 3, 4)
    assert s["at"] == dt.datetime(2026, 11, 28, 11, 59, 30, tzinfo=dt.UTC)
    assert s["args"] == ["--max-model-len", "4096"] and s["reason"] is None
    gone = observed(started(3, "Running"), job=job(),
                    model_deployments={"mistral-7b": md_serving(3, 3, ready=False,
                                                                reason="ReplicasNotReady")})
    [s] = status.target_states(gone)
    assert s["available"] is False and s["reason"].startswith("ReplicasNotReady")
    [s] = status.target_states(observed(started(3, "Running"), job=job(),
                                        model_deployments={"mistral-7b": None}))
    assert s["available"] is False and s["reason"] == "ModelDeployment mistral-7b not found"


def test_the_status_summary_carries_goodput_and_the_monthly_costs_at_the_slo() -> None:
    from slam import goodput, summary
    from slam.api.evaluation import TargetSummary
    from slam_operator.evaluation.status import summary_status
    from tests.engine.test_goodput import capacity_run, probes_for

    slo = goodput.Slo(ttft_ms=800)
    hourly = [0] * 8 + [14400] * 10 + [0] * 6
    rep = summary.compute(capacity_run({"ttftMs": 800}, probes_for(4, [1, 2, 4, 8, 6, 5], slo),
                                       {"hourly": hourly}))
    rows = {r["target"]: r for r in summary_status(rep)["summary"]}
    small = rows["small"]
    assert small["goodputRPS"] == 4.0
    assert small["monthlyUSD"] == round(1.006 * 730, 2)
    assert small["monthlyScaleToZeroUSD"] == round(10 * 1.006 * 730 / 24, 2)
    assert small["breakEvenRequestsPerDay"] == round(10 * 1.006 / 0.027)
    assert "goodputRPS" not in rows["gpt4"]  # an API target has no capacity search
    for row in rows.values():  # what the CRD's status schema accepts
        TargetSummary.model_validate(row)
