"""kopf handlers: decorators and hand-offs only. Indices keep what the watches deliver; every
other handler hands a key to a controller (controller.py, built in app.py) or starts a probe.

Run with `python -m slam_operator` (or `kopf run -m slam_operator.handlers --all-namespaces`).
Nothing here reads anything at import: the settings are read once, by __main__ before kopf
starts or, under `kopf run`, by the first handler that needs them.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

import aiohttp
import kopf
from kubernetes import config

from slam.api.common import ProbeSpec
from slam.api.evaluation import EvaluationSpec
from slam_operator import holds, kopffix, metrics, probes
from slam_operator import pods as podstatus
from slam_operator.app import Operator
from slam_operator.evaluation import job as evaluation_job
from slam_operator.evaluation import reconcile as evaluation
from slam_operator.kube import Kube
from slam_operator.names import (
    CLAIMS,
    DEPLOYMENTS,
    EVALUATION_LABEL,
    EVALUATIONS,
    JOBS,
    MANAGED_BY,
    MANAGED_BY_LABEL,
    MODEL_DEPLOYMENT_LABEL,
    MODEL_DEPLOYMENTS,
    PODS,
    RETRY_ANNOTATION,
    SERVICES,
    WATCHED,
    owner_name,
)
from slam_operator.settings import Settings
from slam_operator.settings import from_env as settings_from_env

CHILD_LABELS = {MANAGED_BY_LABEL: MANAGED_BY}
# What the operator makes (and the pods of what it makes): all carry CHILD_LABELS.
CHILD_KINDS = (DEPLOYMENTS, SERVICES, CLAIMS, PODS, JOBS)
log = logging.getLogger("slam_operator")


def _plain(body: Any) -> dict[str, Any]:
    """kopf's Body view as a plain, detached dict."""
    return json.loads(json.dumps(dict(body), default=dict))


def _settings(memo: kopf.Memo) -> Settings:
    """The settings __main__ read and put in the memo, or, under `kopf run`, read now, once."""
    if getattr(memo, "settings", None) is None:
        memo.settings = settings_from_env()
    return memo.settings


def _operator(memo: kopf.Memo) -> Operator:
    return memo.operator


# --- indices over the watches --------------------------------------------------------------------
# kopf fills them before any handler runs and updates them before the handlers of the same event.
# They are coroutines, so kopf runs them on its event loop: never behind a reconcile that holds a
# thread (the controllers have pools of their own; kopf's pool runs only the delete handler).
# The children's, keyed by (namespace, owner): a reconcile reads its children from memory
# instead of listing them from the API server (issue 17: three LISTs per reconcile made the cost
# grow with the square of the number of objects).

def _child(kind: str, namespace: str, labels: kopf.Labels, body: kopf.Body
           ) -> dict[tuple[str, str], dict[str, Any]]:
    """What a reconcile reads of a child, and no more: its spec (drift), labels, generation
    and, for a Deployment, its status (Available). managedFields and the rest would triple the
    operator's memory at a few thousand objects."""
    meta = body.metadata
    kept = {"kind": kind, "spec": _plain(body.spec),
            "metadata": {"name": meta.name, "namespace": namespace, "labels": dict(labels),
                         "generation": meta.get("generation")}}
    if kind == "Deployment":
        kept["status"] = _plain(body.status)
    return {(namespace, labels[MODEL_DEPLOYMENT_LABEL]): kept}


@kopf.index(*DEPLOYMENTS, labels={MODEL_DEPLOYMENT_LABEL: kopf.PRESENT})
async def md_deployments(namespace: str, labels: kopf.Labels, body: kopf.Body, **_: Any):
    """Deployments by owning ModelDeployment."""
    return _child("Deployment", namespace, labels, body)


@kopf.index(*SERVICES, labels={MODEL_DEPLOYMENT_LABEL: kopf.PRESENT})
async def md_services(namespace: str, labels: kopf.Labels, body: kopf.Body, **_: Any):
    """Services by owning ModelDeployment."""
    return _child("Service", namespace, labels, body)


@kopf.index(*CLAIMS, labels={MODEL_DEPLOYMENT_LABEL: kopf.PRESENT})
async def md_claims(namespace: str, labels: kopf.Labels, body: kopf.Body, **_: Any):
    """Model-cache PVCs by owning ModelDeployment."""
    return _child("PersistentVolumeClaim", namespace, labels, body)


