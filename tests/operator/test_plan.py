"""Plan/diff: what to create, patch and delete, as a pure function."""

from __future__ import annotations

import copy

from slam_operator.names import BUILT_BY_ANNOTATION, REVISION_ANNOTATION
from slam_operator.plan import Action, contains, plan


def svc(name: str = "m", port: int = 8080, labels: dict | None = None) -> dict:
    return {"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": name, "labels": labels or {"a": "1"}},
            "spec": {"ports": [{"name": "http", "port": port}], "selector": {"x": "y"}}}


def as_server_returns(obj: dict) -> dict:
    """What the API server gives back: our fields plus defaults and server-managed metadata."""
    out = copy.deepcopy(obj)
    out["metadata"].update(uid="u", resourceVersion="7", creationTimestamp="t")
    out["spec"]["clusterIP"] = "10.96.0.12"
    out["spec"]["ports"][0]["protocol"] = "TCP"
    out["status"] = {"loadBalancer": {}}
    return out


def test_missing_children_are_created_in_order() -> None:
    desired = [svc("a"), svc("b")]
    assert plan(desired, {}) == [Action("create", "Service", "a", desired[0]),
                                 Action("create", "Service", "b", desired[1])]


def test_server_defaults_are_not_drift() -> None:
    desired = [svc()]
    assert plan(desired, {("Service", "m"): as_server_returns(svc())}) == []


def test_changed_field_extra_list_item_or_label_is_drift() -> None:
    desired = [svc()]
    changed = as_server_returns(svc(port=9000))
    extra = as_server_returns(svc())
    extra["spec"]["ports"].append({"name": "debug", "port": 1})
    relabelled = as_server_returns(svc(labels={"a": "2"}))
    for actual in (changed, extra, relabelled):
        assert [a.verb for a in plan(desired, {("Service", "m"): actual})] == ["apply"]


def test_leftovers_of_managed_kinds_are_deleted() -> None:
    existing = {("Service", "m"): as_server_returns(svc()),
                ("PersistentVolumeClaim", "m-cache"): {"metadata": {"name": "m-cache"}},
                ("ConfigMap", "other"): {"metadata": {"name": "other"}}}
    actions = plan([svc()], existing, managed_kinds=("Service", "PersistentVolumeClaim"))
    assert actions == [Action("delete", "PersistentVolumeClaim", "m-cache")]


def test_claims_are_never_patched() -> None:
    claim = {"kind": "PersistentVolumeClaim", "metadata": {"name": "c"},
             "spec": {"resources": {"requests": {"storage": "50Gi"}}}}
    bound = copy.deepcopy(claim)
    bound["spec"]["resources"]["requests"]["storage"] = "40Gi"
    assert plan([claim], {("PersistentVolumeClaim", "c"): bound}) == []


def test_contains_semantics() -> None:
    assert contains({"a": {}}, {"a": {"b": 1}})
    assert not contains({"a": [1]}, {"a": [1, 2]})
    assert not contains({"a": 1}, {})


def deployment(built_by: str | None = "0.2.0", revision: str = "abc", image: str = "tgi:3",
               replicas: int = 1, policy: str | None = "FallbackToLogsOnError") -> dict:
    container = {"name": "server", "image": image}
    if policy:
        container["terminationMessagePolicy"] = policy
    meta = {"name": "m", "labels": {"a": "1"}}
    if built_by:
        meta["annotations"] = {BUILT_BY_ANNOTATION: built_by}
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": meta,
            "spec": {"replicas": replicas, "template": {
                "metadata": {"annotations": {REVISION_ANNOTATION: revision}},
                "spec": {"containers": [container]}}}}


def test_an_operator_upgrade_does_not_rebuild_model_servers_nobody_changed() -> None:
    """A Deployment an older release built (here: before terminationMessagePolicy was set, and
    before releases were stamped) is kept while its ModelDeployment is unchanged: rebuilding it
    would restart the model server and reload its GPU for nothing the user asked for."""
    desired = [deployment()]
    for old in (deployment(built_by=None, policy=None), deployment(built_by="0.1.0", policy=None)):
        existing = {("Deployment", "m"): old}
        assert plan(desired, existing, owner_settled=True) == []
        # The ModelDeployment changed (generation not yet observed): rebuilt with this release.
        assert [a.verb for a in plan(desired, existing, owner_settled=False)] == ["apply"]
        # A new model revision, image or replica count is a change the user asked for.
        for changed in (deployment(revision="def"), deployment(image="tgi:4"),
                        deployment(replicas=2)):
            assert [a.verb for a in plan([changed], existing, owner_settled=True)] == ["apply"]


def test_drift_on_a_deployment_this_release_built_is_repaired() -> None:
    edited = deployment(policy="File")  # edited by hand after this release built it
    assert [a.verb for a in plan([deployment()], {("Deployment", "m"): edited},
                                 owner_settled=True)] == ["apply"]
