"""Reconcile one Evaluation: observe -> decide (status.py) -> plan (plan.py) -> execute
(kube.py), then write the status once, only when it changed. Run by its controller
(controller.py), which hands it the object and a View of the watches, and looks again every
progress period while the run is in flight.

Observed from the watches: the ModelDeployments it targets, its run's Job and the Job's pods.
Read from the API server: only what the operator does not watch, the Secrets, ConfigMap and
ServiceAccount the spec names (a watch on every Secret of the cluster would hold them all in
the operator's memory), and a failed scoring pod's termination message.
The store is read for progress and, once the Job succeeded, for the summary; its URL comes from
the Secret the spec (or the operator) names and is never written anywhere."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from slam import summary
from slam.api.evaluation import EvaluationSpec
from slam.store import Store
from slam_operator import holds
from slam_operator.conditions import is_true, now, timestamp, transitions
from slam_operator.controller import Outcome, View
from slam_operator.evaluation import job, status
from slam_operator.evaluation.plan import plan
from slam_operator.evaluation.status import Decision, Observed, in_flight
from slam_operator.kube import Kube, NamespaceTerminating
from slam_operator.names import EV_PLURAL, MD_PLURAL, RETRY_ANNOTATION
from slam_operator.stores import STORE_ERRORS, open_store


def observe(kube: Kube, body: dict, view: View) -> tuple[Observed, Store | None]:
    meta = body["metadata"]
    ns, name = meta["namespace"], meta["name"]
    spec = EvaluationSpec.model_validate(body["spec"])
    old = body.get("status") or {}
    mds = {t.model_deployment_ref.name: None for t in spec.targets if t.model_deployment_ref}
    for md in mds:  # from the watch (the ModelDeployments' own controller writes their status)
        mds[md] = view.get("ModelDeployment", ns, md)
    missing = []
    store = store_problem = None
    for field, ref in job.secret_refs(spec):
        value, problem = kube.secret_value(ns, ref.name, ref.key)
        if problem:
            missing.append(f"{field}: {problem}")
        elif field == "spec.store.urlSecretRef":
            store, store_problem = open_store(value)
    cm = spec.prompt_set.config_map
    cm_problem = kube.config_map_problem(ns, cm.name, cm.key) if cm is not None else None
    sa = job.service_account_name(name, spec)
    sa_present = kube.get("ServiceAccount", ns, sa) is not None
    missing_sa = None
    if spec.service_account_name and not sa_present:
        missing_sa = f"spec.serviceAccountName: ServiceAccount {sa} not found in namespace {ns}"
    requested = (meta.get("annotations") or {}).get(RETRY_ANNOTATION)
    attempt = status.attempt(spec, old, requested)
    job_name = job.job_name(name, spec.run_id, attempt.number)
    # The run's Job and its pods, from the watches (and the Job this controller just created,
    # until its watch event arrives).
    children = {} if attempt.starting else view.children(ns, job_name)
    found_job = children.get(("Job", job_name))
    message = None
    if found_job is not None and is_true((found_job.get("status") or {}).get("conditions"),
                                         "Failed"):
        message = kube.job_termination_message(ns, job_name)
    run = progress = report = None
    if store is not None:
        try:
            run = store.find_run(name, spec.run_id, ns)
            progress = store.progress(run.id) if run is not None else None
            if status.needs_summary(spec, old, found_job):
                report = status.summary_status(summary.build(store, run.id)) \
                    if run is not None else {}
        except STORE_ERRORS as e:  # the store is away: a condition, not a traceback
            store_problem = f"{store.display_url}: {store.describe_error(e)}"
            run = progress = report = None
    return Observed(name, ns, meta.get("generation") or 0, spec, old, mds, missing, found_job,
                    progress, message, now(), missing_sa, sa_present, report,
                    f"spec.promptSet.configMap: {cm_problem}" if cm_problem else None,
                    tuple(c for (kind, _), c in children.items()
                          if kind == "Pod") if found_job is not None else (),
                    store_problem, store is not None and store_problem is None,
                    requested, run.id if run is not None else None), store


def reconcile(kube: Kube, body: dict, view: View, *, image: str, progress_seconds: float,
              adopt: Callable[[dict, dict], None],
              event: Callable[[dict, str, str, str], None]) -> Outcome:
    """`image`: the scoring Jobs' image (settings.scoring_job_image); while the run is in
    flight its controller looks again every `progress_seconds`."""
    obs, store = observe(kube, body, view)
    d = status.decide(obs)
    actions = plan(obs, d, image)
    for a in actions:
        adopt(a.obj, body)
    try:
        done = kube.execute(obs.namespace, actions)
    except NamespaceTerminating:  # the namespace goes, this Evaluation with it: write nothing
        return Outcome()
    if store is not None and obs.run_pk is not None and obs.job is not None:
        record_targets(store, obs, d)
    held_up = hold_targets(kube, body, obs, d, event)
    new = status.compose(obs, d)
    result = Outcome(actions=done, created={(a.kind, a.name): a.obj for a in actions
                                            if a.verb == "create" and a.kind == "Job"},
                     created_under=next((a.name for a in actions if a.kind == "Job"), None),
                     retry=not held_up)
    patch = status.changes(obs.status, new)
    if patch:
        if not kube.patch_status(EV_PLURAL, obs.namespace, obs.name, patch):
            return result  # deleted since it was read
        result.status = merged(obs.status, patch)
        old_conditions = obs.status.get("conditions") if obs.same_run else None
        for c in transitions(old_conditions, new.get("conditions") or [], quiet=QUIET):
            event(body, "Normal" if c["status"] == "True" else "Warning", c["reason"],
                  f"{c['type']}: {c['message']}"[:1024])
    if in_flight(body["spec"], result.status if result.status is not None else obs.status):
        result.requeue_after = progress_seconds
    return result


def hold_targets(kube: Kube, body: dict, obs: Observed, d: Decision,
                 event: Callable[[dict, str, str, str], None]) -> bool:
    """spec.scaling: while the run waits for its targets or runs, hold each scaled
    ModelDeployment up (holds.py; its own reconcile scales it, and releases the hold once this
    run has ended). False: a ModelDeployment changed while its hold was written (try again)."""
    if d.phase not in ("WaitingForTargets", "Running"):
        return True
    uid, ok = body["metadata"].get("uid", ""), True
    for md_name, scaling in obs.spec.scaled().items():
        md = obs.model_deployments.get(md_name)
        if md is None:
            continue
        taken = holds.take(holds.read(md["metadata"].get("annotations")), obs.name, uid,
                           scaling.replicas, scaling.after, timestamp(obs.now))
        if taken is None:
            continue
        verdict = kube.patch_object(
            MD_PLURAL, obs.namespace, md_name,
            {"metadata": {"annotations": {holds.HOLDS_ANNOTATION: holds.dump(taken)}}},
            md["metadata"].get("resourceVersion"))
        if verdict == "conflict":
            ok = False
        elif verdict == "ok":
            after = (f"then {scaling.after}" if scaling.after is not None
                     else "then back to its own spec.replicas")
            event(body, "Normal", "ScalingUp",
                  f"holding modeldeployment/{md_name} at {scaling.replicas} replica"
                  f"{'s' if scaling.replicas != 1 else ''} or more for this run ({after})")
    return ok


def merged(target: Any, patch: Any) -> Any:
    """`target` after the JSON merge patch `patch` (RFC 7386), as the API server applies it."""
    if not isinstance(patch, dict):
        return patch
    out = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = merged(out.get(key), value)
    return out


# Conditions whose first appearance as True is no news (an Event only when they turn False and
# when they come back).
QUIET = ("StoreReachable",)


def record_targets(store: Store, obs: Observed, d: Decision) -> None:
    """While the run's Job runs, and once more when it ends: each ModelDeployment target's
    state into the store (a row per change), and, at the end, each answer's configuration.
    Best effort: a store that does not answer is StoreReachable's business."""
    try:
        store.record_target_states(obs.run_pk, status.target_states(obs))
        if d.phase in status.TERMINAL:
            store.attribute_responses(obs.run_pk)
    except STORE_ERRORS:
        pass


def delete_results(kube: Kube, body: dict[str, Any]) -> int:
    """spec.store.deleteResultsOnDelete: remove every run of this Evaluation from the store.
    Raises RuntimeError (the operator retries) when the store cannot be reached."""
    ns, name = body["metadata"]["namespace"], body["metadata"]["name"]
    ref = job.store_ref(EvaluationSpec.model_validate(body["spec"]))
    url, problem = kube.secret_value(ns, ref.name, ref.key)
    if problem:
        raise RuntimeError(f"cannot delete results: {problem}")
    store, problem = open_store(url)
    if store is None:
        raise RuntimeError(f"cannot delete results: {problem}")
    try:
        return store.delete_evaluation(name, ns)
    except STORE_ERRORS as e:
        raise RuntimeError(f"cannot delete results: {store.display_url}: "
                           f"{store.describe_error(e)}") from None