@kopf.index(*PODS, labels={MODEL_DEPLOYMENT_LABEL: kopf.PRESENT})
async def md_pods(namespace: str, name: str, labels: kopf.Labels, status: kopf.Status,
                  meta: kopf.Meta, **_: Any):
    """Server pods by owning ModelDeployment: why they wait, how they last ended, how long
    their start took."""
    return {(namespace, labels[MODEL_DEPLOYMENT_LABEL]): podstatus.pod_view(
        name, _plain(status), meta.get("creationTimestamp"))}


@kopf.index(*PODS, labels={EVALUATION_LABEL: kopf.PRESENT, "job-name": kopf.PRESENT})
async def ev_job_pods(namespace: str, name: str, labels: kopf.Labels, status: kopf.Status,
                      **_: Any):
    """Scoring pods by their Job: whether they wait for a node or an image."""
    return {(namespace, labels["job-name"]): podstatus.pod_view(name, _plain(status))}


@kopf.index(*JOBS, labels={EVALUATION_LABEL: kopf.PRESENT})
async def ev_jobs(namespace: str, name: str, body: kopf.Body, **_: Any):
    """Scoring Jobs by name (an Evaluation's reconcile finds its run's Job here, with the Job's
    pods): what the status reads of one, its spec and status."""
    return {(namespace, name): {
        "kind": "Job", "spec": _plain(body.spec), "status": _plain(body.status),
        "metadata": {"name": name, "namespace": namespace, "labels": dict(body.metadata.labels),
                     "uid": body.metadata.uid}}}


def _body(body: kopf.Body) -> dict[str, Any]:
    obj = _plain(body)
    obj["metadata"].pop("managedFields", None)
    return obj


@kopf.index(*MODEL_DEPLOYMENTS)
async def md_bodies(namespace: str, name: str, body: kopf.Body, **_: Any):
    """ModelDeployments as the watch last delivered them, for their controller."""
    return {(namespace, name): _body(body)}


@kopf.index(*EVALUATIONS)
async def ev_bodies(namespace: str, name: str, body: kopf.Body, **_: Any):
    """Evaluations as the watch last delivered them, for their controller."""
    return {(namespace, name): _body(body)}


@kopf.index(*MODEL_DEPLOYMENTS)
async def md_ready(namespace: str, name: str, status: kopf.Status, **_: Any):
    """ModelDeployments by their Ready condition (for slam_model_deployments)."""
    ready = next((c.get("status") for c in status.get("conditions") or []
                  if c.get("type") == "Ready"), "Unknown")
    return {ready: (namespace, name)}


@kopf.index(*EVALUATIONS)
async def ev_phases(namespace: str, name: str, status: kopf.Status, **_: Any):
    """Evaluations by phase (for slam_evaluations)."""
    return {status.get("phase") or "New": (namespace, name)}


# --- start and stop ------------------------------------------------------------------------------

@kopf.on.login()
async def operator_login(memo: kopf.Memo, **kwargs: Any) -> kopf.AiohttpSession | None:
    """In a pod: its service account. Elsewhere: $KUBECONFIG, read when the operator starts.
    kopf's requests go through a pool of bounded size (connection_limit)."""
    info = kopf.login_with_service_account(**kwargs) or kopf.login_with_kubeconfig(**kwargs)
    if info is None:
        return None
    limit = connection_limit(_settings(memo))
    return kopf.AiohttpSession(
        server=info.server, default_namespace=info.default_namespace, priority=info.priority,
        expiration=info.expiration, aiohttp_session=_bounded_session(info, limit))


def connection_limit(settings: Settings) -> int:
    """kopf's connections: one per watch stream (each watched kind, in each served namespace,
    and its scans of CRDs and namespaces) plus SLAM_API_CONNECTIONS for its requests. kopf's
    own pool is unbounded: 2,000 ModelDeployments applied at once made it open ~1,700 TLS
    connections together, ~0.25 MB of buffers each, and that burst set the operator's memory
    (issue 17). Requests beyond the limit wait their turn."""
    streams = len(WATCHED) * max(1, len(settings.watch_namespaces)) + 2
    return streams + settings.api_connections


def _bounded_session(info: kopf.ConnectionInfo, limit: int) -> aiohttp.ClientSession:
    """The session kopf would make from `info`, with at most `limit` connections."""
    return aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=limit, ssl=info.as_ssl_context()),
        headers=info.as_http_headers(), proxy=info.proxy_url, trust_env=info.trust_env)


