"""CRDs on the real API server: examples accepted, invalid manifests rejected naming the field."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client

from tests.api.cases import INVALID, evaluation, model_deployment

EXAMPLES = Path(__file__).resolve().parents[2] / "manifests" / "examples"
PLURALS = {"ModelDeployment": "modeldeployments", "Evaluation": "evaluations"}


def create(k8s: client.ApiClient, namespace: str, obj: dict[str, Any], dry_run: bool = False):
    kwargs = {"field_validation": "Strict"}
    if dry_run:
        kwargs["dry_run"] = "All"
    if obj["kind"] in PLURALS:
        return client.CustomObjectsApi(k8s).create_namespaced_custom_object(
            "slam.dev", "v1alpha1", namespace, PLURALS[obj["kind"]], obj, **kwargs
        )
    if obj["kind"] == "ConfigMap":
        return client.CoreV1Api(k8s).create_namespaced_config_map(namespace, obj, **kwargs)
    raise AssertionError(f"unexpected kind in examples: {obj['kind']}")


def example_objects() -> list[tuple[str, dict[str, Any]]]:
    """Every object under manifests/examples, including the kustomize-generated ConfigMap."""
    objs = []
    for path in sorted(EXAMPLES.rglob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if isinstance(doc, dict) and doc.get("apiVersion") and doc.get("kind") not in (
                None, "Kustomization"
            ):
                objs.append((str(path.relative_to(EXAMPLES)), doc))
    kustomization = yaml.safe_load((EXAMPLES / "kustomization.yaml").read_text())
    for gen in kustomization["configMapGenerator"]:
        data = {}
        for spec in gen["files"]:
            key, _, rel = spec.partition("=")
            data[key] = (EXAMPLES / rel).read_text()
        objs.append(("kustomization.yaml", {
            "apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": gen["name"]},
            "data": data,
        }))
    return objs


def test_every_example_is_accepted(k8s: client.ApiClient, namespace: str) -> None:
    objs = example_objects()
    kinds = {o["kind"] for _, o in objs}
    assert {"ModelDeployment", "Evaluation", "ConfigMap"} <= kinds
    for source, obj in objs:
        try:
            create(k8s, namespace, obj)
        except client.ApiException as e:
            pytest.fail(f"{source} {obj['kind']}/{obj['metadata']['name']} rejected: {e.body}")


@pytest.mark.parametrize("case", INVALID, ids=[c.id for c in INVALID])
def test_invalid_manifest_rejected_naming_the_field(k8s, namespace, case) -> None:
    with pytest.raises(client.ApiException) as info:
        create(k8s, namespace, case.make(), dry_run=True)
    assert info.value.status in (400, 422), info.value.body
    message = json.loads(info.value.body)["message"]
    assert case.field in message, message


def test_defaults_are_applied_by_the_server(k8s, namespace) -> None:
    md = create(k8s, namespace, model_deployment())
    assert md["spec"]["runtime"] == "tgi"
    assert md["spec"]["replicas"] == 1
    assert md["spec"]["model"]["revision"] == "main"
    ev = create(k8s, namespace, evaluation(generation={}))
    assert ev["spec"]["runId"] == "1"
    assert ev["spec"]["generation"] == {
        "maxTokens": 256, "temperature": 0.7, "samplesPerPrompt": 1, "timeoutSeconds": 120,
        "maxRetries": 3,
    }
    assert ev["spec"]["targets"][1]["concurrency"] == 4


def test_printer_columns_show_status(k8s, namespace) -> None:
    """What `kubectl get evaluations` prints: Phase, Progress and Leader from status."""
    api = client.CustomObjectsApi(k8s)
    create(k8s, namespace, evaluation())
    api.patch_namespaced_custom_object_status(
        "slam.dev", "v1alpha1", namespace, "evaluations", "pep-talk",
        {"status": {"phase": "Running", "progress": {"done": 3, "total": 8, "display": "3/8"},
                    "leader": "mistral"}},
    )
    request = k8s.param_serialize(
        "GET", f"/apis/slam.dev/v1alpha1/namespaces/{namespace}/evaluations",
        header_params={"Accept": "application/json;as=Table;v=v1;g=meta.k8s.io"},
        auth_settings=["BearerToken"],
    )
    response = k8s.call_api(*request)
    response.read()
    table = json.loads(response.data)
    names = [c["name"] for c in table["columnDefinitions"]]
    row = dict(zip(names, table["rows"][0]["cells"], strict=True))
    assert row["Phase"] == "Running"
    assert row["Progress"] == "3/8"
    assert row["Leader"] == "mistral"


def test_short_names_and_category_are_discoverable(k8s) -> None:
    resources = client.CustomObjectsApi(k8s).get_api_resources("slam.dev", "v1alpha1").resources
    by_kind = {r.kind: r for r in resources if "/" not in r.name}
    assert set(by_kind["ModelDeployment"].short_names) >= {"md"}
    assert set(by_kind["Evaluation"].short_names) >= {"ev"}
    assert all("slam" in r.categories for r in by_kind.values())
