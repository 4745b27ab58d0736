"""llama.cpp as `slam run` uses it: the portable build (issue 11) and a server that dies mid-run."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path

import pytest

from slam.store import Store
from tests.controlplane.cluster import REPO

SLAM = str(Path(sys.executable).parent / "slam")
WHEEL_SCRIPT = REPO / "requirements" / "llama-cpp-wheel.sh"


def _llama_lib_dir() -> Path:
    import llama_cpp
    return Path(llama_cpp.__file__).parent / "lib"


def test_llama_cpp_in_use_is_the_portable_build_without_amx() -> None:
    """A native build on an AMX CPU crashes on the first answer (issue 11). The library in use
    must be the wheel requirements/llama-cpp-wheel.sh builds with its current flags (not one
    from pip's cache, which ignores CMAKE_ARGS), and contain no AMX or AVX-512 code at all: a
    check of the machine code, so it holds on machines without AMX as well."""
    cache = os.environ.get("SLAM_CACHE", str(Path.home() / ".cache" / "slam"))
    expected_dir = subprocess.run(["bash", str(WHEEL_SCRIPT), sys.executable, cache, "--dir"],
                                  capture_output=True, text=True, check=True).stdout.strip()
    direct = json.loads(metadata.distribution("llama-cpp-python").read_text("direct_url.json")
                        or "{}")
    assert direct.get("url", "").startswith(f"file://{expected_dir}/"), (
        f"llama-cpp-python was not installed from the portable wheel in {expected_dir} "
        f"(installed from {direct.get('url')}); run `make clean-venv && make`")

    import llama_cpp
    info = llama_cpp.llama_print_system_info().decode()
    assert "AVX2 = 1" in info and "FMA = 1" in info, info  # built for x86-64-v3, not bare x86-64
    assert "AMX" not in info and "AVX512" not in info, info

    objdump = shutil.which("objdump")
    assert objdump, "objdump (binutils) is needed to inspect the built library"
    libs = sorted(_llama_lib_dir().glob("libggml-cpu*.so*"))
    assert libs, f"no libggml-cpu in {_llama_lib_dir()}"
    for lib in libs:
        asm = subprocess.run([objdump, "-d", "--no-show-raw-insn", str(lib)], capture_output=True,
                             text=True, check=True).stdout
        # AMX: tile registers and tile instructions; AVX-512: zmm and mask registers.
        amx = re.findall(r"\b(?:tdpb\w+|tileloadd\w*|tilestored|tilezero|ldtilecfg)\b|%tmm\d", asm)
        avx512 = re.findall(r"%zmm\d+|\{%k[1-7]\}", asm)
        assert not amx, f"{lib.name} contains AMX code, e.g. {amx[:3]}"
        assert not avx512, f"{lib.name} contains AVX-512 code, e.g. {avx512[:3]}"
        assert re.search(r"%ymm\d+", asm), f"{lib.name} has no AVX2 code: not the intended build"


def _llama_server_of(parent: int, alias: str) -> int | None:
    for p in Path("/proc").iterdir():
        if not p.name.isdigit():
            continue
        try:
            cmd = (p / "cmdline").read_bytes().split(b"\0")
            ppid = int((p / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        if ppid == parent and b"llama_cpp.server" in cmd and alias.encode() in cmd:
            return int(p.name)
    return None


@pytest.mark.slow
def test_a_llama_server_that_dies_mid_run_is_reported_and_the_run_resumes(
        tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'r.db'}"
    cmd = [SLAM, "run", "manifests/examples/local", "--limit", "3", "--store", url,
           "--no-progress"]
    env = {**os.environ, "COLUMNS": "200"}
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=env, cwd=REPO)
    try:
        store = Store.open(url)
        deadline = time.monotonic() + 300
        run = None
        while time.monotonic() < deadline and proc.poll() is None:
            run = run or store.find_run("pep-talk-local")
            if run and store.progress(run.id)[0] >= 1:
                break
            time.sleep(0.1)
        assert run is not None and proc.poll() is None, "the run never got going"
        server = _llama_server_of(proc.pid, "gemma-3-270m")
        assert server, "no llama.cpp server for gemma3 under slam run"
        os.kill(server, signal.SIGSEGV)  # what the AMX crash looks like from outside
        out, errs = proc.communicate(timeout=180)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 1, errs
    said = " ".join(errs.split())
    assert ("the llama.cpp server for gemma3 (ModelDeployment gemma3-270m) exited with signal "
            "11 (SIGSEGV) during the run; its last log lines:") in said, errs
    assert "rebuild the portable wheel" in said  # the crash hint
    assert "run the same command to resume" in said
    assert "StreamCut" not in out + errs and "Recommendation" not in out
    # The requests the crash cut were not stored as failures: resuming sends them again.
    done, failed, _ = store.progress(run.id)
    assert failed == 0
    again = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=REPO, timeout=600)
    assert again.returncode == 0, again.stderr
    assert f"{done} already stored" in " ".join(again.stderr.split())
    rows = store.responses(run.id)
    assert len(rows) == 6 and all(r["error_class"] is None for r in rows)
