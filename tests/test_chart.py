"""The Helm chart and the kustomize overlays, as a platform team installs them: helm lint, the
manifest linter (kube-score), values that fail with the key's name, server-side apply of every
value set and overlay on the real API server, and access reviews of each ServiceAccount."""

from __future__ import annotations

import json
import subprocess
import uuid
from pathlib import Path

import pytest
import yaml
from kubernetes import client

from tests.chart import (
    BASE,
    CHART,
    OVERLAYS,
    documents,
    generated,
    helm,
    render,
    servicemonitor_crd,
    tool,
)
from tests.controlplane.cluster import REPO, ControlPlane, apply_crds

TOKEN = "0123456789abcdef01234567"
# Value sets a platform team would use; each must lint, score and apply.
VALUE_SETS = {
    "defaults": {},
    "namespaced": {"watchNamespaces": ["team-a", "team-b"]},
    "trial": {  # everything on: in-cluster PostgreSQL, dashboard with tokens, ServiceMonitor
        "postgresql": {"enabled": True},
        "dashboard": {"enabled": True, "replicas": 2,
                      "tokens": {"raters": {"ana": TOKEN, "bo": TOKEN[::-1]},
                                 "admins": {"lee": "f" * 24}}},
        "metrics": {"serviceMonitor": {"enabled": True, "labels": {"release": "prom"}}},
        "serviceAccount": {"annotations": {
            "eks.amazonaws.com/role-arn": "arn:aws:iam::111122223333:role/slam"}},
        "servingImages": {"llamacpp": "ghcr.io/slam-operator/slam-llamacpp:0.2.0",
                          "vllmCpu": "registry.internal/vllm-cpu:0.11.0"},
        "gateway": {"enabled": True, "evaluation": "support-shadow", "runId": "week-49",
                    "evaluationNamespace": "team-a", "sampleRate": 0.05, "dailyCap": 2000,
                    "models": ["gpt-4o"], "excludeUsers": "^internal-",
                    "redact": [r"EMPLOYEE_ID=EMP-\d{6}"], "phoneRegions": ["US", "DE"]},
    },
    "production": {  # existing Secrets, a proxy in front of the dashboard, CRDs managed apart
        "crds": {"install": False},
        "store": {"existingSecret": "rds-store"},
        "dashboard": {"enabled": True, "authUserHeader": "X-Forwarded-User",
                      "adminUsers": ["lee@example.com"]},
        "operator": {"logLevel": "debug", "resyncSeconds": 600,
                     "tolerations": [{"key": "infra", "operator": "Exists"}]},
        "imagePullSecrets": [{"name": "regcred"}],
    },
}
# kube-score checks left out, one line each on why.
KUBE_SCORE_IGNORED = {
    # kopf's only health endpoint is its liveness probe; ready means kopf has started.
    "pod-probes-identical": "kopf serves one health endpoint",
    # Tags are pinned versions; IfNotPresent is right for immutable tags (set by values).
    "container-image-pull-policy": "pinned tags, pull policy is a value",
    # One kopf operator per cluster by design (handlers are not leader-elected).
    "deployment-strategy": "the operator is a singleton (Recreate)",
    "deployment-replicas": "the operator is a singleton",
}


class StrictLoader(yaml.SafeLoader):
    """Duplicate keys are an error (Helm accepts them; kustomize and kubectl do not)."""


def _no_duplicates(loader: yaml.SafeLoader, node: yaml.MappingNode) -> dict:
    keys = [loader.construct_object(k) for k, _ in node.value]
    dupes = {k for k in keys if keys.count(k) > 1}
    assert not dupes, f"duplicate keys {dupes} at line {node.start_mark.line + 1}"
    return yaml.SafeLoader.construct_mapping(loader, node)


StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _no_duplicates)


def strict_documents(text: str) -> list[dict]:
    return [d for d in yaml.load_all(text, Loader=StrictLoader) if d]


def kubectl(cp: ControlPlane, *args: str, stdin: str | None = None) -> str:
    out = subprocess.run([str(cp.bin_dir / "kubectl"), "--kubeconfig", str(cp.kubeconfig), *args],
                         input=stdin, capture_output=True, text=True, timeout=180)
    assert out.returncode == 0, f"kubectl {' '.join(args)}:\n{out.stderr}"
    return out.stdout


# --- without a cluster -------------------------------------------------------------------------

def test_the_charts_crds_are_the_generated_ones() -> None:
    for crd in sorted((REPO / "crds").glob("slam.dev_*.yaml")):
        copy = CHART / "files" / "crds" / crd.name
        assert copy.exists() and copy.read_text() == crd.read_text(), \
            f"{copy.relative_to(REPO)} differs from crds/{crd.name}: run `make crds`"


