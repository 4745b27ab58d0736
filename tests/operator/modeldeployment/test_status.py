"""The ModelDeployment's status composer, without a cluster: one row per condition outcome."""

from __future__ import annotations

import pytest

from slam.api.modeldeployment import ModelDeploymentSpec
from slam_operator import pods
from slam_operator.conditions import Cond
from slam_operator.modeldeployment import status
from slam_operator.modeldeployment.hub import HubOutcome

SHA = "0123456789abcdef0123456789abcdef01234567"
NOW = "2026-11-28T12:00:00Z"


def spec(**kw) -> ModelDeploymentSpec:
    return ModelDeploymentSpec.model_validate(
        {"model": {"id": "org/model"}, "instanceType": "g5.xlarge", **kw})


# (case, spec, Hub outcome, ModelResolved (status, reason), revision deployed)
RESOLVED = [
    ("found", spec(), HubOutcome("found", "org/model@main = 0123", SHA, 7_000_000_000),
     ("True", "Resolved"), SHA),
    ("no such model", spec(), HubOutcome("not_found", "no model org/model"),
     ("False", "ModelNotFound"), None),
    ("no such revision", spec(), HubOutcome("revision_not_found", "no revision x"),
     ("False", "RevisionNotFound"), None),
    ("gated without access", spec(), HubOutcome("gated", "gated: request access"),
     ("False", "GatedModel"), None),
    ("Hub unreachable, branch revision: wait", spec(), HubOutcome("unreachable", "timed out"),
     ("Unknown", "HubUnreachable"), None),
    ("Hub unreachable, pinned commit: deploy it", spec(model={"id": "org/model", "revision": SHA}),
     HubOutcome("unreachable", "timed out"), ("Unknown", "HubUnreachable"), SHA),
]


@pytest.mark.parametrize(("md", "outcome", "expected", "revision"), [r[1:] for r in RESOLVED],
                         ids=[r[0] for r in RESOLVED])
def test_model_resolved(md, outcome, expected, revision) -> None:
    cond, rev = status.model_resolved(md, outcome)
    assert (cond.status, cond.reason) == expected and rev == revision


def test_unreachable_hub_says_how_to_deploy_without_it() -> None:
    cond, _ = status.model_resolved(spec(), HubOutcome("unreachable", "timed out"))
    assert "pin spec.model.revision to a full commit SHA" in cond.message
    token = status.token_secret_missing(spec(hfTokenSecretRef={"name": "hf", "key": "token"}),
                                        "team", "Secret hf not found in namespace team")
    assert (token.status, token.reason) == ("False", "TokenSecretNotFound")
    assert "kubectl -n team create secret generic hf --from-literal=token=<token>" in \
        token.message


# (case, spec, parameters, annotations, Fits (status, reason))
FITS = [
    ("llama.cpp runs on the CPU",
     spec(runtime="llamacpp", model={"id": "org/model-GGUF", "file": "m.gguf"}), None, {},
     ("True", "CPURuntime")),
    ("llama.cpp: 1.7B at Q4_K_M in 2 GiB",
     spec(runtime="llamacpp", model={"id": "org/m-GGUF", "file": "m-Q4_K_M.gguf"},
          resources={"memory": "2Gi"}), 1_711_376_384, {}, ("True", "FitsInMemory")),
    ("llama.cpp: 7B at Q8_0 in 4 GiB",
     spec(runtime="llamacpp", model={"id": "org/m-GGUF", "file": "m.q8_0.gguf"},
          resources={"memory": "4Gi"}), 7_241_732_096, {}, ("False", "InsufficientMemory")),
    ("llama.cpp: a file name without its quantization",
     spec(runtime="llamacpp", model={"id": "org/m-GGUF", "file": "model.gguf"},
          resources={"memory": "4Gi"}), 7_241_732_096, {}, ("Unknown", "UnknownModelSize")),
    ("parameter count not known yet", spec(), None, {}, ("Unknown", "UnknownParameterCount")),
    ("13B in 16 bits on a 24 GiB A10G", spec(), 13_000_000_000, {},
     ("False", "InsufficientGPUMemory")),
    ("13B in 4 bits fits", spec(quantization="awq"), 13_000_000_000, {}, ("True", "Fits")),
    ("too big, but the check is skipped", spec(), 13_000_000_000,
     {"slam.dev/skip-fit-check": "true"}, ("True", "FitCheckSkipped")),
    ("instance type not in the table", spec(instanceType="x9.huge"), 13_000_000_000, {},
     ("Unknown", "UnknownInstanceType")),
]


