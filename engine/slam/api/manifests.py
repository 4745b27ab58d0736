"""Read the same YAML that `kubectl apply` takes, and validate it with the typed models.

Used by `slam run` (no cluster) and by tests. Errors name the file, the document and the field.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from slam.api.common import API_VERSION, describe_errors
from slam.api.evaluation import Evaluation
from slam.api.modeldeployment import ModelDeployment

KINDS: dict[str, type[ModelDeployment] | type[Evaluation]] = {
    "ModelDeployment": ModelDeployment,
    "Evaluation": Evaluation,
}


class ManifestError(ValueError):
    """A manifest that cannot be used, with every problem found (file, document, field)."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("\n".join(problems))


@dataclass
class Manifests:
    """Everything found under a path: our resources and plain Kubernetes objects (ConfigMaps)."""

    model_deployments: list[ModelDeployment] = field(default_factory=list)
    evaluations: list[Evaluation] = field(default_factory=list)
    others: list[dict[str, Any]] = field(default_factory=list)
    skipped: list[Path] = field(default_factory=list)  # data files (prompt sets) under the path
    sources: dict[int, Path] = field(default_factory=dict)  # id(object) -> file it came from

    def source_of(self, obj: object) -> Path:
        return self.sources[id(obj)]


def yaml_files(path: Path) -> list[Path]:
    if path.is_dir():
        return sorted(p for p in path.rglob("*") if p.suffix in (".yaml", ".yml"))
    return [path]


def parse_object(doc: dict[str, Any]) -> ModelDeployment | Evaluation:
    """Validate one slam.dev object; raises pydantic's ValidationError."""
    return KINDS[doc["kind"]].model_validate(doc)


def load(path: Path) -> Manifests:
    """Load every YAML document under `path`; raise ManifestError listing all problems."""
    if not path.exists():
        raise ManifestError([f"{path}: no such file or directory"])
    out = Manifests()
    problems: list[str] = []
    for file in yaml_files(path):
        try:
            docs = list(yaml.safe_load_all(file.read_text()))
        except yaml.YAMLError as e:
            problems.append(f"{file}: not valid YAML: {e}")
            continue
        if all(
            not isinstance(d, dict) or ("kind" not in d and "apiVersion" not in d) for d in docs
        ):
            # No document looks like an object: a data file (e.g. a prompt set) next to manifests.
            out.skipped.append(file)
            continue
        for index, doc in enumerate(docs):
            if doc is None:
                continue
            where = f"{file} (document {index + 1})"
            if not isinstance(doc, dict) or "kind" not in doc or "apiVersion" not in doc:
                problems.append(f"{where}: not a Kubernetes object (needs apiVersion and kind)")
                continue
            name = (doc.get("metadata") or {}).get("name", "?")
            if doc["kind"] in KINDS:
                if doc["apiVersion"] != API_VERSION:
                    problems.append(f"{where}: apiVersion must be {API_VERSION}")
                    continue
                try:
                    obj = parse_object(doc)
                except ValidationError as e:
                    problems += [f"{where} {doc['kind']}/{name}: {p}" for p in describe_errors(e)]
                    continue
                if isinstance(obj, ModelDeployment):
                    out.model_deployments.append(obj)
                else:
                    out.evaluations.append(obj)
                out.sources[id(obj)] = file
            else:
                out.others.append(doc)
                out.sources[id(doc)] = file
    if problems:
        raise ManifestError(problems)
    return out
