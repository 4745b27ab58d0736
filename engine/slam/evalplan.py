"""From an `Evaluation` (and where its targets are served) to a `RunPlan` the runner executes.

Used by `slam run` (targets served locally or given with --endpoint) and by `slam job run` in the
scoring Job (endpoints from the ModelDeployments' status, passed by the operator).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from slam import secrets, traffic
from slam.api.common import SecretKeyRef
from slam.api.evaluation import Evaluation
from slam.api.modeldeployment import ModelDeployment
from slam.generate import Endpoint, GenerationParams
from slam.loadgen import Arrival
from slam.promptsets import PromptSet
from slam.runner import RunPlan, TargetRun
from slam.scoring.pipeline import ScoringConfig
from slam.scoring.similarity import DEFAULT_MODEL


class PlanError(ValueError):
    pass


def _api_key(ref: SecretKeyRef | None, field: str, secret_objects: Sequence[Mapping[str, Any]],
             env: Mapping[str, str]) -> str | None:
    """The key an external endpoint's `apiKeySecretRef` names (None when it names none)."""
    if ref is None:
        return None
    try:
        return secrets.resolve(ref, secret_objects, env, field=field)
    except secrets.MissingSecret as e:
        raise PlanError(str(e)) from None


def generation_params(evaluation: Evaluation) -> GenerationParams:
    g = evaluation.spec.generation
    if g is None:
        return GenerationParams()
    return GenerationParams(
        max_tokens=g.max_tokens, temperature=g.temperature, top_p=g.top_p, seed=g.seed,
        timeout_seconds=g.timeout_seconds, max_retries=g.max_retries,
    )


def build(
    evaluation: Evaluation,
    prompts: PromptSet,
    *,
    endpoints: Mapping[str, str],
    model_deployments: Mapping[str, ModelDeployment] | None = None,
    secret_objects: Sequence[Mapping[str, Any]] = (),
    env: Mapping[str, str] | None = None,
    shard: tuple[int, int] = (0, 1),
    details: Mapping[str, Mapping[str, Any]] | None = None,
    base_dir: Path | None = None,
    traffic_text: tuple[str, str] | None = None,
) -> RunPlan:
    """`endpoints` maps a target name to the base URL (…/v1) serving its ModelDeployment;
    `details` what serves it (the operator passes the ModelDeployments' spec and status).
    A traffic profile's timestamps file is read now (relative to `base_dir`, or `traffic_text`:
    its contents and where they came from) and stored as hourly counts with the run."""
    env = os.environ if env is None else env
    mds = model_deployments or {}
    targets: list[TargetRun] = []
    problems: list[str] = []
    for i, t in enumerate(evaluation.spec.targets):
        field = f"spec.targets[{i}]"
        arrival = Arrival(t.arrival.process, t.arrival.rate) if t.arrival else Arrival()
        if t.external is not None:
            try:
                key = _api_key(t.external.api_key_secret_ref,
                               f"{field}.external.apiKeySecretRef", secret_objects, env)
            except PlanError as e:
                problems.append(str(e))
                continue
            info = {"pricing": t.external.pricing.model_dump(by_alias=True)
                    if t.external.pricing else None}
            targets.append(TargetRun(
                Endpoint(t.name, t.external.base_url.rstrip("/"), t.external.model, key),
                t.concurrency, arrival, t.processes, "external", info))
            continue
        if t.recorded is not None:
            # The incumbent's answers are the ones the gateway recorded: never called again.
            info = {"pricing": t.recorded.pricing.model_dump(by_alias=True)
                    if t.recorded.pricing else None, "recordedBy": "slam gateway"}
            targets.append(TargetRun(Endpoint(t.name, "", t.recorded.model), t.concurrency,
                                     arrival, t.processes, "recorded", info))
            continue
        assert t.model_deployment_ref is not None
        md_name = t.model_deployment_ref.name
        if t.name not in endpoints:
            problems.append(
                f"{field}.modelDeploymentRef: no endpoint for ModelDeployment {md_name} "
                f"(target {t.name}); serve it and pass --endpoint {t.name}=http://HOST:PORT/v1"
            )
            continue
        md = mds.get(md_name)
        # `details` is per target: each target's own dict (the name is not reused, so an
        # earlier target cannot hide a later one's).
        info = dict((details or {}).get(t.name) or {})
        # The name the model's server answers to: vLLM, TGI and SGLang answer 404 to any other
        # (the scoring Job knows it from the operator's details, `slam run` from the manifest).
        model = md.spec.served_model_name if md else info.get("servedModelName") or md_name
        if md is not None:
            info |= {"modelDeployment": md_name, "runtime": md.spec.runtime,
                     "model": md.spec.model.id, "instanceType": md.spec.instance_type,
                     "gpus": md.spec.gpu_count, "replicas": md.spec.replicas}
        targets.append(TargetRun(Endpoint(t.name, endpoints[t.name].rstrip("/"), model),
                                 t.concurrency, arrival, t.processes, "modelDeployment", info))
    if problems:
        raise PlanError("\n".join(problems))
    g = evaluation.spec.generation
    return RunPlan(
        evaluation=evaluation.metadata.get("name", "evaluation"),
        namespace=evaluation.metadata.get("namespace", "") or "",
        run_id=evaluation.spec.run_id,
        reference=evaluation.spec.reference,
        targets=tuple(targets),
        prompts=prompts,
        params=generation_params(evaluation),
        samples=g.samples_per_prompt if g else 1,
        spec=traffic.resolved_spec(evaluation.spec.to_wire(), base_dir,
                                   *(traffic_text or (None, ""))),
        shard=shard,
    )


def scoring_config(
    evaluation: Evaluation,
    plan: RunPlan,
    *,
    secret_objects: Sequence[Mapping[str, Any]] = (),
    env: Mapping[str, str] | None = None,
) -> ScoringConfig:
    """What to score and with which judge endpoint (a target's, or an external one)."""
    env = os.environ if env is None else env
    sc = evaluation.spec.scorers
    similarity = DEFAULT_MODEL
    if sc is not None and sc.similarity is not None:
        similarity = sc.similarity.model if sc.similarity.enabled else None
    judge = None
    judge_name = "judge"
    mode, rubric = "pairwise", None
    if sc is not None and sc.judge is not None:
        j = sc.judge
        mode, rubric = j.mode, j.rubric
        if j.target is not None:
            found = [t.endpoint for t in plan.targets if t.name == j.target]
            if not found:
                raise PlanError(f"spec.scorers.judge.target: no target named {j.target}")
            judge, judge_name = found[0], j.target
        else:
            assert j.external is not None
            key = _api_key(j.external.api_key_secret_ref,
                           "spec.scorers.judge.external.apiKeySecretRef", secret_objects, env)
            judge = Endpoint("judge", j.external.base_url.rstrip("/"), j.external.model, key)
            judge_name = j.external.model
    return ScoringConfig(
        reference=evaluation.spec.reference, similarity_model=similarity, judge=judge,
        judge_name=judge_name, mode=mode, rubric=rubric,
        timeout_seconds=plan.params.timeout_seconds,
    )
