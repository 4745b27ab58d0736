"""A real Kubernetes control plane for tests: etcd, kube-apiserver, kube-controller-manager and,
with a node (node.py), kube-scheduler.

The binaries come from `make control-plane` (tests/controlplane/build.sh). `ControlPlane.start()`
runs them on free loopback ports with a generated CA and serving certificate, static bearer
tokens, RBAC authorization, and writes a kubeconfig. Every process is started in its own process
group with PR_SET_PDEATHSIG, so it dies with the Python process even when that is SIGKILLed;
`stop()` (also run at interpreter exit) terminates the groups and waits for them.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import datetime as dt
import ipaddress
import os
import secrets
import signal
import socket
import ssl
import subprocess
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
GOMOD = REPO / "tests" / "controlplane" / "gomod"
BINARIES = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler")
# Marks every process the tests start, so a test can prove that none is left behind.
MARKER_ENV = "SLAM_TEST_CONTROL_PLANE"


def go_mod_version(module: str, gomod: Path = GOMOD) -> str:
    """The version of `module` pinned in `gomod`/go.mod (the control plane's, or a tool's)."""
    for line in (gomod / "go.mod").read_text().splitlines():
        parts = line.split()
        if len(parts) >= 2 and parts[0] in (module, "require") and module in parts:
            return parts[parts.index(module) + 1]
    raise RuntimeError(f"{module} is not pinned in {gomod / 'go.mod'}")


def binary_dir() -> Path:
    """Where build.sh caches the binaries for the pinned versions."""
    cache = Path(os.environ.get("SLAM_CACHE", Path.home() / ".cache" / "slam"))
    k8s = go_mod_version("k8s.io/kubernetes")
    etcd = go_mod_version("go.etcd.io/etcd/server/v3")
    return cache / "controlplane" / f"k8s-{k8s}_etcd-{etcd}"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _die_with_parent() -> None:
    """preexec_fn: SIGKILL this child when the process that started it dies; own process group."""
    os.setsid()
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    pr_set_pdeathsig = 1
    libc.prctl(pr_set_pdeathsig, signal.SIGKILL)


def _write_pki(d: Path) -> None:
    """A throwaway CA, a serving certificate for 127.0.0.1/localhost, and a service-account key."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec, rsa
    from cryptography.x509.oid import NameOID

    now = dt.datetime.now(dt.UTC)

    def pem_key(key) -> bytes:
        return key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "slam-test-ca")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=2))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True, key_cert_sign=True, crl_sign=True,
                content_commitment=False, key_encipherment=False, data_encipherment=False,
                key_agreement=False, encipher_only=False, decipher_only=False,
            ),
            critical=True,
        )
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "kube-apiserver")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=2))
        .add_extension(
            x509.SubjectAlternativeName(
                [
                    x509.DNSName("localhost"),
                    x509.DNSName("kubernetes.default.svc"),
                    x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                    # The `kubernetes` Service and the test node's address (node.py), where
                    # pods and the node's components reach the API server.
                    x509.IPAddress(ipaddress.ip_address("10.96.0.1")),
                    x509.IPAddress(ipaddress.ip_address("10.244.0.1")),
                ]
            ),
            critical=False,
        )
        .add_extension(
            x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    sa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    (d / "ca.crt").write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    (d / "apiserver.crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (d / "apiserver.key").write_bytes(pem_key(key))
    (d / "sa.key").write_bytes(pem_key(sa_key))
    (d / "sa.pub").write_bytes(
        sa_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )


@dataclass
class User:
    """A static-token identity known to the API server."""

    name: str
    token: str
    groups: tuple[str, ...] = ()


@dataclass
class ControlPlane:
    """etcd + kube-apiserver + kube-controller-manager under `workdir`."""

    workdir: Path
    bin_dir: Path = field(default_factory=binary_dir)
    with_controller_manager: bool = True
    # Off by default: without a node, operator tests play the kubelet on unscheduled pods.
    with_scheduler: bool = False
    extra_users: list[User] = field(default_factory=list)
    users: list[User] = field(default_factory=list)
    procs: dict[str, subprocess.Popen] = field(default_factory=dict)
    api_port: int = 0
    etcd_port: int = 0

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.api_port}"

    @property
    def kubeconfig(self) -> Path:
        return self.workdir / "kubeconfig"

    @property
    def admin(self) -> User:
        return self.users[0]

    def start(self, timeout: float = 120.0) -> ControlPlane:
        missing = [b for b in BINARIES if not (self.bin_dir / b).exists()]
        if missing:
            raise RuntimeError(
                f"control-plane binaries missing in {self.bin_dir}: {missing}; "
                "run `make control-plane`"
            )
        self.workdir.mkdir(parents=True, exist_ok=True)
        (self.workdir / "logs").mkdir(exist_ok=True)
        _write_pki(self.workdir)
        self.users = [
            User("slam-admin", secrets.token_hex(16), ("system:masters",)),
            User("system:kube-controller-manager", secrets.token_hex(16)),
            User("system:kube-scheduler", secrets.token_hex(16)),
            *self.extra_users,
        ]
        self._write_tokens()
        atexit.register(self.stop)
        try:
            self._start_etcd()
            self._start_apiserver(timeout)
            self._write_kubeconfig(self.kubeconfig, self.admin)
            if self.with_controller_manager:
                self._start_controller_manager()
            if self.with_scheduler:
                self._start_scheduler()
        except BaseException:
            self.stop()
            raise
        return self

    def kubeconfig_for(self, name: str) -> Path:
        """A kubeconfig for a token user, with no permissions beyond what RBAC grants it.

        The API server reads its token file at start-up, so users are declared before `start()`
        (`extra_users`).
        """
        for u in self.users:
            if u.name == name:
                path = self.workdir / f"kubeconfig-{name.replace(':', '-')}"
                self._write_kubeconfig(path, u)
                return path
        raise KeyError(f"user {name} was not declared in extra_users before start()")

    # -- processes ------------------------------------------------------------------------------

    def _spawn(self, name: str, args: list[str]) -> subprocess.Popen:
        log = open(self.workdir / "logs" / f"{name}.log", "ab")  # noqa: SIM115 - owned by Popen
        env = {**os.environ, MARKER_ENV: str(self.workdir)}
        proc = subprocess.Popen(
            [str(self.bin_dir / name), *args],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            preexec_fn=_die_with_parent,
        )
        log.close()
        self.procs[name] = proc
        return proc

    def _start_etcd(self) -> None:
        self.etcd_port = free_port()
        peer = free_port()
        self._spawn(
            "etcd",
            [
                "--name=default",
                f"--data-dir={self.workdir / 'etcd'}",
                f"--listen-client-urls=http://127.0.0.1:{self.etcd_port}",
                f"--advertise-client-urls=http://127.0.0.1:{self.etcd_port}",
                f"--listen-peer-urls=http://127.0.0.1:{peer}",
                f"--initial-advertise-peer-urls=http://127.0.0.1:{peer}",
                f"--initial-cluster=default=http://127.0.0.1:{peer}",
                # Test data only: skip fsync, which dominates etcd latency on shared disks.
                "--unsafe-no-fsync",
                "--log-level=warn",
            ],
        )

    def _start_apiserver(self, timeout: float, port: int | None = None) -> None:
        self.api_port = port or free_port()
        d = self.workdir
        self._spawn(
            "kube-apiserver",
            [
                f"--etcd-servers=http://127.0.0.1:{self.etcd_port}",
                "--bind-address=127.0.0.1",
                "--advertise-address=127.0.0.1",
                f"--secure-port={self.api_port}",
                f"--tls-cert-file={d / 'apiserver.crt'}",
                f"--tls-private-key-file={d / 'apiserver.key'}",
                f"--token-auth-file={d / 'tokens.csv'}",
                "--authorization-mode=RBAC",
                "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
                f"--service-account-key-file={d / 'sa.pub'}",
                f"--service-account-signing-key-file={d / 'sa.key'}",
                # A /16: benchmarks create hundreds of Services (a /24 runs out at 253).
                "--service-cluster-ip-range=10.96.0.0/16",
                # The loopback address cannot be published as the `kubernetes` Service endpoint.
                "--endpoint-reconciler-type=none",
                "--v=1",
            ],
        )
        self._wait_ready(timeout)

    def _start_controller_manager(self) -> None:
        kubeconfig = self.kubeconfig_for("system:kube-controller-manager")
        self._spawn(
            "kube-controller-manager",
            [
                f"--kubeconfig={kubeconfig}",
                "--bind-address=127.0.0.1",
                f"--secure-port={free_port()}",
                "--leader-elect=false",
                f"--service-account-private-key-file={self.workdir / 'sa.key'}",
                f"--root-ca-file={self.workdir / 'ca.crt'}",
                "--use-service-account-credentials=true",
                "--v=1",
            ],
        )

    def _start_scheduler(self) -> None:
        kubeconfig = self.kubeconfig_for("system:kube-scheduler")
        self._spawn(
            "kube-scheduler",
            [
                f"--kubeconfig={kubeconfig}",
                f"--authentication-kubeconfig={kubeconfig}",
                f"--authorization-kubeconfig={kubeconfig}",
                "--bind-address=127.0.0.1",
                f"--secure-port={free_port()}",
                "--leader-elect=false",
                "--v=1",
            ],
        )

    def _wait_ready(self, timeout: float) -> None:
        ctx = ssl.create_default_context(cafile=str(self.workdir / "ca.crt"))
        deadline = time.monotonic() + timeout
        last = "no answer"
        while time.monotonic() < deadline:
            for name, proc in self.procs.items():
                if proc.poll() is not None:
                    raise RuntimeError(
                        f"{name} exited with {proc.returncode}; "
                        f"see {self.workdir}/logs/{name}.log:\n{self.log_tail(name)}"
                    )
            req = urllib.request.Request(
                f"{self.url}/readyz", headers={"Authorization": f"Bearer {self.admin.token}"}
            )
            try:
                with urllib.request.urlopen(req, context=ctx, timeout=5) as r:
                    if r.status == 200:
                        return
            except OSError as e:  # not listening yet, or not ready (HTTP 500)
                last = str(e)
            time.sleep(0.25)
        raise TimeoutError(f"kube-apiserver not ready after {timeout}s ({last})")

    def log_tail(self, name: str, lines: int = 30) -> str:
        path = self.workdir / "logs" / f"{name}.log"
        if not path.exists():
            return ""
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])

    def restart_apiserver(self, timeout: float = 120.0) -> None:
        """Stop and start kube-apiserver on the same port (for watch-recovery tests)."""
        self._terminate("kube-apiserver")
        self._start_apiserver(timeout, port=self.api_port)

    def _terminate(self, name: str, grace: float = 10.0) -> None:
        terminate(self.procs.pop(name, None), grace)

    def stop(self) -> None:
        # Reverse start order: controller manager, API server, then etcd.
        for name in reversed(list(self.procs)):
            self._terminate(name)

    # -- files ----------------------------------------------------------------------------------

    def _write_tokens(self) -> None:
        lines = []
        for i, u in enumerate(self.users):
            groups = ",".join(u.groups)
            lines.append(f'{u.token},{u.name},uid-{i},"{groups}"' if groups else
                         f"{u.token},{u.name},uid-{i}")
        (self.workdir / "tokens.csv").write_text("\n".join(lines) + "\n")

    def _write_kubeconfig(self, path: Path, user: User) -> None:
        cfg = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {
                    "name": "slam-test",
                    "cluster": {
                        "server": self.url,
                        "certificate-authority": str(self.workdir / "ca.crt"),
                    },
                }
            ],
            "users": [{"name": user.name, "user": {"token": user.token}}],
            "contexts": [
                {"name": "slam-test", "context": {"cluster": "slam-test", "user": user.name}}
            ],
            "current-context": "slam-test",
        }
        path.write_text(yaml.safe_dump(cfg))
        path.chmod(0o600)


