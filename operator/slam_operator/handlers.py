"""kopf handlers: decorators and hand-offs only. Each reads what kopf gives it and passes it to
modeldeployment/reconcile.py, evaluation/reconcile.py or probes.py.

Run with `python -m slam_operator` (or `kopf run -m slam_operator.handlers --all-namespaces`).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import threading
import time
from concurrent.futures import Executor
from typing import Any

import aiohttp
import kopf
from kubernetes import client, config

from slam.api.common import ProbeSpec
from slam.api.evaluation import EvaluationSpec
from slam_operator import kopffix, metrics, probes, resync
from slam_operator import pods as podstatus
from slam_operator.evaluation import job as evaluation_job
from slam_operator.evaluation import reconcile as evaluation
from slam_operator.evaluation.status import in_flight
from slam_operator.kube import Kube
from slam_operator.modeldeployment import reconcile as model_deployment
from slam_operator.modeldeployment.hub import CachedHub
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
from slam_operator.settings import from_env as settings_from_env
from slam_operator.workqueue import WorkQueue

# Checked once, here: an unusable value stops the operator with a message naming it (settings.py).
SETTINGS = settings_from_env()
# How often every ModelDeployment is re-checked even without events (drift, Hub retries).
RESYNC_SECONDS = SETTINGS.resync_seconds
# How often a running Evaluation's progress is read from the store.
PROGRESS_SECONDS = SETTINGS.progress_seconds
# Reconciles at once: the work queue's workers, on kopf's handler threads (as many).
MAX_WORKERS = SETTINGS.max_workers
# Connections kopf may open for its requests (its patches of the custom resources and the Events
# it posts), on top of one per watch stream. kopf's own pool is unbounded: 2,000 ModelDeployments
# applied at once made it open ~1,700 TLS connections together, ~0.25 MB of buffers each, and
# that burst set the operator's memory (issue 17). Requests beyond the limit wait their turn.
API_CONNECTIONS = SETTINGS.api_connections
CHILD_LABELS = {MANAGED_BY_LABEL: MANAGED_BY}
# What the operator makes (and the pods of what it makes): all carry CHILD_LABELS.
CHILD_KINDS = (DEPLOYMENTS, SERVICES, CLAIMS, PODS, JOBS)
# How long a created child is taken as existing before its watch event arrives.
EXPECT_SECONDS = 30.0
log = logging.getLogger("slam_operator")
# kopf's start-up gate woke every waiting object's worker for every object listed: minutes of
# nothing but wake-ups before a restarted operator's first reconcile (kopffix.py).
kopffix.apply()


def _plain(body: Any) -> dict[str, Any]:
    """kopf's Body view as a plain, detached dict."""
    return json.loads(json.dumps(dict(body), default=dict))


def _post_event(body: dict[str, Any], type_: str, reason: str, message: str) -> None:
    """Through kopf's poster: queued, posted off the handler's thread. It exists only in kopf's
    handlers; the resync posts with _post_event_directly."""
    kopf.event(body, type=type_, reason=reason, message=message)


def _post_event_directly(body: dict[str, Any], type_: str, reason: str, message: str) -> None:
    _kube().post_event(body, type_, reason, message)


def _adopt(child: dict[str, Any], owner: dict[str, Any]) -> None:
    kopf.adopt(child, owner=owner)


def _backoff(retry: int) -> float:
    """Hub retries: 5 s, 10 s, 20 s ... at most 5 minutes."""
    return float(min(300, 5 * 2 ** min(retry, 6)))


_local = threading.local()


def _kube() -> Kube:
    """A client per handler thread: urllib3 connections are not shared between threads."""
    if not hasattr(_local, "kube"):
        _local.kube = Kube(client.ApiClient())
    return _local.kube


def _locked(memo: kopf.Memo, kind: str, namespace: str, name: str) -> threading.Lock:
    """One lock per Evaluation: its timer and an event never reconcile it at the same time
    (ModelDeployments have the work queue). dict.setdefault is atomic, so two threads never get
    different locks for one object."""
    return memo.locks.setdefault((kind, namespace, name), threading.Lock())