@pytest.mark.parametrize(("md", "parameters", "annotations", "expected"),
                         [r[1:] for r in FITS], ids=[r[0] for r in FITS])
def test_fits(md, parameters, annotations, expected) -> None:
    cond = status.fits(md, parameters, annotations)
    assert (cond.status, cond.reason) == expected


def test_a_model_that_does_not_fit_names_an_instance_that_would() -> None:
    cond = status.fits(spec(), 13_000_000_000, {})
    assert "g5.xlarge offers 24 GiB" in cond.message and "use " in cond.message
    assert "or a smaller quantization, or annotate slam.dev/skip-fit-check=true" in cond.message


def deployment(ready: int, updated: int, available: int, generation: int = 2,
               observed: int = 2) -> dict:
    return {"metadata": {"generation": generation},
            "status": {"readyReplicas": ready, "updatedReplicas": updated,
                       "availableReplicas": available, "observedGeneration": observed}}


# (case, spec, Deployment, deploying, Available (status, reason), ready replicas)
AVAILABLE = [
    ("being created", spec(), None, True, ("False", "Creating"), 0),
    ("not deployed (not resolved or does not fit)", spec(), None, False,
     ("False", "NotDeployed"), 0),
    ("scaled to zero", spec(replicas=0), deployment(0, 0, 0), True, ("False", "ScaledToZero"), 0),
    ("loading the model", spec(replicas=2), deployment(1, 2, 1), True,
     ("False", "ReplicasNotReady"), 1),
    ("all replicas available", spec(replicas=2), deployment(2, 2, 2), True,
     ("True", "MinimumReplicasAvailable"), 2),
    # Older replicas answer while a new spec rolls out: serving (RolledOut says the rest), so
    # Ready does not flap on every edit and a run does not see its target go away.
    ("a rollout not yet observed by the Deployment controller", spec(), deployment(1, 1, 1, 3, 2),
     True, ("True", "MinimumReplicasAvailable"), 1),
    ("a rollout whose new replica is not created yet", spec(), deployment(1, 0, 1),
     True, ("True", "MinimumReplicasAvailable"), 1),
    ("two replicas wanted, one available (rollout or not): not all serving", spec(replicas=2),
     deployment(1, 2, 1), True, ("False", "ReplicasNotReady"), 1),
]


@pytest.mark.parametrize(("md", "dep", "deploying", "expected", "ready"),
                         [r[1:] for r in AVAILABLE], ids=[r[0] for r in AVAILABLE])
def test_available(md, dep, deploying, expected, ready) -> None:
    cond, replicas = status.available(md, dep, deploying)
    assert (cond.status, cond.reason) == expected and replicas == ready


def pod_status(waiting: str | None, restarts: int = 0, log: str = "", exit_code: int = 2,
               message: str | None = None) -> dict:
    cs = {"name": "server", "restartCount": restarts,
          "state": {"waiting": {"reason": waiting, "message": message}} if waiting else
          {"running": {}}}
    if restarts:
        cs["lastState"] = {"terminated": {"exitCode": exit_code, "reason": "Error",
                                          "message": log}}
    return {"containerStatuses": [cs]}


