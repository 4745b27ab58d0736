"""Reconcile one ModelDeployment: observe (its Secret, the Hub, the watched children), decide
(pure, status.py), plan (plan.py), execute (kube.py), write the status once. Run by its
controller (controller.py), which hands it the object and the children's View."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from slam.api.modeldeployment import ModelDeploymentSpec, ModelDeploymentStatus
from slam_operator import holds, runtimes
from slam_operator.conditions import Cond, find, is_true, now, timestamp, transitions
from slam_operator.controller import Outcome, View
from slam_operator.kube import Kube, NamespaceTerminating
from slam_operator.modeldeployment import builders
from slam_operator.modeldeployment import status as mdstatus
from slam_operator.modeldeployment.hub import CachedHub, HubOutcome
from slam_operator.names import MD_PLURAL
from slam_operator.plan import plan
from slam_operator.pods import STUCK_REASONS

log = logging.getLogger("slam_operator")
MANAGED_KINDS = ("Deployment", "Service", "PersistentVolumeClaim")
OWNED_STATUS_KEYS = frozenset(
    f.alias or f_name for f_name, f in ModelDeploymentStatus.model_fields.items()
)

# (body, type "Normal"/"Warning", reason, message) -> posts an Event on the ModelDeployment.
EventSink = Callable[[dict[str, Any], str, str, str], None]
# Adds owner references to a child (kopf.adopt in the operator).
Adopt = Callable[[dict[str, Any], dict[str, Any]], None]


@dataclass(frozen=True)
class Observed:
    """What a reconcile reads before it decides anything."""

    resolved: Cond  # ModelResolved
    revision: str | None  # the commit to deploy
    outcome: HubOutcome | None  # fresh Hub facts (None: the status's are reused)
    children: dict[tuple[str, str], dict[str, Any]]  # the watched children, by (kind, name)


def observe(kube: Kube, hub: CachedHub, spec: ModelDeploymentSpec, body: dict[str, Any],
            view: View) -> Observed:
    meta = body["metadata"]
    children = view.children(meta["namespace"], meta["name"])
    return Observed(*_resolve(kube, hub, spec, body), children)


def _resolve(
    kube: Kube, hub: CachedHub, spec: ModelDeploymentSpec, body: dict[str, Any]
) -> tuple[Cond, str | None, HubOutcome | None]:
    """ModelResolved, the revision to deploy, and fresh Hub facts (None: reused from status)."""
    meta, old = body["metadata"], body.get("status") or {}
    resolved = find(old.get("conditions"), "ModelResolved")
    if (
        old.get("resolvedRevision")
        and old.get("observedGeneration") == meta.get("generation")
        and resolved is not None
        and resolved["status"] == "True"
    ):
        # The spec has not changed since the revision was resolved: no need to ask the Hub.
        cond = Cond("ModelResolved", "True", resolved["reason"], resolved["message"])
        return cond, old["resolvedRevision"], None
    token = None
    ref = spec.hf_token_secret_ref
    if ref is not None:
        token, problem = kube.secret_value(meta["namespace"], ref.name, ref.key)
        if problem:
            return mdstatus.token_secret_missing(spec, meta["namespace"], problem), None, None
    outcome = hub.lookup(spec.model.id, spec.model.revision, token)
    cond, revision = mdstatus.model_resolved(spec, outcome)
    return cond, revision, outcome


def reconcile(kube: Kube, body: dict[str, Any], view: View, *, hub: CachedHub,
              images: Mapping[str, str], adopt: Adopt, event: EventSink) -> Outcome:
    """`images`: the operator's image per runtime (settings.runtime_images)."""
    meta = body["metadata"]
    name, namespace, generation = meta["name"], meta["namespace"], meta.get("generation", 1)
    spec = ModelDeploymentSpec.model_validate(body["spec"])
    old = body.get("status") or {}
    result = Outcome()
    # Runs holding it up (Evaluation spec.scaling): served at max(spec.replicas, holds).
    spec, held = _held(kube, body, spec, view, event, result)

    seen = observe(kube, hub, spec, body, view)
    resolved, revision, outcome, existing = seen.resolved, seen.revision, seen.outcome, \
        seen.children
    parameters = outcome.parameters if outcome else old.get("parameters")
    shape = outcome.shape if outcome and outcome.shape else mdstatus.shape_of(old)
    fits = mdstatus.fits(spec, parameters, meta.get("annotations") or {}, shape)
    deploying = revision is not None and fits.status != "False"

    served = builders.ServedModel(name, namespace, spec, revision or "", hub.endpoint,
                                  images.get(runtimes.image_key(spec)),
                                  mdstatus.kv_cache_gib(spec, parameters))
    if deploying:
        desired = builders.build_children(served)
        for child in desired:
            adopt(child, body)
        settled = old.get("observedGeneration") == generation
        actions = plan(desired, existing, MANAGED_KINDS, owner_settled=settled)
        try:
            result.actions = kube.execute(namespace, actions)
        except NamespaceTerminating:
            # The namespace goes, this object with it: no status to write, and an Event could
            # not even be posted there ("Creating" for children that will never come back).
            return result
        if result.actions:  # one Event for the whole change, e.g. "create Service x; create ..."
            event(body, "Normal", "ChildUpdated", "; ".join(result.actions))
            # What was just created, as far as the watches have not reported it yet: the
            # status says at once that the Deployment exists (endpoint, ReplicasNotReady)
            # rather than "Creating", which the Deployment's own event would change again: a
            # second status write and two more Events for every new ModelDeployment.
            result.created = {(a.kind, a.name): a.obj for a in actions
                              if a.verb == "create" and str(a) in result.actions}
            existing = {**existing, **result.created}
    # Otherwise leave any running children alone: a failed lookup must not take a model down.

    deployment = existing.get(("Deployment", name))
    pods = [c for (kind, _), c in existing.items() if kind == "Pod"]
    avail, ready_replicas = mdstatus.available(spec, deployment, deploying, pods)
    # A Deployment this reconcile created or changed has not started rolling out yet.
    applied = any(a.startswith(("create Deployment", "apply Deployment"))
                  for a in result.actions)
    rollout = mdstatus.rolled_out(spec, deployment, applied, pods)
    status = mdstatus.compose(
        spec=spec,
        generation=generation,
        old=old,
        parts=[resolved, fits, avail],
        endpoint=builders.endpoint(served) if deployment is not None else None,
        revision=revision if outcome is None or outcome.status == "found" else None,
        parameters=parameters,
        shape=shape,
        gated=outcome.gated if outcome else None,
        license=outcome.license if outcome else None,
        ready_replicas=ready_replicas,
        now=timestamp(now()),
        current_replicas=int(((deployment or {}).get("status") or {}).get("replicas") or 0),
        held_by=tuple(sorted(held)),
        startup=mdstatus.last_startup(pods, [h.since for h in held.values()],
                                      old.get("lastStartup")),
        selector=",".join(f"{k}={v}" for k, v in builders.selector(served).items()),
        rollout=rollout,
        served_config=mdstatus.served(generation, revision, deployment, rollout,
                                      old.get("served")),
    )
    # A merge patch keeps keys it does not mention: clear ours that no longer apply (endpoint).
    cleared = {k: None for k in OWNED_STATUS_KEYS if k in old and k not in status}
    if cleared or any(old.get(k) != v for k, v in status.items()):
        if not kube.patch_status(MD_PLURAL, namespace, name, {**status, **cleared}):
            return result  # deleted since it was read: nothing to tell anyone
        result.status = {**{k: v for k, v in old.items() if k not in cleared}, **status}
        serving = is_true(old.get("conditions"), "Ready") or \
            is_true(status["conditions"], "Ready")
        for c in transitions(old.get("conditions"), status["conditions"]):
            if c["type"] == "RolledOut" and not serving:
                continue  # bringing a model up: Available and Ready tell that story
            kind = "Warning" if c["status"] == "False" and (
                c["type"] not in ("Available", "RolledOut")
                or c["reason"] in (*STUCK_REASONS, "ProgressDeadlineExceeded")) else "Normal"
            event(body, kind, c["reason"], f"{c['type']}={c['status']}: {c['message']}")
    # Again with backoff: the Hub could not be asked, or a hold's release met a concurrent write.
    result.retry = result.retry or resolved.status == "Unknown"
    return result


