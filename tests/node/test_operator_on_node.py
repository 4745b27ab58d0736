"""The product as users install it, on the test node: the operator and the dashboard from
manifests/ with the images `make images` built, a llamacpp ModelDeployment served by a real
llama.cpp pod that downloads its GGUF file from the Hub (a stand-in exposed to the node), and a
pod that talks to the model by the endpoint the operator wrote into the status."""

from __future__ import annotations

import json

from kubernetes import client

from tests.controlplane.cluster import REPO
from tests.fakes.hub import SHA, FakeHub
from tests.images.built import image
from tests.node.conftest import Cluster, manifests

GROUP, VERSION = "slam.dev", "v1alpha1"
HF_TOKEN = "hf_node_test_" + "x" * 24  # must never show in a spec, a status or a log


def label_node(cluster: Cluster) -> None:
    """The example's instance type, as an EKS node carries it (the pods select it)."""
    cluster.core.patch_node("slam-node", {"metadata": {"labels": {
        "node.kubernetes.io/instance-type": "c7i.xlarge"}}})


def pod_logs(cluster: Cluster, namespace: str) -> str:
    """Container logs of a namespace's pods, read from the node's log directory."""
    root = cluster.node.workdir / "pod-logs"
    return "\n".join(p.read_text(errors="replace") for p in root.glob(f"{namespace}_*/*/*.log"))


def test_the_operator_runs_from_its_manifests(cluster: Cluster, operator: str) -> None:
    pod = cluster.core.list_namespaced_pod(
        operator, label_selector="app.kubernetes.io/name=slam-operator").items[0]
    status = pod.status.container_statuses[0]
    assert status.ready and status.restart_count == 0, cluster.pods_report(operator)
    ep = client.DiscoveryV1Api(cluster.api).list_namespaced_endpoint_slice(
        operator, label_selector="kubernetes.io/service-name=slam-operator-metrics").items
    assert ep and ep[0].endpoints, (ep, pod_logs(cluster, operator)[-3000:])
    metrics = cluster.get(operator, "slam-operator-metrics", 9090, "/metrics").text
    assert "slam_" in metrics, metrics[:500]


def test_a_llamacpp_model_deployment_serves_from_a_real_pod(
        ns: str, cluster: Cluster, operator: str, hub: FakeHub) -> None:
    custom = client.CustomObjectsApi(cluster.api)
    label_node(cluster)
    cluster.core.create_namespaced_secret(ns, {"metadata": {"name": "hf"},
                                               "stringData": {"token": HF_TOKEN}})
    md = manifests(REPO / "manifests" / "examples" / "local" / "models.yaml")[0]
    md["spec"]["hfTokenSecretRef"] = {"name": "hf", "key": "token"}
    md["spec"]["maxTotalTokens"] = 512
    md["spec"]["resources"]["cpu"] = "500m"
    seen_before = len(hub.requests)
    custom.create_namespaced_custom_object(GROUP, VERSION, ns, "modeldeployments", md)
    name = md["metadata"]["name"]

    def ready() -> dict | None:
        obj = custom.get_namespaced_custom_object(GROUP, VERSION, ns, "modeldeployments", name)
        conds = {c["type"]: c for c in obj.get("status", {}).get("conditions", [])}
        return obj if conds.get("Ready", {}).get("status") == "True" else None

    obj = cluster.wait("ModelDeployment Ready", ready, timeout=300,
                       explain=lambda: cluster.pods_report(ns) + "\n" + json.dumps(
                           custom.get_namespaced_custom_object(
                               GROUP, VERSION, ns, "modeldeployments", name).get("status")))
    status = obj["status"]
    assert status["resolvedRevision"] == SHA
    endpoint = status["endpoint"]
    assert endpoint == f"http://{name}.{ns}.svc.cluster.local:8080/v1"
    # The GGUF file came through the Hub's file API, with the token from the Secret.
    downloads = [(p, auth) for p, auth in hub.requests[seen_before:] if p.endswith(".gguf")]
    assert downloads and all(auth == f"Bearer {HF_TOKEN}" for _, auth in downloads), downloads

    # A pod in the cluster asks the model by the endpoint in the status, as a scoring Job does.
    script = (
        "import json, urllib.request, sys; "
        "req = urllib.request.Request(sys.argv[1] + '/chat/completions', data=json.dumps({"
        "'model': 'smollm2-135m-instruct', 'max_tokens': 8, 'messages': "
        "[{'role': 'user', 'content': 'Say hi'}]}).encode(), "
        "headers={'Content-Type': 'application/json'}); "
        "answer = json.load(urllib.request.urlopen(req, timeout=120)); "
        "open('/dev/termination-log', 'w').write(answer['choices'][0]['message']['content'])")
    cluster.batch.create_namespaced_job(ns, {
        "metadata": {"name": "ask"},
        "spec": {"backoffLimit": 0, "template": {"spec": {
            "restartPolicy": "Never",
            "containers": [{"name": "ask", "image": image("operator"),
                            "command": ["python", "-c", script, endpoint]}]}}},
    })
    done = cluster.finished(ns, "ask", timeout=240)
    state = done.status.container_statuses[0].state.terminated
    assert done.status.phase == "Succeeded" and state.message.strip(), (
        state.message, cluster.pods_report(ns))

    # The token is referenced, never copied: not in the Deployment, the status or any log.
    deployment = cluster.apps.read_namespaced_deployment(name, ns)
    seen = json.dumps(cluster.api.sanitize_for_serialization(deployment)) + json.dumps(obj)
    seen += pod_logs(cluster, ns) + pod_logs(cluster, operator)
    assert HF_TOKEN not in seen


def test_a_server_that_cannot_start_reports_its_crash_loop_and_last_log_lines(
        ns: str, cluster: Cluster, operator: str) -> None:
    custom = client.CustomObjectsApi(cluster.api)
    label_node(cluster)
    md = manifests(REPO / "manifests" / "examples" / "local" / "models.yaml")[0]
    md["spec"]["extraArgs"] = ["--no-such-flag"]
    md["spec"]["resources"]["cpu"] = "250m"
    custom.create_namespaced_custom_object(GROUP, VERSION, ns, "modeldeployments", md)
    name = md["metadata"]["name"]

    def crash_loop() -> dict | None:
        obj = custom.get_namespaced_custom_object(GROUP, VERSION, ns, "modeldeployments", name)
        conds = {c["type"]: c for c in obj.get("status", {}).get("conditions", [])}
        return conds["Available"] if conds.get("Available", {}).get(
            "reason") == "CrashLoopBackOff" else None

    cond = cluster.wait("Available=False CrashLoopBackOff", crash_loop, timeout=180,
                        explain=lambda: cluster.pods_report(ns))
    assert cond["status"] == "False"
    assert "exited with code 2" in cond["message"]
    assert "unrecognized arguments: --no-such-flag" in cond["message"]

    def crash_event() -> object | None:
        # The operator posts Events after the status write, from its own queue: wait for it.
        events = cluster.core.list_namespaced_event(
            ns, field_selector=f"involvedObject.name={name}").items
        return next((e for e in events if e.reason == "CrashLoopBackOff"), None)

    event = cluster.wait("a CrashLoopBackOff Event on the ModelDeployment", crash_event,
                         timeout=60)
    assert event.type == "Warning"
    assert "unrecognized arguments: --no-such-flag" in event.message