# --- a ModelDeployment's children, from the watches ----------------------------------------------
# kopf indices over the operator's Deployments, Services and PVCs, keyed by (namespace, owner):
# a reconcile reads its children from memory instead of listing them from the API server (issue
# 17: three LISTs per reconcile made the cost grow with the square of the number of objects).
# kopf fills them before any handler runs and updates them before the handlers of the same event.

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
def md_deployments(namespace: str, labels: kopf.Labels, body: kopf.Body, **_: Any):
    """Deployments by owning ModelDeployment."""
    return _child("Deployment", namespace, labels, body)


@kopf.index(*SERVICES, labels={MODEL_DEPLOYMENT_LABEL: kopf.PRESENT})
def md_services(namespace: str, labels: kopf.Labels, body: kopf.Body, **_: Any):
    """Services by owning ModelDeployment."""
    return _child("Service", namespace, labels, body)


@kopf.index(*CLAIMS, labels={MODEL_DEPLOYMENT_LABEL: kopf.PRESENT})
def md_claims(namespace: str, labels: kopf.Labels, body: kopf.Body, **_: Any):
    """Model-cache PVCs by owning ModelDeployment."""
    return _child("PersistentVolumeClaim", namespace, labels, body)


@kopf.index(*PODS, labels={MODEL_DEPLOYMENT_LABEL: kopf.PRESENT})
def md_pods(namespace: str, name: str, labels: kopf.Labels, status: kopf.Status, **_: Any):
    """Server pods by owning ModelDeployment: why they wait, how they last ended."""
    return {(namespace, labels[MODEL_DEPLOYMENT_LABEL]): podstatus.pod_view(name, _plain(status))}


@kopf.index(*PODS, labels={EVALUATION_LABEL: kopf.PRESENT, "job-name": kopf.PRESENT})
def ev_job_pods(namespace: str, name: str, labels: kopf.Labels, status: kopf.Status, **_: Any):
    """Scoring pods by their Job: whether they wait for a node or an image."""
    return {(namespace, labels["job-name"]): podstatus.pod_view(name, _plain(status))}


def _children(memo: kopf.Memo, kwargs: dict[str, Any]) -> model_deployment.Children:
    indices = [kwargs["md_deployments"], kwargs["md_services"], kwargs["md_claims"],
               kwargs["md_pods"]]

    def of(namespace: str, owner: str) -> dict[tuple[str, str], dict[str, Any]]:
        seen = {(c["kind"], c["metadata"]["name"]): c for index in indices
                for c in index.get((namespace, owner), ())}
        # Children this operator created that the watches have not reported yet: the Service's
        # event can come before the Deployment's, and a reconcile in between must not take the
        # Deployment for missing (status "Creating" again, and its Events twice). Expected for
        # EXPECT_SECONDS at most: a child deleted before its watch event is recreated then.
        deadline, created = memo.expected.get((namespace, owner), (0.0, {}))
        missing = {k: v for k, v in created.items() if k not in seen}
        if not missing or time.monotonic() > deadline:
            memo.expected.pop((namespace, owner), None)
            return seen
        return {**missing, **seen}
    return of


def _reconcile_queued(memo: kopf.Memo, key: tuple[str, str], fresh: bool,
                      kwargs: dict[str, Any]) -> model_deployment.Result | None:
    """Reconcile a ModelDeployment the work queue handed out (no other worker has it): as the
    watch last delivered it, or, `fresh`, as the API server has it now (one GET: after a child's
    deletion, which may be its owner's going, and in the resync, which also takes in a status
    someone else changed). Events are posted directly: this runs outside kopf's handlers."""
    namespace, name = key
    if fresh:
        md = _kube().get_model_deployment(namespace, name)
    else:
        md = next(iter(kwargs["md_bodies"].get(key, ())), None)
    if not _live(md):
        return None
    # A body from the watch may predate the status this operator wrote since (the watch lags
    # behind the writes): two reconciles in a row would then both start from the status before
    # either wrote, and post the same Events twice. Only the operator writes this status, so
    # the one it wrote last is the current one, unless the body was just read from the API
    # server or is another object of the same name.
    written = memo.statuses.get(key)
    if not fresh and written is not None and written[0] == md["metadata"].get("uid"):
        md = {**md, "status": written[1]}
    metrics.RECONCILES.labels("ModelDeployment").inc()
    result = model_deployment.reconcile(_kube(), memo.hub, md, _adopt, _post_event_directly,
                                        _children(memo, kwargs))
    memo.reconciled[key] = time.monotonic()
    if result.created:
        memo.expected[key] = (time.monotonic() + EXPECT_SECONDS, result.created)
    # The status the object has now: what this reconcile wrote, or else what it started from.
    memo.statuses[key] = (md["metadata"].get("uid"), result.status if result.status is not None
                          else md.get("status") or {})
    return result


