"""`python -m slam_operator`: run the operator for all namespaces (one replica, no peering)."""

from __future__ import annotations

import kopf

import slam_operator.handlers  # noqa: F401 - registers the handlers


def main() -> None:
    kopf.configure(verbose=False)
    kopf.run(clusterwide=True, standalone=True)


if __name__ == "__main__":
    main()
