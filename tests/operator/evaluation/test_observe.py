"""What an Evaluation's reconcile reads, and from where: its ModelDeployments, its run's Job and
the Job's pods come from the watches (the controller's View), so a run in flight, looked at every
progress period, costs the API server only the reads of what the operator does not watch."""

from __future__ import annotations

from typing import Any

from slam.api.evaluation import EvaluationSpec
from slam_operator.controller import View
from slam_operator.evaluation import job
from slam_operator.evaluation.reconcile import observe
from slam_operator.evaluation.status import Observed
from tests.operator.evaluation.test_status import SPEC, md, started


class Reads:
    """The API client: records every read; the watched kinds must not be read at all."""

    def __init__(self) -> None:
        self.reads: list[str] = []

    def secret_value(self, namespace: str, name: str, key: str) -> tuple[None, str]:
        self.reads.append(f"Secret {name}")
        return None, f"Secret {name} not found in namespace {namespace}"

    def get(self, kind: str, namespace: str, name: str) -> dict | None:
        assert kind not in ("Job", "Pod"), f"{kind} {name} read from the API server"
        self.reads.append(f"{kind} {name}")
        return None

    def get_model_deployment(self, namespace: str, name: str) -> Any:
        raise AssertionError(f"ModelDeployment {name} read from the API server")

    def job_termination_message(self, namespace: str, name: str) -> str:
        self.reads.append(f"termination message {name}")
        return "out of memory"


def body(status: dict) -> dict:
    return {"metadata": {"namespace": "team", "name": "pep", "generation": 1},
            "spec": {**SPEC, "runId": "1"}, "status": status}


def test_a_run_in_flight_reads_its_model_deployments_job_and_pods_from_the_watches() -> None:
    name = job.job_name("pep", "1", 0)
    running = {"kind": "Job", "metadata": {"name": name}, "status": {"active": 1}}
    pod = {"kind": "Pod", "metadata": {"name": f"{name}-x"}, "waiting": None}
    view = View([{("team", name): [running]}, {("team", name): [pod]}], {},
                {"ModelDeployment": {("team", "mistral-7b"): [md()]}})
    kube = Reads()
    obs, store = observe(kube, body(started(2, phase="Running", jobName=name)), view)
    assert isinstance(obs, Observed) and store is None
    assert obs.model_deployments == {"mistral-7b": md()}
    assert obs.job is running and obs.job_pods == (pod,)
    # The Secrets the spec names and the Job's own ServiceAccount: not watched, so read.
    account = job.service_account_name("pep", EvaluationSpec.model_validate(SPEC))
    assert sorted(kube.reads) == sorted(["Secret slam-store", "Secret openai",
                                         f"ServiceAccount {account}"])


def test_a_model_deployment_or_job_the_watches_do_not_have_is_missing() -> None:
    name = job.job_name("pep", "1", 0)
    failed = {"kind": "Job", "metadata": {"name": name},
              "status": {"conditions": [{"type": "Failed", "status": "True"}]}}
    view = View([{("team", name): [failed]}], {}, {"ModelDeployment": {}})
    kube = Reads()
    obs, _ = observe(kube, body(started(2, phase="Running", jobName=name)), view)
    assert obs.model_deployments == {"mistral-7b": None}
    assert obs.job is failed and obs.termination_message == "out of memory"
