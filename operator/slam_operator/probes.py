"""Continuous latency probes (the study's "latency over time"): a loop per probed object.

A ModelDeployment with `spec.probe` is probed at its endpoint once Ready; an Evaluation with
`spec.probe` probes each of its external targets (e.g. the OpenAI API). Each sample goes to the
Prometheus histograms and, when a store is configured, to the store's probe_samples table.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from slam.api.common import ProbeSpec
from slam.generate import Endpoint
from slam.probe import params, probe_once
from slam.store import Store
from slam_operator import metrics

log = logging.getLogger("slam_operator.probes")


async def probe_loop(namespace: str, targets: Callable[[], list[tuple[str, Endpoint]]],
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
