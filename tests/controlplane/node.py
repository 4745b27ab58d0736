"""A real node for the test control plane: containerd + runc + kubelet + kube-proxy + CoreDNS.

Everything the node runs lives in one network namespace made for the test session (`NetNS`):

    node namespace   lo; bridge cni0 10.244.0.1/24 (the node's address, the pods' gateway)
    pods             10.244.0.0/24 (CNI bridge + host-local, Debian's containernetworking-plugins)
    Services         10.96.0.0/16 (the API server's range; kube-proxy's iptables rules live in the
                     node namespace); `kubernetes` is 10.96.0.1, cluster DNS 10.96.0.10
    DNS              CoreDNS (kubernetes plugin only) on 10.244.0.1:53, zone cluster.local

The namespace has no default route and no interface towards the host: a pod's traffic to any
address outside 10.244.0.0/24 and the Service range fails (network unreachable). The API server
and other test servers stay on the host's loopback; `Forwarder` listens on 10.244.0.1 inside the
namespace and connects to them (`expose`), and tests reach pods and Services the same way in the
other direction (`reach`). Nothing is routed, NATed or masqueraded.

Images come from podman's storage (`podman save` piped to `ctr images import`): no registry.
The pause image is a static binary compiled from the pinned Kubernetes source (build.sh).

`stop()` (also at interpreter exit) stops kubelet and kube-proxy, kills every container,
stops containerd and its shims, unmounts what the node mounted, removes its cgroups and deletes
the namespace.
"""

from __future__ import annotations

import atexit
import contextlib
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import tarfile
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import yaml

from tests.controlplane.cluster import (
    MARKER_ENV,
    ControlPlane,
    _die_with_parent,
    free_port,
    terminate,
)
from tests.controlplane.netns import Forwarder, NetNS, enter

NODE_IP = "10.244.0.1"
POD_CIDR = "10.244.0.0/24"
SERVICE_CIDR = "10.96.0.0/16"  # the API server's --service-cluster-ip-range (cluster.py)
API_SERVICE_IP = "10.96.0.1"
DNS_SERVICE_IP = "10.96.0.10"
API_PORT_ON_NODE = 6443
NODE_NAME = "slam-node"
CGROUP_V1 = Path("/sys/fs/cgroup")
REQUIRED = {"containerd": "containerd", "runc": "runc", "ctr": "containerd",
            "iptables": "iptables", "conntrack": "conntrack", "podman": "podman",
            "nsenter": "util-linux"}


def node_binaries(bin_dir: Path) -> dict[str, Path]:
    coredns = sorted(bin_dir.glob("coredns-*"))
    found = {b: bin_dir / b for b in ("kubelet", "kube-proxy", "pause")}
    if coredns:
        found["coredns"] = coredns[-1]
    missing = [b for b in ("kubelet", "kube-proxy", "pause", "coredns")
               if b not in found or not found[b].exists()]
    if missing:
        raise RuntimeError(f"node binaries missing in {bin_dir}: {missing}; "
                           "run `make control-plane`")
    return found


def missing_tools() -> list[str]:
    missing = [pkg for tool, pkg in REQUIRED.items() if not shutil.which(tool)]
    if not Path("/usr/lib/cni/bridge").exists():
        missing.append("containernetworking-plugins")
    return sorted(set(missing))


