"""Nothing the node started outlives its test session, even when that session is SIGKILLed:
containers, containerd's shims, the pods' network namespaces, mounts and cgroups."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from tests.controlplane.cluster import REPO, processes_marked

SESSION = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from kubernetes import client, config
    from tests.controlplane.cluster import ControlPlane
    from tests.controlplane.node import Node
    work = Path(sys.argv[1])
    cp = ControlPlane(work / "cp", with_scheduler=True).start()
    node = Node(cp, work / "node").start()
    core = client.CoreV1Api(config.new_client_from_config(str(cp.kubeconfig)))
    pod = {"metadata": {"name": "p"}, "spec": {"containers": [
        {"name": "c", "image": node.pause_image}]}}
    while True:  # until the controller manager has made the default ServiceAccount
        try:
            core.create_namespaced_pod("default", pod)
            break
        except client.ApiException:
            time.sleep(0.5)
    while core.read_namespaced_pod("p", "default").status.phase != "Running":
        time.sleep(0.5)
    print(node.netns.name, node.cgroup_root, flush=True)
    time.sleep(600)
""")


def test_nothing_of_the_node_is_left_after_a_killed_session(tmp_path: Path) -> None:
    before = set(Path("/run/netns").iterdir()) if Path("/run/netns").exists() else set()
    with open(tmp_path / "session.log", "w") as log:
        proc = subprocess.Popen([sys.executable, "-c", SESSION, str(tmp_path)], cwd=REPO,
                                stdout=subprocess.PIPE, stderr=log, text=True)
    try:
        line = proc.stdout.readline().split()
        assert len(line) == 2, (tmp_path / "session.log").read_text()[-3000:]
        netns, cgroup_root = line
        running = set(Path("/run/netns").iterdir()) - before
        assert Path("/run/netns") / netns in running
        assert len(running) == 2  # the node's namespace and the pod's
        assert list(Path("/sys/fs/cgroup/pids", cgroup_root.lstrip("/")).rglob("cgroup.procs"))
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        left = {
            "processes": processes_marked(tmp_path),
            "netns": sorted(str(p) for p in set(Path("/run/netns").iterdir()) - before),
            "mounts": [m for m in Path("/proc/self/mountinfo").read_text().splitlines()
                       if str(tmp_path) in m],
            "images' copy": [str(p) for p in [tmp_path / "node" / "containerd" / "root"]
                             if p.exists()],
            "cgroups": [str(p) for p in
                        Path("/sys/fs/cgroup").glob(f"*/{cgroup_root.lstrip('/')}")],
        }
        if not any(left.values()):
            break
        time.sleep(1)
    assert not any(left.values()), left
