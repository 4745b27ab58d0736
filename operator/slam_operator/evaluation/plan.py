"""What an Evaluation's decision asks to create: its scoring ServiceAccount and Job. Pure.

The actions are carried out by the same executor as a ModelDeployment's (`Kube.execute`), where a
create that finds the object already there is the outcome wanted anyway.
"""

from __future__ import annotations

from slam_operator.evaluation import job
from slam_operator.evaluation.status import Decision, Observed
from slam_operator.plan import Action


def plan(obs: Observed, d: Decision, image: str) -> list[Action]:
    actions: list[Action] = []
    # The Job's own ServiceAccount, made with the Job and put back while the run needs it (an
    # account left by an earlier Evaluation of the same name may be garbage-collected late).
    if not obs.spec.service_account_name and not obs.service_account_present and (
            d.create_job or d.phase == "Running"):
        sa = job.build_service_account(obs.name, obs.namespace)
        actions.append(Action("create", "ServiceAccount", sa["metadata"]["name"], sa))
    if d.create_job:
        built = job.build_scoring_job(job.JobInput(
            obs.name, obs.namespace, obs.spec, d.endpoints, image, attempt=obs.attempt.number,
            details=d.details))
        actions.append(Action("create", "Job", built["metadata"]["name"], built))
    return actions
