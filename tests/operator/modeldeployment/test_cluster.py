"""The ModelDeployment operator on the real control plane (kopf in-process, Hub stand-in)."""

from __future__ import annotations

import base64
import json
import os
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

import httpx
import pytest
from kubernetes import client
from prometheus_client.parser import text_string_to_metric_families

from slam_operator.kube import Kube
from tests.argocd import health
from tests.fakes.hub import SHA, Repo
from tests.operator.conftest import GROUP, MDS, RESYNC_SECONDS, VERSION, eventually

TOKEN = "test-token-do-not-leak"


def md(name: str, model: str = "mistralai/Mistral-7B-Instruct-v0.2", **spec) -> dict:
    return {"apiVersion": f"{GROUP}/{VERSION}", "kind": "ModelDeployment",
            "metadata": {"name": name},
            "spec": {"model": {"id": model}, "instanceType": "g5.xlarge", **spec}}


def create_md(k8s, ns: str, body: dict) -> dict:
    return client.CustomObjectsApi(k8s).create_namespaced_custom_object(
        GROUP, VERSION, ns, MDS, body)


def get_md(k8s, ns: str, name: str) -> dict:
    return client.CustomObjectsApi(k8s).get_namespaced_custom_object(GROUP, VERSION, ns, MDS, name)


def condition(obj: dict, type_: str) -> dict:
    return next(c for c in obj.get("status", {}).get("conditions", []) if c["type"] == type_)


def wait_condition(k8s, ns, name, type_, status, reason=None, timeout=30.0) -> dict:
    def check():
        obj = get_md(k8s, ns, name)
        c = condition(obj, type_)
        assert c["status"] == status and (reason is None or c["reason"] == reason), c
        return obj
    return eventually(check, timeout, f"{name} {type_}={status} {reason or ''}")


def deployment(k8s, ns, name):
    return client.AppsV1Api(k8s).read_namespaced_deployment(name, ns)


def play_kubelet(k8s, ns: str, name: str) -> None:
    """Mark the Deployment's pods Running and Ready, as a kubelet would once the model loads."""
    core = client.CoreV1Api(k8s)
    pods = eventually(lambda: core.list_namespaced_pod(
        ns, label_selector=f"slam.dev/model-deployment={name}").items, what="pods")
    for pod in pods:
        now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        core.patch_namespaced_pod_status(pod.metadata.name, ns, {"status": {
            "phase": "Running",
            "conditions": [
                {"type": t, "status": "True", "lastTransitionTime": now}
                for t in ("PodScheduled", "Initialized", "ContainersReady", "Ready")
            ],
            "containerStatuses": [
                {"name": c.name, "image": c.image, "imageID": "", "ready": True,
                 "restartCount": 0, "started": True, "state": {"running": {"startedAt": now}}}
                for c in pod.spec.containers],
        }})


def no_deployment(k8s, ns, name) -> bool:
    try:
        deployment(k8s, ns, name)
    except client.ApiException as e:
        return e.status == 404
    return False


def events_for(k8s, ns: str, name: str) -> list:
    return [e for e in client.CoreV1Api(k8s).list_namespaced_event(ns).items
            if e.involved_object.name == name]


