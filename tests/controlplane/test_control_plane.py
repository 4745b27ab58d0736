"""The test control plane is real: controllers run, garbage collection works, RBAC is enforced,
and no process it started outlives the test session, however the session ends."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from kubernetes import client, config

from tests.conftest import NOBODY
from tests.controlplane.cluster import REPO, ControlPlane, processes_marked


def wait_for(predicate, timeout: float = 60.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    raise TimeoutError(f"timed out after {timeout}s waiting for {what}")


def test_controller_manager_creates_pods_for_deployments_and_jobs(k8s, namespace) -> None:
    apps, batch, core = client.AppsV1Api(k8s), client.BatchV1Api(k8s), client.CoreV1Api(k8s)
    labels = {"app": "probe"}
    pod = {"containers": [{"name": "c", "image": "busybox:1.36", "command": ["true"]}]}
    apps.create_namespaced_deployment(namespace, {
        "metadata": {"name": "probe"},
        "spec": {"replicas": 2, "selector": {"matchLabels": labels},
                 "template": {"metadata": {"labels": labels}, "spec": pod}},
    })
    batch.create_namespaced_job(namespace, {
        "metadata": {"name": "once"},
        "spec": {"template": {"spec": {**pod, "restartPolicy": "Never"}}},
    })
    wait_for(lambda: len(core.list_namespaced_pod(namespace, label_selector="app=probe").items)
             == 2, what="Deployment pods")
    wait_for(lambda: core.list_namespaced_pod(namespace, label_selector="job-name=once").items,
             what="Job pod")


def test_owner_reference_garbage_collection(k8s, namespace) -> None:
    objects, core = client.CustomObjectsApi(k8s), client.CoreV1Api(k8s)
    owner = objects.create_namespaced_custom_object(
        "slam.dev", "v1alpha1", namespace, "modeldeployments",
        {"apiVersion": "slam.dev/v1alpha1", "kind": "ModelDeployment",
         "metadata": {"name": "owner"}, "spec": {"model": {"id": "org/model"}}},
    )
    core.create_namespaced_config_map(namespace, {
        "metadata": {"name": "child", "ownerReferences": [{
            "apiVersion": "slam.dev/v1alpha1", "kind": "ModelDeployment", "name": "owner",
            "uid": owner["metadata"]["uid"], "controller": True, "blockOwnerDeletion": True,
        }]},
    })
    objects.delete_namespaced_custom_object(
        "slam.dev", "v1alpha1", namespace, "modeldeployments", "owner"
    )

    def gone() -> bool:
        try:
            core.read_namespaced_config_map("child", namespace)
        except client.ApiException as e:
            return e.status == 404
        return False

    wait_for(gone, what="the owned ConfigMap to be garbage-collected")


def test_rbac_is_enforced(control_plane: ControlPlane, namespace) -> None:
    nobody = config.new_client_from_config(str(control_plane.kubeconfig_for(NOBODY)))
    with pytest.raises(client.ApiException) as info:
        client.CustomObjectsApi(nobody).list_namespaced_custom_object(
            "slam.dev", "v1alpha1", namespace, "modeldeployments"
        )
    assert info.value.status == 403


INNER_CONFTEST = (
    "import faulthandler, os, signal\n"
    "from tests.conftest import control_plane, k8s, namespace  # noqa: F401\n"
    # SIGUSR1 writes every thread's stack to $INNER_STACKS: where a session that does not stop
    # is stuck (a file: pytest captures the session's stderr).
    "STACKS = open(os.environ['INNER_STACKS'], 'w')  # noqa: SIM115\n"
    "faulthandler.register(signal.SIGUSR1, file=STACKS, all_threads=True)\n")
INNER_TESTS = textwrap.dedent('''
    import os, pathlib, time

    def test_fails(control_plane):
        assert False, "a failing test must not leak the control plane"

    def test_hangs(control_plane):
        pathlib.Path(os.environ["INNER_READY"]).write_text("up")
        time.sleep(600)
''')


def _inner_session(tmp_path: Path, select: str) -> tuple[subprocess.Popen, Path, Path]:
    (tmp_path / "conftest.py").write_text(INNER_CONFTEST)
    (tmp_path / "test_inner.py").write_text(INNER_TESTS)
    workdir, ready = tmp_path / "cp", tmp_path / "ready"
    env = {**os.environ, "PYTHONPATH": str(REPO), "SLAM_TEST_CONTROL_PLANE_DIR": str(workdir),
           "INNER_READY": str(ready), "INNER_STACKS": str(tmp_path / "stacks.txt")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-k", select,
         "--rootdir", str(tmp_path), str(tmp_path / "test_inner.py")],
        env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        # Ctrl-C reaches a developer's session. A test run started in the background by a
        # non-interactive shell ignores SIGINT, and the child would inherit that (SigIgn):
        # the session then never sees the Ctrl-C (what made this test hang in such a run).
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    return proc, workdir, ready


# The inner session starts a whole control plane and, on SIGINT, stops it gracefully (each
# process gets SIGTERM and up to 15 s): on a loaded 2-core machine that took over 120 s once
# (issue 11). What is tested is that nothing is left, not how fast, so the waits are generous.
INNER_START_SECONDS = 300
INNER_EXIT_SECONDS = 240


def _assert_nothing_left(workdir: Path) -> None:
    # A SIGKILLed parent's children get their death signal at once, but give the kernel a moment.
    try:
        wait_for(lambda: not processes_marked(workdir), timeout=60, what="processes to exit")
    except TimeoutError:
        pytest.fail(f"left running: {processes_marked(workdir)}")


def test_nothing_left_after_a_failing_session(tmp_path: Path) -> None:
    proc, workdir, _ = _inner_session(tmp_path, "test_fails")
    out, _ = proc.communicate(timeout=INNER_START_SECONDS + INNER_EXIT_SECONDS)
    assert proc.returncode == 1, out
    assert "1 failed" in out
    assert (workdir / "kubeconfig").exists(), "the control plane never started"
    _assert_nothing_left(workdir)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGKILL], ids=["interrupted", "killed"])
def test_nothing_left_after_an_interrupted_or_killed_session(tmp_path: Path, sig) -> None:
    proc, workdir, ready = _inner_session(tmp_path, "test_hangs")
    try:
        wait_for(ready.exists, timeout=INNER_START_SECONDS,
                 what="the inner session's control plane")
        assert processes_marked(workdir), "the inner control plane is not running"
        proc.send_signal(sig)
        try:
            proc.communicate(timeout=INNER_EXIT_SECONDS)
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGUSR1)  # where it is stuck, for the failure message
            time.sleep(2)
            stacks = (tmp_path / "stacks.txt").read_text()
            pytest.fail(f"the session did not stop {INNER_EXIT_SECONDS} s after {sig.name}; "
                        f"its threads:\n{stacks[-4000:]}")
    finally:
        if proc.poll() is None:
            proc.kill()
    _assert_nothing_left(workdir)
