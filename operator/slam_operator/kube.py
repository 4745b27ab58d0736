"""The one place where the operator talks to the Kubernetes API (official `kubernetes` client).

Every call goes through `call`, which turns the answers that are expected outcomes (404 on a read
or delete, 409 on a create) into values. Every request is counted (`slam_api_requests_total`), so
tests and benchmarks can show that a steady state makes no writes. A client is used by one
thread only (urllib3 connections are not shared between threads): `Kube.of_this_thread()`.
"""

from __future__ import annotations

import base64
import json
import logging
import threading
from collections import Counter
from collections.abc import Callable, Collection
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, ClassVar

from kubernetes import client

from slam.api.common import GROUP, VERSION
from slam_operator import metrics
from slam_operator.names import EV_PLURAL, FIELD_MANAGER, MD_PLURAL
from slam_operator.plan import Action

log = logging.getLogger("slam_operator")
MISSING_OK = (404,)
KINDS_OF = {MD_PLURAL: "ModelDeployment", EV_PLURAL: "Evaluation"}  # our plurals' kinds
EXISTS_OK = (409,)

# kind -> (API attribute on Kube, method suffix): create_<suffix>, read_<suffix>, ...
_KINDS = {
    "Deployment": ("apps", "namespaced_deployment"),
    "Service": ("core", "namespaced_service"),
    "PersistentVolumeClaim": ("core", "namespaced_persistent_volume_claim"),
    "ServiceAccount": ("core", "namespaced_service_account"),
    "Job": ("batch", "namespaced_job"),
}
# Children whose spec we re-assert by server-side apply; the others are create-only.
_APPLIED = frozenset({"Deployment", "Service"})


def _namespace_going(e: client.ApiException) -> bool:
    """A create refused because its namespace is being deleted (403 with cause
    NamespaceTerminating) or is already gone (404 for the namespace itself)."""
    if e.status == 403:
        return "NamespaceTerminating" in str(e.body)
    if e.status == 404:
        try:
            return (json.loads(e.body or "{}").get("details") or {}).get("kind") == "namespaces"
        except ValueError:
            return False
    return False


class NamespaceTerminating(Exception):
    """The API server refused a create because the namespace is being deleted or is gone: its
    objects go with it, so there is nothing to repair and nothing (status, Event) worth
    writing."""


@dataclass(frozen=True)
class Reply:
    """What the API server answered: the object, or a tolerated error status."""

    obj: Any = None
    status: int = 200

    @property
    def ok(self) -> bool:
        return self.status < 300


def call(fn: Callable[..., Any], *args: Any, tolerate: Collection[int] = (),
         **kwargs: Any) -> Reply:
    """One API call. Statuses in `tolerate` come back as a Reply instead of an exception."""
    try:
        return Reply(fn(*args, **kwargs))
    except client.ApiException as e:
        if e.status in tolerate:
            return Reply(None, e.status)
        raise


def write(fn: Callable[..., Any], *args: Any, tolerate: Collection[int] = (),
          **kwargs: Any) -> Reply:
    """A write whose answer is not used: the object the server returns is read and dropped
    instead of being turned into the client's model classes (for a Deployment, the largest
    share of a reconcile's CPU and, thousands at once, of the operator's memory)."""
    reply = call(fn, *args, tolerate=tolerate, _preload_content=False, **kwargs)
    if reply.obj is not None:
        reply.obj.drain_conn()
        reply.obj.release_conn()
    return Reply(None, reply.status)


_local = threading.local()


