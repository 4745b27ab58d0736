"""What an Evaluation's status says when its results store goes away mid-run, when a run ends
with answers missing, and how a retry through the resource (the slam.dev/retry annotation)
completes it without asking again what is stored (issue 34). The scoring Job's own command runs
as a local process (the test plays the kubelet, as in test_cluster.py) against a real
PostgreSQL server that the test stops and starts."""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path

import pytest
from kubernetes import client

from slam.store import Store
from tests.conftest import STUB_API_KEY
from tests.operator.conftest import GROUP, VERSION, eventually
from tests.operator.evaluation.test_cluster import (
    EVS,
    cond,
    finish_job_as_kubelet,
    get_ev,
    secret,
    start_job_as_kubelet,
    wait_phase,
)
from tests.servers import Postgres, Stub


@pytest.fixture
def pg(tmp_path: Path) -> Postgres:
    server = Postgres(tmp_path / "pg").start()
    yield server
    server.stop()


def two_api_targets(name: str, ns: str, stub: Stub, prompts: int, rate: float) -> dict:
    """An Evaluation of two external targets on the stub (no model server needed), paced so the
    run lasts prompts / rate seconds."""
    pace = {"concurrency": 1, "arrival": {"process": "constant", "rate": rate}}
    return {
        "apiVersion": f"{GROUP}/{VERSION}", "kind": "Evaluation", "metadata": {"name": name},
        "spec": {
            "promptSet": {"inline": [
                {"id": f"q{i:02d}", "messages": [{"role": "user",
                                                  "content": f"{ns} {name} question {i}"}]}
                for i in range(prompts)]},
            "reference": "api",
            "targets": [
                {"name": "api", **pace, "external": {
                    "baseUrl": stub.base_url, "model": "gpt-4",
                    "apiKeySecretRef": {"name": "openai", "key": "api-key"}}},
                {"name": "small", **pace, "external": {
                    "baseUrl": stub.base_url, "model": "small",
                    "apiKeySecretRef": {"name": "openai", "key": "api-key"}}},
            ],
            "generation": {"maxTokens": 4, "maxRetries": 0},
            "scorers": {"similarity": None},
        }}


def hits(stub: Stub, ns: str, name: str) -> dict[str, int]:
    return {k: v for k, v in stub.hits().items() if f"{ns} {name} " in k}


def stored(url: str, name: str, ns: str) -> int:
    store = Store.open(url, migrate_schema=False)
    try:
        run = store.find_run(name, "1", ns)
        return store.progress(run.id)[0] if run else 0
    except Exception:  # noqa: BLE001 - the store is down or has no tables yet
        return 0
    finally:
        store.close()


def events(k8s, ns: str, reason: str) -> list[client.CoreV1Event]:
    return [e for e in client.CoreV1Api(k8s).list_namespaced_event(ns).items
            if e.reason == reason]


def test_a_store_outage_mid_run_shows_in_the_status_and_the_run_ends_with_every_answer(
        k8s, namespace, operator, stub, pg, tmp_path) -> None:
    url = pg.create_database()
    secret(k8s, namespace, "slam-store", "url", url)
    secret(k8s, namespace, "openai", "api-key", STUB_API_KEY)
    client.CustomObjectsApi(k8s).create_namespaced_custom_object(
        GROUP, VERSION, namespace, EVS, two_api_targets("outage", namespace, stub, 20, 2.0))
    ev = wait_phase(k8s, namespace, "outage", "Running")
    job = start_job_as_kubelet(k8s, namespace, ev["status"]["jobName"], {}, tmp_path)
    try:
        eventually(lambda: stored(url, "outage", namespace) >= 4, 60, "answers stored")
        pg.stop_server()

        def unreachable():
            c = cond(get_ev(k8s, namespace, "outage"), "StoreReachable")
            assert c["status"] == "False", c
            return c
        c = eventually(unreachable, 30, "StoreReachable False")
        assert c["reason"] == "StoreUnreachable"
        assert f"postgresql+psycopg://slam:***@127.0.0.1:{pg.port}/" in c["message"]
        during = get_ev(k8s, namespace, "outage")["status"]
        assert during["phase"] == "Running"
        # The scoring process says it is waiting; the outage outlasts a few status reads.
        eventually(lambda: "results store is not answering" in job.log.read_text(), 30,
                   "the scoring process reporting the outage")
        time.sleep(4)
    finally:
        pg.start_server()
    assert finish_job_as_kubelet(k8s, namespace, job) == 0, job.log.read_text()
    ev = wait_phase(k8s, namespace, "outage", "Succeeded", timeout=90)
    assert ev["status"]["progress"] == {"done": 40, "failed": 0, "total": 40,
                                        "display": "40/40"}
    assert cond(ev, "StoreReachable")["status"] == "True"
    # One Warning Event for the outage and one when the store was back, not one a reconcile.
    assert len(events(k8s, namespace, "StoreUnreachable")) == 1
    assert [e.type for e in events(k8s, namespace, "StoreUnreachable")] == ["Warning"]
    assert len(events(k8s, namespace, "Reachable")) == 1
    # Every answer stored once and asked once: nothing paid for twice.
    assert sorted(hits(stub, namespace, "outage").values()) == [1] * 40
    assert not [line for line in operator.lines if "Traceback" in line
                or "OperationalError" in line and "failed" in line.lower()
                and "outage" in line and "Timer" in line]
    texts = [json.dumps(ev), *(e.message or "" for e in client.CoreV1Api(
        k8s).list_namespaced_event(namespace).items), "\n".join(operator.lines),
        job.log.read_text()]
    for text in texts:
        assert pg.password not in text and STUB_API_KEY not in text


