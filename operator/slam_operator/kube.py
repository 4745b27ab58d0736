"""The one place where the operator talks to the Kubernetes API (official `kubernetes` client).

Writes are counted, so tests and benchmarks can show that a steady state makes none.
"""

from __future__ import annotations

import base64
import threading
from collections import Counter
from typing import Any, ClassVar

from kubernetes import client

from slam.api.common import GROUP, VERSION
from slam_operator.builders import OWNER_LABEL
from slam_operator.plan import Action

FIELD_MANAGER = "slam-operator"
MD_PLURAL = "modeldeployments"
EV_PLURAL = "evaluations"


class Kube:
    # Process-wide write counts by verb and kind (read by tests and bench/operator_scale.py).
    writes: ClassVar[Counter[str]] = Counter()
    _lock: ClassVar[threading.Lock] = threading.Lock()

    def __init__(self, api: client.ApiClient):
        self.api = api
        self.core = client.CoreV1Api(api)
        self.apps = client.AppsV1Api(api)
        self.objects = client.CustomObjectsApi(api)
        self.batch = client.BatchV1Api(api)

    @classmethod
    def _count(cls, what: str) -> None:
        with cls._lock:
            cls.writes[what] += 1

    def _dict(self, obj: Any) -> dict[str, Any]:
        return self.api.sanitize_for_serialization(obj)

    # -- reads ------------------------------------------------------------------------------

    def _get_custom(self, plural: str, namespace: str, name: str) -> dict[str, Any] | None:
        try:
            return self.objects.get_namespaced_custom_object(
                GROUP, VERSION, namespace, plural, name
            )
        except client.ApiException as e:
            if e.status == 404:
                return None
            raise

    def get_model_deployment(self, namespace: str, name: str) -> dict[str, Any] | None:
        return self._get_custom(MD_PLURAL, namespace, name)

    def get_evaluation(self, namespace: str, name: str) -> dict[str, Any] | None:
        return self._get_custom(EV_PLURAL, namespace, name)

    def owned_children(self, namespace: str, owner: str) -> dict[tuple[str, str], dict]:
        """Deployments, Services and PVCs labelled as this ModelDeployment's, by (kind, name)."""
        sel = f"{OWNER_LABEL}={owner}"
        out: dict[tuple[str, str], dict] = {}
        listings = (
            ("Deployment", self.apps.list_namespaced_deployment),
            ("Service", self.core.list_namespaced_service),
            ("PersistentVolumeClaim", self.core.list_namespaced_persistent_volume_claim),
        )
        for kind, lister in listings:
            for item in lister(namespace, label_selector=sel).items:
                d = self._dict(item)
                d["kind"] = kind
                out[(kind, d["metadata"]["name"])] = d
        return out

    def secret_value(self, namespace: str, name: str, key: str) -> tuple[str | None, str | None]:
        """(value, problem). The value stays in memory; only the problem text is ever shown."""
        try:
            secret = self.core.read_namespaced_secret(name, namespace)
        except client.ApiException as e:
            if e.status == 404:
                return None, f"Secret {name} not found in namespace {namespace}"
            if e.status == 403:
                return None, f"the operator may not read Secret {name} (RBAC)"
            raise
        data = secret.data or {}
        if key not in data:
            return None, f"Secret {name} has no key {key!r}"
        return base64.b64decode(data[key]).decode(), None

    def secret_has_key(self, namespace: str, name: str, key: str) -> str | None:
        """None when the Secret has the key, else the problem (the value is not kept)."""
        _, problem = self.secret_value(namespace, name, key)
        return problem

    def service_account_exists(self, namespace: str, name: str) -> bool:
        try:
            self.core.read_namespaced_service_account(name, namespace)
        except client.ApiException as e:
            if e.status == 404:
                return False
            raise
        return True

    def get_job(self, namespace: str, name: str) -> dict[str, Any] | None:
        try:
            return self._dict(self.batch.read_namespaced_job(name, namespace))
        except client.ApiException as e:
            if e.status == 404:
                return None
            raise

    def job_termination_message(self, namespace: str, job: str) -> str | None:
        """The last terminated scoring container's message (its termination log or log tail)."""
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

    def create_job(self, namespace: str, job: dict[str, Any]) -> None:
        try:
            self.batch.create_namespaced_job(namespace, job, field_manager=FIELD_MANAGER)
        except client.ApiException as e:
            if e.status != 409:  # already there: created by an earlier reconcile
                raise
            return
        self._count("create Job")

    def create_service_account(self, namespace: str, sa: dict[str, Any]) -> None:
        try:
            self.core.create_namespaced_service_account(namespace, sa,
                                                        field_manager=FIELD_MANAGER)
        except client.ApiException as e:
            if e.status != 409:  # already there: an earlier run of this Evaluation made it
                raise
            return
        self._count("create ServiceAccount")

    def patch_evaluation_status(self, namespace: str, name: str, status: dict[str, Any]) -> None:
        self.objects.patch_namespaced_custom_object_status(
            GROUP, VERSION, namespace, EV_PLURAL, name, {"status": status}
        )
        self._count("status Evaluation")

    def execute(self, namespace: str, actions: list[Action]) -> list[str]:
        """Carry out a plan; 409 on create and 404 on delete are the outcomes wanted anyway."""
        done = []
        for a in actions:
            try:
                if a.verb == "create":
                    self._create(namespace, a)
                elif a.verb == "apply":
                    self._apply(namespace, a)
                else:
                    self._delete(namespace, a)
            except client.ApiException as e:
                if (a.verb, e.status) in (("create", 409), ("delete", 404)):
                    continue
                raise
            self._count(f"{a.verb} {a.kind}")
            done.append(str(a))
        return done

    def _create(self, ns: str, a: Action) -> None:
        body = a.obj
        if a.kind == "Deployment":
            self.apps.create_namespaced_deployment(ns, body, field_manager=FIELD_MANAGER)
        elif a.kind == "Service":
            self.core.create_namespaced_service(ns, body, field_manager=FIELD_MANAGER)
        elif a.kind == "PersistentVolumeClaim":
            self.core.create_namespaced_persistent_volume_claim(
                ns, body, field_manager=FIELD_MANAGER
            )
        else:
            raise ValueError(f"unknown kind {a.kind}")

    def _apply(self, ns: str, a: Action) -> None:
        # Server-side apply, forced: fields someone changed by hand are taken back.
        kwargs = {
            "field_manager": FIELD_MANAGER,
            "force": True,
            "_content_type": "application/apply-patch+yaml",
        }
        if a.kind == "Deployment":
            self.apps.patch_namespaced_deployment(a.name, ns, a.obj, **kwargs)
        elif a.kind == "Service":
            self.core.patch_namespaced_service(a.name, ns, a.obj, **kwargs)
        else:
            raise ValueError(f"cannot apply kind {a.kind}")

    def _delete(self, ns: str, a: Action) -> None:
        if a.kind == "Deployment":
            self.apps.delete_namespaced_deployment(a.name, ns)
        elif a.kind == "Service":
            self.core.delete_namespaced_service(a.name, ns)
        elif a.kind == "PersistentVolumeClaim":
            self.core.delete_namespaced_persistent_volume_claim(a.name, ns)
        else:
            raise ValueError(f"unknown kind {a.kind}")

    def patch_md_status(self, namespace: str, name: str, status: dict[str, Any]) -> None:
        self.objects.patch_namespaced_custom_object_status(
            GROUP, VERSION, namespace, MD_PLURAL, name, {"status": status}
        )
        self._count("status ModelDeployment")
