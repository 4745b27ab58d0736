"""`python -m slam_operator`: run the operator for all namespaces (one replica, no peering).

kopf's liveness endpoint answers on $SLAM_HEALTH_PORT (default 8080, 0 turns it off) at /healthz,
for the Deployment's livenessProbe; Prometheus metrics are on $SLAM_METRICS_PORT (handlers.py).
"""

from __future__ import annotations

import os

import kopf

import slam_operator.handlers  # noqa: F401 - registers the handlers


def main() -> None:
    kopf.configure(verbose=False)
    port = os.environ.get("SLAM_HEALTH_PORT", "8080")
    kopf.run(clusterwide=True, standalone=True,
             liveness_endpoint=None if port == "0" else f"http://0.0.0.0:{port}/healthz")


if __name__ == "__main__":
    main()