def test_lifecycle_create_ready_update_repair_delete(k8s, namespace, operator) -> None:
    apps = client.AppsV1Api(k8s)
    create_md(k8s, namespace, md("mistral", maxTotalTokens=4096))

    # Created as specified, with the revision pinned to the resolved commit.
    dep = eventually(lambda: deployment(k8s, namespace, "mistral"), what="Deployment")
    c = dep.spec.template.spec.containers[0]
    assert c.image.startswith("ghcr.io/huggingface/text-generation-inference:")
    assert c.args[c.args.index("--revision") + 1] == SHA
    assert c.resources.limits["nvidia.com/gpu"] == "1"
    assert dep.spec.template.spec.node_selector == {"node.kubernetes.io/instance-type": "g5.xlarge"}
    assert dep.metadata.owner_references[0].kind == "ModelDeployment"
    svc = client.CoreV1Api(k8s).read_namespaced_service("mistral", namespace)
    assert svc.spec.ports[0].port == 8080

    obj = wait_condition(k8s, namespace, "mistral", "Available", "False")
    st = obj["status"]
    assert condition(obj, "ModelResolved")["status"] == "True"
    assert condition(obj, "Fits")["status"] == "True"
    assert "17.2 GiB" in condition(obj, "Fits")["message"]
    assert condition(obj, "Ready")["status"] == "False"
    assert st["resolvedRevision"] == SHA and st["parameters"] == 7_241_732_096
    assert st["hourlyCostUSD"] == pytest.approx(1.006)
    assert st["estimatedGpuMemoryGiB"] == pytest.approx(17.19, abs=0.01)
    assert st["availableGpuMemoryGiB"] == 24
    assert health("ModelDeployment", obj)["status"] == "Progressing"  # Argo CD waits

    # The kubelet reports the pod ready -> Ready=True with the endpoint.
    play_kubelet(k8s, namespace, "mistral")
    obj = wait_condition(k8s, namespace, "mistral", "Ready", "True")
    assert obj["status"]["endpoint"] == f"http://mistral.{namespace}.svc.cluster.local:8080/v1"
    assert {k: obj["status"]["replicas"][k] for k in ("desired", "ready", "display", "heldBy")
            } == {"desired": 1, "ready": 1, "display": "1/1", "heldBy": []}
    assert health("ModelDeployment", obj) == {
        "status": "Healthy", "message": f"Ready: {obj['status']['endpoint']}"}
    assert any(e.reason == "Ready" for e in events_for(k8s, namespace, "mistral"))

    # Spec change -> Deployment updated.
    client.CustomObjectsApi(k8s).patch_namespaced_custom_object(
        GROUP, VERSION, namespace, MDS, "mistral", {"spec": {"maxTotalTokens": 8192}})
    eventually(lambda: "8192" in deployment(k8s, namespace, "mistral")
               .spec.template.spec.containers[0].args, what="updated args")
    # Scaled to zero: Suspended in Argo CD, not Degraded.
    client.CustomObjectsApi(k8s).patch_namespaced_custom_object(
        GROUP, VERSION, namespace, MDS, "mistral", {"spec": {"replicas": 0}})
    obj = wait_condition(k8s, namespace, "mistral", "Available", "False", "ScaledToZero")
    assert health("ModelDeployment", obj)["status"] == "Suspended"
    client.CustomObjectsApi(k8s).patch_namespaced_custom_object(
        GROUP, VERSION, namespace, MDS, "mistral", {"spec": {"replicas": 1}})

    # Child edited by hand -> reverted.
    apps.patch_namespaced_deployment("mistral", namespace, {"spec": {"template": {"spec": {
        "containers": [{"name": "server", "image": "example.com/evil:latest"}]}}}})
    eventually(lambda: deployment(k8s, namespace, "mistral").spec.template.spec.containers[0]
               .image.startswith("ghcr.io/huggingface/"), what="image reverted")

    # Children deleted by hand -> recreated (the operator's view of them is watch-backed: a
    # missed deletion would leave the model without a Deployment).
    client.CoreV1Api(k8s).delete_namespaced_service("mistral", namespace)
    eventually(lambda: client.CoreV1Api(k8s).read_namespaced_service("mistral", namespace),
               what="Service recreated")
    uid = deployment(k8s, namespace, "mistral").metadata.uid
    apps.delete_namespaced_deployment("mistral", namespace)
    eventually(lambda: (d := deployment(k8s, namespace, "mistral")) and d.metadata.uid != uid,
               what="Deployment recreated")

    # ModelDeployment deleted -> children garbage-collected through owner references.
    client.CustomObjectsApi(k8s).delete_namespaced_custom_object(
        GROUP, VERSION, namespace, MDS, "mistral")
    eventually(lambda: no_deployment(k8s, namespace, "mistral"), what="Deployment gone")
    eventually(lambda: not client.CoreV1Api(k8s).list_namespaced_service(namespace).items,
               what="Service gone")


