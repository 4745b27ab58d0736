"""The committed CRDs are generated from the typed models, structural, and documented."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from slam.api import crdgen

CRDS = Path(__file__).resolve().parents[2] / "crds"


def test_committed_crds_are_up_to_date() -> None:
    stale = [
        name
        for name, text in crdgen.crd_files().items()
        if not (CRDS / name).exists() or (CRDS / name).read_text() != text
    ]
    assert not stale, f"run `make crds`: {stale} differ from the typed models"


def _walk(node: dict[str, Any], path: str):
    yield path, node
    for name, child in (node.get("properties") or {}).items():
        yield from _walk(child, f"{path}.{name}")
    if isinstance(node.get("items"), dict):
        yield from _walk(node["items"], f"{path}[]")
    if isinstance(node.get("additionalProperties"), dict):
        yield from _walk(node["additionalProperties"], f"{path}{{}}")


def _schemas():
    for name in crdgen.crd_files():
        crd = yaml.safe_load((CRDS / name).read_text())
        yield name, crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]


def test_every_field_has_a_description_for_kubectl_explain() -> None:
    missing = []
    for name, schema in _schemas():
        for path, node in _walk(schema, name):
            is_leaf_of_list_or_map = path.endswith("[]") or path.endswith("{}")
            if path.endswith(".metadata") or is_leaf_of_list_or_map and "properties" not in node:
                continue
            if not node.get("description"):
                missing.append(path)
    assert not missing


def test_schemas_are_structural() -> None:
    for name, schema in _schemas():
        for path, node in _walk(schema, name):
            assert "type" in node, f"{path} has no type"
            for forbidden in ("anyOf", "oneOf", "$ref", "title", "$defs"):
                assert forbidden not in node, f"{path} has {forbidden}"
            if "properties" in node:
                assert node["type"] == "object"
                assert "additionalProperties" not in node, path


def test_names_columns_and_status_subresource() -> None:
    crds = {yaml.safe_load((CRDS / n).read_text())["spec"]["names"]["kind"]: yaml.safe_load(
        (CRDS / n).read_text()) for n in crdgen.crd_files()}
    md, ev = crds["ModelDeployment"]["spec"], crds["Evaluation"]["spec"]
    for crd in (md, ev):
        assert crd["group"] == "slam.dev"
        assert "slam" in crd["names"]["categories"]
        assert crd["names"]["shortNames"]
    assert ev["versions"][0]["subresources"] == {"status": {}}
    # kubectl scale, the HorizontalPodAutoscaler and KEDA: replicas and the pods' selector.
    scale = md["versions"][0]["subresources"]["scale"]
    assert scale == {"specReplicasPath": ".spec.replicas",
                     "statusReplicasPath": ".status.replicas.current",
                     "labelSelectorPath": ".status.selector"}
    status = md["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["status"]
    assert status["properties"]["replicas"]["properties"]["current"]["type"] == "integer"
    assert status["properties"]["selector"]["type"] == "string"
    cols = lambda c: [x["name"] for x in c["versions"][0]["additionalPrinterColumns"]]  # noqa: E731
    assert cols(md) == ["Model", "Runtime", "Ready", "Replicas", "Endpoint", "Age"]
    assert cols(ev) == ["Phase", "Progress", "Leader", "Age"]


def test_check_mode_detects_stale_files(tmp_path: Path) -> None:
    assert crdgen.main([str(tmp_path)]) == 0
    assert crdgen.main(["--check", str(tmp_path)]) == 0
    first = next(tmp_path.iterdir())
    first.write_text(first.read_text().replace("Hugging Face", "HF"))
    assert crdgen.main(["--check", str(tmp_path)]) == 1
