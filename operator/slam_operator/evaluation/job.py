"""Pure builder of an Evaluation run's scoring Job: `slam job run` in the operator's image.

Everything the pod needs arrives as references: the Evaluation spec (which only names Secrets),
the endpoints from the ModelDeployments' status, the store URL and API keys as `secretKeyRef`s,
a ConfigMap prompt set as a mounted file. No secret value is ever written into the Job.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

from slam import secrets
from slam.api.common import SecretKeyRef
from slam.api.evaluation import EvaluationSpec
from slam_operator.names import (
    EVALUATION_LABEL,
    MANAGED_BY,
    MANAGED_BY_LABEL,
    MAX_LABEL,
    NAME_LABEL,
    RUN_LABEL,
    label_value,
    shortened,
)

PROMPTS_DIR = "/etc/slam/prompts"
TRAFFIC_DIR = "/etc/slam/traffic"
DEFAULT_STORE = SecretKeyRef(name="slam-store", key="url")


@dataclass(frozen=True)
class JobInput:
    evaluation: str
    namespace: str
    spec: EvaluationSpec
    endpoints: dict[str, str]  # target name -> base URL (…/v1) of its ModelDeployment
    image: str
    attempt: int = 0  # a retry (> 0) sends only the answers that failed or are missing
    details: dict[str, dict] | None = None  # target -> what serves it (stored with the run)


def service_account_name(evaluation: str, spec: EvaluationSpec) -> str:
    """spec.serviceAccountName, else the operator-made <evaluation>-scoring."""
    return spec.service_account_name or own_service_account_name(evaluation)


def own_service_account_name(evaluation: str) -> str:
    """<evaluation>-scoring, cut with a hash when longer than an object name may be (253)."""
    name = f"{evaluation}-scoring"
    return name if len(name) <= 253 else shortened(name, 249)


def build_service_account(evaluation: str, namespace: str) -> dict:
    """The scoring Job's own ServiceAccount: no RoleBinding refers to it and no API token is
    mounted, since `slam job run` never talks to the Kubernetes API (Secrets arrive as env)."""
    return {
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": {
            "name": own_service_account_name(evaluation),
            "namespace": namespace,
            "labels": {MANAGED_BY_LABEL: MANAGED_BY, NAME_LABEL: "slam-scoring",
                       EVALUATION_LABEL: label_value(evaluation)},
        },
        "automountServiceAccountToken": False,
    }


def job_name(evaluation: str, run_id: str, attempt: int = 0) -> str:
    """<evaluation>-run-<runId> (retry N: ...-retry-N), cut to 63 characters with a hash when
    too long."""
    suffix = f"-retry-{attempt}" if attempt else ""
    name = re.sub(r"[^a-z0-9-]", "-", f"{evaluation}-run-{run_id}{suffix}".lower()).strip("-")
    return shortened(name, MAX_LABEL)


def labels(inp: JobInput) -> dict[str, str]:
    """Label values are at most 63 characters; names may be longer, so they are shortened
    (the operator finds a Job's Evaluation by its owner reference, not by these)."""
    return {
        MANAGED_BY_LABEL: MANAGED_BY,
        NAME_LABEL: "slam-scoring",
        EVALUATION_LABEL: label_value(inp.evaluation),
        RUN_LABEL: label_value(inp.spec.run_id),
    }


def store_ref(spec: EvaluationSpec) -> SecretKeyRef:
    """spec.store.urlSecretRef, else the operator's store Secret (DEFAULT_STORE)."""
    return spec.store.url_secret_ref if spec.store and spec.store.url_secret_ref else \
        DEFAULT_STORE


def secret_refs(spec: EvaluationSpec) -> list[tuple[str, SecretKeyRef]]:
    """(field, reference) for every Secret key the run needs, store URL first."""
    out = [("spec.store.urlSecretRef", store_ref(spec))]
    for i, t in enumerate(spec.targets):
        if t.external and t.external.api_key_secret_ref:
            out.append((f"spec.targets[{i}].external.apiKeySecretRef",
                        t.external.api_key_secret_ref))
    judge = spec.scorers.judge if spec.scorers else None
    if judge and judge.external and judge.external.api_key_secret_ref:
        out.append(("spec.scorers.judge.external.apiKeySecretRef",
                    judge.external.api_key_secret_ref))
    return out


def _env_from_secret(name: str, ref: SecretKeyRef) -> dict:
    return {"name": name, "valueFrom": {"secretKeyRef": {"name": ref.name, "key": ref.key}}}


def generator_cpus(spec: EvaluationSpec) -> int:
    """CPUs the scoring Job requests: one for the Job's own process (which drives every target
    planned for one generator process, and receives the others' records), plus one per
    generator process of each target that needs several."""
    return 1 + sum(n for t in spec.targets if (n := t.generator_processes) > 1)


def build_scoring_job(inp: JobInput) -> dict:
    spec = inp.spec
    volumes, mounts = [], []
    prompt_set = spec.prompt_set
    if prompt_set.config_map is not None:
        cm = prompt_set.config_map
        volumes.append({"name": "prompts", "configMap": {
            "name": cm.name, "items": [{"key": cm.key, "path": cm.key}]}})
        mounts.append({"name": "prompts", "mountPath": PROMPTS_DIR, "readOnly": True})
        prompt_set = prompt_set.model_copy(
            update={"config_map": None, "file": f"{PROMPTS_DIR}/{cm.key}"})
    run_spec = spec.model_copy(update={"prompt_set": prompt_set})
    traffic = spec.cost.traffic_profile if spec.cost else None
    if traffic is not None and traffic.config_map is not None:
        # The timestamps file is read where the run is planned: the Job gets it as a file.
        cm = traffic.config_map
        volumes.append({"name": "traffic", "configMap": {
            "name": cm.name, "items": [{"key": cm.key, "path": cm.key}]}})
        mounts.append({"name": "traffic", "mountPath": TRAFFIC_DIR, "readOnly": True})
        assert spec.cost is not None
        run_spec = run_spec.model_copy(update={"cost": spec.cost.model_copy(update={
            "traffic_profile": traffic.model_copy(
                update={"config_map": None, "file": f"{TRAFFIC_DIR}/{cm.key}"})})})
    evaluation = {
        "apiVersion": "slam.dev/v1alpha1", "kind": "Evaluation",
        "metadata": {"name": inp.evaluation, "namespace": inp.namespace},
        "spec": run_spec.to_wire(),
    }
    env = [
        {"name": "SLAM_EVALUATION", "value": json.dumps(evaluation, sort_keys=True)},
        {"name": "SLAM_ENDPOINTS", "value": json.dumps(inp.endpoints, sort_keys=True)},
        {"name": "SLAM_SHARDS", "value": str(spec.parallelism)},
        {"name": "SLAM_TARGET_DETAILS", "value": json.dumps(inp.details or {}, sort_keys=True)},
        _env_from_secret("SLAM_STORE_URL", store_ref(spec)),
    ]
    seen = {"SLAM_STORE_URL"}
    for _, ref in secret_refs(spec)[1:]:
        name = secrets.env_name(ref)
        if name not in seen:
            seen.add(name)
            env.append(_env_from_secret(name, ref))
    if inp.attempt:
        env.append({"name": "SLAM_RETRY_FAILED", "value": "true"})
    container = {
        "name": "scoring",
        "image": inp.image,
        "command": ["slam", "job", "run"],
        "env": env,
        # A CPU per load-generator process the targets' rates need (they run side by side).
        "resources": {"requests": {"cpu": str(generator_cpus(spec)), "memory": "2Gi"},
                      "limits": {"memory": "4Gi"}},
        "terminationMessagePolicy": "FallbackToLogsOnError",
        # The image writes only under /tmp (an emptyDir): the root filesystem stays read-only.
        "securityContext": {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
                            "runAsNonRoot": True, "capabilities": {"drop": ["ALL"]}},
        "volumeMounts": [*mounts, {"name": "tmp", "mountPath": "/tmp"}],
    }
    pod = {
        "restartPolicy": "Never",
        "serviceAccountName": service_account_name(inp.evaluation, spec),
        "containers": [container],
        "volumes": [*volumes, {"name": "tmp", "emptyDir": {}}],
    }
    job_spec = {
        "backoffLimit": 2,
        "activeDeadlineSeconds": spec.active_deadline_seconds,
        "template": {"metadata": {"labels": labels(inp)}, "spec": pod},
    }
    if spec.parallelism > 1:
        job_spec |= {"completionMode": "Indexed", "completions": spec.parallelism,
                     "parallelism": spec.parallelism}
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": job_name(inp.evaluation, spec.run_id, inp.attempt),
                     "namespace": inp.namespace, "labels": labels(inp)},
        "spec": job_spec,
    }
