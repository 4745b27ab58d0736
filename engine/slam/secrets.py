"""Secret values (API keys, store URLs) by reference: from the environment, never from a spec.

The scoring Job gets each referenced Secret key as an environment variable (a `secretKeyRef`),
named by `env_name`; `slam run` reads the same variables, or a Secret object in the manifests it
was given. Values are only ever held in memory and handed to the client that needs them.
"""

from __future__ import annotations

import base64
import os
import re
from collections.abc import Mapping, Sequence
from typing import Any

from slam.api.common import SecretKeyRef


class MissingSecret(LookupError):
    pass


def env_name(ref: SecretKeyRef) -> str:
    """SLAM_SECRET_<NAME>_<KEY>, upper case, other characters as '_' (openai-api-key/api-key ->
    SLAM_SECRET_OPENAI_API_KEY__API_KEY)."""
    def clean(s: str) -> str:
        return re.sub(r"[^A-Z0-9]", "_", s.upper())

    return f"SLAM_SECRET_{clean(ref.name)}__{clean(ref.key)}"


def from_manifests(ref: SecretKeyRef, objects: Sequence[Mapping[str, Any]]) -> str | None:
    for obj in objects:
        if obj.get("kind") != "Secret" or (obj.get("metadata") or {}).get("name") != ref.name:
            continue
        if ref.key in (obj.get("stringData") or {}):
            return str(obj["stringData"][ref.key])
        if ref.key in (obj.get("data") or {}):
            return base64.b64decode(obj["data"][ref.key]).decode()
    return None


def resolve(ref: SecretKeyRef, objects: Sequence[Mapping[str, Any]] = (),
            env: Mapping[str, str] | None = None, *, field: str = "") -> str:
    env = os.environ if env is None else env
    value = env.get(env_name(ref)) or from_manifests(ref, objects)
    if value is None:
        raise MissingSecret(
            f"{field or 'secret'}: Secret {ref.name} key {ref.key} not found; set the environment "
            f"variable {env_name(ref)} or add the Secret to the manifests"
        )
    return value