def test_a_crash_loop_is_reported_with_the_exit_code_and_the_last_log_lines() -> None:
    log = "\n".join(f"line {i}" for i in range(40)) + "\nerror: unrecognized arguments: --bad\n"
    views = [pods.pod_view("m-1", pod_status("CrashLoopBackOff", 4, log))]
    cond, _ = status.available(spec(), deployment(0, 1, 0), True, views)
    assert (cond.status, cond.reason) == ("False", "CrashLoopBackOff")
    assert "exited with code 2 (Error) and was restarted 4 times" in cond.message
    assert cond.message.endswith("line 39\nerror: unrecognized arguments: --bad")
    assert "line 25" not in cond.message  # only the tail
    assert pods.stuck(pod_status("CrashLoopBackOff", 4, log))


@pytest.mark.parametrize(("waiting", "message", "stuck"), [
    ("ImagePullBackOff", 'Back-off pulling image "x"', True),
    ("CreateContainerConfigError", 'secret "hf" not found', True),
    ("ContainerCreating", None, False),
    (None, None, False),
])
def test_pods_that_will_not_start_say_why(waiting, message, stuck) -> None:
    views = [pods.pod_view("m-1", pod_status(waiting, message=message))]
    cond, _ = status.available(spec(), deployment(0, 1, 0), True, views)
    assert pods.stuck(pod_status(waiting, message=message)) is stuck
    if stuck:
        assert (cond.reason, cond.message) == (waiting, f"pod m-1, container server: {waiting}: "
                                                         f"{message}")
    else:
        assert cond.reason == "ReplicasNotReady"


def test_an_unschedulable_server_pod_says_what_the_scheduler_said() -> None:
    scheduler = ("0/3 nodes are available: 1 Insufficient nvidia.com/gpu, 2 node(s) didn't "
                 "match Pod's node affinity/selector.")
    st = {"phase": "Pending", "conditions": [{"type": "PodScheduled", "status": "False",
                                              "reason": "Unschedulable", "message": scheduler}]}
    assert pods.stuck(st)
    cond, _ = status.available(spec(), deployment(0, 1, 0), True, [pods.pod_view("m-1", st)])
    assert (cond.status, cond.reason) == ("False", "Unschedulable")
    assert cond.message.startswith(f"pod m-1 cannot be scheduled: {scheduler[:-1]}; check "
                                   "spec.resources, spec.gpuCount and spec.instanceType")
    scheduled = {"phase": "Pending", "conditions": [{"type": "PodScheduled", "status": "True"}]}
    assert not pods.stuck(scheduled)


def test_an_available_deployment_ignores_an_old_crashed_pod() -> None:
    views = [pods.pod_view("m-old", pod_status("CrashLoopBackOff", 9, "boom"))]
    cond, _ = status.available(spec(), deployment(1, 1, 1), True, views)
    assert cond.status == "True"


def compose(md: ModelDeploymentSpec, parts: list[Cond], old: dict | None = None, **kw) -> dict:
    args = dict(spec=md, generation=2, old=old or {}, parts=parts,
                endpoint="http://m.team.svc.cluster.local:8080/v1", revision=SHA,
                parameters=7_000_000_000, gated=False, license="apache-2.0", ready_replicas=1,
                now=NOW)
    return status.compose(**{**args, **kw})


