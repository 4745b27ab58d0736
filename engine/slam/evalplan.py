"""From an `Evaluation` (and where its targets are served) to a `RunPlan` the runner executes.

Used by `slam run` (targets served locally or given with --endpoint) and by `slam job run` in the
scoring Job (endpoints from the ModelDeployments' status, passed by the operator).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

from slam import secrets
from slam.api.evaluation import Evaluation
from slam.api.modeldeployment import ModelDeployment
from slam.generate import Endpoint, GenerationParams
from slam.loadgen import Arrival
from slam.promptsets import PromptSet
from slam.runner import RunPlan, TargetRun


class PlanError(ValueError):
    pass


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
) -> RunPlan:
    """`endpoints` maps a target name to the base URL (…/v1) serving its ModelDeployment."""
    env = os.environ if env is None else env
    mds = model_deployments or {}
    targets: list[TargetRun] = []
    problems: list[str] = []
    for i, t in enumerate(evaluation.spec.targets):
        field = f"spec.targets[{i}]"
        arrival = Arrival(t.arrival.process, t.arrival.rate) if t.arrival else Arrival()
        if t.external is not None:
            key = None
            if t.external.api_key_secret_ref is not None:
                try:
                    key = secrets.resolve(t.external.api_key_secret_ref, secret_objects, env,
                                          field=f"{field}.external.apiKeySecretRef")
                except secrets.MissingSecret as e:
                    problems.append(str(e))
                    continue
            details = {"pricing": t.external.pricing.model_dump(by_alias=True)
                       if t.external.pricing else None}
            targets.append(TargetRun(
                Endpoint(t.name, t.external.base_url.rstrip("/"), t.external.model, key),
                t.concurrency, arrival, "external", details))
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
        model = md.spec.served_model_name if md else md_name
        details = {}
        if md is not None:
            details = {"modelDeployment": md_name, "runtime": md.spec.runtime,
                       "model": md.spec.model.id, "instanceType": md.spec.instance_type,
                       "gpus": md.spec.gpu_count, "replicas": md.spec.replicas}
        targets.append(TargetRun(Endpoint(t.name, endpoints[t.name].rstrip("/"), model),
                                 t.concurrency, arrival, "modelDeployment", details))
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
        spec=evaluation.spec.model_dump(by_alias=True, exclude_none=True, mode="json"),
        shard=shard,
    )