@kopf.on.startup()
async def operator_startup(settings: kopf.OperatorSettings, memo: kopf.Memo,
                           **indices: Any) -> None:
    """Connect to the API server, set kopf's behaviour, start the controllers and /metrics."""
    ours = _settings(memo)
    # kopf's start-up gate woke every waiting object's worker for every object listed: minutes
    # of nothing but wake-ups before a restarted operator's first reconcile (kopffix.py). The
    # startup handlers run before kopf lists anything.
    kopffix.apply()
    try:
        config.load_incluster_config()
    except config.ConfigException:
        config.load_kube_config(config_file=ours.kubeconfig)  # None: ~/.kube/config
    # kopf would otherwise post an Event for every handler run; ours say what changed.
    settings.posting.level = logging.WARNING
    # kopf's own thread pool now runs only the Evaluation delete handler; the reconciles run on
    # their controllers' pools and the indices on the event loop.
    settings.execution.max_workers = 4
    # No limit on kopf's per-object workers (settings.queueing.worker_limit): when the operator
    # starts, every listed object's worker waits until all watched kinds are indexed, so a kind
    # with more objects than the limit (pods, cluster-wide) never finishes its listing and the
    # operator never reconciles anything. An idle worker ends after a second.
    settings.queueing.idle_timeout = 1.0
    # Only this operator's children are listed and watched (the API server filters them): kopf
    # would otherwise list every pod, Deployment, Service, PVC and Job of the cluster when it
    # starts, and index each before it runs a handler.
    for kind in CHILD_KINDS:
        settings.watching.label_selectors[kind] = f"{MANAGED_BY_LABEL}={MANAGED_BY}"
    # Recover quickly when the API server restarts or a watch silently stalls.
    settings.watching.server_timeout = 60
    settings.watching.client_timeout = 90
    settings.watching.reconnect_backoff = 1.0
    # Limited to listed namespaces (the chart's watchNamespaces): serve exactly those, without
    # scanning the cluster's namespaces, which the namespaced RBAC does not allow.
    if ours.watch_namespaces:
        settings.scanning.disabled = True

    op = memo.operator = Operator.build(ours)
    op.model_deployments.start(indices["md_bodies"], [
        indices["md_deployments"], indices["md_services"], indices["md_claims"],
        indices["md_pods"]], {"Evaluation": indices["ev_bodies"]})
    op.evaluations.start(indices["ev_bodies"], [indices["ev_jobs"], indices["ev_job_pods"]],
                         {"ModelDeployment": indices["md_bodies"]})
    metrics.QUEUE_DEPTH.set_function(lambda: len(op.model_deployments.queue))
    metrics.count_from(indices["ev_phases"], indices["md_ready"])
    if ours.metrics_port != 0:
        memo.metrics_port = metrics.serve(ours.metrics_port, ours.metrics_addr)


@kopf.on.cleanup()
async def operator_cleanup(memo: kopf.Memo, **_: Any) -> None:
    if getattr(memo, "operator", None) is not None:
        for controller in memo.operator.controllers:
            await controller.stop()


# --- ModelDeployment -----------------------------------------------------------------------------


@kopf.on.resume(*MODEL_DEPLOYMENTS)
@kopf.on.create(*MODEL_DEPLOYMENTS)
@kopf.on.update(*MODEL_DEPLOYMENTS)
async def modeldeployment_changed(namespace: str, name: str, memo: kopf.Memo,
                                  **_: Any) -> None:
    """A created, changed or resumed ModelDeployment: queue its reconcile."""
    _operator(memo).model_deployments.add((namespace, name))


@kopf.on.event(*DEPLOYMENTS, labels=CHILD_LABELS)
@kopf.on.event(*SERVICES, labels=CHILD_LABELS)
async def modeldeployment_child_event(body: kopf.Body, memo: kopf.Memo, type: str | None,
                                      **_: Any) -> None:
    """Queue the owner when a child changes (status, a hand edit) or is deleted. After a
    deletion the owner is read from the API server: the child may be going because its owner
    is (the garbage collector, a namespace being deleted), and the owner's own deletion can
    reach the operator after the child's."""
    owner = (body.metadata.labels or {}).get(MODEL_DEPLOYMENT_LABEL)
    if owner:
        _operator(memo).model_deployments.add((body.metadata.namespace, owner),
                                              fresh=type == "DELETED")


@kopf.on.event(*PODS, labels={MODEL_DEPLOYMENT_LABEL: kopf.PRESENT},
               when=lambda status, **_: podstatus.stuck(_plain(status)))