def _reconcile_evaluation(memo: kopf.Memo, body: dict[str, Any], kwargs: dict[str, Any]):
    with _locked(memo, "Evaluation", body["metadata"]["namespace"], body["metadata"]["name"]):
        return _reconcile_evaluation_locked(body, kwargs)


def _reconcile_evaluation_now(memo: kopf.Memo, namespace: str, name: str,
                              kwargs: dict[str, Any]) -> None:
    """Reconcile the Evaluation as the API server has it now, read under its lock (as for a
    ModelDeployment: a read before the lock could predate the status a reconcile holding it
    is about to write)."""
    with _locked(memo, "Evaluation", namespace, name):
        ev = _kube().get_evaluation(namespace, name)
        if _live(ev):
            _reconcile_evaluation_locked(ev, kwargs)


def _reconcile_evaluation_locked(body: dict[str, Any], kwargs: dict[str, Any]):
    index = kwargs["ev_job_pods"]
    metrics.RECONCILES.labels("Evaluation").inc()
    return evaluation.reconcile_evaluation(
        _kube(), body, _adopt, _post_event,
        lambda namespace, job: list(index.get((namespace, job), ())))


def _live(obj: dict[str, Any] | None) -> bool:
    return obj is not None and not obj["metadata"].get("deletionTimestamp")


@kopf.on.login()
async def operator_login(**kwargs: Any) -> kopf.AiohttpSession | None:
    """In a pod: its service account. Elsewhere: $KUBECONFIG, read when the operator starts.
    kopf's requests go through a pool of bounded size (API_CONNECTIONS)."""
    info = kopf.login_with_service_account(**kwargs) or kopf.login_with_kubeconfig(**kwargs)
    if info is None:
        return None
    return kopf.AiohttpSession(
        server=info.server, default_namespace=info.default_namespace, priority=info.priority,
        expiration=info.expiration, aiohttp_session=_bounded_session(info, connection_limit()))


def connection_limit() -> int:
    """kopf's connections: one per watch stream (each watched kind, in each served namespace,
    and its scans of CRDs and namespaces) plus API_CONNECTIONS for its requests."""
    streams = len(WATCHED) * max(1, len(watch_namespaces())) + 2
    return streams + API_CONNECTIONS


def _bounded_session(info: kopf.ConnectionInfo, limit: int) -> aiohttp.ClientSession:
    """The session kopf would make from `info`, with at most `limit` connections."""
    return aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=limit, ssl=info.as_ssl_context()),
        headers=info.as_http_headers(), proxy=info.proxy_url, trust_env=info.trust_env)


