"""Plan, then apply: compare what exists with what should exist, as a pure function."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from slam_operator.names import BUILT_BY_ANNOTATION, REVISION_ANNOTATION

# Fields that describe intent. Status and server-managed metadata are never compared.
COMPARED = ("spec", "data")
# Kinds whose spec is immutable once bound: created when missing, never patched.
CREATE_ONLY = frozenset({"PersistentVolumeClaim"})


@dataclass(frozen=True)
class Action:
    verb: Literal["create", "apply", "delete"]
    kind: str
    name: str
    obj: dict[str, Any] | None = None  # the desired object (create/apply)

    def __str__(self) -> str:
        return f"{self.verb} {self.kind}/{self.name}"


def contains(desired: Any, actual: Any) -> bool:
    """True when every field we set has our value in `actual` (server-added fields are fine).

    Lists must match item by item and in length, so an extra container or env var added by hand
    counts as drift.
    """
    if isinstance(desired, dict):
        return isinstance(actual, dict) and all(
            k in actual and contains(v, actual[k]) for k, v in desired.items()
        )
    if isinstance(desired, list):
        return (
            isinstance(actual, list)
            and len(desired) == len(actual)
            and all(contains(d, a) for d, a in zip(desired, actual, strict=True))
        )
    return desired == actual


def drifted(desired: dict[str, Any], actual: dict[str, Any]) -> bool:
    if not contains(desired["metadata"].get("labels", {}), actual["metadata"].get("labels") or {}):
        return True
    return any(f in desired and not contains(desired[f], actual.get(f)) for f in COMPARED)


def _containers(obj: dict[str, Any]) -> list[tuple[str, str]]:
    pod = obj["spec"]["template"]["spec"]
    return [(c["name"], c.get("image", "")) for c in pod.get("containers", [])]


def built_by_another_release(desired: dict[str, Any], actual: dict[str, Any]) -> bool:
    """A Deployment that another operator release built, for the same model revision, images and
    replicas: what differs is how the operator builds pods, not what the user asked for.
    Rebuilding it would restart every model server (and reload every GPU) on an operator
    upgrade, so it is kept until its owner changes."""
    if desired["kind"] != "Deployment":
        return False
    built_by = (actual["metadata"].get("annotations") or {}).get(BUILT_BY_ANNOTATION)
    if built_by == desired["metadata"]["annotations"][BUILT_BY_ANNOTATION]:
        return False

    def revision(obj: dict[str, Any]) -> str | None:
        return (obj["spec"]["template"]["metadata"].get("annotations") or {}).get(
            REVISION_ANNOTATION)

    return (revision(desired) == revision(actual)
            and _containers(desired) == _containers(actual)
            and desired["spec"].get("replicas") == actual["spec"].get("replicas"))


def key(obj: dict[str, Any]) -> tuple[str, str]:
    return obj["kind"], obj["metadata"]["name"]


def plan(
    desired: list[dict[str, Any]],
    existing: dict[tuple[str, str], dict[str, Any]],
    managed_kinds: tuple[str, ...] = (),
    owner_settled: bool = False,
) -> list[Action]:
    """Creates and applies for `desired` (in order), then deletes for owned leftovers.

    `existing` holds the objects currently owned, keyed by (kind, name); those of
    `managed_kinds` that are no longer desired are deleted. `owner_settled`: the owner's spec
    has not changed since it was last reconciled (status.observedGeneration == generation), so
    a Deployment another operator release built for it is kept (built_by_another_release).
    """
    actions: list[Action] = []
    wanted = {key(o) for o in desired}
    for obj in desired:
        kind, name = key(obj)
        current = existing.get((kind, name))
        if current is None:
            actions.append(Action("create", kind, name, obj))
        elif kind not in CREATE_ONLY and drifted(obj, current) and not (
                owner_settled and built_by_another_release(obj, current)):
            actions.append(Action("apply", kind, name, obj))
    for kind, name in sorted(existing):
        if kind in managed_kinds and (kind, name) not in wanted:
            actions.append(Action("delete", kind, name))
    return actions
