"""The feature's real traffic end to end on the test node: the shadow gateway (a pod from the
Helm chart's gateway.* values) in front of the OpenAI stand-in records a redacted sample of the
requests sent through it into PostgreSQL; an Evaluation of those recorded requests has the
operator start the scoring Job, whose pod asks the candidate (a real llama.cpp ModelDeployment
pod) the same requests, never the incumbent again; a rater rates the pairs blind in the
dashboard (a pod), and the admin's page shows the decision."""

from __future__ import annotations

import json
import re

import httpx
import yaml
from kubernetes import client

from slam.store import Store
from tests.chart import documents, render
from tests.conftest import STUB_API_KEY
from tests.controlplane.node import NODE_IP
from tests.dashboard.test_browser import SHOTS, chromium, sign_in, wait_idle
from tests.images.built import image
from tests.node.conftest import Cluster
from tests.node.test_evaluation_on_node import (
    STUB_PORT_ON_NODE,
    deploy_dashboard,
    smollm2,
    stand_ins_on_node,
)
from tests.node.test_operator_on_node import pod_logs

GROUP, VERSION = "slam.dev", "v1alpha1"
RATER, ADMIN = "rater-shadow-5678", "admin-shadow-5678"
GATEWAY = "slam-operator-gateway"  # the chart's name for it in release slam-operator
PROMPTS = 8
# What the feature's users wrote: an order number (a custom pattern) and an e-mail address.
QUESTIONS = [f"Hi, order ORD-{40000 + i} has not arrived, write to me at client{i}@example.com. "
             f"Question {i}: when will it come?" for i in range(PROMPTS)]


