"""`slam run`: the same manifests `kubectl apply` takes, run on this machine.

Everything that can be wrong with the input is checked before any server starts or any request
is sent: manifests, the prompt set, model files, Secrets and endpoints.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from slam import evalplan, localserve, promptsets
from slam.api import manifests
from slam.api.evaluation import Evaluation
from slam.api.modeldeployment import ModelDeployment
from slam.runner import RunPlan


class RunSetupError(ValueError):
    """Bad input for `slam run`; the message names the file or field and how to fix it."""


@dataclass(frozen=True)
class Prepared:
    evaluation: Evaluation
    plan_for: Callable[[Mapping[str, str]], RunPlan]  # served endpoints -> plan
    serve_locally: tuple[ModelDeployment, ...]  # llamacpp ModelDeployments to start here
    source: Path


def pick_evaluation(loaded: manifests.Manifests, name: str | None) -> Evaluation:
    evals = loaded.evaluations
    if name:
        evals = [e for e in evals if e.metadata.get("name") == name]
        if not evals:
            names = ", ".join(e.metadata.get("name", "?") for e in loaded.evaluations) or "none"
            raise RunSetupError(f"no Evaluation named {name} in the manifests (found: {names})")
    if not evals:
        raise RunSetupError("no Evaluation in the manifests: add one (kind: Evaluation)")
    if len(evals) > 1:
        names = ", ".join(e.metadata.get("name", "?") for e in evals)
        raise RunSetupError(f"several Evaluations ({names}): choose one with --evaluation NAME")
    return evals[0]


def prepare(path: Path, *, evaluation_name: str | None = None,
            endpoints: Mapping[str, str] | None = None, limit: int | None = None,
            run_id: str | None = None) -> Prepared:
    endpoints = dict(endpoints or {})
    try:
        loaded = manifests.load(path)
    except manifests.ManifestError as e:
        raise RunSetupError(str(e)) from None
    ev = pick_evaluation(loaded, evaluation_name)
    if run_id:
        ev = ev.model_copy(update={"spec": ev.spec.model_copy(update={"run_id": run_id})})
    source = loaded.source_of(next(e for e in loaded.evaluations
                                   if e.metadata.get("name") == ev.metadata.get("name")))
    unknown = sorted(set(endpoints) - {t.name for t in ev.spec.targets})
    if unknown:
        raise RunSetupError(f"--endpoint names unknown target(s): {', '.join(unknown)}")
    prompt_source = ev.spec.prompt_set
    if limit:
        prompt_source = prompt_source.model_copy(update={"limit": limit})
    try:
        prompts = promptsets.load(prompt_source, base_dir=source.parent)
    except promptsets.PromptSetError as e:
        raise RunSetupError(str(e)) from None

    mds = {md.metadata["name"]: md for md in loaded.model_deployments}
    local: list[ModelDeployment] = []
    problems: list[str] = []
    for i, t in enumerate(ev.spec.targets):
        if t.model_deployment_ref is None or t.name in endpoints:
            continue
        md = mds.get(t.model_deployment_ref.name)
        field = f"spec.targets[{i}].modelDeploymentRef"
        if md is None:
            problems.append(
                f"{field}: ModelDeployment {t.model_deployment_ref.name} is not in {path}; add "
                f"it, or pass --endpoint {t.name}=http://HOST:PORT/v1 for a running server"
            )
        elif md.spec.runtime != "llamacpp":
            problems.append(
                f"{field}: ModelDeployment {md.metadata['name']} uses runtime "
                f"{md.spec.runtime}, which needs a GPU cluster; slam run serves llamacpp models "
                f"only: pass --endpoint {t.name}=http://HOST:PORT/v1 for a running server"
            )
        else:
            try:
                localserve.find_model_file(md)
            except localserve.LocalServeError as e:
                problems.append(str(e))
                continue
            if md not in local:
                local.append(md)
    if problems:
        raise RunSetupError("\n".join(problems))

    def plan_for(served: Mapping[str, str]) -> RunPlan:
        return evalplan.build(ev, prompts, endpoints={**endpoints, **served},
                              model_deployments=mds, secret_objects=loaded.others)

    # Secrets and endpoints checked now, before any server starts.
    placeholder = {t.name: "http://127.0.0.1:1/v1" for t in ev.spec.targets
                   if t.model_deployment_ref is not None}
    try:
        plan_for(placeholder)
    except evalplan.PlanError as e:
        raise RunSetupError(str(e)) from None
    return Prepared(ev, plan_for, tuple(local), source)


def local_endpoints(ev: Evaluation, servers: Mapping[str, localserve.LocalServer]
                    ) -> dict[str, str]:
    """Target name -> base URL for targets whose ModelDeployment is served here."""
    return {t.name: servers[t.model_deployment_ref.name].base_url for t in ev.spec.targets
            if t.model_deployment_ref is not None and t.model_deployment_ref.name in servers}
