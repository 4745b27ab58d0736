"""Scale-to-zero on the real control plane: the ModelDeployment's scale subresource (kubectl
scale, the HorizontalPodAutoscaler, KEDA), and Evaluations that scale their targets up for the
run and back down when it ends, fails or is deleted, sharing a target between them."""

from __future__ import annotations

from kubernetes import client

from tests.conftest import STUB_API_KEY
from tests.operator.conftest import GROUP, MDS, VERSION, eventually
from tests.operator.evaluation.test_cluster import (
    EVS,
    cond,
    evaluation,
    get_ev,
    llamacpp_md,
    run_job_as_kubelet,
    secret,
    wait_phase,
)
from tests.operator.modeldeployment.test_cluster import (
    condition,
    create_md,
    deployment,
    get_md,
    md,
    play_kubelet,
    wait_condition,
)


def served_replicas(k8s, ns: str, name: str) -> int:
    return deployment(k8s, ns, name).spec.replicas


def wait_replicas(k8s, ns: str, name: str, n: int, timeout: float = 30) -> None:
    eventually(lambda: served_replicas(k8s, ns, name) == n, timeout,
               f"Deployment {name} at {n} replicas")


def test_the_scale_subresource_scales_a_model_to_zero_and_back(k8s, namespace,
                                                                operator) -> None:
    objects = client.CustomObjectsApi(k8s)
    create_md(k8s, namespace, md("mistral", probe={"intervalSeconds": 60}))
    play_kubelet(k8s, namespace, "mistral")
    obj = wait_condition(k8s, namespace, "mistral", "Ready", "True")
    assert obj["status"]["replicas"]["display"] == "1/1"

    # What `kubectl scale`, the HorizontalPodAutoscaler and KEDA read and write.
    scale = objects.get_namespaced_custom_object_scale(GROUP, VERSION, namespace, MDS, "mistral")
    assert scale["spec"]["replicas"] == 1
    assert scale["status"]["selector"] == "slam.dev/model-deployment=mistral"
    pods = client.CoreV1Api(k8s).list_namespaced_pod(
        namespace, label_selector=scale["status"]["selector"]).items
    assert len(pods) == 1
    eventually(lambda: objects.get_namespaced_custom_object_scale(
        GROUP, VERSION, namespace, MDS, "mistral")["status"].get("replicas") == 1,
        what="scale status.replicas 1")

    objects.patch_namespaced_custom_object_scale(GROUP, VERSION, namespace, MDS, "mistral",
                                                 {"spec": {"replicas": 0}})
    assert get_md(k8s, namespace, "mistral")["spec"]["replicas"] == 0
    wait_replicas(k8s, namespace, "mistral", 0)
    obj = wait_condition(k8s, namespace, "mistral", "Ready", "False", "ScaledToZero")
    assert "latency probe (spec.probe) is paused" in condition(obj, "Available")["message"]
    assert obj["status"]["replicas"]["desired"] == 0
    assert obj["status"]["hourlyCostUSD"] == 0  # at zero replicas nothing is paid
    # Not an error: the Service and the endpoint stay for the next scale-up.
    assert client.CoreV1Api(k8s).read_namespaced_service("mistral", namespace)
    assert obj["status"]["endpoint"].startswith("http://mistral.")
    events = [e.reason for e in client.CoreV1Api(k8s).list_namespaced_event(
        namespace, field_selector="involvedObject.name=mistral").items if e.type == "Warning"]
    assert "ScaledToZero" not in events

    objects.patch_namespaced_custom_object_scale(GROUP, VERSION, namespace, MDS, "mistral",
                                                 {"spec": {"replicas": 2}})
    wait_replicas(k8s, namespace, "mistral", 2)
    play_kubelet(k8s, namespace, "mistral")
    obj = wait_condition(k8s, namespace, "mistral", "Ready", "True")
    eventually(lambda: get_md(k8s, namespace, "mistral")["status"]["replicas"]["display"]
               == "2/2", what="2/2 ready")


