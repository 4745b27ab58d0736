"""Goodput at an SLO, and the search for the highest load that meets it.

Definitions (the same as vLLM's `bench serve --goodput` and GuideLLM 0.8's goodput profile, so a
figure can be checked with either tool — bench/goodput.py does):

- Per request: TTFT; TPOT = (e2e − TTFT) / (output tokens − 1) (vLLM's); e2e latency.
- A request *conforms* when it succeeded and meets every bound that is set. A failed request
  does not conform. A request with at most one output token has no TPOT: when a TPOT bound is
  set it is *undetermined* and left out of both counts (GuideLLM's rule).
- Attainment = conforming / determined requests. A load level *meets the SLO* when attainment
  ≥ `attainment` (0.95 by default: the p95 of each bounded metric is within its bound).
- Goodput = conforming requests per second of the level's wall time (first request sent to last
  answer received).
- The search (GuideLLM's): probe `initial` concurrency; while no level has failed, double (up to
  `max_concurrency`); once one has, bisect between the highest passing and the lowest failing
  level; when even the first fails, halve towards 1. Stop when the two are within
  max(1, tolerance × passing), at `max_concurrency`, or after `max_probes` levels.

Everything here but `measure` is pure. `Search.next` decides from the probes so far, so a search
interrupted by a restart goes on from the probes in the store.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

import numpy as np

from slam.generate import Endpoint, GenerationParams, RequestRecord
from slam.loadgen import Work, drive
from slam.promptsets import PromptItem


@dataclass(frozen=True)
class Slo:
    ttft_ms: float | None = None
    tpot_ms: float | None = None
    e2e_ms: float | None = None
    attainment: float = 0.95

    @classmethod
    def from_spec(cls, spec: dict | None) -> Slo | None:
        """From spec.cost.slo as stored (camelCase), or None when the spec sets none."""
        if not spec:
            return None
        return cls(spec.get("ttftMs"), spec.get("tpotMs"), spec.get("e2eMs"),
                   float(spec.get("attainment", 0.95)))

    def verdict(self, ok: bool, ttft_ms: float | None, e2e_ms: float | None,
                output_tokens: int | None) -> bool | None:
        """True: conforms; False: does not; None: undetermined (no TPOT for a TPOT bound)."""
        if not ok:
            return False
        tpot = tpot_ms(ttft_ms, e2e_ms, output_tokens)
        conforming = True
        for value, bound in ((ttft_ms, self.ttft_ms), (tpot, self.tpot_ms),
                             (e2e_ms, self.e2e_ms)):
            if bound is None:
                continue
            if value is None:
                return None
            if value > bound:
                conforming = False
        return conforming

    def describe(self) -> str:
        bounds = [f"{name} ≤ {v:g} ms" for name, v in (("TTFT", self.ttft_ms),
                                                        ("TPOT", self.tpot_ms),
                                                        ("e2e", self.e2e_ms)) if v is not None]
        return f"{', '.join(bounds)} for {self.attainment:.0%} of requests"


def tpot_ms(ttft_ms: float | None, e2e_ms: float | None, output_tokens: int | None
            ) -> float | None:
    if ttft_ms is None or e2e_ms is None or not output_tokens or output_tokens <= 1:
        return None
    return (e2e_ms - ttft_ms) / (output_tokens - 1)


@dataclass(frozen=True)
class Probe:
    """One load level measured: counts, wall time and p95s (ms) of its successful requests."""

    concurrency: int
    requests: int
    failed: int
    determined: int
    conforming: int
    seconds: float
    ttft_p95_ms: float | None = None
    tpot_p95_ms: float | None = None
    e2e_p95_ms: float | None = None

    @property
    def attainment(self) -> float | None:
        return self.conforming / self.determined if self.determined else None

    @property
    def goodput_rps(self) -> float:
        return self.conforming / self.seconds if self.seconds > 0 else 0.0

    @property
    def throughput_rps(self) -> float:
        ok = self.requests - self.failed
        return ok / self.seconds if self.seconds > 0 else 0.0

    @classmethod
    def from_row(cls, row: dict) -> Probe:
        """A probe as the store's capacity_probes table holds it."""
        return cls(**{f.name: row[f.name] for f in dataclasses.fields(cls)})

    def passed(self, slo: Slo) -> bool:
        return self.attainment is not None and self.attainment >= slo.attainment


def _p95(values: list[float]) -> float | None:
    return float(np.percentile(values, 95)) if values else None


