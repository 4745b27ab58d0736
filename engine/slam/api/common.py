"""Shared pieces of the slam.dev/v1alpha1 API: base model, rules, references, conditions.

The typed models in this package are the single source of truth for the CRDs: `slam.api.crdgen`
turns them into `crds/*.yaml`, and the same models validate manifests when `slam run` reads them
without a cluster. A cross-field rule is written once, as a `Rule` holding both its CEL expression
(for the API server) and the equivalent Python predicate (for local validation); tests check that
both sides reject the same invalid manifests.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from pydantic.alias_generators import to_camel
from pydantic_core import PydanticCustomError

GROUP = "slam.dev"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"

# A DNS-1123 label: the names of targets, Kubernetes objects and Secrets.
DNS_LABEL = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
DNS_SUBDOMAIN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
SECRET_KEY = r"^[-._a-zA-Z0-9]+$"


@dataclass(frozen=True)
class Rule:
    """A cross-field rule: CEL for the API server, `check` for local validation.

    `field_path` is relative to the object the rule sits on (".reference"), so the API server's
    message names the offending field (spec.reference: ...). `cel=None` marks a rule that the
    API server enforces by other means (a list-map key's uniqueness), checked locally only.
    """

    cel: str | None
    message: str
    check: Callable[[Any], bool]
    field_path: str | None = None

    def to_schema(self) -> dict[str, str]:
        assert self.cel is not None
        out = {"rule": self.cel, "message": self.message}
        if self.field_path:
            out["fieldPath"] = self.field_path
        return out


def _add_cel_rules(schema: dict[str, Any], cls: type) -> None:
    """Pydantic hook: each model's CEL rules go on its own schema node."""
    rules = [r.to_schema() for r in getattr(cls, "rules", ()) if r.cel]
    if rules:
        schema["x-kubernetes-validations"] = rules


class ApiModel(BaseModel):
    """Base for every API type: camelCase on the wire, unknown fields rejected, immutable."""

    model_config = ConfigDict(
        json_schema_extra=_add_cel_rules,
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
        frozen=True,
        use_enum_values=True,
    )
    rules: ClassVar[tuple[Rule, ...]] = ()

    @model_validator(mode="after")
    def _check_rules(self) -> ApiModel:
        for rule in type(self).rules:
            if not rule.check(self):
                raise PydanticCustomError(
                    "rule", rule.message, {"field_path": rule.field_path or ""}
                )
        return self

    def to_wire(self) -> dict[str, Any]:
        """The manifest form: camelCase keys, unset optional fields left out."""
        return self.model_dump(by_alias=True, exclude_none=True, mode="json")


def exactly_one(*present: bool) -> bool:
    return sum(bool(p) for p in present) == 1


def cel_exactly_one(*fields: str) -> str:
    return "[" + ", ".join(f"has(self.{f})" for f in fields) + "].filter(x, x).size() == 1"


class SecretKeyRef(ApiModel):
    """A key in a Secret in the same namespace. Only the reference is ever stored or logged."""

    name: str = Field(
        description="Name of the Secret (same namespace as this resource).",
        pattern=DNS_SUBDOMAIN,
        max_length=253,
    )
    key: str = Field(description="Key inside the Secret.", pattern=SECRET_KEY, max_length=253)


class LocalObjectRef(ApiModel):
    """A reference to another object in the same namespace."""

    name: str = Field(
        description="Name of the object (same namespace).", pattern=DNS_SUBDOMAIN, max_length=253
    )


class Condition(ApiModel):
    """A Kubernetes-style condition (the shape of metav1.Condition)."""

    type: str = Field(
        description="Condition type, e.g. Ready.", pattern=r"^[A-Za-z][A-Za-z0-9]*$", max_length=64
    )
    status: Literal["True", "False", "Unknown"] = Field(description="True, False or Unknown.")
    reason: str = Field(
        description="One CamelCase word saying why the condition has this status.",
        pattern=r"^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$",
        max_length=1024,
    )
    message: str = Field(
        default="", description="What is wrong and how to fix it, for people.", max_length=32768
    )
    observed_generation: int | None = Field(
        default=None,
        description="metadata.generation of the spec this condition was computed from.",
        ge=0,
    )
    last_transition_time: str | None = Field(
        default=None,
        description="When the status last changed (RFC 3339).",
        json_schema_extra={"format": "date-time"},
    )


class ProbeSpec(ApiModel):
    """Continuous latency probe: one small request on a schedule, to see latency over time."""

    interval_seconds: int = Field(
        default=60, description="Seconds between probe requests.", ge=5, le=86400
    )
    prompt: str = Field(
        default="Say hello in one short sentence.",
        description="User message sent by every probe request.",
        min_length=1,
        max_length=4096,
    )
    max_tokens: int = Field(
        default=16, description="max_tokens for each probe request.", ge=1, le=4096
    )


def field_path(loc: tuple[int | str, ...], suffix: str = "") -> str:
    """('spec', 'targets', 0, 'name') -> 'spec.targets[0].name', as the API server writes it."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out + suffix


def describe_errors(exc: ValidationError) -> list[str]:
    """One line per problem, each naming the field: 'spec.reference: must name one of ...'."""
    lines = []
    for err in exc.errors(include_url=False):
        ctx = err.get("ctx") or {}
        path = field_path(err["loc"], ctx.get("field_path", ""))
        msg = err["msg"]
        if err["type"] == "extra_forbidden":
            msg = "unknown field (check the spelling against `kubectl explain`)"
        lines.append(f"{path or '(top level)'}: {msg}")
    return lines