def test_compose_rolls_up_ready_and_reports_facts() -> None:
    md = spec(quantization="awq")
    ok = [Cond("ModelResolved", "True", "Resolved"), Cond("Fits", "True", "Fits"),
          Cond("Available", "True", "MinimumReplicasAvailable")]
    st = compose(md, ok)
    ready = st["conditions"][-1]
    assert (ready["type"], ready["status"]) == ("Ready", "True")
    assert "serving org/model at http://m.team.svc.cluster.local:8080/v1" in ready["message"]
    assert st["resolvedRevision"] == SHA and st["parameters"] == 7_000_000_000
    assert st["availableGpuMemoryGiB"] == 24 and st["hourlyCostUSD"] == pytest.approx(1.006)
    assert 0 < st["estimatedGpuMemoryGiB"] < 24
    # the first part that is not True explains Ready
    loading = [*ok[:2], Cond("Available", "False", "ReplicasNotReady", "0/1 available")]
    ready = compose(md, loading, old=st)["conditions"][-1]
    assert (ready["status"], ready["reason"]) == ("False", "ReplicasNotReady")
    # what the Hub could not tell this time keeps its last known value
    again = compose(md, ok, old=st, revision=None, parameters=None, license=None)
    assert again["resolvedRevision"] == SHA and again["license"] == "apache-2.0"
    # lastTransitionTime moves only when a status changes
    later = compose(md, ok, old=st, now="2026-11-28T13:00:00Z")
    assert later["conditions"][-1]["lastTransitionTime"] == NOW


def rollout_deployment(replicas: int, updated: int, available: int, *, generation: int = 3,
                       observed: int = 3, deadline: bool = False) -> dict:
    conditions = [{"type": "Progressing", "status": "False",
                   "reason": "ProgressDeadlineExceeded"}] if deadline else []
    return {"metadata": {"name": "m", "generation": generation},
            "spec": {"template": {"spec": {"containers": [{
                "image": "vllm/vllm-openai:v0.11.0", "command": ["vllm", "serve"],
                "args": ["org/model", "--api-key", "sk-live", "--max-model-len=4096",
                         "--hf-token=hf_x"]}]}}},
            "status": {"replicas": replicas, "updatedReplicas": updated,
                       "availableReplicas": available, "observedGeneration": observed,
                       "conditions": conditions}}


# (case, Deployment, applied now, pods, RolledOut (status, reason), message starts with)
ROLLOUTS = [
    ("no Deployment", None, False, [], ("False", "NotDeployed"), "no Deployment yet"),
    ("just applied by this reconcile", rollout_deployment(1, 1, 1), True, [],
     ("False", "RolloutPending"), 'Waiting for deployment "m" spec update to be observed'),
    ("not observed by the Deployment controller yet", rollout_deployment(1, 1, 1, observed=2),
     False, [], ("False", "RolloutPending"), "Waiting for deployment"),
    ("new replicas not all updated", rollout_deployment(2, 0, 2), False, [],
     ("False", "RolloutInProgress"),
     'Waiting for deployment "m" rollout to finish: 0 out of 1 new replicas have been updated'),
    ("the surge pod cannot be scheduled, the old one serves",
     rollout_deployment(2, 1, 1), False,
     [pods.pod_view("m-new", {"phase": "Pending", "conditions": [{
         "type": "PodScheduled", "status": "False", "reason": "Unschedulable",
         "message": "0/1 nodes are available: 1 Insufficient cpu."}]})],
     ("False", "Unschedulable"),
     'Waiting for deployment "m" rollout to finish: 1 old replicas are pending termination; '
     "pod m-new cannot be scheduled: 0/1 nodes are available: 1 Insufficient cpu"),
    ("updated but not yet available", rollout_deployment(1, 1, 0), False, [],
     ("False", "RolloutInProgress"), "Waiting for deployment \"m\" rollout to finish: 0 of 1 "
     "updated replicas are available"),
    ("past its progress deadline", rollout_deployment(2, 1, 1, deadline=True), False, [],
     ("False", "ProgressDeadlineExceeded"), 'deployment "m" exceeded its progress deadline'),
    ("rolled out", rollout_deployment(1, 1, 1), False, [], ("True", "RolledOut"),
     'deployment "m" successfully rolled out'),
]


@pytest.mark.parametrize(("dep", "applied", "views", "expected", "message"),
                         [r[1:] for r in ROLLOUTS], ids=[r[0] for r in ROLLOUTS])
