"""The names the operator puts on what it makes: label and annotation keys, the field manager,
and the one rule that makes any name a valid object name or label value. Pure."""

from __future__ import annotations

import hashlib
import re
from importlib.metadata import PackageNotFoundError, version

from slam.api.common import GROUP, VERSION

MANAGED_BY = "slam-operator"
try:
    OPERATOR_VERSION = version("slam-operator")
except PackageNotFoundError:  # run from a source tree that was never installed
    OPERATOR_VERSION = "0+unknown"
FIELD_MANAGER = MANAGED_BY

# Labels (app.kubernetes.io/* are Kubernetes' recommended labels).
MANAGED_BY_LABEL = "app.kubernetes.io/managed-by"
NAME_LABEL = "app.kubernetes.io/name"
INSTANCE_LABEL = "app.kubernetes.io/instance"
COMPONENT_LABEL = "app.kubernetes.io/component"
MODEL_DEPLOYMENT_LABEL = "slam.dev/model-deployment"  # on a ModelDeployment's children
EVALUATION_LABEL = "slam.dev/evaluation"  # on an Evaluation's Jobs and ServiceAccount
RUN_LABEL = "slam.dev/run-id"
INSTANCE_TYPE_LABEL = "node.kubernetes.io/instance-type"  # EKS sets it on every node

# Annotations.
REVISION_ANNOTATION = "slam.dev/revision"  # the resolved commit, on the model pods
# The operator release that built a child (on the object, not its pod template, so that
# stamping it restarts nothing): an upgrade does not rebuild children whose owner did not change.
BUILT_BY_ANNOTATION = "slam.dev/built-by"
SKIP_FIT_ANNOTATION = "slam.dev/skip-fit-check"  # "true": deploy a model that may not fit
# On an Evaluation: a new value (kubectl annotate ... slam.dev/retry=$(date +%s) --overwrite)
# sends again, in the same run, only the answers that failed or are missing.
RETRY_ANNOTATION = "slam.dev/retry"

GPU_RESOURCE = "nvidia.com/gpu"

# The custom resources, as (group, version, plural) for kopf and the API.
MD_PLURAL = "modeldeployments"
EV_PLURAL = "evaluations"
MODEL_DEPLOYMENTS = (GROUP, VERSION, MD_PLURAL)
EVALUATIONS = (GROUP, VERSION, EV_PLURAL)
# The built-in kinds the operator watches, as (group, version, plural).
DEPLOYMENTS = ("apps", "v1", "deployments")
SERVICES = ("", "v1", "services")
CLAIMS = ("", "v1", "persistentvolumeclaims")
PODS = ("", "v1", "pods")
JOBS = ("batch", "v1", "jobs")
# Every kind the operator's handlers watch: kopf keeps one watch stream open per kind (per
# namespace when it serves a list of namespaces).
WATCHED = (MODEL_DEPLOYMENTS, EVALUATIONS, DEPLOYMENTS, SERVICES, CLAIMS, PODS, JOBS)

# Longest label value Kubernetes accepts; also the longest DNS label (Jobs, Services).
MAX_LABEL = 63


def shortened(name: str, limit: int) -> str:
    """`name` if it fits in `limit` characters, else a prefix and a hash of the whole name, so
    that two long names sharing a prefix still differ."""
    if len(name) <= limit:
        return name
    digest = hashlib.sha256(name.encode()).hexdigest()[:8]
    return f"{name[:limit - 9].rstrip('-.')}-{digest}"


def label_value(value: str) -> str:
    """A valid label value for any object name (names may be up to 253 characters; label values
    at most 63, starting and ending with an alphanumeric)."""
    cleaned = re.sub(r"[^A-Za-z0-9_.-]", "-", value).strip("-_.")
    return shortened(cleaned, MAX_LABEL).strip("-_.")


def owner_name(obj: dict, kind: str) -> str | None:
    """The name of `obj`'s controlling owner of `kind` (set by kopf.adopt), if any. Owners are
    found by reference, not by label: label values may be shortened."""
    for ref in (obj.get("metadata") or {}).get("ownerReferences") or []:
        if ref.get("kind") == kind and ref.get("controller"):
            return ref.get("name")
    return None
