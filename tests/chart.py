"""The Helm chart and the tools the chart tests use (helm, kube-score: built and cached by
tests/controlplane/build.sh), and the kustomize base rendered from the chart.

`python -m tests.chart` (`make manifests`) re-renders manifests/base/ from the chart, so the
chart stays the one source of the operator's manifests; tests/test_chart.py fails when the
committed base differs from a fresh render.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

from tests.controlplane.cluster import GOMOD, REPO, binary_dir, go_mod_version

CHART = REPO / "charts" / "slam-operator"
BASE = REPO / "manifests" / "base"
OVERLAYS = REPO / "manifests" / "overlays"
# The base: the chart's defaults, released as "slam-operator" into slam-system, with the CRDs
# taken from crds/ (their own kustomization) and Helm's bookkeeping labels left out.
BASE_RELEASE, BASE_NAMESPACE = "slam-operator", "slam-system"
BASE_VALUES = {"crds": {"install": False}}
HELM_LABELS = ("helm.sh/chart", "app.kubernetes.io/managed-by")
HEADER = ("# Generated from charts/slam-operator by `make manifests` (tests/chart.py). Do not\n"
          "# edit: change the chart, or patch this base in an overlay.\n")


def tool(name: str) -> Path:
    """The cached helm or kube-score binary (`make control-plane` builds them)."""
    module = {"helm": ("helm", "helm.sh/helm/v4"),
              "kube-score": ("kubescore", "github.com/zegl/kube-score")}[name]
    path = binary_dir() / f"{name}-{go_mod_version(module[1], GOMOD / module[0])}"
    if not path.exists():
        raise RuntimeError(f"{path} is missing: run `make control-plane`")
    return path


def servicemonitor_crd() -> Path:
    found = sorted(binary_dir().glob("servicemonitors-crd-*.yaml"))
    if not found:
        raise RuntimeError(f"no ServiceMonitor CRD in {binary_dir()}: run `make control-plane`")
    return found[-1]


def helm(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    out = subprocess.run([str(tool("helm")), *args], capture_output=True, text=True, timeout=120)
    if check and out.returncode != 0:
        raise AssertionError(f"helm {' '.join(args)} failed:\n{out.stderr}")
    return out


def render(values: dict, release: str = BASE_RELEASE, namespace: str = BASE_NAMESPACE,
           check: bool = True) -> subprocess.CompletedProcess:
    """`helm template` of the chart with `values` (stdout: the manifests)."""
    with tempfile.NamedTemporaryFile("w", suffix=".yaml") as f:
        yaml.safe_dump(values, f)
        f.flush()
        return helm("template", release, str(CHART), "--namespace", namespace, "-f", f.name,
                    check=check)


def documents(text: str) -> list[dict]:
    return [d for d in yaml.safe_load_all(text) if d]


def _without_helm_labels(text: str) -> str:
    return "\n".join(line for line in text.splitlines()
                     if not any(line.strip().startswith(f"{k}:") for k in HELM_LABELS))


def base_files() -> dict[str, str]:
    """manifests/base/'s rendered files, by name, from the chart (not the committed copy).
    Text, not re-dumped YAML, so the chart's comments (why each RBAC rule) stay."""
    rbac, rest = [], []
    for chunk in render(BASE_VALUES).stdout.split("\n---\n"):
        text = _without_helm_labels(chunk.strip("-\n")).strip() + "\n"
        doc = yaml.safe_load(text)
        if not doc:
            continue
        kinds = ("ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding")
        (rbac if doc["kind"] in kinds else rest).append(text)
    return {"rbac.yaml": HEADER + "---\n".join(rbac), "operator.yaml": HEADER + "---\n".join(rest)}


def dev_postgresql() -> str:
    """manifests/overlays/dev/postgresql.yaml: the chart's trial PostgreSQL."""
    out = helm("template", BASE_RELEASE, str(CHART), "--namespace", BASE_NAMESPACE,
               "--set", "postgresql.enabled=true", "--show-only", "templates/postgresql.yaml")
    return HEADER + _without_helm_labels(out.stdout).lstrip("-\n") + "\n"


def generated() -> dict[Path, str]:
    """Every file `make manifests` writes, with its content rendered now."""
    files = {BASE / name: text for name, text in base_files().items()}
    files[OVERLAYS / "dev" / "postgresql.yaml"] = dev_postgresql()
    return files


def main() -> None:
    for path, text in generated().items():
        path.write_text(text)
        print(f"wrote {path.relative_to(REPO)}")


if __name__ == "__main__":
    sys.exit(main())
