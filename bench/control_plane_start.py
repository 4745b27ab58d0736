"""Warm start time of the test control plane (binaries already built), as the README reports.

    .venv/bin/python bench/control_plane_start.py [--runs 3]

Prints, per run and as the median: API server ready (/readyz), CRDs Established, and the
controller manager working (the `default` ServiceAccount exists in namespace default).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from kubernetes import client, config  # noqa: E402

from tests.controlplane.cluster import REPO, ControlPlane, apply_crds  # noqa: E402


def one_run(workdir: Path) -> tuple[float, float, float]:
    t0 = time.perf_counter()
    cp = ControlPlane(workdir)
    try:
        cp.start()
        ready = time.perf_counter() - t0
        apply_crds(cp, REPO / "crds")
        crds = time.perf_counter() - t0
        core = client.CoreV1Api(config.new_client_from_config(str(cp.kubeconfig)))
        while not core.list_namespaced_service_account("default").items:
            time.sleep(0.05)
        kcm = time.perf_counter() - t0
    finally:
        cp.stop()
    return ready, crds, kcm


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    rows = []
    for i in range(args.runs):
        with tempfile.TemporaryDirectory(prefix="slam-cp-bench-") as d:
            rows.append(one_run(Path(d)))
        print(f"run {i + 1}: apiserver ready {rows[-1][0]:.2f} s, CRDs established "
              f"{rows[-1][1]:.2f} s, controller manager working {rows[-1][2]:.2f} s")
    med = [statistics.median(col) for col in zip(*rows, strict=True)]
    print(f"median of {args.runs}: apiserver ready {med[0]:.2f} s, CRDs established "
          f"{med[1]:.2f} s, controller manager working {med[2]:.2f} s")


if __name__ == "__main__":
    main()