def test_answers_missing_fail_the_run_with_the_count_and_a_retry_asks_only_for_those(
        k8s, namespace, operator, stub, tmp_path) -> None:
    url = f"sqlite:///{tmp_path / 'results.db'}"
    secret(k8s, namespace, "slam-store", "url", url)
    secret(k8s, namespace, "openai", "api-key", STUB_API_KEY)
    client.CustomObjectsApi(k8s).create_namespaced_custom_object(
        GROUP, VERSION, namespace, EVS, two_api_targets("retry", namespace, stub, 10, 2.0))
    ev = wait_phase(k8s, namespace, "retry", "Running")
    assert ev["status"]["jobName"] == "retry-run-1"
    job = start_job_as_kubelet(k8s, namespace, "retry-run-1", {}, tmp_path)
    eventually(lambda: stored(url, "retry", namespace) >= 6, 60, "answers stored")
    job.proc.send_signal(signal.SIGKILL)  # the OOM killer, mid-run
    # A scoring image older than this release exited 0 with answers missing: the operator does
    # not take the Job's word for it.
    finish_job_as_kubelet(k8s, namespace, job, claim_success=True)
    ev = wait_phase(k8s, namespace, "retry", "Failed")
    have = stored(url, "retry", namespace)
    c = cond(ev, "JobComplete")
    assert c["reason"] == "AnswersMissing"
    assert f"holds {have} of 20 answers ({20 - have} missing)" in c["message"]
    assert "kubectl annotate evaluation retry slam.dev/retry=$(date +%s) --overwrite" in \
        c["message"]
    before = hits(stub, namespace, "retry")
    # The retry, as the message says: only what is missing is asked again.
    client.CustomObjectsApi(k8s).patch_namespaced_custom_object(
        GROUP, VERSION, namespace, EVS, "retry",
        {"metadata": {"annotations": {"slam.dev/retry": "1"}}})
    ev = wait_phase(k8s, namespace, "retry", "Running")
    assert ev["status"]["jobName"] == "retry-run-1-retry-1"
    assert ev["status"]["retry"]["attempt"] == 1
    retry = start_job_as_kubelet(k8s, namespace, "retry-run-1-retry-1", {}, tmp_path)
    assert finish_job_as_kubelet(k8s, namespace, retry) == 0, retry.log.read_text()
    ev = wait_phase(k8s, namespace, "retry", "Succeeded")
    assert ev["status"]["progress"]["display"] == "20/20"
    after = hits(stub, namespace, "retry")
    asked_again = sum(after.values()) - sum(before.values())
    assert asked_again == 20 - have  # not one stored answer asked again
    assert max(after.values()) <= 2
    # The same value again retries nothing; the run stays Succeeded.
    client.CustomObjectsApi(k8s).patch_namespaced_custom_object(
        GROUP, VERSION, namespace, EVS, "retry",
        {"metadata": {"annotations": {"slam.dev/retry": "1", "unrelated": "x"}}})
    time.sleep(3)
    assert get_ev(k8s, namespace, "retry")["status"]["phase"] == "Succeeded"
    jobs = sorted(j.metadata.name for j in client.BatchV1Api(k8s).list_namespaced_job(
        namespace).items)
    assert jobs == ["retry-run-1", "retry-run-1-retry-1"]