@dataclass
class Node:
    """One node named `slam-node`, joined to `cp`, with `images` (podman names) loaded."""

    cp: ControlPlane
    workdir: Path
    images: list[str] = field(default_factory=list)
    netns: NetNS = field(default_factory=NetNS)
    forwarder: Forwarder | None = None
    procs: dict[str, subprocess.Popen] = field(default_factory=dict)
    cgroup_root: str = field(default_factory=lambda: f"/slam-node-{uuid.uuid4().hex[:8]}")
    timings: dict[str, float] = field(default_factory=dict)
    pause_image: str = ""
    exposed: dict[int, int] = field(default_factory=dict)  # node port -> host port

    @property
    def sock(self) -> Path:
        return self.workdir / "containerd" / "containerd.sock"

    # -- start ----------------------------------------------------------------------------------

    def start(self, timeout: float = 180.0) -> Node:
        bins = node_binaries(self.cp.bin_dir)
        if missing := missing_tools():
            raise RuntimeError(f"the test node needs Debian packages {missing}: "
                               "run `make system-deps`")
        self.workdir.mkdir(parents=True, exist_ok=True)
        (self.workdir / "logs").mkdir(exist_ok=True)
        atexit.register(self.stop)
        self._start_reaper()
        try:
            self._step("network", self._network)
            self._step("containerd", self._containerd)
            self._step("images", lambda: self._images(bins["pause"]))
            self._step("kubelet", lambda: self._kubelet(bins["kubelet"]))
            self._step("kube-proxy", lambda: self._kube_proxy(bins["kube-proxy"]))
            self._step("dns", lambda: self._dns(bins["coredns"]))
            self._step("ready", lambda: self._wait_ready(timeout))
        except BaseException:
            self.stop()
            raise
        return self

    def _step(self, name: str, fn) -> None:
        t = time.monotonic()
        fn()
        self.timings[name] = round(time.monotonic() - t, 1)

    def _network(self) -> None:
        ns = self.netns.create()
        ns.ip("link", "add", "cni0", "type", "bridge")
        ns.ip("addr", "add", f"{NODE_IP}/24", "dev", "cni0")
        ns.ip("link", "set", "cni0", "up")
        # The node's own connections to Service addresses (the tests' `reach`) need a route
        # for the first lookup; kube-proxy's OUTPUT rules then rewrite them to a pod.
        ns.ip("route", "add", SERVICE_CIDR, "dev", "cni0", "src", NODE_IP)
        # Pod -> Service -> pod on the same bridge goes through the node's iptables rules.
        ns.sysctl({"net.ipv4.ip_forward": "1", "net.bridge.bridge-nf-call-iptables": "1"})
        self.forwarder = Forwarder()
        # The API server, as pods (through the `kubernetes` Service) and the node's own
        # components see it.
        self.expose(API_PORT_ON_NODE, self.cp.api_port)
        cni = self.workdir / "cni"
        (cni / "net.d").mkdir(parents=True, exist_ok=True)
        conf = {
            "cniVersion": "1.0.0",
            "name": "slam-pods",
            "plugins": [{
                "type": "bridge", "bridge": "cni0", "isGateway": True, "ipMasq": False,
                "hairpinMode": True,
                "ipam": {"type": "host-local", "dataDir": str(cni / "ipam"),
                         "ranges": [[{"subnet": POD_CIDR, "gateway": NODE_IP}]],
                         "routes": [{"dst": "0.0.0.0/0"}]},
            }],
        }
        (cni / "net.d" / "10-slam.conflist").write_text(json.dumps(conf, indent=1))

    def expose(self, node_port: int, host_port: int) -> None:
        """Make the host's 127.0.0.1:`host_port` reachable at 10.244.0.1:`node_port` in the node
        (once: exposing the same pair again is a no-op)."""
        assert self.forwarder is not None
        if self.exposed.get(node_port) == host_port:
            return
        self.exposed[node_port] = host_port
        self.forwarder.forward((NODE_IP, node_port), ("127.0.0.1", host_port),
                               listen_ns=self.netns.path)

    def reach(self, ip: str, port: int) -> int:
        """A host loopback port that connects to `ip`:`port` (a pod or Service) in the node."""
        assert self.forwarder is not None
        return self.forwarder.forward(("127.0.0.1", 0), (ip, port), target_ns=self.netns.path)

    def _spawn(self, name: str, args: list[str]) -> subprocess.Popen:
        log = open(self.workdir / "logs" / f"{name}.log", "ab")  # noqa: SIM115 - owned by Popen
        env = {**os.environ, MARKER_ENV: str(self.workdir)}
        path = self.netns.path

        def preexec() -> None:
            _die_with_parent()
            enter(path)

        proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, env=env, preexec_fn=preexec)
        log.close()
        self.procs[name] = proc
        return proc

    def _check_alive(self) -> None:
        for name, proc in self.procs.items():
            if proc.poll() is not None:
                raise RuntimeError(f"{name} exited with {proc.returncode}; "
                                   f"{self.workdir}/logs/{name}.log:\n{self.log_tail(name)}")

    def log_tail(self, name: str, lines: int = 30) -> str:
        path = self.workdir / "logs" / f"{name}.log"
        if not path.exists():
            return ""
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])

    def _containerd(self) -> None:
        d = self.workdir / "containerd"
        d.mkdir(exist_ok=True)
        self.pause_image = f"localhost/slam-pause:{self.cp.bin_dir.name}"
        cri = 'plugins."io.containerd.grpc.v1.cri"'
        config = f"""version = 2
root = "{d / 'root'}"
state = "{d / 'state'}"
disabled_plugins = ["io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs",
  "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.aufs",
  "io.containerd.tracing.processor.v1.otlp", "io.containerd.internal.v1.tracing"]
[grpc]
  address = "{self.sock}"
[ttrpc]
  address = "{d / 'ttrpc.sock'}"
[metrics]
  address = ""
[plugins."io.containerd.internal.v1.opt"]
  path = "{d / 'opt'}"
[{cri}]
  sandbox_image = "{self.pause_image}"
  # Processes here may not lower oom_score_adj below their own; runc fails without this.
  restrict_oom_score_adj = true
  enable_selinux = false
  [{cri}.containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [{cri}.containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [{cri}.containerd.runtimes.runc.options]
        SystemdCgroup = false
  [{cri}.cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "{self.workdir / 'cni' / 'net.d'}"
"""
        (d / "config.toml").write_text(config)
        self._spawn("containerd", ["containerd", "--config", str(d / "config.toml")])
        deadline = time.monotonic() + 60
        while self.ctr("version", check=False).returncode != 0:
            self._check_alive()
            if time.monotonic() > deadline:
                raise TimeoutError(f"containerd did not answer:\n{self.log_tail('containerd')}")
            time.sleep(0.2)

    def ctr(self, *args: str, check: bool = True, stdin=None, timeout: float = 600
            ) -> subprocess.CompletedProcess:
        return subprocess.run(["ctr", "--address", str(self.sock), "--namespace", "k8s.io",
                               *args], check=check, capture_output=True, text=True,
                              stdin=stdin, timeout=timeout)

    def _images(self, pause: Path) -> None:
        # The pause image: one layer holding the static binary, imported as an OCI archive.
        layer = io.BytesIO()
        with tarfile.open(fileobj=layer, mode="w") as tar:
            tar.add(pause, arcname="pause")
        tarball = self.workdir / "pause.tar"
        tarball.write_bytes(layer.getvalue())
        name = self.pause_image
        subprocess.run(["podman", "import", "--change", 'ENTRYPOINT ["/pause"]',
                        "--change", "USER 65535:65535", str(tarball), name],
                       check=True, capture_output=True, env=_podman_env())
        try:
            for image in [name, *self.images]:
                self.load(image)
        finally:
            subprocess.run(["podman", "rmi", name], capture_output=True, env=_podman_env())

    def load(self, image: str) -> None:
        """Copy an image from podman's storage into the node's containerd."""
        save = subprocess.Popen(["podman", "save", "--format", "docker-archive", image],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                env=_podman_env())
        try:
            out = self.ctr("images", "import", "-", stdin=save.stdout,
                           check=False)
        finally:
            assert save.stdout is not None
            save.stdout.close()
            err = save.stderr.read().decode() if save.stderr else ""
            save.wait(60)
        if save.returncode != 0 or out.returncode != 0:
            raise RuntimeError(f"loading {image} into the node failed: {err}{out.stderr}")

    def _kubeconfig(self) -> Path:
        path = self.workdir / "kubeconfig-node"
        cfg = yaml.safe_load(self.cp.kubeconfig.read_text())
        cfg["clusters"][0]["cluster"]["server"] = f"https://{NODE_IP}:{API_PORT_ON_NODE}"
        path.write_text(yaml.safe_dump(cfg))
        path.chmod(0o600)
        return path

    def _kubelet(self, kubelet: Path) -> None:
        for controller in _cgroup_controllers():
            (controller / self.cgroup_root.lstrip("/")).mkdir(exist_ok=True)
        d = self.workdir / "kubelet"
        d.mkdir(exist_ok=True)
        (d / "resolv.conf").write_text("")  # no search domains or resolvers of the host's
        config = {
            "apiVersion": "kubelet.config.k8s.io/v1beta1",
            "kind": "KubeletConfiguration",
            # This machine has cgroup v1 only (hybrid layout, no controllers in v2).
            "failCgroupV1": False,
            "cgroupDriver": "cgroupfs",
            "cgroupRoot": self.cgroup_root,
            "containerRuntimeEndpoint": f"unix://{self.sock}",
            "address": "127.0.0.1",
            "port": free_port(),
            "readOnlyPort": 0,
            "healthzPort": 0,
            "authentication": {"anonymous": {"enabled": False}, "webhook": {"enabled": False}},
            "authorization": {"mode": "AlwaysAllow"},
            "clusterDNS": [DNS_SERVICE_IP],
            "clusterDomain": "cluster.local",
            "resolvConf": str(d / "resolv.conf"),
            "podLogsDir": str(self.workdir / "pod-logs"),
            "failSwapOn": False,
            "protectKernelDefaults": False,
            "makeIPTablesUtilChains": False,
            "serializeImagePulls": False,
            # Images were loaded by hand and cannot be pulled again: never collect them.
            "imageGCHighThresholdPercent": 100,
            "imageGCLowThresholdPercent": 99,
            "evictionHard": {"memory.available": "100Mi", "nodefs.available": "1%",
                             "imagefs.available": "1%", "nodefs.inodesFree": "1%"},
            "syncFrequency": "5s",
            "fileCheckFrequency": "5s",
            "nodeStatusUpdateFrequency": "5s",
        }
        (d / "config.yaml").write_text(yaml.safe_dump(config))
        self._kubelet_args = [
            str(kubelet), f"--config={d / 'config.yaml'}", f"--kubeconfig={self._kubeconfig()}",
            f"--root-dir={d / 'root'}", f"--cert-dir={d / 'pki'}",
            f"--hostname-override={NODE_NAME}", f"--node-ip={NODE_IP}", "--v=1",
        ]
        self._spawn("kubelet", self._kubelet_args)

    # -- faults -------------------------------------------------------------------------------

    def restart_kubelet(self, down: float = 5.0, timeout: float = 120.0) -> None:
        """Stop the kubelet (SIGTERM, as systemd restarts it), leave it down `down` seconds and
        start it again with the same configuration; returns once the node is Ready. Containers
        keep running meanwhile: containerd owns them."""
        self._terminate("kubelet")
        time.sleep(down)
        started = datetime.now(UTC).replace(microsecond=0)
        self._spawn("kubelet", self._kubelet_args)
        self._wait_ready(timeout, since=started)

    def kill_pod(self, uid: str, sig: int = signal.SIGKILL) -> list[int]:
        """Send `sig` to every process of a pod's containers (not its sandbox's pause), as the
        kernel's OOM killer or a crash would end them; returns the pids signalled.

        The processes are listed first (every cgroup v1 hierarchy), then signalled, so that a
        container the kubelet restarts while the list is read is not killed a second time."""
        found: list[int] = []
        for controller in _cgroup_controllers():
            root = controller / self.cgroup_root.lstrip("/")
            for pod_dir in root.rglob(f"pod{uid}") if root.exists() else ():
                for procs in pod_dir.rglob("cgroup.procs"):
                    with contextlib.suppress(OSError):
                        for pid in map(int, procs.read_text().split()):
                            comm = Path(f"/proc/{pid}/comm").read_text().strip()
                            if comm != "pause" and pid not in found:
                                found.append(pid)
        if not found:
            raise RuntimeError(f"no process of pod {uid} under {self.cgroup_root}")
        killed = []
        for pid in found:
            with contextlib.suppress(ProcessLookupError):  # ended with its container's init
                os.kill(pid, sig)
                killed.append(pid)
        return killed

    def _kube_proxy(self, kube_proxy: Path) -> None:
        d = self.workdir / "kube-proxy"
        d.mkdir(exist_ok=True)
        config = {
            "apiVersion": "kubeproxy.config.k8s.io/v1alpha1",
            "kind": "KubeProxyConfiguration",
            "mode": "iptables",
            "clientConnection": {"kubeconfig": str(self._kubeconfig())},
            "hostnameOverride": NODE_NAME,
            "clusterCIDR": POD_CIDR,
            "bindAddress": NODE_IP,
            # The namespace's own loopback: no clash with anything on the host.
            "healthzBindAddress": "127.0.0.1:10256",
            "metricsBindAddress": "127.0.0.1:10249",
            "oomScoreAdj": 0,
            # Do not touch conntrack table sizes (host-wide settings).
            "conntrack": {"maxPerCore": 0, "min": 0},
            "iptables": {"syncPeriod": "5s", "minSyncPeriod": "0s"},
        }
        (d / "config.yaml").write_text(yaml.safe_dump(config))
        self._spawn("kube-proxy", [str(kube_proxy), f"--config={d / 'config.yaml'}", "--v=1"])

    def _dns(self, coredns: Path) -> None:
        """CoreDNS on the node's address, and the kube-dns Service that points at it."""
        from kubernetes import client, config

        d = self.workdir / "coredns"
        d.mkdir(exist_ok=True)
        (d / "Corefile").write_text(f"""cluster.local:53 in-addr.arpa:53 {{
    bind {NODE_IP}
    errors
    cache 5
    kubernetes cluster.local in-addr.arpa {{
        kubeconfig {self._kubeconfig()} slam-test
        pods insecure
    }}
}}
""")
        self._spawn("coredns", [str(coredns), "-conf", str(d / "Corefile")])
        api = config.new_client_from_config(str(self.cp.kubeconfig))
        core, discovery = client.CoreV1Api(api), client.DiscoveryV1Api(api)
        ports = [("dns", "UDP"), ("dns-tcp", "TCP")]
        _create(lambda: core.create_namespaced_service("kube-system", {
            "metadata": {"name": "kube-dns", "labels": {"k8s-app": "kube-dns"}},
            "spec": {"clusterIP": DNS_SERVICE_IP,
                     "ports": [{"name": n, "port": 53, "protocol": p} for n, p in ports]},
        }))
        # Selector-less Services: their endpoints are the node's address, kept by the tests.
        for ns, name, slice_ports in (
            ("kube-system", "kube-dns", [{"name": n, "port": 53, "protocol": p} for n, p in ports]),
            ("default", "kubernetes", [{"name": "https", "port": API_PORT_ON_NODE,
                                        "protocol": "TCP"}]),
        ):
            _create(lambda ns=ns, name=name, slice_ports=slice_ports:
                    discovery.create_namespaced_endpoint_slice(ns, {
                        "metadata": {"name": f"{name}-node", "labels": {
                            "kubernetes.io/service-name": name,
                            "endpointslice.kubernetes.io/managed-by": "slam-test-node"}},
                        "addressType": "IPv4",
                        "endpoints": [{"addresses": [NODE_IP], "conditions": {"ready": True}}],
                        "ports": slice_ports,
                    }))

    def _wait_ready(self, timeout: float, since: datetime | None = None) -> None:
        """Until the node is Ready, by a status the kubelet posted at or after `since`."""
        from kubernetes import client, config

        core = client.CoreV1Api(config.new_client_from_config(str(self.cp.kubeconfig)))
        deadline = time.monotonic() + timeout
        last = "not registered"
        while time.monotonic() < deadline:
            self._check_alive()
            with contextlib.suppress(client.ApiException):
                node = core.read_node(NODE_NAME)
                conds = {c.type: c for c in node.status.conditions or []}
                ready = conds.get("Ready")
                if ready and ready.status == "True" and (
                        since is None or ready.last_heartbeat_time >= since):
                    return
                last = f"{ready.reason}: {ready.message}" if ready else "no Ready condition"
            time.sleep(0.5)
        raise TimeoutError(f"node {NODE_NAME} not Ready after {timeout}s ({last}):\n"
                           f"{self.log_tail('kubelet')}")

    # -- stop ---------------------------------------------------------------------------------

    def _start_reaper(self) -> None:
        """A process outside the session that cleans up if this one dies without stop()
        (SIGKILL): containers and containerd's shims do not die with their parent."""
        self._reaper = subprocess.Popen(
            [sys.executable, "-m", "tests.controlplane.node", "reap", str(os.getpid()),
             str(self.workdir), self.netns.name, self.cgroup_root],
            cwd=str(Path(__file__).resolve().parents[2]), start_new_session=True,
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=open(self.workdir / "logs" / "reaper.log", "ab"))  # noqa: SIM115

    def stop(self) -> None:
        reaper = getattr(self, "_reaper", None)
        if reaper is not None and reaper.poll() is None:
            reaper.terminate()
            reaper.wait(10)
        for name in ("kubelet", "kube-proxy", "coredns"):
            self._terminate(name)
        cleanup(self.workdir, self.netns, self.cgroup_root,
                stop_containerd=lambda: self._terminate("containerd"))
        if self.forwarder is not None:
            self.forwarder.close()
            self.forwarder = None

    def _terminate(self, name: str, grace: float = 15.0) -> None:
        terminate(self.procs.pop(name, None), grace)


