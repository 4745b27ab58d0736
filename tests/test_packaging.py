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


def _build_wheel(tmp_path: Path) -> list[Path]:
    """The wheel `pip install .` would install. Built from a copy: setuptools' build/ folder
    would otherwise linger in the checkout and feed stale files into the next build."""
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
    return list((tmp_path / "dist").glob("slam_operator-*.whl"))


def test_the_wheel_carries_every_file_and_an_installed_copy_opens_a_store(tmp_path) -> None:
    (wheel,) = _build_wheel(tmp_path)
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


def _imports(folder: Path) -> dict[str, set[str]]:
    """Top-level modules imported anywhere under `folder` -> the files importing them."""
    import ast
    found: dict[str, set[str]] = {}
    for path in folder.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module] if isinstance(node, ast.ImportFrom) and node.level == 0 \
                and node.module else []
            for name in names:
                found.setdefault(name.split(".")[0], set()).add(str(path.relative_to(REPO)))
    return found


def test_every_third_party_import_is_declared() -> None:
    """A module imported by our code must be a declared dependency, not one that happens to
    arrive with another (it can disappear with that one's next release)."""
    import re
    import tomllib
    from importlib.metadata import packages_distributions

    def norm(name: str) -> str:
        return re.sub(r"[-_.]+", "-", name).lower()

    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    runtime = [*project["dependencies"],
               *(d for extra, deps in project["optional-dependencies"].items()
                 if extra != "dev" for d in deps)]
    declared = {norm(re.split(r"[\[<>=!~; ]", d, maxsplit=1)[0]) for d in runtime}
    provided = packages_distributions()
    own = set(SOURCES.values())
    undeclared = {}
    for folder in SOURCES:
        for module, files in _imports(REPO / folder).items():
            if module in sys.stdlib_module_names or module in own or module == "__future__":
                continue
            dists = {norm(d) for d in provided.get(module, [module])}
            if not dists & declared:
                undeclared[module] = sorted(files)[:3]
    assert not undeclared, f"imported but not in pyproject.toml dependencies: {undeclared}"


def test_an_installed_copy_serves_the_dashboard(tmp_path) -> None:
    """`slam dashboard` finds the app inside the installed package, as in the image (it once
    looked for it in the source tree)."""
    import time
    import urllib.request

    from tests.controlplane.cluster import free_port
    (wheel,) = _build_wheel(tmp_path)
    with zipfile.ZipFile(wheel) as z:
        z.extractall(tmp_path / "installed")
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(tmp_path / "installed"),
           "SLAM_ADMIN_TOKENS": "owner=admin-token-for-test",
           "SLAM_RATER_TOKENS": "ana=rater-token-for-test"}
    proc = subprocess.Popen(
        [sys.executable, "-c", "import sys; from slam.cli import app; sys.argv[0] = 'slam'; app()",
         "dashboard", "--store", f"sqlite:///{tmp_path / 'r.db'}", "--port", str(port)],
        env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline, body = time.monotonic() + 120, ""
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health",
                                            timeout=2) as r:
                    body = r.read().decode()
                    break
            except OSError:
                time.sleep(0.5)
        assert body == "ok", f"the dashboard did not come up: {proc.poll()}"
    finally:
        proc.terminate()
        out, _ = proc.communicate(timeout=30)
    assert "does not exist" not in out, out[-2000:]
    assert str(tmp_path / "installed") in out, out[-2000:]  # it says which app it serves