def test_a_server_pod_without_a_gpu_node_says_so_until_it_is_scheduled(
        k8s, namespace, operator) -> None:
    """The scheduler's verdict (played here: this control plane has no scheduler) on a server
    pod that no node can take, e.g. no GPU node of the instance type: Available=False with
    what the scheduler said and what in the spec to check; cleared once the pod runs."""
    create_md(k8s, namespace, md("big"))
    core = client.CoreV1Api(k8s)
    pod = eventually(lambda: next(iter(core.list_namespaced_pod(
        namespace, label_selector="slam.dev/model-deployment=big").items)), what="the pod")
    verdict = ("0/4 nodes are available: 1 Insufficient nvidia.com/gpu, 3 node(s) didn't match "
               "Pod's node affinity/selector.")
    core.patch_namespaced_pod_status(pod.metadata.name, namespace, {"status": {"conditions": [
        {"type": "PodScheduled", "status": "False", "reason": "Unschedulable",
         "message": verdict}]}})
    obj = wait_condition(k8s, namespace, "big", "Available", "False", "Unschedulable")
    msg = condition(obj, "Available")["message"]
    assert health("ModelDeployment", obj) == {"status": "Degraded", "message": f"Available: {msg}"}
    assert msg.startswith(f"pod {pod.metadata.name} cannot be scheduled: {verdict[:-1]}; check "
                          "spec.resources, spec.gpuCount and spec.instanceType"), msg
    assert condition(obj, "Ready")["status"] == "False"
    # A stuck pod is a Warning (what `kubectl get events --field-selector type=Warning` shows),
    # once: Ready=False Unschedulable, which only repeats it, gets no Event of its own.
    event = eventually(lambda: next((e for e in events_for(k8s, namespace, "big")
                                     if e.message.startswith("Available=False")
                                     and verdict[:-1] in e.message), None),
                       what="the Available Event")
    assert (event.type, event.reason) == ("Warning", "Unschedulable")
    time.sleep(2)  # Events are posted in the background, a reconcile's together
    assert [e.message for e in events_for(k8s, namespace, "big")
            if e.reason == "Unschedulable"] == [event.message]
    play_kubelet(k8s, namespace, "big")
    wait_condition(k8s, namespace, "big", "Available", "True")


def test_steady_state_makes_no_writes(k8s, namespace, operator) -> None:
    create_md(k8s, namespace, md("steady"))
    wait_condition(k8s, namespace, "steady", "Available", "False")
    play_kubelet(k8s, namespace, "steady")
    wait_condition(k8s, namespace, "steady", "Ready", "True")
    time.sleep(RESYNC_SECONDS)  # let the last events settle

    def versions() -> dict[str, str]:
        return {
            "md": get_md(k8s, namespace, "steady")["metadata"]["resourceVersion"],
            "deployment": deployment(k8s, namespace, "steady").metadata.resource_version,
            "service": client.CoreV1Api(k8s).read_namespaced_service(
                "steady", namespace).metadata.resource_version,
        }

    before = versions()
    reads = dict(Kube.reads)
    time.sleep(3 * RESYNC_SECONDS + 1)
    assert versions() == before
    # Three resyncs read no child from the API server: they come from the watches' indices.
    children = ("Deployment", "Service", "PersistentVolumeClaim")
    grown = {k: v - reads.get(k, 0) for k, v in Kube.reads.items()
             if k.endswith(children) and v != reads.get(k, 0)}
    assert not grown, grown


def test_the_resync_repairs_a_status_someone_else_wrote_and_says_so(k8s, namespace,
                                                                    operator) -> None:
    """Only the operator writes a ModelDeployment's status, and no watch event makes it look
    again when someone else does: the periodic resync puts it back, with the Events of the
    conditions it restores (posted by the operator itself: the resync runs outside kopf's
    handlers, where kopf has no poster), and logs no error."""
    create_md(k8s, namespace, md("tampered"))
    wait_condition(k8s, namespace, "tampered", "Available", "False", "ReplicasNotReady")
    time.sleep(RESYNC_SECONDS)  # let the last child events settle
    seen = len(operator.lines)
    obj = get_md(k8s, namespace, "tampered")
    conditions = [{**c, "status": "True", "reason": "EditedByHand", "message": "not so"}
                  if c["type"] == "Available" else c for c in obj["status"]["conditions"]]
    client.CustomObjectsApi(k8s).patch_namespaced_custom_object_status(
        GROUP, VERSION, namespace, MDS, "tampered", {"status": {"conditions": conditions}})
    wait_condition(k8s, namespace, "tampered", "Available", "False", "ReplicasNotReady",
                   timeout=10 * RESYNC_SECONDS)
    eventually(lambda: [e.reason for e in events_for(k8s, namespace, "tampered")].count(
        "ReplicasNotReady") == 2, 10, "a second ReplicasNotReady Event")
    errors = [line for line in operator.lines[seen:]
              if line.split(" ", 2)[1] in ("ERROR", "CRITICAL")]
    assert not errors, errors[:3]