def test_the_kustomize_base_is_rendered_from_the_chart() -> None:
    for path, text in generated().items():
        assert path.exists() and path.read_text() == text, \
            f"{path.relative_to(REPO)} is stale: run `make manifests`"


@pytest.mark.parametrize("name", VALUE_SETS)
def test_helm_lint_passes(name: str, tmp_path: Path) -> None:
    values = tmp_path / "values.yaml"
    values.write_text(yaml.safe_dump(VALUE_SETS[name]))
    out = helm("lint", "--strict", str(CHART), "-f", str(values), check=False)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "0 chart(s) failed" in out.stdout


@pytest.mark.parametrize("name", VALUE_SETS)
def test_rendered_manifests_pass_the_linter(name: str, tmp_path: Path) -> None:
    manifests = tmp_path / "rendered.yaml"
    manifests.write_text(render(VALUE_SETS[name]).stdout)
    strict_documents(manifests.read_text())
    out = subprocess.run(
        [str(tool("kube-score")), "score", "--kubernetes-version", "v1.36", "--output-format",
         "ci", "--exit-one-on-warning", "--ignore-container-cpu-limit",
         "--ignore-test", ",".join(KUBE_SCORE_IGNORED), str(manifests)],
        capture_output=True, text=True, timeout=120)
    problems = [line for line in out.stdout.splitlines()
                if line.startswith(("[CRITICAL]", "[WARNING]"))]
    assert out.returncode == 0 and not problems, "\n".join(problems) or out.stderr


def test_every_pod_runs_restricted() -> None:
    """Non-root, no privilege escalation, read-only root filesystem, seccomp RuntimeDefault,
    no capabilities: the pod security standard `restricted`, for every pod the chart runs."""
    docs = documents(render(VALUE_SETS["trial"]).stdout)
    pods = [d for d in docs if d["kind"] in ("Deployment", "StatefulSet")]
    assert {d["metadata"]["name"] for d in pods} == {
        "slam-operator", "slam-operator-dashboard", "slam-operator-postgresql",
        "slam-operator-gateway"}
    for d in pods:
        spec = d["spec"]["template"]["spec"]
        assert spec["securityContext"]["runAsNonRoot"] is True, d["metadata"]["name"]
        assert spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
        for c in spec["containers"]:
            sc = c["securityContext"]
            assert sc["allowPrivilegeEscalation"] is False and sc["readOnlyRootFilesystem"]
            assert sc["capabilities"] == {"drop": ["ALL"]}
            assert c["resources"]["requests"] and c["resources"]["limits"]["memory"]


@pytest.mark.parametrize(("values", "message"), [
    ({"operator": {"resyncSecond": 60}},
     "at '/operator': additional properties 'resyncSecond' not allowed"),
    ({"metrics": {"port": "9090x"}}, "at '/metrics/port': got string, want integer"),
    ({"watchNamespaces": ["Team_A"]}, "at '/watchNamespaces/0'"),
    ({"image": {"pullPolicy": "Sometimes"}}, "at '/image/pullPolicy'"),
    ({"dashboard": {"tokens": {"raters": {"ana": "short"}}}},
     "at '/dashboard/tokens/raters/ana': minLength"),
    ({"store": {"url": "mysql://x"}}, "at '/store/url'"),
    ({"dashboard": {"enabled": True}},
     "dashboard.enabled needs a results store: set store.existingSecret, store.url or "
     "postgresql.enabled"),
    ({"dashboard": {"enabled": True}, "store": {"existingSecret": "s"}},
     "dashboard.enabled: give raters a way in"),
    ({"store": {"url": "postgresql://a@b/c"}, "postgresql": {"enabled": True}},
     "store.url and postgresql.enabled: choose one"),
    ({"serviceAccount": {"create": False}}, "serviceAccount.name: name the existing"),
    ({"dashboard": {"sessionHours": 0}}, "at '/dashboard/sessionHours'"),
    ({"dashboard": {"trustedProxies": ["lb.internal"]}}, "at '/dashboard/trustedProxies/0'"),
    ({"gateway": {"enabled": True, "evaluation": "e", "runId": "r"}},
     "gateway.enabled needs a results store"),
    ({"gateway": {"enabled": True, "runId": "r"}, "store": {"existingSecret": "s"}},
     "gateway.evaluation: name the Evaluation"),
    ({"gateway": {"enabled": True, "evaluation": "e"}, "store": {"existingSecret": "s"}},
     "gateway.runId: name the run"),
    ({"gateway": {"upstream": "api.openai.com"}}, "at '/gateway/upstream'"),
    ({"gateway": {"sampleRate": 1.5}}, "at '/gateway/sampleRate'"),
    ({"gateway": {"redact": ["email=x"]}}, "at '/gateway/redact/0'"),
])
def test_bad_values_fail_naming_the_key(values: dict, message: str) -> None:
    out = render(values, check=False)
    assert out.returncode != 0 and message in out.stderr, out.stderr


