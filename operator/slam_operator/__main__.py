"""`python -m slam_operator`: run the operator (one replica, no peering) for all namespaces, or
for those listed in $SLAM_WATCH_NAMESPACES (comma-separated; the Helm chart's `watchNamespaces`,
which then grants it Roles in those namespaces only). $SLAM_LOG_LEVEL=debug logs every handler
step.

kopf's liveness endpoint answers on $SLAM_HEALTH_PORT (default 8080, 0 turns it off) at /healthz,
for the Deployment's livenessProbe; Prometheus metrics are on $SLAM_METRICS_PORT (handlers.py).
"""

from __future__ import annotations

import os

import kopf

import slam_operator.handlers  # registers the handlers


def main() -> None:
    kopf.configure(verbose=os.environ.get("SLAM_LOG_LEVEL", "info") == "debug")
    port = os.environ.get("SLAM_HEALTH_PORT", "8080")
    namespaces = slam_operator.handlers.watch_namespaces()
    kopf.run(clusterwide=not namespaces, namespaces=namespaces, standalone=True,
             liveness_endpoint=None if port == "0" else f"http://0.0.0.0:{port}/healthz")


if __name__ == "__main__":
    main()