def test_a_burst_gets_each_event_once(k8s, namespace, operator) -> None:
    """Twelve ModelDeployments applied together, whose children's events (created, then their
    status from the controller manager) arrive in bursts: each gets each Event once - its
    children made, the model resolved, it fits, replicas not ready - with no "Creating" before
    it and no Ready copy of it."""
    names = [f"burst-{i:02d}" for i in range(12)]
    with ThreadPoolExecutor(6) as pool:
        list(pool.map(lambda n: create_md(k8s, namespace, md(n)), names))
    for n in names:
        wait_condition(k8s, namespace, n, "Available", "False", "ReplicasNotReady")
    apps = client.AppsV1Api(k8s)
    eventually(lambda: len(ds := apps.list_namespaced_deployment(namespace).items) == 12 and all(
        (d.status.updated_replicas or 0) >= 1 for d in ds), what="the controller manager's pods")
    time.sleep(2)  # Events are posted in the background
    events = client.CoreV1Api(k8s).list_namespaced_event(namespace).items
    for n in names:
        got = sorted((e.reason, e.count or 1) for e in events
                     if (e.involved_object.kind, e.involved_object.name) == ("ModelDeployment", n))
        assert got == [("ChildUpdated", 1), ("Fits", 1), ("ReplicasNotReady", 1),
                       ("Resolved", 1)], (n, got)


def test_a_namespace_deleted_with_its_model_deployments_logs_no_error(k8s, operator) -> None:
    """Deleting a namespace deletes its Deployments and Services while their ModelDeployments
    may still be there: the operator does not try to put them back (the API server refuses
    anything new in a terminating namespace) and posts no Event there, so it logs no error
    about them."""
    core = client.CoreV1Api(k8s)
    ns = f"t-{uuid.uuid4().hex[:10]}"
    core.create_namespace({"metadata": {"name": ns}})
    names = [f"gone-{i}" for i in range(10)]
    for n in names:
        create_md(k8s, ns, md(n))
    for n in names:
        wait_condition(k8s, ns, n, "Available", "False", "ReplicasNotReady")
    # kopf posts Events from a queue, after the status is written: the last ones are out
    # before the namespace goes (a namespace being deleted refuses new Events).
    eventually(lambda: all("ReplicasNotReady" in [e.reason for e in events_for(k8s, ns, n)]
                           for n in names), 30, "each ModelDeployment's ReplicasNotReady Event")
    seen = len(operator.lines)
    core.delete_namespace(ns)

    def gone() -> bool:
        try:
            core.read_namespace(ns)
        except client.ApiException as e:
            return e.status == 404
        return False
    eventually(gone, 120, "the namespace deleted")
    time.sleep(2)
    errors = [line for line in operator.lines[seen:] if ns in line and (
        line.split(" ", 2)[1] in ("ERROR", "CRITICAL") or "Failed to post an event" in line)]
    assert not errors, errors[:3]


@pytest.mark.parametrize(
    ("model", "reason", "status"),
    [
        ("org/does-not-exist", "ModelNotFound", "False"),
        ("meta-llama/Llama-2-7b-chat-hf", "GatedModel", "False"),
        ("org/broken", "HubUnreachable", "Unknown"),
        ("org/slow", "HubUnreachable", "Unknown"),
    ],
)
def test_hub_outcomes(k8s, namespace, operator, model, reason, status) -> None:
    create_md(k8s, namespace, md("m", model=model))
    obj = wait_condition(k8s, namespace, "m", "ModelResolved", status, reason)
    # Argo CD: a model that does not exist or is gated is Degraded; a Hub that does not answer
    # is retried (Progressing).
    assert health("ModelDeployment", obj)["status"] == (
        "Degraded" if status == "False" else "Progressing")
    ready = condition(obj, "Ready")
    assert (ready["status"], ready["reason"]) == ("False", reason)
    assert "endpoint" not in obj["status"]
    time.sleep(1)
    assert no_deployment(k8s, namespace, "m")
    if status == "False":
        warnings = [e for e in events_for(k8s, namespace, "m") if e.type == "Warning"]
        assert any(e.reason == reason for e in warnings)


