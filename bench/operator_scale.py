"""Apply 200 ModelDeployments at once to the real control plane with the operator running.

    .venv/bin/python bench/operator_scale.py [--count 200] [--resync 10]

Prints: seconds until every Deployment and Service exists (and, as a baseline measured in the
same run, the seconds this client needs to create the same 400 objects directly: the ratio is
the operator's overhead over raw API writes), API writes per reconcile while converging, and
the writes made during three resync periods of steady state (target: 0).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=200)
    parser.add_argument("--resync", type=float, default=10.0)
    args = parser.parse_args()
    os.environ["SLAM_RESYNC_SECONDS"] = str(args.resync)

    from kopf.testing import KopfRunner
    from kubernetes import client, config

    from slam.api.modeldeployment import ModelDeploymentSpec
    from slam_operator.kube import Kube
    from slam_operator.modeldeployment import builders
    from slam_operator.modeldeployment.reconcile import STATS
    from tests.controlplane.cluster import REPO, ControlPlane, apply_crds
    from tests.fakes.hub import FakeHub, Repo

    with tempfile.TemporaryDirectory(prefix="slam-bench-") as tmp:
        cp = ControlPlane(Path(tmp) / "cp").start()
        hub = FakeHub().start()
        try:
            apply_crds(cp, REPO / "crds")
            hub.repos["org/model"] = Repo(parameters=7_000_000_000)
            os.environ.update(KUBECONFIG=str(cp.kubeconfig), HF_ENDPOINT=hub.url)
            api = config.new_client_from_config(str(cp.kubeconfig))
            core, apps = client.CoreV1Api(api), client.AppsV1Api(api)
            objects = client.CustomObjectsApi(api)
            for ns in ("bench", "baseline"):
                core.create_namespace({"metadata": {"name": ns}})

            # Baseline: the same children, created directly by this client.
            spec = ModelDeploymentSpec.model_validate(
                {"model": {"id": "org/model"}, "instanceType": "g5.xlarge"})
            t0 = time.perf_counter()

            def direct(i: int) -> None:
                t = builders.ServedModel(f"m{i:03d}", "baseline", spec, "0" * 40)
                core.create_namespaced_service("baseline", builders.build_service(t))
                apps.create_namespaced_deployment("baseline", builders.build_deployment(t))

            with ThreadPoolExecutor(8) as pool:
                list(pool.map(direct, range(args.count)))
            baseline = time.perf_counter() - t0

            runner = KopfRunner(["run", "--all-namespaces", "--standalone", "-m",
                                 "slam_operator.handlers"], timeout=120)
            with runner:
                time.sleep(2)  # let the operator start watching
                body = lambda i: {  # noqa: E731
                    "apiVersion": "slam.dev/v1alpha1", "kind": "ModelDeployment",
                    "metadata": {"name": f"m{i:03d}"},
                    "spec": {"model": {"id": "org/model"}, "instanceType": "g5.xlarge"}}
                t0 = time.perf_counter()
                with ThreadPoolExecutor(8) as pool:
                    list(pool.map(lambda i: objects.create_namespaced_custom_object(
                        "slam.dev", "v1alpha1", "bench", "modeldeployments", body(i)),
                        range(args.count)))
                applied = time.perf_counter() - t0
                while True:
                    deps = len(apps.list_namespaced_deployment("bench").items)
                    svcs = len(core.list_namespaced_service("bench").items)
                    if deps >= args.count and svcs >= args.count:
                        break
                    time.sleep(0.25)
                children = time.perf_counter() - t0
                # Converged: every status written (Available=False, no kubelet here).
                while True:
                    items = objects.list_namespaced_custom_object(
                        "slam.dev", "v1alpha1", "bench", "modeldeployments")["items"]
                    if all(i.get("status", {}).get("conditions") for i in items):
                        break
                    time.sleep(0.25)
                time.sleep(2)
                converging_writes = sum(Kube.writes.values())
                converging_reconciles = STATS["reconciles"]
                time.sleep(3 * args.resync)
                steady_writes = sum(Kube.writes.values()) - converging_writes
                steady_reconciles = STATS["reconciles"] - converging_reconciles
        finally:
            hub.stop()
            cp.stop()

    n = args.count
    print(f"{n} ModelDeployments applied in {applied:.1f} s")
    print(f"all {n} Deployments + {n} Services exist after {children:.1f} s "
          f"(target <= 60 s)")
    print(f"baseline: this client creating the same {2 * n} objects directly took "
          f"{baseline:.1f} s -> operator/baseline = {children / baseline:.2f}x")
    print(f"converging: {converging_writes} API writes over {converging_reconciles} reconciles "
          f"= {converging_writes / max(converging_reconciles, 1):.2f} writes/reconcile "
          f"({dict(Kube.writes)})")
    print(f"steady state: {steady_writes} writes over {steady_reconciles} reconciles in "
          f"3 resync periods of {args.resync:g} s (target 0)")


if __name__ == "__main__":
    main()