def test_an_evaluation_scales_its_target_up_for_the_run_and_back_to_zero(
        k8s, namespace, operator, llama, stub, tmp_path) -> None:
    secret(k8s, namespace, "slam-store", "url", f"sqlite:///{tmp_path / 'results.db'}")
    secret(k8s, namespace, "openai", "api-key", STUB_API_KEY)
    llamacpp_md(k8s, namespace, replicas=0)
    wait_condition(k8s, namespace, "smollm2", "Ready", "False", "ScaledToZero")
    wait_replicas(k8s, namespace, "smollm2", 0)

    client.CustomObjectsApi(k8s).create_namespaced_custom_object(
        GROUP, VERSION, namespace, EVS, evaluation("pep", stub.base_url,
                                                   scaling={"replicas": 1}))
    wait_replicas(k8s, namespace, "smollm2", 1)
    held = get_md(k8s, namespace, "smollm2")
    assert held["spec"]["replicas"] == 0  # the user's count is left alone
    eventually(lambda: get_md(k8s, namespace, "smollm2")["status"]["replicas"].get("heldBy")
               == ["pep"], what="held by pep")
    ev = wait_phase(k8s, namespace, "pep", "WaitingForTargets")
    assert "smollm2 (scaled up to 1 for this run)" in cond(ev, "TargetsReady")["message"]
    events = client.CoreV1Api(k8s).list_namespaced_event(
        namespace, field_selector="involvedObject.name=pep").items
    assert any(e.reason == "ScalingUp" and "modeldeployment/smollm2" in e.message
               for e in events)

    play_kubelet(k8s, namespace, "smollm2")
    ev = wait_phase(k8s, namespace, "pep", "Running")
    dns = {f"http://smollm2.{namespace}.svc.cluster.local:8080/v1": llama.base_url}
    assert run_job_as_kubelet(k8s, namespace, ev["status"]["jobName"], dns, tmp_path) == 0
    ev = wait_phase(k8s, namespace, "pep", "Succeeded")
    assert ev["status"]["progress"]["display"] == "6/6"
    # The cold start: from the hold (the scale-up) to the run's first token, in the status
    # summary; its parts in the stored report (the pod's start, then the first answer).
    startup = get_md(k8s, namespace, "smollm2")["status"]["lastStartup"]
    assert startup["requestedAt"] <= startup["created"] <= startup["ready"]
    row = next(s for s in ev["status"]["summary"] if s["target"] == "smollm2")
    assert row["coldStartSeconds"] >= 0
    assert "coldStartSeconds" not in next(s for s in ev["status"]["summary"]
                                          if s["target"] == "api")
    from slam import report, summary
    from slam.store import Store
    store = Store.open(f"sqlite:///{tmp_path / 'results.db'}")
    rep = summary.build(store, store.find_run("pep", "1", namespace).id)
    cs = next(t for t in rep.targets if t.target == "smollm2").cold_start
    assert cs is not None and cs.requested and cs.first_token_s is not None
    assert [what for what, _ in cs.parts][0] == "scale-up → pod created"
    assert cs.parts[-1][0].startswith("Ready → first token")
    assert "## Cold start" in report.to_markdown(rep)
    # What the run itself cost: the model from the scale-up to the run's end on its instance
    # type, the reference's tokens at GPT-4's price; in the status and the report.
    assert row["runSpendUSD"] > 0
    smol = next(t for t in rep.targets if t.target == "smollm2").run_spend
    assert smol is not None and "(from the scale-up) × 1 × $" in smol.how
    assert "## What this run cost" in report.to_markdown(rep)

    # The run is over: back to what it had, and the hold is gone.
    wait_replicas(k8s, namespace, "smollm2", 0)
    obj = wait_condition(k8s, namespace, "smollm2", "Ready", "False", "ScaledToZero")
    assert obj["status"]["replicas"]["heldBy"] == []
    assert "slam.dev/scale-holds" not in (obj["metadata"].get("annotations") or {})
    events = client.CoreV1Api(k8s).list_namespaced_event(
        namespace, field_selector="involvedObject.name=smollm2").items
    assert any(e.reason == "HoldReleased" and "evaluation pep ended" in e.message
               for e in events)


