"""An Evaluation end to end on the test node: the operator (a pod) waits for the llamacpp
ModelDeployment's real pod, starts the scoring Job, whose pod (the scoring image: PyTorch and
the bundled MiniLM, offline) asks the model by its Service name and the OpenAI stand-in,
scores similarity and writes to PostgreSQL; the operator then writes the summary. The
dashboard (a pod from manifests/dashboard/, Secrets as environment variables, read-only root)
then serves that run's rating page to Chromium, and a rating lands in PostgreSQL."""

from __future__ import annotations

import json
import re

import yaml
from kubernetes import client

from slam.store import Store
from tests.conftest import STUB_API_KEY
from tests.controlplane.cluster import REPO
from tests.controlplane.node import NODE_IP
from tests.dashboard.test_browser import SHOTS, chromium, sign_in, wait_idle
from tests.images.built import image
from tests.node.conftest import SMOL_REPO, Cluster, manifests
from tests.node.test_operator_on_node import label_node, pod_logs
from tests.operator.evaluation.test_cluster import cond, evaluation, secret

GROUP, VERSION = "slam.dev", "v1alpha1"
STUB_PORT_ON_NODE, POSTGRES_PORT_ON_NODE = 8601, 5432
RATER_TOKEN = "rater-on-node-1234"


def report_of(store: Store, run_pk: int):
    from slam import summary
    return summary.build(store, run_pk)


def deploy_dashboard(cluster: Cluster, ns: str, raters: str, admins: str) -> str:
    """The dashboard from its manifest (its Secrets holding these invite tokens) in `ns`, on
    the store in the slam-store Secret; returns its URL as the host reaches it."""
    secret(cluster.api, ns, "slam-dashboard-tokens", "rater-tokens", raters)
    cluster.core.patch_namespaced_secret(
        "slam-dashboard-tokens", ns, {"stringData": {"admin-tokens": admins}})
    cluster.node.load(image("dashboard"))  # its own image: the operator's has no Streamlit
    docs = manifests(REPO / "manifests" / "dashboard" / "deployment.yaml")
    for doc in docs:
        if doc["kind"] == "Deployment":
            doc["spec"]["template"]["spec"]["containers"][0]["image"] = image("dashboard")
    cluster.kubectl("apply", "--server-side", "-n", ns, "-f", "-", stdin=yaml.safe_dump_all(docs))
    cluster.wait("dashboard ready", lambda: (cluster.apps.read_namespaced_deployment(
        "slam-dashboard", ns).status.ready_replicas or 0) == 1, timeout=240,
        explain=lambda: cluster.pods_report(ns))
    assert cluster.get(ns, "slam-dashboard", 8501, "/_stcore/health").text == "ok"
    ip = cluster.core.read_namespaced_service("slam-dashboard", ns).spec.cluster_ip
    return f"http://127.0.0.1:{cluster.node.reach(ip, 8501)}"


def smollm2(replicas: int = 1) -> dict:
    """SmolLM2-135M-Instruct served by llama.cpp (a real pod; the stand-in Hub has the GGUF)."""
    return {"apiVersion": f"{GROUP}/{VERSION}", "kind": "ModelDeployment",
            "metadata": {"name": "smollm2"},
            "spec": {"model": {"id": SMOL_REPO, "file": "SmolLM2-135M-Instruct.Q4_1.gguf",
                               "servedName": "smollm2-135m-instruct"},
                     "runtime": "llamacpp", "instanceType": "c7i.xlarge", "maxTotalTokens": 512,
                     "resources": {"cpu": "500m", "memory": "1Gi"}, "replicas": replicas}}


def stand_ins_on_node(cluster: Cluster, ns: str, stub, postgres) -> str:
    """The OpenAI stand-in and a new PostgreSQL database reachable from the node's pods, the
    store's URL in the slam-store Secret of `ns`, the node labelled as the example's instance
    type; returns the store's URL as the test process reaches it."""
    cluster.node.expose(STUB_PORT_ON_NODE, stub.port)
    cluster.node.expose(POSTGRES_PORT_ON_NODE, postgres.port)
    store_url = postgres.create_database()
    secret(cluster.api, ns, "slam-store", "url",
           store_url.replace(f"127.0.0.1:{postgres.port}", f"{NODE_IP}:{POSTGRES_PORT_ON_NODE}"))
    label_node(cluster)
    return store_url


def start_evaluation(cluster: Cluster, ns: str, stub, postgres, ev: dict,
                     replicas: int = 1) -> str:
    """The stand-ins exposed to the node, the Secrets, the SmolLM2 ModelDeployment (with
    `replicas`) and `ev` created in `ns`; returns the store's URL as the test process reaches
    it."""
    custom = client.CustomObjectsApi(cluster.api)
    store_url = stand_ins_on_node(cluster, ns, stub, postgres)
    secret(cluster.api, ns, "openai", "api-key", STUB_API_KEY)
    custom.create_namespaced_custom_object(GROUP, VERSION, ns, "modeldeployments",
                                           smollm2(replicas))
    custom.create_namespaced_custom_object(GROUP, VERSION, ns, "evaluations", ev)
    return store_url


