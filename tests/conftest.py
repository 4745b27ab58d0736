"""Shared fixtures. `control_plane` is the real Kubernetes control plane (marker: cluster)."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from kubernetes import client, config

from tests.controlplane.cluster import REPO, ControlPlane, User, apply_crds

CLUSTER_FIXTURES = {"control_plane", "k8s", "namespace"}

# A user with no RBAC bindings at all, for least-privilege checks.
NOBODY = "slam-test-nobody"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every test that uses the control plane carries the `cluster` marker (so -m selects it)."""
    for item in items:
        if CLUSTER_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.cluster)


@pytest.fixture(scope="session")
def control_plane(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControlPlane]:
    """etcd + kube-apiserver + kube-controller-manager with the CRDs Established."""
    workdir = Path(os.environ.get("SLAM_TEST_CONTROL_PLANE_DIR") or tmp_path_factory.mktemp("cp"))
    cp = ControlPlane(workdir, extra_users=[User(NOBODY, uuid.uuid4().hex)])
    cp.start()
    try:
        apply_crds(cp, REPO / "crds")
        yield cp
    finally:
        cp.stop()


@pytest.fixture(scope="session")
def k8s(control_plane: ControlPlane) -> client.ApiClient:
    """An admin API client for the test control plane."""
    return config.new_client_from_config(str(control_plane.kubeconfig))


@pytest.fixture
def namespace(k8s: client.ApiClient) -> Iterator[str]:
    """A fresh namespace per test, deleted afterwards."""
    name = f"t-{uuid.uuid4().hex[:10]}"
    core = client.CoreV1Api(k8s)
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
    yield name
    core.delete_namespace(name)