def test_evaluations_sharing_a_target_keep_it_up_until_the_last_one_ends(
        k8s, namespace, operator, stub) -> None:
    secret(k8s, namespace, "slam-store", "url", "sqlite:////tmp/unused.db")
    secret(k8s, namespace, "openai", "api-key", STUB_API_KEY)
    llamacpp_md(k8s, namespace, replicas=0)
    wait_replicas(k8s, namespace, "smollm2", 0)
    objects = client.CustomObjectsApi(k8s)
    objects.create_namespaced_custom_object(GROUP, VERSION, namespace, EVS, evaluation(
        "long", stub.base_url, scaling={"replicas": 1, "after": 1}))
    wait_replicas(k8s, namespace, "smollm2", 1)
    # `short` wants two and gives up on the model after 10 s (it never loads here: no
    # kubelet); `long` waits.
    objects.create_namespaced_custom_object(GROUP, VERSION, namespace, EVS, evaluation(
        "short", stub.base_url, scaling={"replicas": 2}, readyTimeoutSeconds=10))
    wait_replicas(k8s, namespace, "smollm2", 2, timeout=10)

    ev = wait_phase(k8s, namespace, "short", "Failed", timeout=60)
    assert cond(ev, "TargetsReady")["reason"] == "TargetsNotReady"
    wait_replicas(k8s, namespace, "smollm2", 1)  # still up for `long`, at what it holds
    eventually(lambda: get_md(k8s, namespace, "smollm2")["status"]["replicas"].get("heldBy")
               == ["long"], what="held by long only")
    assert get_md(k8s, namespace, "smollm2")["spec"]["replicas"] == 0
    assert get_ev(k8s, namespace, "long")["status"]["phase"] == "WaitingForTargets"

    # Deleting the last Evaluation releases it, leaving its `after` count in spec.replicas.
    objects.delete_namespaced_custom_object(GROUP, VERSION, namespace, EVS, "long")
    eventually(lambda: get_md(k8s, namespace, "smollm2")["spec"]["replicas"] == 1,
               what="spec.replicas set to `after`")
    assert served_replicas(k8s, namespace, "smollm2") == 1
    eventually(lambda: get_md(k8s, namespace, "smollm2")["status"]["replicas"]["heldBy"] == [],
               what="no holds")


def test_people_who_may_edit_a_namespace_may_scale_its_models_and_viewers_may_not(
        control_plane, k8s, namespace, operator) -> None:
    """The chart's ClusterRoles aggregated into Kubernetes' edit and view: `kubectl scale` by
    a namespace's editors works without any role of ours bound to them."""
    from kubernetes import config

    from tests.conftest import NOBODY
    create_md(k8s, namespace, md("mistral"))
    wait_replicas(k8s, namespace, "mistral", 1)
    rbac = client.RbacAuthorizationV1Api(k8s)
    person = config.new_client_from_config(str(control_plane.kubeconfig_for(NOBODY)))
    as_person = client.CustomObjectsApi(person)

    def bind(role: str) -> None:
        rbac.create_namespaced_role_binding(namespace, {
            "metadata": {"name": f"nobody-{role}"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                        "name": role},
            "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User",
                          "name": NOBODY}]})

    bind("view")
    scale = eventually(lambda: as_person.get_namespaced_custom_object_scale(
        GROUP, VERSION, namespace, MDS, "mistral"), what="a viewer reads the scale")
    assert scale["spec"]["replicas"] == 1
    try:
        as_person.patch_namespaced_custom_object_scale(GROUP, VERSION, namespace, MDS,
                                                       "mistral", {"spec": {"replicas": 0}})
        raise AssertionError("a viewer scaled a model")
    except client.ApiException as e:
        assert e.status == 403, e

    bind("edit")
    eventually(lambda: as_person.patch_namespaced_custom_object_scale(
        GROUP, VERSION, namespace, MDS, "mistral", {"spec": {"replicas": 0}}),
        what="an editor scales the model")
    wait_replicas(k8s, namespace, "mistral", 0)
