"""`python -m slam_operator`: run the operator (one replica, no peering) for all namespaces, or
for those listed in $SLAM_WATCH_NAMESPACES (comma-separated; the Helm chart's `watchNamespaces`,
which then grants it Roles in those namespaces only). $SLAM_LOG_LEVEL=debug logs every handler
step.

kopf's liveness endpoint answers on $SLAM_HEALTH_PORT (default 8080, 0 turns it off) at /healthz,
for the Deployment's livenessProbe; Prometheus metrics are on $SLAM_METRICS_PORT. Every variable
is checked before anything starts (settings.py): an unusable one exits with status 2 and a
message that names it.
"""

from __future__ import annotations

import sys

import kopf

from slam_operator.settings import SettingsError, from_env


def main() -> None:
    try:
        settings = from_env()
    except SettingsError as e:
        print(f"slam-operator: cannot start, its environment has unusable values:\n{e}",
              file=sys.stderr)
        sys.exit(2)
    import slam_operator.handlers  # noqa: F401 (registers the handlers with kopf)

    kopf.configure(verbose=settings.log_level == "debug")
    namespaces = settings.watch_namespaces
    port = settings.health_port
    kopf.run(clusterwide=not namespaces, namespaces=namespaces, standalone=True,
             liveness_endpoint=None if port == 0 else f"http://0.0.0.0:{port}/healthz",
             memo=kopf.Memo(settings=settings))  # the handlers read these, not the environment


if __name__ == "__main__":
    main()