def gateway_docs(ns: str) -> list[dict]:
    """The chart's gateway objects, as `helm install --set gateway.enabled=true ...` makes them
    (the operator's own objects are the session's; its PDB and ServiceMonitor are left out)."""
    values = {"crds": {"install": False},
              "image": {"repository": image("operator").rsplit(":", 1)[0],
                        "tag": image("operator").rsplit(":", 1)[1], "pullPolicy": "Never"},
              "store": {"existingSecret": "slam-store"},
              "gateway": {"enabled": True, "replicas": 1,
                          "upstream": f"http://{NODE_IP}:{STUB_PORT_ON_NODE}",
                          "evaluation": "support-shadow", "runId": "week-49",
                          "sampleRate": 1, "redact": [r"ORDER=ORD-\d{5}"],
                          "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}}}}
    docs = documents(render(values, release="slam-operator", namespace=ns).stdout)
    return [d for d in docs if d["metadata"]["name"] == GATEWAY
            and d["kind"] in ("Deployment", "ServiceAccount", "Service")]


def test_the_features_traffic_through_the_gateway_pod_is_evaluated_rated_and_decided(
        ns: str, cluster: Cluster, operator: str, scoring_loaded: str, stub, postgres) -> None:
    custom = client.CustomObjectsApi(cluster.api)
    store_url = stand_ins_on_node(cluster, ns, stub, postgres)

    # The gateway, from the chart; the feature's requests go through it.
    docs = gateway_docs(ns)
    assert {d["kind"] for d in docs} == {"Deployment", "ServiceAccount", "Service"}
    cluster.kubectl("apply", "--server-side", "-n", ns, "-f", "-", stdin=yaml.safe_dump_all(docs))
    cluster.wait("gateway ready", lambda: (cluster.apps.read_namespaced_deployment(
        GATEWAY, ns).status.ready_replicas or 0) == 1, timeout=240,
        explain=lambda: cluster.pods_report(ns) + pod_logs(cluster, ns)[-2000:])
    # Ready is not yet reachable: kube-proxy programs the Service's endpoint after the pod's
    # readiness (a first POST once found the connection closed). A GET of the model list, which
    # the gateway passes on unrecorded, is retried until the Service answers.
    models = cluster.get(ns, GATEWAY, 8080, "/v1/models")
    assert models.json()["data"][0]["id"] == "stub", models.text  # the stub's, passed on
    ip = cluster.core.read_namespaced_service(GATEWAY, ns).spec.cluster_ip
    gateway = f"http://127.0.0.1:{cluster.node.reach(ip, 8080)}/v1"
    direct = f"http://127.0.0.1:{stub.port}/v1"
    auth = {"Authorization": f"Bearer {STUB_API_KEY}"}
    with httpx.Client(timeout=60, headers=auth) as http:
        for i, question in enumerate(QUESTIONS):
            body = {"model": "gpt-4o", "user": f"customer-{i}",
                    "messages": [{"role": "user", "content": question}]}
            through = http.post(f"{gateway}/chat/completions", json=body)
            # The feature gets what the incumbent sends.
            assert through.status_code == 200, through.text
            assert through.json()["choices"] == http.post(
                f"{direct}/chat/completions", json=body).json()["choices"]
    store = Store.open(store_url)
    recorded = cluster.wait("the sampled requests recorded", lambda: (
        ps := store.recorded_prompts("support-shadow", "week-49", ns)).prompts
        and len(ps.prompts) == PROMPTS and ps, timeout=60,
        explain=lambda: pod_logs(cluster, ns)[-2000:])
    texts = [p.messages[-1]["content"] for p in recorded.prompts]
    assert all("[ORDER]" in t and "[EMAIL]" in t for t in texts), texts
    assert not any("ORD-4" in t or "@example.com" in t for t in texts)

    # The candidate, and the Evaluation of what was recorded.
    custom.create_namespaced_custom_object(GROUP, VERSION, ns, "modeldeployments", smollm2())
    asked_before = sum(stub.hits().values())
    custom.create_namespaced_custom_object(GROUP, VERSION, ns, "evaluations", {
        "apiVersion": f"{GROUP}/{VERSION}", "kind": "Evaluation",
        "metadata": {"name": "support-shadow"},
        "spec": {"runId": "week-49", "promptSet": {"recorded": {"minPrompts": PROMPTS}},
                 "reference": "incumbent",
                 "targets": [{"name": "incumbent", "recorded": {"model": "gpt-4o"}},
                             {"name": "smollm2", "modelDeploymentRef": {"name": "smollm2"},
                              "concurrency": 2}],
                 "generation": {"maxTokens": 24, "temperature": 0.7, "seed": 3},
                 "scorers": {"similarity": {}},
                 "humanRating": {"controlPairs": 0},
                 "decision": {"evidence": "humanWinRate"},
                 "cost": {"requestsPerDay": 100000}}})

    def finished() -> dict | None:
        obj = custom.get_namespaced_custom_object(GROUP, VERSION, ns, "evaluations",
                                                  "support-shadow")
        return obj if (obj.get("status") or {}).get("phase") in ("Succeeded", "Failed") else None

    obj = cluster.wait("Evaluation finished", finished, timeout=600,
                       explain=lambda: cluster.pods_report(ns))
    status = obj["status"]
    assert status["phase"] == "Succeeded", (status, pod_logs(cluster, ns)[-3000:])
    assert status["progress"]["display"] == f"{2 * PROMPTS}/{2 * PROMPTS}"
    summary = {s["target"]: s for s in status["summary"]}
    assert summary["smollm2"]["successRate"] == 1.0 and "similarity" in summary["smollm2"]
    assert sum(stub.hits().values()) == asked_before  # the incumbent was not asked again
    run = store.find_run("support-shadow", "week-49", ns)
    rows = store.responses(run.id)
    assert {r["target"] for r in rows} == {"incumbent", "smollm2"} and len(rows) == 2 * PROMPTS
    assert all(r["error_class"] is None for r in rows)
    # The candidate was asked the redacted requests (its pod's requests are the stored ones).
    assert {r["prompt_id"] for r in rows if r["target"] == "smollm2"} == \
        {p.id for p in recorded.prompts}

    # Rated blind in the dashboard (a pod): the rater prefers the candidate's real sentences
    # to the stand-in's tokens, prompt after prompt, until the candidate is decided.
    base = deploy_dashboard(cluster, ns, f"ana={RATER}", f"boss={ADMIN}")
    with chromium() as browser:
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        sign_in(page, base, RATER)
        page.get_by_text("Which answer is better?").wait_for(timeout=60_000)
        rated = 0
        for n in range(1, PROMPTS + 1):
            page.get_by_text(f"Batch 1: pair {n} of").wait_for()
            wait_idle(page)
            body = page.inner_text("body")
            assert "[ORDER]" in body  # the recorded (redacted) request is the question
            assert not re.search(r"\b(incumbent|smollm2|gpt-4o)\b", body), body
            a = page.locator('[data-testid="stHtml"]').all_inner_texts()[0].strip()
            pick = "B is better" if a.startswith("tok0") else "A is better"
            page.get_by_role("button", name=re.compile(f"^{pick}")).click()
            rated += 1
            if rated == 7:  # enough for a sequential decision at alpha 0.05
                break
        cluster.wait("the ratings stored", lambda: len(store.ratings(run.id)) == rated,
                     timeout=60)
        admin = browser.new_page(viewport={"width": 1280, "height": 900})
        sign_in(admin, base, ADMIN)
        admin.get_by_role("link", name="Leaderboard").click()
        admin.get_by_text("non-inferior").first.wait_for(timeout=60_000)
        wait_idle(admin)
        board = re.sub(r"\s+", " ", admin.inner_text("body"))
        SHOTS.mkdir(parents=True, exist_ok=True)
        admin.screenshot(path=str(SHOTS / "node-shadow-decision.png"), full_page=True)
    assert f"Human ratings {rated}" in board, board[:2000]
    assert re.search(r"smollm2 non-inferior", board), board[:3000]
    # Cheaper than what the feature paid for the same requests, at the traffic in the spec.
    assert "Recommendation: smollm2" in board and "per 1k requests for incumbent" in board
    ratings = store.ratings(run.id)
    assert all((r["left"] if r["choice"] == "left" else r["right"]) == "smollm2"
               for r in ratings), ratings
    # The key and the customers' data are nowhere: not in the store, the pods' logs, the
    # status or the events.
    seen = (json.dumps(status) + repr(cluster.core.list_namespaced_event(ns).items)
            + pod_logs(cluster, ns) + repr(store.responses(run.id)) + repr(recorded))
    assert STUB_API_KEY not in seen and postgres.password not in seen
    assert "@example.com" not in seen and "ORD-4" not in seen