async def modeldeployment_pod_stuck(body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    """A server pod that will not start (crash loop, image pull, missing Secret) changes no
    Deployment field after the first failure: report it from the pod's own events."""
    owner = (body.metadata.labels or {}).get(MODEL_DEPLOYMENT_LABEL)
    if owner:
        _operator(memo).model_deployments.add((body.metadata.namespace, owner))


@kopf.daemon(*MODEL_DEPLOYMENTS, when=lambda spec, **_: bool(spec.get("probe")),
             cancellation_timeout=5.0)
async def modeldeployment_probe(name: str, namespace: str, spec: kopf.Spec, memo: kopf.Memo,
                                stopped: kopf.DaemonStopped, **_: Any) -> None:
    """Probe a ModelDeployment's endpoint on its schedule while it is Ready."""
    probe = ProbeSpec.model_validate(dict(spec["probe"]))
    default = _operator(memo).settings.store_url
    store = await asyncio.to_thread(probes.probe_store, Kube.of_this_thread(), namespace, None,
                                    default.get_secret_value() if default else None)
    await probes.probe_loop(
        namespace, lambda: probes.model_deployment_targets(Kube.of_this_thread(), namespace,
                                                           name),
        probe, store, stopped.wait)


# --- Evaluation ----------------------------------------------------------------------------------


@kopf.on.resume(*EVALUATIONS)
@kopf.on.create(*EVALUATIONS)
@kopf.on.update(*EVALUATIONS, field="spec")
@kopf.on.update(*EVALUATIONS, field=("metadata", "annotations", RETRY_ANNOTATION))
async def evaluation_changed(namespace: str, name: str, memo: kopf.Memo, **_: Any) -> None:
    """A created, changed, retried or resumed Evaluation: queue its reconcile (which, while
    the run is in flight, queues it again every progress period)."""
    _operator(memo).evaluations.add((namespace, name))


@kopf.on.event(*JOBS, labels={EVALUATION_LABEL: kopf.PRESENT})
async def evaluation_job_event(body: kopf.Body, memo: kopf.Memo, type: str | None,
                               **_: Any) -> None:
    """Queue the owning Evaluation when its Job changes (completes, fails, is deleted); after a
    deletion it is read from the API server, as for a ModelDeployment's children."""
    owner = owner_name(_plain(body), "Evaluation")
    if owner:
        _operator(memo).evaluations.add((body.metadata.namespace, owner),
                                        fresh=type == "DELETED")


def _scales(spec: Any, **_: Any) -> bool:
    return bool(spec.get("scaling")) or any(t.get("scaling") for t in spec.get("targets") or ())


@kopf.on.event(*EVALUATIONS, when=_scales)
async def evaluation_holds_event(body: kopf.Body, memo: kopf.Memo, type: str | None,
                                 **_: Any) -> None:
    """An Evaluation with spec.scaling that ended, is being deleted or is gone: queue the
    ModelDeployments it may hold up, whose reconcile releases the holds (holds.py)."""
    phase = (body.get("status") or {}).get("phase")
    if type == "DELETED" or body.metadata.get("deletionTimestamp") or phase in holds.ENDED:
        for t in body.spec.get("targets") or ():
            ref = (t.get("modelDeploymentRef") or {}).get("name")
            if ref:
                _operator(memo).model_deployments.add((body.metadata.namespace, ref))


@kopf.daemon(*EVALUATIONS, when=lambda spec, **_: bool(spec.get("probe")),
             cancellation_timeout=5.0)
async def evaluation_probe(name: str, namespace: str, spec: kopf.Spec, memo: kopf.Memo,
                           stopped: kopf.DaemonStopped, **_: Any) -> None:
    """Probe an Evaluation's external targets (e.g. the OpenAI API) on its schedule."""
    ev_spec = EvaluationSpec.model_validate(_plain(spec))
    default = _operator(memo).settings.store_url
    store = await asyncio.to_thread(probes.probe_store, Kube.of_this_thread(), namespace,
                                    evaluation_job.store_ref(ev_spec),
                                    default.get_secret_value() if default else None)
    found = await asyncio.to_thread(probes.external_targets, Kube.of_this_thread(), namespace,
                                    name, ev_spec)
    await probes.probe_loop(namespace, lambda: found, ev_spec.probe, store, stopped.wait)


@kopf.on.delete(*EVALUATIONS, when=lambda spec, **_: bool((spec.get("store") or {}).get(
    "deleteResultsOnDelete")))
def evaluation_deleted(body: kopf.Body, **_: Any) -> None:
    """spec.store.deleteResultsOnDelete: remove this evaluation's results from the store."""
    try:
        removed = evaluation.delete_results(Kube.of_this_thread(), _plain(body))
    except RuntimeError as e:
        raise kopf.TemporaryError(str(e), delay=30) from None
    log.info("deleted %d run(s) of %s/%s from the results store", removed,
             body.metadata.namespace, body.metadata.name)
