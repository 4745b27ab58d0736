"""The `slam` command line (what a user runs before any cluster exists)."""

from __future__ import annotations

from pathlib import Path

import yaml
from typer.testing import CliRunner

from slam.cli import app
from tests.api.cases import evaluation, model_deployment

REPO = Path(__file__).resolve().parents[1]
runner = CliRunner()


def test_validate_accepts_the_examples() -> None:
    result = runner.invoke(app, ["validate", str(REPO / "manifests/examples")])
    assert result.exit_code == 0, result.output
    assert "pep-talk-local" in result.output


def test_validate_names_file_and_field(tmp_path: Path) -> None:
    bad = evaluation()
    bad["spec"]["reference"] = "gpt-5"
    (tmp_path / "ev.yaml").write_text(yaml.safe_dump_all([model_deployment(), bad]))
    result = runner.invoke(app, ["validate", str(tmp_path / "ev.yaml")])
    assert result.exit_code == 1
    out = " ".join(result.output.split())
    assert "ev.yaml (document 2) Evaluation/pep-talk: spec.reference:" in out


def test_crds_check_passes_on_the_committed_crds() -> None:
    result = runner.invoke(app, ["crds", "--check", str(REPO / "crds")])
    assert result.exit_code == 0, result.output
