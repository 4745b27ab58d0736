"""Local validation (what `slam run` does without a cluster) rejects what the API server rejects."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from slam.api import manifests
from slam.api.common import describe_errors
from slam.api.evaluation import Evaluation
from slam.api.modeldeployment import ModelDeployment
from tests.api.cases import INVALID, evaluation, model_deployment

REPO = Path(__file__).resolve().parents[2]


def test_valid_bases_parse_with_defaults() -> None:
    md = manifests.parse_object(model_deployment())
    assert isinstance(md, ModelDeployment)
    assert md.spec.runtime == "tgi"
    assert md.spec.gpu_count == 1
    assert md.spec.model.revision == "main"
    ev = manifests.parse_object(evaluation())
    assert isinstance(ev, Evaluation)
    assert ev.spec.run_id == "1"
    assert ev.spec.target("mistral").concurrency == 4


@pytest.mark.parametrize("case", INVALID, ids=[c.id for c in INVALID])
def test_invalid_manifest_rejected_naming_the_field(case) -> None:
    with pytest.raises(ValidationError) as info:
        manifests.parse_object(case.make())
    lines = describe_errors(info.value)
    assert any(case.field in line for line in lines), lines


def test_examples_validate_locally() -> None:
    examples = REPO / "manifests" / "examples"
    for folder in ("pep-talk", "local"):
        loaded = manifests.load(examples / folder)
        assert loaded.evaluations, folder
        assert loaded.model_deployments, folder


def test_load_reports_file_document_and_field(tmp_path: Path) -> None:
    bad = model_deployment()
    bad["spec"]["replicas"] = -3
    good = evaluation()
    import yaml

    (tmp_path / "a.yaml").write_text(yaml.safe_dump_all([good, bad]))
    (tmp_path / "b.yaml").write_text("kind: [unclosed\n")
    with pytest.raises(manifests.ManifestError) as info:
        manifests.load(tmp_path)
    text = str(info.value)
    assert f"{tmp_path / 'a.yaml'} (document 2) ModelDeployment/mistral: spec.replicas:" in text
    assert f"{tmp_path / 'b.yaml'}: not valid YAML" in text


def test_object_missing_kind_is_an_error_but_data_files_are_skipped(tmp_path: Path) -> None:
    import yaml

    (tmp_path / "prompts.yaml").write_text(yaml.safe_dump({"prompts": [{"id": "a"}]}))
    md = model_deployment()
    del md["kind"]
    (tmp_path / "md.yaml").write_text(yaml.safe_dump_all([evaluation(), md]))
    with pytest.raises(manifests.ManifestError) as info:
        manifests.load(tmp_path)
    assert info.value.problems == [
        f"{tmp_path / 'md.yaml'} (document 2): not a Kubernetes object (needs apiVersion and kind)"
    ]
    (tmp_path / "md.yaml").unlink()
    assert manifests.load(tmp_path).skipped == [tmp_path / "prompts.yaml"]