def _held(kube: Kube, body: dict[str, Any], spec: ModelDeploymentSpec, view: View,
          event: EventSink, result: Outcome
          ) -> tuple[ModelDeploymentSpec, dict[str, holds.Hold]]:
    """The spec to serve (its replicas raised to what live holds need) and the live holds.
    Holds whose Evaluation has ended, is being deleted or is gone are released here, the one
    place that releases them (holds.py), with the Evaluation's `scaling.after` applied."""
    meta = body["metadata"]
    held = holds.read(meta.get("annotations"))
    if not held:
        return spec, {}
    namespace, name = meta["namespace"], meta["name"]
    ended = holds.release(held, {n: view.get("Evaluation", namespace, n) for n in held})
    if ended.dropped:
        patch: dict[str, Any] = {"metadata": {"annotations": {
            holds.HOLDS_ANNOTATION: holds.dump(ended.kept)}}}
        if ended.spec_replicas is not None:
            patch["spec"] = {"replicas": ended.spec_replicas}
        verdict = kube.patch_object(MD_PLURAL, namespace, name, patch,
                                    meta.get("resourceVersion"))
        if verdict == "ok":
            if ended.spec_replicas is not None:
                spec = spec.model_copy(update={"replicas": ended.spec_replicas})
            held = ended.kept
            back = holds.replicas(spec.replicas, held)
            event(body, "Normal", "HoldReleased",
                  f"{', '.join(f'evaluation {n}' for n in ended.dropped)} ended: no longer "
                  f"held up; {back} replica{'s' if back != 1 else ''} from now on")
        elif verdict == "conflict":  # changed meanwhile: serve what it had, look again soon
            result.retry = True
    wanted = holds.replicas(spec.replicas, held)
    if wanted != spec.replicas:
        spec = spec.model_copy(update={"replicas": wanted})
    return spec, held