class Kube:
    # Process-wide read counts by verb and kind (read by tests); every request is also counted
    # in slam_api_requests_total (read by bench/operator_scale.py).
    reads: ClassVar[Counter[str]] = Counter()
    _lock: ClassVar[threading.Lock] = threading.Lock()

    @classmethod
    def of_this_thread(cls) -> Kube:
        """This thread's client, made on first use from the loaded configuration."""
        if not hasattr(_local, "kube"):
            _local.kube = cls(client.ApiClient())
        return _local.kube

    def __init__(self, api: client.ApiClient):
        self.api = api
        self.core = client.CoreV1Api(api)
        self.apps = client.AppsV1Api(api)
        self.objects = client.CustomObjectsApi(api)
        self.batch = client.BatchV1Api(api)

    @classmethod
    def _count(cls, what: str) -> None:
        metrics.API_REQUESTS.labels("write", what).inc()

    @classmethod
    def _read(cls, what: str) -> None:
        with cls._lock:
            cls.reads[what] += 1
        metrics.API_REQUESTS.labels("read", what).inc()

    def _dict(self, obj: Any) -> dict[str, Any]:
        return self.api.sanitize_for_serialization(obj)

    def _method(self, verb: str, kind: str) -> Callable[..., Any]:
        if kind not in _KINDS:
            raise ValueError(f"unknown kind {kind}")
        api, suffix = _KINDS[kind]
        return getattr(getattr(self, api), f"{verb}_{suffix}")

    # -- reads ------------------------------------------------------------------------------

    def get(self, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        """A built-in object as a plain dict, or None when it does not exist."""
        self._read(f"get {kind}")
        reply = call(self._method("read", kind), name, namespace, tolerate=MISSING_OK)
        return self._dict(reply.obj) if reply.ok else None

    def _get_custom(self, plural: str, namespace: str, name: str) -> dict[str, Any] | None:
        self._read(f"get {plural}")
        reply = call(self.objects.get_namespaced_custom_object, GROUP, VERSION, namespace,
                     plural, name, tolerate=MISSING_OK)
        return reply.obj if reply.ok else None

    def get_model_deployment(self, namespace: str, name: str) -> dict[str, Any] | None:
        return self._get_custom(MD_PLURAL, namespace, name)

    def get_evaluation(self, namespace: str, name: str) -> dict[str, Any] | None:
        return self._get_custom(EV_PLURAL, namespace, name)

    def secret_value(self, namespace: str, name: str, key: str) -> tuple[str | None, str | None]:
        """(value, problem). The value stays in memory; only the problem text is ever shown."""
        self._read("get Secret")
        reply = call(self.core.read_namespaced_secret, name, namespace, tolerate=(403, 404))
        if reply.status == 404:
            return None, f"Secret {name} not found in namespace {namespace}"
        if reply.status == 403:
            return None, f"the operator may not read Secret {name} (RBAC)"
        data = reply.obj.data or {}
        if key not in data:
            return None, f"Secret {name} has no key {key!r}"
        return base64.b64decode(data[key]).decode(), None

    def config_map_problem(self, namespace: str, name: str, key: str) -> str | None:
        """None when ConfigMap `name` has `key`, else what is wrong and how to fix it."""
        self._read("get ConfigMap")
        reply = call(self.core.read_namespaced_config_map, name, namespace, tolerate=(403, 404))
        if reply.status == 404:
            return (f"ConfigMap {name} not found in namespace {namespace}; create it: kubectl "
                    f"create configmap {name} --from-file={key}=<file> -n {namespace}")
        if reply.status == 403:
            return f"the operator may not read ConfigMap {name} (RBAC)"
        data = reply.obj.data or {}
        if key not in data:
            keys = ", ".join(sorted(data)) or "none"
            return f"ConfigMap {name} has no key {key!r} (keys: {keys})"
        return None

    def job_termination_message(self, namespace: str, job: str) -> str | None:
        """The last terminated scoring container's message (its termination log or log tail)."""
        self._read("list Pod")
        pods = self.core.list_namespaced_pod(namespace, label_selector=f"job-name={job}").items
        messages = []
        for pod in pods:
            for cs in (pod.status.container_statuses or []) if pod.status else []:
                term = cs.state.terminated if cs.state else None
                if term is not None and term.exit_code:
                    messages.append((term.finished_at or "", term.message or
                                     f"exit code {term.exit_code}"))
        return sorted(messages)[-1][1] if messages else None

    # -- writes -----------------------------------------------------------------------------

    def execute(self, namespace: str, actions: list[Action]) -> list[str]:
        """Carry out a plan; 409 on create and 404 on delete are the outcomes wanted anyway.
        Returns what was done, one line per action. Raises NamespaceTerminating when the
        namespace is being deleted."""
        done = []
        for a in actions:
            if a.verb == "create":
                try:
                    reply = write(self._method("create", a.kind), namespace, a.obj,
                                  field_manager=FIELD_MANAGER, tolerate=EXISTS_OK)
                except client.ApiException as e:
                    if _namespace_going(e):
                        raise NamespaceTerminating(namespace) from None
                    raise
            elif a.verb == "apply":
                if a.kind not in _APPLIED:
                    raise ValueError(f"cannot apply kind {a.kind}")
                # Server-side apply, forced: fields someone changed by hand are taken back.
                reply = write(self._method("patch", a.kind), a.name, namespace, a.obj,
                              field_manager=FIELD_MANAGER, force=True,
                              _content_type="application/apply-patch+yaml")
            else:
                reply = write(self._method("delete", a.kind), a.name, namespace,
                              tolerate=MISSING_OK)
            if reply.ok:
                self._count(f"{a.verb} {a.kind}")
                done.append(str(a))
        return done

    def post_event(self, obj: dict[str, Any], type_: str, reason: str, message: str) -> None:
        """An Event about `obj`, as kopf posts those of its handlers (same source, so `kubectl
        describe` shows one "From"), posted at once: reconciles run on their controllers'
        threads, outside kopf's handlers, where kopf has no poster. An Event the API server
        refuses is logged, not raised: what the reconcile wrote stands (and none is logged for
        a namespace being deleted, which takes its Events with it)."""
        meta, now = obj["metadata"], datetime.now(UTC).isoformat()
        try:
            write(self.core.create_namespaced_event, meta["namespace"], {
                "metadata": {"generateName": "kopf-event-", "namespace": meta["namespace"]},
                "involvedObject": {"apiVersion": obj["apiVersion"], "kind": obj["kind"],
                                   "name": meta["name"], "namespace": meta["namespace"],
                                   "uid": meta.get("uid")},
                "type": type_, "reason": reason, "message": message[:1024],
                "source": {"component": "kopf"}, "firstTimestamp": now, "lastTimestamp": now,
                "count": 1})
        except client.ApiException as e:
            if not _namespace_going(e):
                log.warning("could not post Event %s about %s %s/%s: %s %s", reason,
                            obj["kind"], meta["namespace"], meta["name"], e.status, e.reason)
            return
        self._count("create Event")

    def patch_object(self, plural: str, namespace: str, name: str, patch: dict[str, Any],
                     resource_version: str | None) -> str:
        """Merge-patch a custom resource itself (not its status), only if it is still at
        `resource_version` (two writers of one annotation must not undo each other): "ok",
        "conflict" (changed since it was read: read it again) or "gone"."""
        body = {**patch, "metadata": {**patch.get("metadata", {}),
                                      "resourceVersion": resource_version}}
        reply = write(self.objects.patch_namespaced_custom_object, GROUP, VERSION, namespace,
                      plural, name, body, tolerate=(404, 409))
        if reply.status == 404:
            return "gone"
        if reply.status == 409:
            return "conflict"
        kind = KINDS_OF[plural]
        self._count(f"patch {kind}")
        return "ok"

    def patch_status(self, plural: str, namespace: str, name: str,
                     status: dict[str, Any]) -> bool:
        """Merge-patch a custom resource's status subresource (keys set to None are removed).
        False: the object is gone (deleted since it was read, e.g. with its namespace)."""
        reply = write(self.objects.patch_namespaced_custom_object_status,
                      GROUP, VERSION, namespace, plural, name, {"status": status},
                      tolerate=MISSING_OK)
        if not reply.ok:
            return False
        kind = KINDS_OF[plural]
        self._count(f"status {kind}")
        return True