def probe_from(records: Sequence[RequestRecord], concurrency: int, seconds: float,
               slo: Slo) -> Probe:
    verdicts = [slo.verdict(r.ok, r.ttft_ms, r.e2e_ms, r.completion_tokens) for r in records]
    ok = [r for r in records if r.ok]
    tpots = [t for r in ok if (t := tpot_ms(r.ttft_ms, r.e2e_ms, r.completion_tokens))
             is not None]
    return Probe(
        concurrency=concurrency, requests=len(records), failed=len(records) - len(ok),
        determined=sum(v is not None for v in verdicts),
        conforming=sum(v is True for v in verdicts),
        seconds=seconds,
        ttft_p95_ms=_p95([r.ttft_ms for r in ok if r.ttft_ms is not None]),
        tpot_p95_ms=_p95(tpots),
        e2e_p95_ms=_p95([r.e2e_ms for r in ok if r.e2e_ms is not None]))


@dataclass(frozen=True)
class Search:
    initial: int = 1
    max_concurrency: int = 64
    max_probes: int = 8
    requests_per_probe: int = 32
    tolerance: float = 0.1

    @classmethod
    def from_spec(cls, spec: dict | None) -> Search:
        spec = spec or {}
        return cls(int(spec.get("initialConcurrency", 1)), int(spec.get("maxConcurrency", 64)),
                   int(spec.get("maxProbes", 8)), int(spec.get("requestsPerProbe", 32)),
                   float(spec.get("tolerance", 0.1)))

    def requests_at(self, concurrency: int) -> int:
        return max(self.requests_per_probe, 2 * concurrency)

    def next(self, probes: Sequence[Probe], slo: Slo) -> tuple[int | None, str]:
        """The next concurrency to probe, or None and why the search is over."""
        if not probes:
            return min(self.initial, self.max_concurrency), ""
        passing = [p.concurrency for p in probes if p.passed(slo)]
        failing = [p.concurrency for p in probes if not p.passed(slo)]
        best, worst = max(passing, default=None), min(failing, default=None)
        if worst is None and best is not None and best >= self.max_concurrency:
            return None, f"met at the highest concurrency searched ({self.max_concurrency})"
        if len(probes) >= self.max_probes:
            return None, "probe budget spent"
        if worst is None:
            assert best is not None
            return min(best * 2, self.max_concurrency), ""
        if best is None:
            if worst <= 1:
                return None, "not met even one request at a time"
            return worst // 2, ""
        if worst - best <= max(1, self.tolerance * best):
            return None, "converged"
        return (best + worst) // 2, ""


@dataclass(frozen=True)
class Capacity:
    """The outcome of a target's search: the highest passing level, if any."""

    slo: Slo
    probes: tuple[Probe, ...]
    stop: str  # why the search ended ("" while it is not over)
    replicas: int = 1  # replicas that served the search

    @property
    def best(self) -> Probe | None:
        passing = [p for p in self.probes if p.passed(self.slo)]
        return max(passing, key=lambda p: p.concurrency, default=None)

    @property
    def goodput_rps(self) -> float:
        """Goodput at the highest passing level, all replicas together (0: never met)."""
        return self.best.goodput_rps if self.best else 0.0

    @property
    def goodput_per_replica(self) -> float:
        return self.goodput_rps / max(self.replicas, 1)

    @property
    def finished(self) -> bool:
        return bool(self.stop)


def outcome(probes: Sequence[Probe], slo: Slo, search: Search, replicas: int = 1) -> Capacity:
    _, stop = search.next(probes, slo)
    return Capacity(slo, tuple(probes), stop, replicas)


async def measure(
    endpoint: Endpoint,
    prompts: Sequence[PromptItem],
    params: GenerationParams,
    slo: Slo,
    search: Search,
    *,
    done: Sequence[Probe] = (),
    on_probe: Callable[[Probe], Awaitable[None] | None] | None = None,
    warmups: int = 1,
) -> list[Probe]:
    """Run the search against `endpoint` (the prompts cycled), after the probes already `done`;
    each new probe goes to `on_probe` as soon as it is measured. Nothing else may load the
    server meanwhile: the caller measures one target at a time. A search that starts afresh
    first sends `warmups` requests it does not count (as vLLM's `bench serve --num-warmups`):
    a server's first answer pays for its lazy set-up, which would otherwise be the first probe's
    p95."""
    probes = list(done)
    client = endpoint.client(params)
    try:
        if not probes and warmups:
            await drive(endpoint, [Work(prompts[i % len(prompts)], 999) for i in range(warmups)],
                        params, concurrency=1, on_record=lambda _: None, client=client)
        while True:
            concurrency, _ = search.next(probes, slo)
            if concurrency is None:
                return probes
            n = search.requests_at(concurrency)
            work = [Work(prompts[i % len(prompts)], 1000 + i // len(prompts)) for i in range(n)]
            records: list[RequestRecord] = []
            t0 = time.perf_counter()
            await drive(endpoint, work, params, concurrency=concurrency,
                        on_record=records.append, client=client)
            probe = probe_from(records, concurrency, time.perf_counter() - t0, slo)
            probes.append(probe)
            if on_probe is not None and (result := on_probe(probe)) is not None:
                await result
    finally:
        await client.close()