def test_rolled_out_says_what_kubectl_rollout_status_says(dep, applied, views, expected,
                                                          message) -> None:
    cond = status.rolled_out(spec(), dep, applied, views)
    assert (cond.status, cond.reason) == expected
    assert cond.message.startswith(message), cond.message


def test_served_is_what_was_last_rolled_out_and_never_shows_a_key() -> None:
    dep = rollout_deployment(1, 1, 1)
    done = status.rolled_out(spec(), dep, False)
    served = status.served(3, SHA, dep, done, None)
    assert served == {"generation": 3, "revision": SHA, "image": "vllm/vllm-openai:v0.11.0",
                      "args": ["serve", "org/model", "--api-key", "***",
                               "--max-model-len=4096", "--hf-token=***"]}
    # Generation 4 is rolling out (its surge pod waits): the pods still serve generation 3.
    rolling = status.rolled_out(spec(), rollout_deployment(2, 1, 1, generation=4), False)
    assert status.served(4, SHA, dep, rolling, served) == served
    ok = [Cond("ModelResolved", "True", "Resolved"), Cond("Fits", "True", "Fits"),
          Cond("Available", "True", "MinimumReplicasAvailable")]
    st = compose(spec(), ok, generation=4, rollout=rolling, served_config=served)
    ready = st["conditions"][-1]
    assert (ready["type"], ready["status"]) == ("Ready", "True")
    assert "(generation 3; generation 4 is not rolled out yet: see RolledOut)" in \
        ready["message"]
    assert [c["type"] for c in st["conditions"]] == ["ModelResolved", "Fits", "Available",
                                                     "RolledOut", "Ready"]
    assert st["served"]["generation"] == 3 and "sk-live" not in str(st)


def test_the_fit_counts_the_kv_cache_of_the_context_and_concurrency_served() -> None:
    from slam_operator.modeldeployment.gpu import ModelShape
    mistral = ModelShape(32, 8, 128, 32768)  # 128 KiB per token
    # Its own 32k context, one sequence: 4 GiB of KV cache, 19.8 GiB on a 24 GiB A10G.
    one = status.fits(spec(), 7_241_732_096, {}, mistral)
    assert (one.status, one.reason) == ("True", "Fits")
    assert "4.0 GiB of KV cache for 1 sequence of 32768 tokens at 128 KiB per token " \
        "(32 layers × 8 KV heads × 128 × 2 × 2 bytes)" in one.message
    # Eight at once do not fit: the message names the instance and the two knobs.
    eight = status.fits(spec(maxConcurrentSequences=8), 7_241_732_096, {}, mistral)
    assert (eight.status, eight.reason) == ("False", "InsufficientGPUMemory")
    assert "needs ~47.8 GiB" in eight.message and "use g6e.xlarge" in eight.message
    assert "spec.maxTotalTokens" in eight.message and "spec.maxConcurrentSequences" in eight.message
    # ... unless the context is shorter: 8 × 4,096 tokens = 4 GiB again.
    short = status.fits(spec(maxConcurrentSequences=8, maxTotalTokens=4096), 7_241_732_096,
                        {}, mistral)
    assert short.status == "True" and "for 8 sequences of 4096 tokens" in short.message
    # The status says what the estimate counted, and keeps the shape for later reconciles.
    st = compose(spec(maxConcurrentSequences=8, maxTotalTokens=4096), [short],
                 parameters=7_241_732_096, shape=mistral)
    assert st["estimatedKvCacheGiB"] == 4.0
    assert st["estimatedGpuMemoryGiB"] == pytest.approx(19.84, abs=0.01)
    assert st["modelShape"] == {"layers": 32, "kvHeads": 8, "headDim": 128,
                                "kvCacheBytesPerToken": 131072, "maxPositionEmbeddings": 32768}
    assert status.shape_of(st) == mistral
    again = compose(spec(), [short], old=st, parameters=None)
    assert again["modelShape"] == st["modelShape"]
