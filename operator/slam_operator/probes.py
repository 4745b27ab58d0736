"""Continuous latency probes (the study's "latency over time"): a loop per probed object.

A ModelDeployment with `spec.probe` is probed at its endpoint once Ready; an Evaluation with
`spec.probe` probes each of its external targets (e.g. the OpenAI API). Each sample goes to the
Prometheus histograms and, when a store is configured, to the store's probe_samples table.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from slam.api.common import ProbeSpec, SecretKeyRef
from slam.api.evaluation import EvaluationSpec
from slam.generate import Endpoint
from slam.probe import params, probe_once
from slam.store import Store
from slam_operator import metrics
from slam_operator.conditions import is_true
from slam_operator.kube import Kube
from slam_operator.stores import store_for

log = logging.getLogger("slam_operator.probes")
Targets = list[tuple[str, Endpoint]]


def probe_store(kube: Kube, namespace: str, ref: SecretKeyRef | None,
                default: str | None) -> Store | None:
    """The Evaluation's store (its Secret), else the operator's (`default`: SLAM_STORE_URL),
    else none."""
    url = kube.secret_value(namespace, ref.name, ref.key)[0] if ref else None
    url = url or default
    return store_for(url) if url else None


def model_deployment_targets(kube: Kube, namespace: str, name: str) -> Targets:
    """The ModelDeployment's endpoint, once it is Ready (nothing is sent before)."""
    st = (kube.get_model_deployment(namespace, name) or {}).get("status") or {}
    if not is_true(st.get("conditions"), "Ready") or not st.get("endpoint"):
        return []
    return [(name, Endpoint(name, st["endpoint"], st.get("servedModelName") or name))]


def external_targets(kube: Kube, namespace: str, name: str, spec: EvaluationSpec) -> Targets:
    """An Evaluation's external targets (e.g. the OpenAI API), named evaluation/target, with
    their API keys from their Secrets; a target whose Secret is missing is skipped (logged)."""
    out: Targets = []
    for t in spec.targets:
        if t.external is None:
            continue
        key = None
        if t.external.api_key_secret_ref:
            ref = t.external.api_key_secret_ref
            key, problem = kube.secret_value(namespace, ref.name, ref.key)
            if problem:
                log.warning("probe of %s/%s skipped: %s", name, t.name, problem)
                continue
        out.append((f"{name}/{t.name}", Endpoint(t.name, t.external.base_url.rstrip("/"),
                                                 t.external.model, key)))
    return out


async def probe_loop(namespace: str, targets: Callable[[], Targets],
                     spec: ProbeSpec, store: Store | None,
                     sleep: Callable[[float], Awaitable[bool]]) -> None:
    """Probe every (name, endpoint) that `targets()` returns, every `spec.interval_seconds`,
    until `sleep` returns True (kopf's stop flag)."""
    clients: dict[str, object] = {}
    try:
        while True:
            found = targets()
            results = []
            for name, endpoint in found:
                client = clients.get(name)
                if client is None:
                    client = clients[name] = endpoint.client(params(spec))
                results.append((name, probe_once(client, endpoint, spec)))
            for name, pending in results:
                result = await pending
                metrics.observe_probe(namespace, name, result)
                if store is not None:
                    try:
                        await asyncio.to_thread(store.save_probe, namespace, name, result)
                    except Exception as e:  # noqa: BLE001 - a store outage must not stop probing
                        log.warning("probe sample for %s not stored: %s", name,
                                    type(e).__name__)
            if await sleep(spec.interval_seconds):
                return
    finally:
        for client in clients.values():
            await client.close()
