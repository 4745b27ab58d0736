"""Shared fixtures. `control_plane` is the real Kubernetes control plane (marker: cluster)."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from kubernetes import client, config

from tests.controlplane.cluster import REPO, ControlPlane, User, apply_crds
from tests.servers import Llama, Postgres, Stub

CLUSTER_FIXTURES = {"control_plane", "k8s", "namespace"}
# What makes a test slow (more than a few seconds): a control plane, a real model server,
# PostgreSQL, a browser, the demo, the images, the test node, a simulation.
SLOW_FIXTURES = CLUSTER_FIXTURES | {"llama", "postgres", "browser", "page"}
SLOW_MODULES = ("test_browser.py", "test_demo.py", "test_decision_sim.py",
                "test_concurrent_raters.py", "test_store_outage.py", "test_localserve.py",
                "test_import_reads_nothing.py", "test_stand_in_hub.py")

# A user with no RBAC bindings at all, for least-privilege checks.
NOBODY = "slam-test-nobody"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every test that uses the control plane carries the `cluster` marker, and every slow one
    the `slow` marker (`pytest -m "not slow"` is the quick tier; README: Development)."""
    for item in items:
        fixtures = set(getattr(item, "fixturenames", ()))
        if CLUSTER_FIXTURES & fixtures:
            item.add_marker(pytest.mark.cluster)
        if SLOW_FIXTURES & fixtures or item.path.name in SLOW_MODULES or \
                item.get_closest_marker("image") or item.get_closest_marker("node"):
            item.add_marker(pytest.mark.slow)


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


# --- real servers shared by the engine, operator and dashboard tests ---------------------------

# A made-up API key the stub demands; tests assert it never shows up anywhere.
STUB_API_KEY = "stub-key-" + uuid.uuid4().hex


@pytest.fixture(scope="session")
def postgres(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Postgres]:
    """A real PostgreSQL server (Debian's postgresql package) with password authentication."""
    pg = Postgres(tmp_path_factory.mktemp("pg"))
    pg.start()
    try:
        yield pg
    finally:
        pg.stop()


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh, empty results store: SQLite file, or a new database on the PostgreSQL server."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'results.db'}"
    return request.getfixturevalue("postgres").create_database()


@pytest.fixture(scope="session")
def stub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stub]:
    """The OpenAI API stand-in (see tests/fakes/openai_stub.py), demanding STUB_API_KEY."""
    s = Stub(tmp_path_factory.mktemp("stub"), api_key=STUB_API_KEY).start()
    try:
        yield s
    finally:
        s.stop()


@pytest.fixture(scope="session")
def llama(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Llama]:
    """A real llama.cpp server with SmolLM2-135M-Instruct on the CPU."""
    server = Llama(tmp_path_factory.mktemp("llama")).start()
    try:
        yield server
    finally:
        server.stop()