def test_hub_unreachable_with_pinned_sha_deploys(k8s, namespace, operator) -> None:
    pinned = "f" * 40
    body = md("pinned", model="org/broken")
    body["spec"]["model"]["revision"] = pinned
    create_md(k8s, namespace, body)
    dep = eventually(lambda: deployment(k8s, namespace, "pinned"), what="Deployment")
    assert pinned in dep.spec.template.spec.containers[0].args
    obj = wait_condition(k8s, namespace, "pinned", "ModelResolved", "Unknown", "HubUnreachable")
    assert "deploying the pinned commit" in condition(obj, "ModelResolved")["message"]


def test_a_hub_that_comes_back_is_retried_without_a_new_apply(k8s, namespace, operator,
                                                              fake_hub) -> None:
    """The Hub does not answer: the ModelDeployment waits (HubUnreachable, no Deployment) and is
    retried on its own; once the Hub answers it resolves and deploys, with no edit or re-apply."""
    fake_hub.repos["org/flaky"] = Repo(behaviour="error")
    create_md(k8s, namespace, md("flaky", model="org/flaky"))
    wait_condition(k8s, namespace, "flaky", "ModelResolved", "Unknown", "HubUnreachable")
    assert no_deployment(k8s, namespace, "flaky")
    fake_hub.repos["org/flaky"] = Repo(parameters=1_000_000_000)
    wait_condition(k8s, namespace, "flaky", "ModelResolved", "True", timeout=60)
    eventually(lambda: deployment(k8s, namespace, "flaky"), 30, "the Deployment")


def test_gated_model_with_token_secret_and_no_leak(k8s, namespace, operator) -> None:
    spec_ref = {"hfTokenSecretRef": {"name": "hf-token", "key": "token"}}
    llama = "meta-llama/Llama-2-7b-chat-hf"
    create_md(k8s, namespace, md("llama", model=llama, **spec_ref))
    obj = wait_condition(k8s, namespace, "llama", "ModelResolved", "False", "TokenSecretNotFound")
    assert "kubectl" in condition(obj, "ModelResolved")["message"]

    client.CoreV1Api(k8s).create_namespaced_secret(namespace, {
        "metadata": {"name": "hf-token"},
        "data": {"token": base64.b64encode(TOKEN.encode()).decode()}})
    obj = wait_condition(k8s, namespace, "llama", "ModelResolved", "True", timeout=60)
    assert obj["status"]["gated"] is True and obj["status"]["license"] == "llama2"
    env = deployment(k8s, namespace, "llama").spec.template.spec.containers[0].env
    token_env = next(e for e in env if e.name == "HF_TOKEN")
    assert token_env.value is None
    assert token_env.value_from.secret_key_ref.name == "hf-token"

    # The token's value appears nowhere a user or log reader can see.
    seen = [json.dumps(get_md(k8s, namespace, "llama"))]
    seen += [json.dumps(k8s.sanitize_for_serialization(o)) for o in (
        client.AppsV1Api(k8s).list_namespaced_deployment(namespace),
        client.CoreV1Api(k8s).list_namespaced_service(namespace),
        client.CoreV1Api(k8s).list_namespaced_event(namespace),
    )]
    seen += operator.lines
    assert not [s for s in seen if TOKEN in s]


def test_does_not_fit_blocks_the_deployment_with_numbers(k8s, namespace, operator) -> None:
    create_md(k8s, namespace, md("big", instanceType="g4dn.xlarge"))
    obj = wait_condition(k8s, namespace, "big", "Fits", "False", "InsufficientGPUMemory")
    msg = condition(obj, "Fits")["message"]
    assert "17.2 GiB" in msg and "16 GiB" in msg and "g6.xlarge" in msg
    assert health("ModelDeployment", obj) == {"status": "Degraded", "message": f"Fits: {msg}"}
    time.sleep(1)
    assert no_deployment(k8s, namespace, "big")
    # Quantizing makes it fit, and the Deployment appears.
    client.CustomObjectsApi(k8s).patch_namespaced_custom_object(
        GROUP, VERSION, namespace, MDS, "big", {"spec": {"quantization": "bitsandbytes-nf4"}})
    wait_condition(k8s, namespace, "big", "Fits", "True")
    eventually(lambda: deployment(k8s, namespace, "big"), what="Deployment after quantizing")