def test_secrets_the_chart_makes_are_not_in_the_pod_specs() -> None:
    """Tokens and the store's password reach pods through Secret references only."""
    text = render({"postgresql": {"enabled": True},
                   "dashboard": {"enabled": True, "tokens": {"raters": {"ana": TOKEN}}}}).stdout
    docs = documents(text)
    password = next(d for d in docs if d["metadata"]["name"] == "slam-postgresql")[
        "stringData"]["password"]
    for d in docs:
        if d["kind"] != "Secret":
            assert TOKEN not in json.dumps(d) and password not in json.dumps(d), \
                f"{d['kind']} {d['metadata']['name']}"


def test_the_gateway_runs_what_the_values_say() -> None:
    """The values become the gateway's own flags, every one of them a flag it has."""
    from typer.main import get_command

    from slam.cli import app

    docs = documents(render(VALUE_SETS["trial"]).stdout)
    deployment = next(d for d in docs if d["metadata"]["name"] == "slam-operator-gateway"
                      and d["kind"] == "Deployment")
    [container] = deployment["spec"]["template"]["spec"]["containers"]
    args = container["args"]
    assert args[:2] == ["slam", "gateway"]
    assert {"--evaluation=support-shadow", "--run-id=week-49", "--namespace=team-a",
            "--sample-rate=0.05", "--daily-cap=2000", "--model=gpt-4o",
            "--exclude-user=^internal-", r"--redact=EMPLOYEE_ID=EMP-\d{6}",
            "--phone-region=US", "--phone-region=DE", "--shutdown-timeout=30"} <= set(args)
    # Parsed by the command itself: an unknown or misspelt flag fails here.
    command = get_command(app).commands["gateway"]
    ctx = command.make_context("gateway", args[2:], resilient_parsing=False)
    assert ctx.params["sample_rate"] == 0.05 and ctx.params["daily_cap"] == 2000
    assert ctx.params["phone_region"] == ["US", "DE"]
    env = {e["name"]: e for e in container["env"]}
    assert env["SLAM_STORE_URL"]["valueFrom"]["secretKeyRef"]["key"] == "url"
    spec = deployment["spec"]["template"]["spec"]
    assert spec["terminationGracePeriodSeconds"] > 30
    assert container["readinessProbe"]["httpGet"]["path"] == "/healthz"
    service = next(d for d in docs if d["metadata"]["name"] == "slam-operator-gateway"
                   and d["kind"] == "Service")
    assert {p["name"] for p in service["spec"]["ports"]} == {"http", "metrics"}
    assert not any(d["metadata"]["name"].endswith("-gateway")
                   for d in documents(render({}).stdout))  # off by default


def test_the_gpu_node_pool_example_matches_what_model_servers_tolerate() -> None:
    from slam_operator.names import GPU_RESOURCE

    pool = documents((OVERLAYS / "eks" / "gpu-nodepool.yaml").read_text())[0]
    taints = pool["spec"]["template"]["spec"]["taints"]
    assert taints == [{"key": GPU_RESOURCE, "effect": "NoSchedule"}]
    families = next(r for r in pool["spec"]["template"]["spec"]["requirements"]
                    if r["key"] == "karpenter.k8s.aws/instance-family")["values"]
    assert families == ["g5", "g6"]


def test_the_argocd_application_points_at_an_overlay_that_builds(
        control_plane: ControlPlane) -> None:
    app = yaml.safe_load((REPO / "deploy" / "argocd" / "application.yaml").read_text())
    path = REPO / app["spec"]["source"]["path"]
    assert (path / "kustomization.yaml").exists(), path
    assert "ServerSideApply=true" in app["spec"]["syncPolicy"]["syncOptions"]
    kinds = {d["kind"] for d in strict_documents(kubectl(control_plane, "kustomize", str(path)))}
    assert {"CustomResourceDefinition", "Deployment", "ClusterRole"} <= kinds


# --- on the real API server --------------------------------------------------------------------

def _apply(cp: ControlPlane, text: str) -> str:
    return kubectl(cp, "apply", "--server-side", "--field-manager", "slam-chart-test", "-f", "-",
                   stdin=text)


