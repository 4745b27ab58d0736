"""The images `make images` built: their names, from build/images.env."""

from __future__ import annotations

import pytest

from tests.controlplane.cluster import REPO

ENV_FILE = REPO / "build" / "images.env"


def image(target: str) -> str:
    images = dict(line.split("=", 1) for line in ENV_FILE.read_text().split()) \
        if ENV_FILE.exists() else {}
    name = images.get(f"SLAM_IMAGE_{target.upper().replace('-', '_')}")
    if not name:
        pytest.fail(f"no {target} image: run `make images` (it writes {ENV_FILE})")
    return name
