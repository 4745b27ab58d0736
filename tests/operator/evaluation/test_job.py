"""The scoring Job builder: references only, the run's command, sharding."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from slam.api.evaluation import EvaluationSpec
from slam_operator.evaluation.job import (
    JobInput,
    build_scoring_job,
    build_service_account,
    job_name,
    secret_refs,
    service_account_name,
)
from tests.controlplane.cluster import REPO

SPEC = {
    "promptSet": {"configMap": {"name": "pep-talk-prompts", "key": "pep-talk.yaml"}},
    "reference": "gpt4",
    "targets": [
        {"name": "gpt4", "external": {"baseUrl": "https://api.openai.com/v1", "model": "gpt-4",
                                      "apiKeySecretRef": {"name": "openai", "key": "api-key"}}},
        {"name": "mistral", "modelDeploymentRef": {"name": "mistral-7b"}},
    ],
    "scorers": {"judge": {"target": "gpt4"}},
    "runId": "2",
    "activeDeadlineSeconds": 3600,
}


def build(**overrides) -> dict:
    spec = EvaluationSpec.model_validate({**SPEC, **overrides})
    return build_scoring_job(JobInput(
        "pep-talk", "team-a", spec,
        {"mistral": "http://mistral-7b.team-a.svc.cluster.local:8080/v1"}, "slam:0.1.0"))


def env_of(job: dict) -> dict:
    return {e["name"]: e for e in job["spec"]["template"]["spec"]["containers"][0]["env"]}


def test_job_runs_slam_job_run_with_references_only() -> None:
    job = build()
    assert job["metadata"]["name"] == "pep-talk-run-2"
    c = job["spec"]["template"]["spec"]["containers"][0]
    assert c["command"] == ["slam", "job", "run"] and c["image"] == "slam:0.1.0"
    env = env_of(job)
    assert env["SLAM_STORE_URL"]["valueFrom"]["secretKeyRef"] == {"name": "slam-store",
                                                                 "key": "url"}
    key = env["SLAM_SECRET_OPENAI__API_KEY"]["valueFrom"]["secretKeyRef"]
    assert key == {"name": "openai", "key": "api-key"}
    assert all("value" not in e for e in env.values() if "valueFrom" in e)
    evaluation = json.loads(env["SLAM_EVALUATION"]["value"])
    # the ConfigMap is mounted and the spec points at the file
    assert evaluation["spec"]["promptSet"] == {"file": "/etc/slam/prompts/pep-talk.yaml"}
    assert job["spec"]["template"]["spec"]["volumes"][0]["configMap"]["name"] == \
        "pep-talk-prompts"
    assert json.loads(env["SLAM_ENDPOINTS"]["value"]) == {
        "mistral": "http://mistral-7b.team-a.svc.cluster.local:8080/v1"}
    assert job["spec"]["activeDeadlineSeconds"] == 3600 and job["spec"]["backoffLimit"] == 2
    assert "completionMode" not in job["spec"]


def test_parallelism_shards_over_an_indexed_job() -> None:
    job = build(parallelism=4)
    assert (job["spec"]["completionMode"], job["spec"]["completions"],
            job["spec"]["parallelism"]) == ("Indexed", 4, 4)
    assert env_of(job)["SLAM_SHARDS"]["value"] == "4"


def test_store_secret_from_the_spec_and_long_names() -> None:
    job = build(store={"urlSecretRef": {"name": "db", "key": "dsn"}})
    assert env_of(job)["SLAM_STORE_URL"]["valueFrom"]["secretKeyRef"] == {"name": "db",
                                                                         "key": "dsn"}
    name = job_name("a" * 60, "run-with-a-long-id")
    assert len(name) <= 63 and name == job_name("a" * 60, "run-with-a-long-id")
    spec = EvaluationSpec.model_validate(SPEC)
    assert [f for f, _ in secret_refs(spec)] == ["spec.store.urlSecretRef",
                                                 "spec.targets[0].external.apiKeySecretRef"]


MANY_SECRETS = [
    {"name": f"api{i}", "external": {"baseUrl": f"https://api{i}.example/v1", "model": "m",
                                     "apiKeySecretRef": {"name": f"key-{i}", "key": f"k{i}"}}}
    for i in range(8)]


def many_secrets_job() -> dict:
    return build(targets=MANY_SECRETS, reference="api0", scorers={"judge": {"target": "api1"}})


def test_builder_output_is_the_same_in_every_process() -> None:
    """Server-side apply compares lists in order: a Job whose env order followed set or hash
    order would differ between operator processes (string hashing is seeded per process)."""
    script = ("import json; from tests.operator.evaluation.test_job import many_secrets_job; "
              "print(json.dumps(many_secrets_job()))")
    outputs = {subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                              check=True, cwd=REPO, env={**os.environ, "PYTHONHASHSEED": seed}
                              ).stdout for seed in ("1", "2", "3")}
    assert len(outputs) == 1
    env = [e["name"] for e in json.loads(outputs.pop())["spec"]["template"]["spec"]
           ["containers"][0]["env"] if e["name"].startswith("SLAM_SECRET_")]
    assert len(env) == 8


def test_the_job_runs_as_its_own_tokenless_service_account_unless_the_spec_names_one() -> None:
    job = build()
    assert job["spec"]["template"]["spec"]["serviceAccountName"] == "pep-talk-scoring"
    sa = build_service_account("pep-talk", "team-a")
    assert sa["metadata"]["name"] == "pep-talk-scoring"
    assert sa["automountServiceAccountToken"] is False
    # e.g. an IRSA-annotated account that may read the S3 prompt set
    job = build(serviceAccountName="s3-reader")
    assert job["spec"]["template"]["spec"]["serviceAccountName"] == "s3-reader"


def test_a_long_evaluation_name_gets_a_valid_account_name_used_by_job_and_account() -> None:
    long = "e" * 250
    sa = build_service_account(long, "team-a")["metadata"]["name"]
    assert len(sa) <= 253 and sa == service_account_name(long, EvaluationSpec.model_validate(SPEC))


LABEL_VALUE = r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$"


def test_labels_are_valid_for_the_longest_accepted_name() -> None:
    """An Evaluation's name may be 253 characters (a DNS subdomain, dots allowed); label values
    at most 63. Two long names that share a prefix still get different labels."""
    import re
    longest = ".".join(["a" * 63, "b" * 63, "c" * 63, "d" * 61])
    other = longest[:-1] + "e"
    spec = EvaluationSpec.model_validate({**SPEC, "runId": "r" * 62 + "-"})
    jobs = [build_scoring_job(JobInput(n, "team-a", spec, {}, "slam:0.1.0"))
            for n in (longest, other)]
    for job, name in zip(jobs, (longest, other), strict=True):
        sa = build_service_account(name, "team-a")
        for labels in (job["metadata"]["labels"], job["spec"]["template"]["metadata"]["labels"],
                       sa["metadata"]["labels"]):
            assert all(len(v) <= 63 and re.match(LABEL_VALUE, v) for v in labels.values()), \
                labels
        assert len(job["metadata"]["name"]) <= 63 and len(sa["metadata"]["name"]) <= 253
    assert jobs[0]["metadata"]["labels"]["slam.dev/evaluation"] != \
        jobs[1]["metadata"]["labels"]["slam.dev/evaluation"]


def test_a_traffic_profile_in_a_configmap_is_mounted_and_the_spec_names_the_file() -> None:
    job = build(cost={"slo": {"ttftMs": 800}, "trafficProfile": {
        "configMap": {"name": "api-usage", "key": "usage.csv"}, "timezone": "Europe/Berlin"}})
    pod = job["spec"]["template"]["spec"]
    evaluation = json.loads(env_of(job)["SLAM_EVALUATION"]["value"])
    assert evaluation["spec"]["cost"]["trafficProfile"] == {
        "file": "/etc/slam/traffic/usage.csv", "timezone": "Europe/Berlin"}
    assert evaluation["spec"]["cost"]["slo"]["ttftMs"] == 800
    volume = next(v for v in pod["volumes"] if v["name"] == "traffic")
    assert volume["configMap"] == {"name": "api-usage",
                                   "items": [{"key": "usage.csv", "path": "usage.csv"}]}
    mount = next(m for m in pod["containers"][0]["volumeMounts"] if m["name"] == "traffic")
    assert mount == {"name": "traffic", "mountPath": "/etc/slam/traffic", "readOnly": True}


def test_the_job_requests_a_cpu_per_generator_process_its_rates_need() -> None:
    def cpu(job: dict) -> str:
        return job["spec"]["template"]["spec"]["containers"][0]["resources"]["requests"]["cpu"]

    assert cpu(build()) == "1"  # both targets as fast as concurrency allows: one process
    targets = [dict(t) for t in SPEC["targets"]]
    targets[1]["arrival"] = {"process": "poisson", "rate": 600}  # three generator processes
    assert cpu(build(targets=targets)) == "4"
    targets[0]["processes"] = 2
    assert cpu(build(targets=targets)) == "6"