def _ensure_namespaces(k8s: client.ApiClient, *names: str) -> None:
    for name in names:
        try:
            client.CoreV1Api(k8s).create_namespace({"metadata": {"name": name}})
        except client.ApiException as e:
            if e.status != 409:
                raise


@pytest.fixture(scope="module")
def servicemonitors(control_plane: ControlPlane) -> None:
    """The Prometheus Operator's real ServiceMonitor CRD (from its Go module, cached)."""
    d = Path(control_plane.workdir) / "promop-crds"
    d.mkdir(exist_ok=True)
    (d / "servicemonitors.yaml").write_text(servicemonitor_crd().read_text())
    apply_crds(control_plane, d)


@pytest.mark.parametrize("name", VALUE_SETS)
def test_each_value_set_applies_with_server_side_apply(
        name: str, control_plane: ControlPlane, k8s: client.ApiClient, servicemonitors) -> None:
    release, ns = f"slam-{name}", f"chart-{name}"
    _ensure_namespaces(k8s, ns, "team-a", "team-b")
    text = render(VALUE_SETS[name], release=release, namespace=ns).stdout
    out = _apply(control_plane, text)
    applied = [line for line in out.splitlines() if "serverside-applied" in line]
    assert len(applied) == len(documents(text)), out
    # Applying the same render again changes nothing (no field fights, no drift).
    again = _apply(control_plane, text)
    assert all("serverside-applied" in line for line in again.splitlines()), again
    deployment = client.AppsV1Api(k8s).read_namespaced_deployment(f"{release}-slam-operator",
                                                                 ns)
    env = {e.name: e.value for e in deployment.spec.template.spec.containers[0].env}
    if name == "namespaced":
        assert env["SLAM_WATCH_NAMESPACES"] == "team-a,team-b"
        assert client.RbacAuthorizationV1Api(k8s).read_namespaced_role(
            f"{release}-slam-operator", "team-a")
    if name == "trial":
        assert env["SLAM_LLAMACPP_IMAGE"] == "ghcr.io/slam-operator/slam-llamacpp:0.2.0"
        assert env["SLAM_VLLM_CPU_IMAGE"] == "registry.internal/vllm-cpu:0.11.0"


@pytest.mark.parametrize("overlay", ["dev", "eks"])
def test_each_kustomize_overlay_applies_with_server_side_apply(
        overlay: str, control_plane: ControlPlane, k8s: client.ApiClient) -> None:
    text = kubectl(control_plane, "kustomize", str(OVERLAYS / overlay))
    docs = strict_documents(text)
    out = _apply(control_plane, text)
    assert sum("serverside-applied" in line for line in out.splitlines()) == len(docs), out
    ns = "slam-dev" if overlay == "dev" else "slam-system"
    deployment = client.AppsV1Api(k8s).read_namespaced_deployment("slam-operator", ns)
    env = {e.name: e for e in deployment.spec.template.spec.containers[0].env}
    assert env["SLAM_STORE_URL"].value_from.secret_key_ref.name == "slam-store"
    if overlay == "dev":
        assert env["SLAM_WATCH_NAMESPACES"].value == "slam-dev"
        assert client.AppsV1Api(k8s).read_namespaced_stateful_set(
            "slam-operator-postgresql", "slam-dev")
    else:
        assert deployment.spec.template.spec.containers[0].image.startswith(
            "111122223333.dkr.ecr.us-east-1.amazonaws.com/slam-operator:")


def test_the_base_applies_as_the_readme_says(control_plane: ControlPlane) -> None:
    # (The eks overlay applies the same objects: one field manager for both.)
    out = kubectl(control_plane, "apply", "--server-side", "--field-manager", "slam-chart-test",
                  "-k", str(BASE))
    assert "deployment.apps/slam-operator serverside-applied" in out, out


# --- access reviews: what each ServiceAccount may and may not do --------------------------------

def _allowed(k8s: client.ApiClient, account: str, verb: str, resource: str, namespace: str = "",
             group: str = "", subresource: str = "") -> bool:
    ns, name = account.split(":")
    review = client.AuthorizationV1Api(k8s).create_subject_access_review({
        "apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview",
        "spec": {"user": f"system:serviceaccount:{ns}:{name}",
                 "groups": ["system:serviceaccounts", f"system:serviceaccounts:{ns}",
                            "system:authenticated"],
                 "resourceAttributes": {"verb": verb, "resource": resource, "group": group,
                                        "namespace": namespace, "subresource": subresource}}})
    return review.status.allowed


