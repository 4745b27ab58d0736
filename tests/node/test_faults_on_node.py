"""Faults with real pods, one Evaluation through all three, in the order a bad day brings them:
the operator's pod is deleted (its Deployment starts another, which picks the run up), the
kubelet restarts (containerd keeps the containers: the same pods go on), and the scoring pod is
killed mid-run (SIGKILL to its processes, as the OOM killer ends them). The Job starts another
pod, which resumes from the store: the answers already stored are not asked again (GPT-4 calls
are not paid twice) and none is stored twice. The run ends Succeeded with every answer."""

from __future__ import annotations

import json
import re

from kubernetes import client

from slam.store import Store
from tests.controlplane.node import NODE_IP
from tests.node.conftest import Cluster
from tests.node.test_evaluation_on_node import STUB_PORT_ON_NODE, start_evaluation
from tests.node.test_operator_on_node import pod_logs
from tests.operator.evaluation.test_cluster import evaluation

GROUP, VERSION = "slam.dev", "v1alpha1"
PROMPTS = 30
RATE = 0.2  # requests per second to the API target: its answers take 150 s, the faults ~90 s


def test_an_evaluation_outlives_its_operator_its_kubelet_and_its_scoring_pod(
        ns: str, cluster: Cluster, operator: str, scoring_loaded: str, stub, postgres) -> None:
    custom = client.CustomObjectsApi(cluster.api)
    ev = evaluation("faults", f"http://{NODE_IP}:{STUB_PORT_ON_NODE}/v1")
    texts = [f"Fault drill {ns} question {i}" for i in range(PROMPTS)]
    ev["spec"]["promptSet"]["inline"] = [
        {"id": f"q{i}", "messages": [{"role": "user", "content": t}], "references": ["Hi!"]}
        for i, t in enumerate(texts)]
    ev["spec"]["targets"][0] |= {"concurrency": 1,
                                 "arrival": {"process": "constant", "rate": RATE}}
    store_url = start_evaluation(cluster, ns, stub, postgres, ev)
    store = Store.open(store_url)
    total = 2 * PROMPTS

    def get() -> dict:
        return custom.get_namespaced_custom_object(GROUP, VERSION, ns, "evaluations", "faults")

    def stored() -> int:
        run = store.find_run("faults", "1", ns)
        return store.progress(run.id)[0] if run is not None else 0

    def explain() -> str:
        return (cluster.pods_report(ns) + json.dumps(get().get("status"))
                + pod_logs(cluster, operator)[-2000:])

    def job_pods() -> list[client.V1Pod]:
        return cluster.core.list_namespaced_pod(ns, label_selector="job-name=faults-run-1").items

    cluster.wait("the scoring pod storing answers", lambda: stored() >= 2, timeout=420,
                 explain=explain)
    scoring_pod = job_pods()[0]

    # 1. The operator's pod is deleted: a new one follows the same run (no second Job) and
    #    keeps its progress in the status current.
    old = cluster.core.list_namespaced_pod(
        operator, label_selector="app.kubernetes.io/name=slam-operator").items
    assert len(old) == 1
    cluster.core.delete_namespaced_pod(old[0].metadata.name, operator)

    def new_operator_ready() -> bool:
        pods = cluster.core.list_namespaced_pod(
            operator, label_selector="app.kubernetes.io/name=slam-operator").items
        return any(p.metadata.uid != old[0].metadata.uid and p.status.container_statuses
                   and p.status.container_statuses[0].ready for p in pods)
    cluster.wait("a new operator pod ready", new_operator_ready, timeout=180,
                 explain=lambda: cluster.pods_report(operator))
    before = stored()

    def status_progress_past_before() -> bool:
        st = get().get("status") or {}
        return st.get("phase") == "Running" and (st.get("progress") or {}).get("done", 0) > before
    cluster.wait("the new operator reporting progress", status_progress_past_before, timeout=120,
                 explain=explain)
    assert [j.metadata.name for j in cluster.batch.list_namespaced_job(ns).items] == \
        ["faults-run-1"]

    # 2. The kubelet restarts: the pods it left running are the same pods afterwards.
    md_pod = cluster.core.list_namespaced_pod(
        ns, label_selector="slam.dev/model-deployment=smollm2").items[0]
    cluster.node.restart_kubelet()
    for pod in (scoring_pod, md_pod):
        now = cluster.core.read_namespaced_pod(pod.metadata.name, ns)
        assert now.metadata.uid == pod.metadata.uid and now.status.phase == "Running", \
            cluster.pods_report(ns)
        assert now.status.container_statuses[0].restart_count == 0, cluster.pods_report(ns)
    after_restart = stored()
    cluster.wait("answers stored after the kubelet restart", lambda: stored() > after_restart,
                 timeout=120, explain=explain)

    # 3. The scoring pod is killed mid-run; the Job's next pod resumes.
    at_kill = stored()
    assert at_kill < total, "the run finished before the kill: lower RATE"
    cluster.node.kill_pod(scoring_pod.metadata.uid)
    cluster.wait("the Job starting a second pod", lambda: len(job_pods()) == 2, timeout=120,
                 explain=explain)
    cluster.wait("Evaluation finished", lambda: get().get("status", {}).get("phase") in (
        "Succeeded", "Failed"), timeout=600, explain=explain)

    status = get()["status"]
    assert status["phase"] == "Succeeded", explain()
    assert status["progress"]["display"] == f"{total}/{total}"
    job = cluster.batch.read_namespaced_job("faults-run-1", ns)
    assert (job.status.failed, job.status.succeeded) == (1, 1)
    first = cluster.core.read_namespaced_pod(scoring_pod.metadata.name, ns)
    assert first.status.container_statuses[0].state.terminated.exit_code == 137

    run = store.find_run("faults", "1", ns)
    rows = store.responses(run.id)
    keys = [(r["target"], r["prompt_id"], r["sample"]) for r in rows]
    assert len(keys) == total and len(set(keys)) == total
    assert all(r["error_class"] is None for r in rows)
    # Each API prompt was asked once, except at most the one in flight when the pod died
    # (its answer was never stored, so the next pod asked again).
    hits = {t: stub.hits().get(f"gpt-4|{t}", 0) for t in texts}
    assert all(n >= 1 for n in hits.values()), hits
    assert sum(hits.values()) <= PROMPTS + 1, hits
    # The second pod said what it resumed from.
    second = next(p for p in job_pods() if p.metadata.uid != scoring_pod.metadata.uid)
    logs = "".join(p.read_text(errors="replace") for p in (cluster.node.workdir / "pod-logs")
                   .glob(f"{ns}_{second.metadata.name}_*/*/*.log"))
    resumed = re.search(r"(\d+) already stored", logs)
    assert resumed and at_kill <= int(resumed.group(1)) < total, logs[-2000:]
