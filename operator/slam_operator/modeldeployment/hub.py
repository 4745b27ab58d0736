"""Facts about a model from the Hugging Face Hub (huggingface_hub), classified into outcomes.

The endpoint and the timeout come from the operator's settings (HF_ENDPOINT: the Hub, a mirror,
or a local stand-in in tests; SLAM_HUB_TIMEOUT_SECONDS). Lookups never raise: every failure is an
outcome with a message that says what to do.
"""

from __future__ import annotations

import json
import re
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from huggingface_hub import HfApi
from huggingface_hub.errors import (
    GatedRepoError,
    HfHubHTTPError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)

from slam_operator.modeldeployment.gpu import ModelShape, shape_from_config
from slam_operator.settings import DEFAULT_HUB
from slam_operator.settings import DEFAULT_HUB_TIMEOUT_SECONDS as DEFAULT_TIMEOUT_SECONDS

# A Hub call that takes longer than the timeout (SLAM_HUB_TIMEOUT_SECONDS, default
# DEFAULT_TIMEOUT_SECONDS) is treated as "unreachable" and retried with backoff.

FULL_SHA = re.compile(r"^[0-9a-f]{40}$")
# Found facts are stable for a commit; a branch may move, so re-resolve now and then.
CACHE_TTL_SECONDS = 600.0
# config.json files (a few KB each, by commit) go under the temporary directory: the
# operator's container writes only /tmp.
CONFIG_CACHE = "slam-hub-configs"

Status = Literal["found", "not_found", "revision_not_found", "gated", "unreachable"]


@dataclass(frozen=True)
class HubOutcome:
    status: Status
    message: str
    sha: str | None = None
    parameters: int | None = None
    gated: bool | None = None
    license: str | None = None
    shape: ModelShape | None = None  # from config.json, for the KV cache in the fit check
    files: tuple[str, ...] = ()  # the repository's files at that commit


# AWQ and GPTQ checkpoints pack eight 4-bit weights into each int32 element (qweight,
# qzeros), and the Hub counts elements: its "total" for Qwen2.5-32B-Instruct-AWQ is 5.7B.
# Unpacked, the count is the model's (the bits per weight come from spec.quantization).
PACKED_PER_ELEMENT = {"I32": 8}


def parameter_count(by_dtype: dict[str, int] | None, total: int | None) -> int | None:
    """The model's parameters from the Hub's safetensors counts per dtype (int32 elements of a
    4-bit checkpoint unpacked), else its total."""
    if by_dtype:
        return sum(int(n) * PACKED_PER_ELEMENT.get(dtype.upper(), 1)
                   for dtype, n in by_dtype.items())
    return int(total) if total else None


def _parameters(info) -> int | None:
    st = getattr(info, "safetensors", None)
    if st is not None and getattr(st, "total", None):
        return parameter_count(getattr(st, "parameters", None), st.total)
    gguf = getattr(info, "gguf", None)
    if isinstance(gguf, dict) and gguf.get("total"):
        return int(gguf["total"])
    return None


def _license(info) -> str | None:
    card = getattr(info, "card_data", None)
    lic = card.get("license") if card is not None else None
    return str(lic) if lic else None


def _shape(api: HfApi, model_id: str, info, timeout: float) -> ModelShape | None:
    """The model's attention shape from its config.json at the resolved commit, or None (no
    config.json, or it could not be read: the fit check then falls back to its ratio)."""
    if not any(s.rfilename == "config.json" for s in getattr(info, "siblings", None) or ()):
        return None
    try:
        path = api.hf_hub_download(model_id, "config.json", revision=info.sha,
                                   cache_dir=Path(tempfile.gettempdir()) / CONFIG_CACHE,
                                   etag_timeout=timeout)
        return shape_from_config(json.loads(Path(path).read_text()))
    except Exception:  # noqa: BLE001 - a missing shape only makes the estimate coarser
        return None


def lookup(model_id: str, revision: str, token: str | None, endpoint: str = DEFAULT_HUB,
           timeout: float = DEFAULT_TIMEOUT_SECONDS) -> HubOutcome:
    """Resolve `revision` of `model_id` to a commit and read its facts, from the Hub at
    `endpoint`, waiting at most `timeout` seconds."""
    api = HfApi(endpoint=endpoint, token=token or False)
    try:
        info = api.model_info(model_id, revision=revision, timeout=timeout)
    except GatedRepoError:
        if token:
            msg = (f"{model_id} is gated and the token in spec.hfTokenSecretRef has no access: "
                   "accept the model's licence on the Hub with that account, or use another token")
        else:
            msg = (f"{model_id} is gated: accept its licence on the Hub and set "
                   "spec.hfTokenSecretRef to a Secret holding a token with access")
        return HubOutcome("gated", msg, gated=True)
    except RevisionNotFoundError:
        return HubOutcome("revision_not_found",
                          f"{model_id} has no revision {revision!r}: fix spec.model.revision "
                          "(a branch, tag or commit SHA)")
    except RepositoryNotFoundError:
        hint = "" if token else ", or set spec.hfTokenSecretRef if the repository is private"
        return HubOutcome(
            "not_found", f"the Hub has no model {model_id!r}: check spec.model.id{hint}"
        )
    except HfHubHTTPError as e:
        code = e.response.status_code if e.response is not None else "?"
        return HubOutcome("unreachable", f"the Hub answered HTTP {code} for {model_id}")
    except Exception as e:  # noqa: BLE001 - timeouts, refused connections, DNS: all "unreachable"
        return HubOutcome("unreachable",
                          f"the Hub at {endpoint} did not answer ({type(e).__name__})")
    return HubOutcome(
        "found",
        f"{model_id}@{revision} resolved to {info.sha}",
        sha=info.sha,
        parameters=_parameters(info),
        gated=bool(getattr(info, "gated", False)),
        license=_license(info),
        shape=_shape(api, model_id, info, timeout),
        files=tuple(sorted(sib.rfilename for sib in getattr(info, "siblings", None) or ())),
    )


class CachedHub:
    """Lookups with a TTL cache for found models, shared by all reconciles (thread-safe)."""

    def __init__(self, endpoint: str = DEFAULT_HUB, timeout: float = DEFAULT_TIMEOUT_SECONDS,
                 ttl: float = CACHE_TTL_SECONDS):
        self.endpoint = endpoint.rstrip("/")
        self.timeout = timeout
        self.ttl = ttl
        self._lock = threading.Lock()
        self._cache: dict[tuple[str, str, bool], tuple[float, HubOutcome]] = {}
        self.calls = 0

    def lookup(self, model_id: str, revision: str, token: str | None) -> HubOutcome:
        key = (model_id, revision, bool(token))
        now = time.monotonic()
        with self._lock:
            hit = self._cache.get(key)
            if hit and now - hit[0] < self.ttl:
                return hit[1]
        outcome = lookup(model_id, revision, token, self.endpoint, self.timeout)
        with self._lock:
            self.calls += 1
            if outcome.status == "found":
                self._cache[key] = (now, outcome)
        return outcome
