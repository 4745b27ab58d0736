"""The distribution the image installs (`pip install .`, not the editable install the tests run
from) carries every module and data file, and works on its own: an installed copy migrates a
fresh results store. Editable installs hide a missing package-data entry; the image would not."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

from tests.controlplane.cluster import REPO

SOURCES = {"engine": "slam", "operator": "slam_operator", "dashboard": "slam_dashboard"}


def source_files() -> set[str]:
    out = set()
    for folder, package in SOURCES.items():
        root = REPO / folder
        for path in (root / package).rglob("*"):
            if path.is_file() and "__pycache__" not in path.parts:
                out.add(path.relative_to(root).as_posix())
    return out


def test_the_wheel_carries_every_file_and_an_installed_copy_opens_a_store(tmp_path) -> None:
    # Built from a copy: setuptools' build/ folder would otherwise linger in the checkout and
    # feed stale files into the next build.
    src = tmp_path / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, src / name)
    for folder in SOURCES:
        shutil.copytree(REPO / folder, src / folder,
                        ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                    "--quiet", "-w", str(tmp_path / "dist"), str(src)], check=True,
                   capture_output=True, cwd=tmp_path)
    (wheel,) = (tmp_path / "dist").glob("slam_operator-*.whl")
    with zipfile.ZipFile(wheel) as z:
        names = set(z.namelist())
        z.extractall(tmp_path / "installed")
    missing = sorted(source_files() - names)
    assert not missing, f"not in the wheel (add them to package-data in pyproject.toml): {missing}"
    entry_points = next(n for n in names if n.endswith(".dist-info/entry_points.txt"))
    assert "slam = slam.cli:app" in (tmp_path / "installed" / entry_points).read_text()

    # The installed copy, ahead of the editable one on sys.path, run from an empty folder.
    script = ("import sys, slam, slam_operator.handlers, slam_dashboard.data; "
              "from slam.store import Store; "
              "assert all(m.__file__.startswith(sys.argv[1]) for m in "
              "(slam, slam_operator.handlers)), slam.__file__; "
              "s = Store.open('sqlite:///' + sys.argv[2]); print(len(s.runs()))")
    env = {**os.environ, "PYTHONPATH": str(tmp_path / "installed")}
    out = subprocess.run([sys.executable, "-c", script, str(tmp_path / "installed"),
                          str(tmp_path / "r.db")], env=env, cwd=tmp_path, capture_output=True,
                         text=True)
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.strip() == "0"
    assert Path(tmp_path / "r.db").stat().st_size > 0