def terminate(proc: subprocess.Popen | None, grace: float) -> None:
    """SIGTERM a process group started by _spawn, SIGKILL it after `grace` seconds."""
    if proc is None or proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(grace)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(5)


def processes_marked(workdir: Path | None = None) -> list[tuple[int, str]]:
    """(pid, command) of live processes that a ControlPlane started (under `workdir`, if given)."""
    found = []
    for p in Path("/proc").iterdir():
        if not p.name.isdigit():
            continue
        try:
            env = (p / "environ").read_bytes().split(b"\0")
            cmd = (p / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            stat = (p / "stat").read_text()
        except OSError:
            continue
        if stat.rsplit(")", 1)[-1].split()[0] == "Z":  # a zombie is already dead
            continue
        for item in env:
            if item.startswith(MARKER_ENV.encode() + b"="):
                where = item.split(b"=", 1)[1].decode()
                if workdir is None or where.startswith(str(workdir)):
                    found.append((int(p.name), cmd.strip()))
    return found


def apply_crds(cp: ControlPlane, directory: Path, timeout: float = 60.0) -> list[str]:
    """Create (or replace) every CRD in `directory` and wait until each is Established."""
    from kubernetes import client, config

    api = client.ApiextensionsV1Api(config.new_client_from_config(str(cp.kubeconfig)))
    names = []
    for path in sorted(directory.glob("*.yaml")):
        if path.name == "kustomization.yaml":
            continue
        crd = yaml.safe_load(path.read_text())
        name = crd["metadata"]["name"]
        try:
            api.create_custom_resource_definition(crd)
        except client.ApiException as e:
            if e.status != 409:
                raise RuntimeError(f"{path.name} was rejected: {e.body}") from e
            current = api.read_custom_resource_definition(name)
            crd["metadata"]["resourceVersion"] = current.metadata.resource_version
            api.replace_custom_resource_definition(name, crd)
        names.append(name)
    deadline = time.monotonic() + timeout
    for name in names:
        while True:
            conds = api.read_custom_resource_definition(name).status.conditions or []
            if any(c.type == "Established" and c.status == "True" for c in conds):
                break
            if time.monotonic() > deadline:
                raise TimeoutError(f"CRD {name} not Established after {timeout}s: {conds}")
            time.sleep(0.1)
    return names