# (verb, group, resource, subresource, namespace) -> allowed, for the operator installed
# cluster-wide. "anywhere" is a namespace the operator has never seen.
OPERATOR_CLUSTER_WIDE = [
    (("watch", "slam.dev", "modeldeployments", "", ""), True),
    (("patch", "slam.dev", "evaluations", "status", "anywhere"), True),
    (("create", "apps", "deployments", "", "anywhere"), True),
    (("create", "batch", "jobs", "", "anywhere"), True),
    (("get", "", "secrets", "", "anywhere"), True),
    (("list", "", "secrets", "", ""), False),          # no cluster-wide Secret reads
    (("list", "", "secrets", "", "anywhere"), False),
    (("watch", "", "secrets", "", "anywhere"), False),
    (("create", "", "secrets", "", "anywhere"), False),
    (("create", "", "pods", "exec", "anywhere"), False),  # no pods/exec
    (("create", "", "pods", "", "anywhere"), False),
    (("create", "apiextensions.k8s.io", "customresourcedefinitions", "", ""), False),
    (("patch", "apiextensions.k8s.io", "customresourcedefinitions", "", ""), False),
    (("create", "slam.dev", "modeldeployments", "", "anywhere"), False),
    (("delete", "slam.dev", "evaluations", "", "anywhere"), False),
    (("create", "rbac.authorization.k8s.io", "rolebindings", "", "anywhere"), False),
    (("delete", "batch", "jobs", "", "anywhere"), False),
]
# The scoring Job's account (<evaluation>-scoring, made by the operator and bound to nothing)
# and the dashboard's: nothing at all.
NOTHING = [
    (("get", "", "secrets", "", "NS"), False),
    (("list", "", "pods", "", "NS"), False),
    (("create", "", "pods", "exec", "NS"), False),
    (("get", "slam.dev", "evaluations", "", "NS"), False),
    (("patch", "slam.dev", "evaluations", "status", "NS"), False),
    (("create", "apiextensions.k8s.io", "customresourcedefinitions", "", ""), False),
    (("create", "batch", "jobs", "", "NS"), False),
]


def test_access_reviews_of_each_service_account(control_plane: ControlPlane,
                                                k8s: client.ApiClient, servicemonitors) -> None:
    from slam_operator.evaluation.job import own_service_account_name

    ns = f"chart-rbac-{uuid.uuid4().hex[:6]}"
    _ensure_namespaces(k8s, ns, "team-a", "team-b")
    _apply(control_plane, render(VALUE_SETS["trial"], release="rbac", namespace=ns).stdout)
    _apply(control_plane, render(VALUE_SETS["namespaced"], release="rbacns",
                                 namespace=ns).stdout)
    wrong = []
    operator = f"{ns}:rbac-slam-operator"
    for (verb, group, resource, sub, where), want in OPERATOR_CLUSTER_WIDE:
        if _allowed(k8s, operator, verb, resource, where, group, sub) != want:
            wrong.append(f"operator {verb} {group}/{resource}/{sub} in {where!r}: want {want}")
    # Limited to team-a and team-b: the same rights there, none elsewhere.
    limited = f"{ns}:rbacns-slam-operator"
    for where, want in (("team-a", True), ("team-b", True), ("anywhere", False), ("", False)):
        for verb, group, resource in (("create", "apps", "deployments"),
                                      ("watch", "slam.dev", "modeldeployments"),
                                      ("get", "", "secrets")):
            if _allowed(k8s, limited, verb, resource, where, group) != want:
                wrong.append(f"namespaced operator {verb} {resource} in {where!r}: want {want}")
    if not _allowed(k8s, limited, "list", "customresourcedefinitions", "",
                    "apiextensions.k8s.io"):
        wrong.append("namespaced operator cannot list CRDs (kopf needs to)")
    if _allowed(k8s, limited, "list", "namespaces"):
        wrong.append("namespaced operator may list namespaces")
    for account in (f"team-a:{own_service_account_name('ev')}",
                    f"{ns}:rbac-slam-operator-dashboard"):
        for (verb, group, resource, sub, where), want in NOTHING:
            where = account.split(":")[0] if where == "NS" else where
            if _allowed(k8s, account, verb, resource, where, group, sub) != want:
                wrong.append(f"{account} {verb} {group}/{resource}/{sub} in {where!r}: want {want}")
    assert not wrong, "\n".join(wrong)
    dashboard = client.AppsV1Api(k8s).read_namespaced_deployment("rbac-slam-operator-dashboard", ns)
    assert dashboard.spec.template.spec.automount_service_account_token is False
