"""Generate the CustomResourceDefinitions in crds/ from the typed spec models.

    python -m slam.api.crdgen crds/          # write
    python -m slam.api.crdgen --check crds/  # exit 1 when the committed YAML is stale

Pydantic's JSON Schema is turned into a *structural* OpenAPI v3 schema as the API server wants
it: `$ref`s inlined, `Optional[X]` (anyOf X|null) collapsed to X, no titles, no
`additionalProperties: false`, OpenAPI 3.0's boolean `exclusiveMinimum`.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel

from slam.api.common import GROUP, VERSION, ApiModel
from slam.api.evaluation import Evaluation, EvaluationSpec, EvaluationStatus
from slam.api.modeldeployment import (
    ModelDeployment,
    ModelDeploymentSpec,
    ModelDeploymentStatus,
)


@dataclass(frozen=True)
class Kind:
    kind: str
    plural: str
    short_names: tuple[str, ...]
    description: str
    root: type[ApiModel]
    spec: type[BaseModel]
    status: type[BaseModel]
    columns: tuple[dict[str, Any], ...]
    # The /scale subresource (kubectl scale, the HorizontalPodAutoscaler, KEDA), when it has one.
    scale: dict[str, str] | None = None


_AGE = {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"}

KINDS: tuple[Kind, ...] = (
    Kind(
        kind="ModelDeployment",
        plural="modeldeployments",
        short_names=("md", "mds"),
        description=(
            "ModelDeployment serves one open model (Hugging Face id + revision) with TGI, vLLM, "
            "SGLang or llama.cpp behind an OpenAI-compatible endpoint."
        ),
        root=ModelDeployment,
        spec=ModelDeploymentSpec,
        status=ModelDeploymentStatus,
        columns=(
            {"name": "Model", "type": "string", "jsonPath": ".spec.model.id"},
            {"name": "Runtime", "type": "string", "jsonPath": ".spec.runtime"},
            {"name": "Ready", "type": "string",
             "jsonPath": '.status.conditions[?(@.type=="Ready")].status'},
            {"name": "Replicas", "type": "string", "jsonPath": ".status.replicas.display",
             "description": "Ready/desired serving pods."},
            {"name": "Endpoint", "type": "string", "jsonPath": ".status.endpoint"},
            _AGE,
        ),
        scale={"specReplicasPath": ".spec.replicas",
               "statusReplicasPath": ".status.replicas.current",
               "labelSelectorPath": ".status.selector"},
    ),
    Kind(
        kind="Evaluation",
        plural="evaluations",
        short_names=("ev", "evals"),
        description=(
            "Evaluation compares candidate models with a reference (the incumbent API) on a "
            "prompt set: quality, latency and cost. Full results live in the results store."
        ),
        root=Evaluation,
        spec=EvaluationSpec,
        status=EvaluationStatus,
        columns=(
            {"name": "Phase", "type": "string", "jsonPath": ".status.phase"},
            {"name": "Progress", "type": "string", "jsonPath": ".status.progress.display"},
            {"name": "Leader", "type": "string", "jsonPath": ".status.leader"},
            _AGE,
        ),
    ),
)


def structural(node: Any, defs: dict[str, Any]) -> Any:
    """Rewrite one pydantic JSON Schema node into a structural OpenAPI v3 node."""
    if isinstance(node, list):
        return [structural(n, defs) for n in node]
    if not isinstance(node, dict):
        return node
    node = dict(node)
    if "$ref" in node:
        target = defs[node.pop("$ref").rsplit("/", 1)[-1]]
        # The field's own description wins over the class docstring.
        node = {**target, **node}
    if "anyOf" in node:
        options = [o for o in node.pop("anyOf") if o != {"type": "null"}]
        if len(options) != 1:
            raise ValueError(f"unions are not structural: {options}")
        option = options[0]
        if "$ref" in option:
            option = {**defs[option["$ref"].rsplit("/", 1)[-1]]}
        node = {**option, **node}
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key == "title":
            continue
        if key == "default" and value is None:
            continue
        if key == "additionalProperties" and value is False:
            continue
        if key == "exclusiveMinimum":
            out["minimum"], out["exclusiveMinimum"] = value, True
            continue
        if key == "exclusiveMaximum":
            out["maximum"], out["exclusiveMaximum"] = value, True
            continue
        if key == "const":
            out["enum"] = [value]
            continue
        if key == "properties":
            out[key] = {k: structural(v, defs) for k, v in value.items()}
            continue
        if key in ("items", "additionalProperties"):
            out[key] = structural(value, defs)
            continue
        out[key] = value
    if "enum" in out and "type" not in out:
        out["type"] = "string"
    if "properties" in out:
        out["type"] = "object"
    return out


def model_schema(model: type[BaseModel]) -> dict[str, Any]:
    raw = model.model_json_schema(by_alias=True, mode="validation")
    defs = raw.pop("$defs", {})
    return structural(raw, defs)


def build_crd(k: Kind) -> dict[str, Any]:
    spec = model_schema(k.spec)
    status = model_schema(k.status)
    root: dict[str, Any] = {
        "type": "object",
        "description": k.description,
        "required": ["spec"],
        "properties": {
            "apiVersion": {
                "type": "string",
                "description": "APIVersion of this object: slam.dev/v1alpha1.",
            },
            "kind": {"type": "string", "description": f"Kind: {k.kind}."},
            "metadata": {"type": "object"},
            "spec": spec,
            "status": status,
        },
    }
    if k.root.rules:
        root["x-kubernetes-validations"] = [r.to_schema() for r in k.root.rules if r.cel]
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{k.plural}.{GROUP}"},
        "spec": {
            "group": GROUP,
            "scope": "Namespaced",
            "names": {
                "kind": k.kind,
                "listKind": f"{k.kind}List",
                "plural": k.plural,
                "singular": k.kind.lower(),
                "shortNames": list(k.short_names),
                "categories": ["slam"],
            },
            "versions": [
                {
                    "name": VERSION,
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}, **({"scale": dict(k.scale)} if k.scale else {})},
                    "additionalPrinterColumns": list(k.columns),
                    "schema": {"openAPIV3Schema": root},
                }
            ],
        },
    }


HEADER = "# Generated from the typed models by `make crds` (slam.api.crdgen). Do not edit.\n"


def render(k: Kind) -> str:
    return HEADER + yaml.safe_dump(build_crd(k), sort_keys=False, width=100)


def crd_files() -> dict[str, str]:
    """File name -> YAML text for every CRD."""
    return {f"{GROUP}_{k.plural}.yaml": render(k) for k in KINDS}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("directory", type=Path, help="where the CRD YAML files go (crds/)")
    parser.add_argument("--check", action="store_true", help="fail if the files are stale")
    args = parser.parse_args(argv)
    stale = []
    for name, text in crd_files().items():
        path = args.directory / name
        if args.check:
            if not path.exists() or path.read_text() != text:
                stale.append(str(path))
        else:
            args.directory.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
            print(f"wrote {path}")
    if stale:
        print("stale CRDs (run `make crds`): " + ", ".join(stale), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