def _cgroup_pids(cgroup_root: str) -> set[int]:
    pids: set[int] = set()
    for controller in _cgroup_controllers():
        root = controller / cgroup_root.lstrip("/")
        for procs in root.rglob("cgroup.procs") if root.exists() else ():
            with contextlib.suppress(OSError):
                pids |= {int(x) for x in procs.read_text().split()}
    return pids


def cleanup(workdir: Path, netns: NetNS, cgroup_root: str,
            stop_containerd=lambda: None) -> None:
    """Stop everything a node started, whether or not its processes are still there: the
    containers (every process in the node's cgroups), containerd and its shims (marked),
    the pods' network namespaces (matched by inode: the ones our containers were in), mounts
    under `workdir`, the cgroups and the node's namespace."""
    from tests.controlplane.cluster import processes_marked

    pod_netns: set[int] = set()
    deadline = time.monotonic() + 20
    while (pids := _cgroup_pids(cgroup_root)) and time.monotonic() < deadline:
        for pid in pids:
            with contextlib.suppress(OSError):
                pod_netns.add(os.stat(f"/proc/{pid}/ns/net").st_ino)
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.2)
    stop_containerd()
    for pid, _ in processes_marked(workdir):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    node_ino = os.stat(netns.path).st_ino if netns.path.exists() else None
    for path in Path("/run/netns").glob("cni-*"):
        with contextlib.suppress(OSError):
            if os.stat(path).st_ino in pod_netns and os.stat(path).st_ino != node_ino:
                subprocess.run(["umount", str(path)], capture_output=True)
                path.unlink()
    prefix = str(workdir) + "/"
    mounts = [line.split()[4] for line in Path("/proc/self/mountinfo").read_text().splitlines()]
    for target in sorted((m for m in mounts if m.startswith(prefix)), key=len, reverse=True):
        subprocess.run(["umount", "--lazy", target], capture_output=True)
    for controller in _cgroup_controllers():
        root = controller / cgroup_root.lstrip("/")
        if not root.exists():
            continue
        for d in sorted((p for p in root.rglob("*") if p.is_dir()),
                        key=lambda p: len(p.parts), reverse=True):
            with contextlib.suppress(OSError):
                d.rmdir()
        with contextlib.suppress(OSError):
            root.rmdir()
    netns.delete()
    # The images' copy (~17 GB with the scoring image): pytest keeps its last temporary dirs.
    shutil.rmtree(workdir / "containerd" / "root", ignore_errors=True)


def reap(pid: int, workdir: Path, netns: str, cgroup_root: str) -> None:
    """Wait for the test process to end; if it ended without stop(), clean up after it."""
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))  # stop() ran: nothing to do
    while True:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.5)
    cleanup(workdir, NetNS(netns), cgroup_root)


def _cgroup_controllers() -> list[Path]:
    """Every mounted hierarchy: the v1 controllers and the (controller-less) v2 one, where the
    kubelet makes its cgroups too."""
    return [p for p in CGROUP_V1.iterdir() if p.is_dir() and (p / "cgroup.procs").exists()]


def _create(fn) -> None:
    from kubernetes import client

    try:
        fn()
    except client.ApiException as e:
        if e.status != 409:
            raise


def _podman_env() -> dict[str, str]:
    from tests.controlplane.cluster import REPO

    return {**os.environ, "CONTAINERS_CONF": str(REPO / "images" / "containers.conf")}


if __name__ == "__main__":
    if len(sys.argv) == 6 and sys.argv[1] == "reap":
        reap(int(sys.argv[2]), Path(sys.argv[3]), sys.argv[4], sys.argv[5])