def test_an_evaluation_runs_its_scoring_job_as_a_pod(
        ns: str, cluster: Cluster, operator: str, scoring_loaded: str, stub, postgres) -> None:
    custom = client.CustomObjectsApi(cluster.api)
    # The model starts at zero replicas: the Evaluation scales it up for the run (a real pod's
    # cold start, timed) and back down once the run is over.
    store_url = start_evaluation(cluster, ns, stub, postgres, evaluation(
        "pep", f"http://{NODE_IP}:{STUB_PORT_ON_NODE}/v1", scorers={"similarity": {}},
        scaling={"replicas": 1}), replicas=0)

    def phase() -> dict | None:
        obj = custom.get_namespaced_custom_object(GROUP, VERSION, ns, "evaluations", "pep")
        return obj if (obj.get("status") or {}).get("phase") in ("Succeeded", "Failed") else None

    obj = cluster.wait("Evaluation finished", phase, timeout=600,
                       explain=lambda: cluster.pods_report(ns) + json.dumps(
                           custom.get_namespaced_custom_object(
                               GROUP, VERSION, ns, "evaluations", "pep").get("status")))
    status = obj["status"]
    assert status["phase"] == "Succeeded", (status, pod_logs(cluster, ns)[-3000:])
    assert status["progress"]["display"] == "6/6"
    summary = {s["target"]: s for s in status["summary"]}
    assert summary["smollm2"]["successRate"] == 1.0 and "similarity" in summary["smollm2"]
    assert cond(obj, "Ready")["status"] == "True"

    # The Job's pod really ran: on the node, as the image's user, and it wrote PostgreSQL.
    pod = cluster.core.list_namespaced_pod(ns, label_selector="job-name=pep-run-1").items[0]
    assert pod.spec.node_name == "slam-node" and pod.status.phase == "Succeeded"
    store = Store.open(store_url)
    run = store.find_run("pep", "1", ns)
    rows = store.responses(run.id)
    assert len(rows) == 6 and all(r["error_class"] is None for r in rows)
    assert len(store.scores(run.id, "similarity")) == 6

    # The cold start of the real llama.cpp pod, from the scale-up to the run's first token,
    # part by part; then the model goes back to zero.
    assert summary["smollm2"]["coldStartSeconds"] > 0, summary
    cold = next(t for t in report_of(store, run.id).targets if t.target == "smollm2").cold_start
    assert cold is not None and cold.requested, cold
    assert [what for what, _ in cold.parts][-1].startswith("Ready → first token")
    assert all(sec >= 0 for _, sec in cold.parts) and cold.parts[3][1] > 0, cold  # model load
    # The figures, for bench/README ("Cold start on the test node").
    SHOTS.parent.mkdir(parents=True, exist_ok=True)
    (SHOTS.parent / "cold-start-node.json").write_text(json.dumps(
        {"parts": cold.parts, "to_ready_s": cold.to_ready_s, "total_s": cold.total_s},
        indent=2))
    cluster.wait("smollm2 back to zero", lambda: cluster.apps.read_namespaced_deployment(
        "smollm2", ns).spec.replicas == 0, timeout=120)

    # Secrets are referenced, never copied: not in the Job, the status, events or any log.
    job = cluster.batch.read_namespaced_job("pep-run-1", ns)
    events = cluster.core.list_namespaced_event(ns).items
    seen = (json.dumps(cluster.api.sanitize_for_serialization(job)) + json.dumps(status)
            + repr(events) + pod_logs(cluster, ns) + pod_logs(cluster, operator))
    assert STUB_API_KEY not in seen and postgres.password not in seen

    # The dashboard from its manifest, on the same store, rated in a real browser.
    base = deploy_dashboard(cluster, ns, f"ana={RATER_TOKEN}", f"boss=admin-{RATER_TOKEN}")
    with chromium() as browser:
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        sign_in(page, base, RATER_TOKEN)
        page.get_by_text("Which answer is better?").wait_for(timeout=60_000)
        page.get_by_text("Batch 1: pair 1 of").wait_for()
        wait_idle(page)
        text, html = page.inner_text("body"), page.content()
        assert not re.search(r"\b(api|smollm2)\b", text), text  # blind in the cluster too
        assert "smollm2" not in html and "svc.cluster.local" not in html
        SHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SHOTS / "node-rating-page.png"), full_page=True)
        page.get_by_role("button", name=re.compile(r"^A is better")).click()
        page.get_by_text("Batch 1: pair 2 of").wait_for()
    ratings = store.ratings(run.id)
    assert [(r["rater"], r["choice"]) for r in ratings] == [("ana", "left")]