def probe_errors(namespace: str, target: str) -> float:
    """slam_probe_errors_total for one target, from the operator's /metrics."""
    text = httpx.get(f"http://127.0.0.1:{os.environ['SLAM_METRICS_PORT']}/metrics").text
    return sum(s.value for fam in text_string_to_metric_families(text)
               for s in fam.samples if s.name == "slam_probe_errors_total"
               and s.labels["namespace"] == namespace and s.labels["target"] == target)


def test_probe_daemon_runs_only_while_ready_and_stops_on_delete(k8s, namespace, operator) -> None:
    """A ModelDeployment with spec.probe is probed at its Service endpoint once Ready. The test
    cluster has no Service DNS, so each sample is a connection error: the error counter shows
    when the daemon probes (the probe loop itself is measured against real servers through an
    Evaluation's probes in tests/operator/evaluation/test_cluster.py)."""
    create_md(k8s, namespace, md("probed", probe={"intervalSeconds": 5, "maxTokens": 4}))
    wait_condition(k8s, namespace, "probed", "Available", "False")
    time.sleep(6)  # a whole probe interval while not Ready: nothing is sent
    assert probe_errors(namespace, "probed") == 0

    play_kubelet(k8s, namespace, "probed")
    wait_condition(k8s, namespace, "probed", "Ready", "True")
    eventually(lambda: probe_errors(namespace, "probed") >= 2, 30, "two probe samples")
    endpoint = get_md(k8s, namespace, "probed")["status"]["endpoint"]
    assert f"probed.{namespace}.svc.cluster.local" in endpoint

    client.CustomObjectsApi(k8s).delete_namespaced_custom_object(
        GROUP, VERSION, namespace, MDS, "probed")
    eventually(lambda: _gone(k8s, namespace, "probed"), 30, "ModelDeployment deleted")
    after_delete = probe_errors(namespace, "probed")
    time.sleep(6)
    assert probe_errors(namespace, "probed") == after_delete  # the daemon stopped with it


def _gone(k8s, ns: str, name: str) -> bool:
    try:
        get_md(k8s, ns, name)
    except client.ApiException as e:
        return e.status == 404
    return False


def test_vllm_on_a_cpu_node_gets_its_kv_cache_from_the_memory_it_asks_for(k8s, namespace,
                                                                          operator) -> None:
    """runtime vllm with spec.gpus 0 (the API server accepts it; tgi and sglang are still
    refused): the CPU image, no GPU, the KV cache from spec.resources.memory less the weights,
    stated in the status and in Fits; too little memory holds the deployment back, saying how
    much it needs."""
    create_md(k8s, namespace, md("smol-cpu", "HuggingFaceTB/SmolLM2-135M-Instruct",
                                 runtime="vllm", gpus=0, instanceType="c7i.xlarge",
                                 resources={"cpu": "2", "memory": "6Gi"}))
    obj = wait_condition(k8s, namespace, "smol-cpu", "Available", "False")
    assert obj["status"]["kvCacheGiB"] == 1  # 6 GiB - 0.25 GiB of bf16 weights - 4.5 GiB
    assert condition(obj, "Fits")["reason"] == "FitsInMemory"
    assert "estimatedGpuMemoryGiB" not in obj["status"]
    c = deployment(k8s, namespace, "smol-cpu").spec.template.spec.containers[0]
    assert c.image.startswith("public.ecr.aws/q9t5s3a7/vllm-cpu-release-repo:")
    assert {e.name: e.value for e in c.env}["VLLM_CPU_KVCACHE_SPACE"] == "1"
    assert "nvidia.com/gpu" not in (c.resources.limits or {})
    assert deployment(k8s, namespace, "smol-cpu").spec.template.spec.tolerations is None

    create_md(k8s, namespace, md("smol-tight", "HuggingFaceTB/SmolLM2-135M-Instruct",
                                 runtime="vllm", gpus=0, resources={"memory": "2Gi"}))
    obj = wait_condition(k8s, namespace, "smol-tight", "Fits", "False", "InsufficientMemory")
    assert "give it at least 5.8 GiB" in condition(obj, "Fits")["message"]
    with pytest.raises(client.ApiException) as refused:
        create_md(k8s, namespace, md("tgi-cpu", runtime="tgi", gpus=0))
    assert "tgi and sglang need spec.gpus \\u003e= 1" in refused.value.body
