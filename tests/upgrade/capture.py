"""Records what a previous release's operator made of tests/upgrade/<release>/objects.yaml, so
that tests/operator/test_upgrade.py can start from a cluster that release left behind.

    git worktree add /tmp/old <release commit>
    .venv/bin/python -m tests.upgrade.capture /tmp/old tests/upgrade/<release>

runs the old operator (its own source on PYTHONPATH) against a fresh control plane with the old
CRDs and the stand-in Hub, creates the objects, waits until it has reconciled them, and writes
state.yaml: each object's annotations and status, and each child as the old operator created it
(server-set fields and owner references left out; the test re-links them).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml
from kubernetes import client, config

from tests.controlplane.cluster import ControlPlane, apply_crds, free_port
from tests.fakes.hub import FakeHub, Repo

NAMESPACE = "upgrade"
# The Secrets objects.yaml refers to (the test creates the same).
SECRETS = {"openai": {"api-key": "upgrade-test-key"},
           "slam-store": {"url": "sqlite:////tmp/slam-upgrade-test.db"}}
SERVER_SET = ("uid", "resourceVersion", "creationTimestamp", "managedFields", "generation",
              "ownerReferences", "selfLink")


def _clean(obj: dict) -> dict:
    obj.pop("status", None)
    for key in SERVER_SET:
        obj["metadata"].pop(key, None)
    obj["metadata"].pop("namespace", None)
    return obj


def _wait(fn, what: str, timeout: float = 90):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            value = fn()
            if value:
                return value
        except (client.ApiException, KeyError):
            pass
        time.sleep(0.5)
    raise TimeoutError(what)


def capture(old_tree: Path, release_dir: Path) -> dict:
    work = Path(tempfile.mkdtemp(prefix="slam-capture-"))
    cp = ControlPlane(work / "cp").start()
    hub = FakeHub().start()
    hub.repos["mistralai/Mistral-7B-Instruct-v0.2"] = Repo(parameters=7_241_732_096)
    proc = None
    try:
        apply_crds(cp, release_dir / "crds")
        k8s = config.new_client_from_config(str(cp.kubeconfig))
        core, custom = client.CoreV1Api(k8s), client.CustomObjectsApi(k8s)
        core.create_namespace({"metadata": {"name": NAMESPACE}})
        for name, data in SECRETS.items():
            core.create_namespaced_secret(NAMESPACE, client.V1Secret(
                metadata=client.V1ObjectMeta(name=name), string_data=data))
        env = {**os.environ, "KUBECONFIG": str(cp.kubeconfig), "HF_ENDPOINT": hub.url,
               "PYTHONPATH": f"{old_tree / 'engine'}:{old_tree / 'operator'}",
               "SLAM_METRICS_PORT": str(free_port()), "SLAM_HEALTH_PORT": str(free_port())}
        proc = subprocess.Popen([sys.executable, "-m", "slam_operator"], env=env,
                                stdout=(work / "operator.log").open("wb"),
                                stderr=subprocess.STDOUT)
        objects = [d for d in yaml.safe_load_all((release_dir / "objects.yaml").read_text()) if d]
        plural = {"ModelDeployment": "modeldeployments", "Evaluation": "evaluations"}
        for obj in objects:
            custom.create_namespaced_custom_object("slam.dev", "v1alpha1", NAMESPACE,
                                                   plural[obj["kind"]], obj)
        state: dict = {"objects": [], "children": []}
        for obj in objects:
            name, kind = obj["metadata"]["name"], obj["kind"]

            def settled(name=name, kind=kind):
                o = custom.get_namespaced_custom_object("slam.dev", "v1alpha1", NAMESPACE,
                                                        plural[kind], name)
                st = o.get("status") or {}
                return o if st.get("observedGeneration") == o["metadata"]["generation"] and (
                    kind != "Evaluation" or st.get("phase") == "Running") else None

            o = _wait(settled, f"{kind} {name} reconciled by the old operator")
            time.sleep(2)  # let the handler's last patches land
            o = custom.get_namespaced_custom_object("slam.dev", "v1alpha1", NAMESPACE,
                                                    plural[kind], name)
            state["objects"].append({"kind": kind, "name": name,
                                     "annotations": o["metadata"].get("annotations") or {},
                                     "status": o.get("status") or {}})
        api = k8s.sanitize_for_serialization
        for d in client.AppsV1Api(k8s).list_namespaced_deployment(NAMESPACE).items:
            state["children"].append(_clean(api(d)) | {"apiVersion": "apps/v1",
                                                        "kind": "Deployment"})
        for s in core.list_namespaced_service(NAMESPACE).items:
            svc = _clean(api(s)) | {"apiVersion": "v1", "kind": "Service"}
            for key in ("clusterIP", "clusterIPs"):
                svc["spec"].pop(key, None)
            state["children"].append(svc)
        for j in client.BatchV1Api(k8s).list_namespaced_job(NAMESPACE).items:
            job = _clean(api(j)) | {"apiVersion": "batch/v1", "kind": "Job"}
            # Set by the API server from the Job's uid; recreated on create.
            job["spec"].pop("selector", None)
            for key in ("controller-uid", "batch.kubernetes.io/controller-uid"):
                job["spec"]["template"]["metadata"].get("labels", {}).pop(key, None)
                job["metadata"].get("labels", {}).pop(key, None)
            state["children"].append(job)
        for sa in core.list_namespaced_service_account(NAMESPACE).items:
            if sa.metadata.name != "default":
                state["children"].append(_clean(api(sa)) | {"apiVersion": "v1",
                                                             "kind": "ServiceAccount"})
        return state
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait(timeout=30)
        hub.stop()
        cp.stop()
        shutil.rmtree(work, ignore_errors=True)


def main() -> None:
    old_tree, release_dir = Path(sys.argv[1]), Path(sys.argv[2])
    state = capture(old_tree, release_dir)
    out = release_dir / "state.yaml"
    out.write_text(f"# What the {release_dir.name} operator made of objects.yaml "
                   "(python -m tests.upgrade.capture). Never edit.\n"
                   + yaml.safe_dump(state, sort_keys=True))
    print(f"wrote {out}: {len(state['objects'])} objects, {len(state['children'])} children")


if __name__ == "__main__":
    main()