@kopf.on.startup()
def operator_startup(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
    """Connect to the API server and set kopf's behaviour."""
    try:
        config.load_incluster_config()
    except config.ConfigException:
        config.load_kube_config(config_file=os.environ.get("KUBECONFIG"))
    memo.hub = CachedHub()
    memo.locks = {}
    memo.reconciled = {}  # (namespace, name) -> monotonic time of its last reconcile
    memo.statuses = {}  # (namespace, name) -> (uid, the status this operator last wrote)
    memo.expected = {}  # (namespace, name) -> (deadline, children created, not yet watched)
    # kopf would otherwise post an Event for every handler run; ours say what changed.
    settings.posting.level = logging.WARNING
    # Handlers are synchronous (the kubernetes client blocks on I/O): run enough at once that
    # hundreds of ModelDeployments converge without queueing behind each other.
    settings.execution.max_workers = MAX_WORKERS
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
    if watch_namespaces():
        settings.scanning.disabled = True


def watch_namespaces() -> list[str]:
    """$SLAM_WATCH_NAMESPACES (comma-separated; the chart's watchNamespaces); empty: all."""
    return settings_from_env().watch_namespaces


@kopf.index(*EVALUATIONS)
def ev_phases(namespace: str, name: str, status: kopf.Status, **_: Any):
    """Evaluations by phase (for slam_evaluations)."""
    return {status.get("phase") or "New": (namespace, name)}


@kopf.index(*MODEL_DEPLOYMENTS)
def md_bodies(namespace: str, name: str, body: kopf.Body, **_: Any):
    """ModelDeployments as the watch last delivered them, for a child event's reconcile."""
    md = _plain(body)
    md["metadata"].pop("managedFields", None)
    return {(namespace, name): md}


@kopf.index(*MODEL_DEPLOYMENTS)
def md_ready(namespace: str, name: str, status: kopf.Status, **_: Any):
    """ModelDeployments by their Ready condition (for slam_model_deployments)."""
    ready = next((c.get("status") for c in status.get("conditions") or []
                  if c.get("type") == "Ready"), "Unknown")
    return {ready: (namespace, name)}


@kopf.on.startup()
def operator_metrics(memo: kopf.Memo, ev_phases: kopf.Index, md_ready: kopf.Index,
                     **_: Any) -> None:
    """Serve Prometheus metrics."""
    metrics.count_from(ev_phases, md_ready)
    if settings_from_env().metrics_port != 0:
        memo.metrics_port = metrics.serve()


# --- ModelDeployment -----------------------------------------------------------------------------


@kopf.on.startup()
async def modeldeployment_workers(memo: kopf.Memo, settings: kopf.OperatorSettings,
                                  **kw: Any) -> None:
    """The work queue of ModelDeployments and its workers (SLAM_MAX_WORKERS, on the handler
    threads), and the resync loop that feeds it."""
    indices = {k: kw[k] for k in ("md_deployments", "md_services", "md_claims", "md_pods",
                                  "md_bodies")}
    memo.queue = WorkQueue(_backoff)
    metrics.QUEUE_DEPTH.set_function(lambda: len(memo.queue))
    memo.tasks = [asyncio.create_task(_reconcile_from_queue(memo, indices,
                                                            settings.execution.executor))
                  for _ in range(MAX_WORKERS)]
    memo.tasks.append(asyncio.create_task(_resync_forever(memo, indices)))


@kopf.on.cleanup()
async def modeldeployment_workers_stop(memo: kopf.Memo, **_: Any) -> None:
    for task in getattr(memo, "tasks", ()):
        task.cancel()
    if hasattr(memo, "queue"):
        memo.queue.close()


async def _reconcile_from_queue(memo: kopf.Memo, indices: dict[str, Any],
                                executor: Executor) -> None:
    """One worker: reconcile the ModelDeployments the queue hands out, one at a time."""
    loop = asyncio.get_running_loop()
    while True:
        key, fresh = await memo.queue.get()
        retry = True
        try:
            result = await loop.run_in_executor(executor, _reconcile_queued, memo, key, fresh,
                                                indices)
            retry = result is not None and result.hub_unknown
        except Exception:  # one object's failure must not stop the others
            log.exception("reconciling ModelDeployment %s/%s failed", *key)
        finally:
            delay = memo.queue.done(key, retry)
        if delay is not None:
            log.info("ModelDeployment %s/%s: retrying in %.0f s", *key, delay)


@kopf.on.resume(*MODEL_DEPLOYMENTS)
@kopf.on.create(*MODEL_DEPLOYMENTS)
@kopf.on.update(*MODEL_DEPLOYMENTS)
async def modeldeployment_changed(namespace: str, name: str, memo: kopf.Memo,
                                  **_: Any) -> None:
    """A created, changed or resumed ModelDeployment: queue its reconcile."""
    memo.queue.add((namespace, name))


async def _resync_forever(memo: kopf.Memo, indices: dict[str, Any]) -> None:
    """Re-check every ModelDeployment on a schedule: repairs drift no event reported and retries
    the Hub. One loop for the whole operator rather than a kopf timer per object (a task per
    object); each pass queues each ModelDeployment that no event reconciled within the period,
    to be read fresh (one GET: at most one API call per object per period) and reconciled from
    the watched children."""
    bodies = indices["md_bodies"]
    while True:
        await asyncio.sleep(RESYNC_SECONDS)
        # The objects come from md_bodies, keyed by (namespace, name): an object stays in it
        # while it exists (md_ready moves it between keys as Ready changes, briefly in
        # neither). What is remembered of each is taken first: an entry is made only once its
        # object is in the index, so none made in between is dropped as deleted.
        remembered = set(memo.statuses)
        keys = list(bodies)
        for gone in remembered - set(keys):  # deleted ModelDeployments
            memo.statuses.pop(gone, None)
            memo.expected.pop(gone, None)
        for key in resync.due(keys, memo.reconciled, time.monotonic(), RESYNC_SECONDS):
            memo.queue.add(key, fresh=True)


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
        memo.queue.add((body.metadata.namespace, owner), fresh=type == "DELETED")


@kopf.on.event(*PODS, labels={MODEL_DEPLOYMENT_LABEL: kopf.PRESENT},
               when=lambda status, **_: podstatus.stuck(_plain(status)))
async def modeldeployment_pod_stuck(body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    """A server pod that will not start (crash loop, image pull, missing Secret) changes no
    Deployment field after the first failure: report it from the pod's own events."""
    owner = (body.metadata.labels or {}).get(MODEL_DEPLOYMENT_LABEL)
    if owner:
        memo.queue.add((body.metadata.namespace, owner))


@kopf.daemon(*MODEL_DEPLOYMENTS, when=lambda spec, **_: bool(spec.get("probe")),
             cancellation_timeout=5.0)
async def modeldeployment_probe(name: str, namespace: str, spec: kopf.Spec,
                                stopped: kopf.DaemonStopped, **_: Any) -> None:
    """Probe a ModelDeployment's endpoint on its schedule while it is Ready."""
    probe = ProbeSpec.model_validate(dict(spec["probe"]))
    store = await asyncio.to_thread(probes.probe_store, _kube(), namespace, None)
    await probes.probe_loop(
        namespace, lambda: probes.model_deployment_targets(_kube(), namespace, name), probe,
        store, stopped.wait)


# --- Evaluation ----------------------------------------------------------------------------------


@kopf.on.resume(*EVALUATIONS)
@kopf.on.create(*EVALUATIONS)
@kopf.on.update(*EVALUATIONS, field="spec")
@kopf.on.update(*EVALUATIONS, field=("metadata", "annotations", RETRY_ANNOTATION))
def evaluation_changed(body: kopf.Body, memo: kopf.Memo, **kw: Any) -> None:
    """Reconcile a created, changed, retried or resumed Evaluation."""
    _reconcile_evaluation(memo, _plain(body), kw)


@kopf.timer(*EVALUATIONS, interval=PROGRESS_SECONDS, idle=0,
            when=lambda spec, status, **_: in_flight(spec, status))
def evaluation_progress(body: kopf.Body, memo: kopf.Memo, **kw: Any) -> None:
    """Follow targets, the Job, its pods and the store's progress while a run is in flight."""
    _reconcile_evaluation(memo, _plain(body), kw)


@kopf.on.event(*JOBS, labels={EVALUATION_LABEL: kopf.PRESENT})
def evaluation_job_event(body: kopf.Body, memo: kopf.Memo, **kw: Any) -> None:
    """Reconcile the owning Evaluation when its Job changes (completes, fails, is deleted)."""
    owner = owner_name(_plain(body), "Evaluation")
    if owner:
        _reconcile_evaluation_now(memo, body.metadata.namespace, owner, kw)


@kopf.daemon(*EVALUATIONS, when=lambda spec, **_: bool(spec.get("probe")),
             cancellation_timeout=5.0)
async def evaluation_probe(name: str, namespace: str, spec: kopf.Spec,
                           stopped: kopf.DaemonStopped, **_: Any) -> None:
    """Probe an Evaluation's external targets (e.g. the OpenAI API) on its schedule."""
    ev_spec = EvaluationSpec.model_validate(_plain(spec))
    store = await asyncio.to_thread(probes.probe_store, _kube(), namespace,
                                    evaluation_job.store_ref(ev_spec))
    found = await asyncio.to_thread(probes.external_targets, _kube(), namespace, name, ev_spec)
    await probes.probe_loop(namespace, lambda: found, ev_spec.probe, store, stopped.wait)


@kopf.on.delete(*EVALUATIONS, when=lambda spec, **_: bool((spec.get("store") or {}).get(
    "deleteResultsOnDelete")))
def evaluation_deleted(body: kopf.Body, **_: Any) -> None:
    """spec.store.deleteResultsOnDelete: remove this evaluation's results from the store."""
    try:
        removed = evaluation.delete_results(_kube(), _plain(body))
    except RuntimeError as e:
        raise kopf.TemporaryError(str(e), delay=30) from None
    log.info("deleted %d run(s) of %s/%s from the results store", removed,
             body.metadata.namespace, body.metadata.name)
