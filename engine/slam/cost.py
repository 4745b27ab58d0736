"""Cost model: $/1,000 requests from measured tokens and throughput, monthly cost, break-even.

Formulas (all in USD; README "Cost model" has worked examples):

- API target, price per 1M input tokens P_in and output tokens P_out, measured mean tokens per
  request T_in and T_out:
      per_request = (T_in * P_in + T_out * P_out) / 1e6
      per_1k      = 1000 * per_request
      monthly(d)  = per_request * d * days_per_month          (d = requests per day)
- Self-hosted target on an instance at H $/hour with R replicas, measured sustainable
  throughput X requests/s at the evaluated concurrency (all replicas together):
      per_1k      = 1000 * H * R / (3600 * X)                 (the deployment kept busy)
      monthly(d)  = max(R, ceil(d / 86400 / (X / R))) * H * hours_per_month
                    (paid by the hour whether busy or not; more replicas only when the average
                    rate exceeds what R replicas sustain — no peak factor)
- Break-even against an API reference: the requests/day at which the self-hosted deployment's
  fixed monthly cost equals the API's:
      d* = R * H * hours_per_month / (per_request * days_per_month)
  Above d*, self-hosting is cheaper (as long as d* is within what R replicas sustain).

days_per_month = hours_per_month / 24 (730 h -> 30.4 days).

At an SLO (Evaluation spec.cost.slo), X is the goodput per replica at the highest concurrency
that meets it (slam.goodput), and traffic is sized hour by hour (`size`), from
spec.cost.trafficProfile or requestsPerDay spread evenly:
      replicas(h)      = ceil(n_h / 3600 / X)              (n_h: requests in hour h of the day)
      always-on        = max_h replicas(h) * H * hours_per_month
      scale-to-zero    = sum_h replicas(h) * H * days_per_month
      cold starts/day  = hours with requests after an hour without (the day wraps round)
      missed/day       = sum over those hours of min(n_h, n_h / 3600 * cold start seconds)
  and the break-even is the daily volume, in the profile's shape, from which the cheaper of the
  two costs no more than the API (`break_even_scale`).

What the evaluation itself cost (`run_spend`): an API target, the tokens it was sent and
answered at its price (every request that reported them, failed ones included); a self-hosted
target, instance-hours × price × replicas for as long as the run kept it up: from the scale-up
that brought it up for the run (Evaluation spec.scaling), else from the run's first request, to
the run's end.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np

from slam.pricing import HourlyPrice, TokenPrice


@dataclass(frozen=True)
class CostEstimate:
    target: str
    kind: str  # api | self-hosted
    per_1k_usd: float | None
    source: str  # where the price came from, or why there is no estimate
    per_request_usd: float | None = None  # API
    hourly_usd: float | None = None  # self-hosted, one replica
    replicas: int = 1
    capacity_rps: float | None = None  # self-hosted, measured

    def monthly_usd(self, requests_per_day: float, hours_per_month: float = 730.0
                    ) -> float | None:
        if self.kind == "api":
            if self.per_request_usd is None:
                return None
            return self.per_request_usd * requests_per_day * hours_per_month / 24.0
        if self.hourly_usd is None or not self.capacity_rps:
            return None
        return self.instances(requests_per_day) * self.hourly_usd * hours_per_month

    def instances(self, requests_per_day: float) -> int:
        """Self-hosted: the replicas paid for at this traffic (at least the deployment's)."""
        per_replica = (self.capacity_rps or 0.0) / self.replicas
        needed = math.ceil(requests_per_day / 86400.0 / per_replica) if per_replica else 0
        return max(self.replicas, needed)

    def utilisation(self, requests_per_day: float) -> float | None:
        """Self-hosted: the share of the paid replicas' measured capacity this traffic uses
        (the rest is paid for idle); None for an API target or without a measured capacity."""
        if self.kind != "self-hosted" or not self.capacity_rps:
            return None
        per_replica = self.capacity_rps / self.replicas
        return requests_per_day / 86400.0 / (per_replica * self.instances(requests_per_day))


def api_cost(target: str, price: TokenPrice | None, prompt_tokens: float | None,
             completion_tokens: float | None) -> CostEstimate:
    if price is None:
        return CostEstimate(target, "api", None,
                            "no price for this model: set spec.targets[].external.pricing")
    if completion_tokens is None:
        return CostEstimate(target, "api", None, "no successful requests to measure tokens")
    per_request = ((prompt_tokens or 0.0) * price.input_per_m
                   + completion_tokens * price.output_per_m) / 1e6
    note = "" if prompt_tokens is not None else " (prompt tokens not reported: output only)"
    return CostEstimate(target, "api", per_request * 1000.0, price.source + note,
                        per_request_usd=per_request)


def self_hosted_cost(target: str, hourly: HourlyPrice | None, replicas: int,
                     throughput_rps: float | None, instance_type: str | None) -> CostEstimate:
    if hourly is None:
        why = ("no instance type: set spec.instanceType on the ModelDeployment"
               if not instance_type else f"no price for instance type {instance_type}")
        return CostEstimate(target, "self-hosted", None, why, replicas=max(replicas, 1))
    replicas = max(replicas, 1)
    if not throughput_rps:
        return CostEstimate(target, "self-hosted", None, "no measured throughput",
                            hourly_usd=hourly.usd, replicas=replicas)
    per_1k = 1000.0 * hourly.usd * replicas / (3600.0 * throughput_rps)
    return CostEstimate(target, "self-hosted", per_1k,
                        f"{instance_type} × {replicas}: {hourly.source}",
                        hourly_usd=hourly.usd, replicas=replicas, capacity_rps=throughput_rps)


def break_even_requests_per_day(self_hosted: CostEstimate, api: CostEstimate,
                                hours_per_month: float = 730.0) -> float | None:
    """Requests/day above which the self-hosted target costs less per month than the API."""
    if (self_hosted.kind != "self-hosted" or api.kind != "api" or not api.per_request_usd
            or self_hosted.hourly_usd is None):
        return None
    fixed = self_hosted.hourly_usd * self_hosted.replicas * hours_per_month
    return fixed / (api.per_request_usd * hours_per_month / 24.0)


@dataclass(frozen=True)
class Spend:
    usd: float
    how: str  # the arithmetic, in words


def api_spend(price: TokenPrice | None, rows: Iterable[Mapping[str, Any]]) -> Spend | None:
    """The tokens the run sent to and got from an API target, at its price."""
    if price is None:
        return None
    rows = list(rows)
    tin = sum(r.get("prompt_tokens") or 0 for r in rows)
    tout = sum(r.get("completion_tokens") or 0 for r in rows)
    usd = (tin * price.input_per_m + tout * price.output_per_m) / 1e6
    return Spend(usd, f"{tin:,} input tokens × ${price.input_per_m:g}/M + {tout:,} output "
                      f"tokens × ${price.output_per_m:g}/M")


def instance_spend(hourly_usd: float | None, replicas: int, start: datetime | None,
                   end: datetime | None, since: str) -> Spend | None:
    """Instance-hours × price × replicas from `start` to `end` (`since` says what `start` is)."""
    if hourly_usd is None or start is None or end is None or end < start:
        return None
    hours = (end - start).total_seconds() / 3600.0
    return Spend(hours * hourly_usd * replicas,
                 f"{hours:.3f} h ({since}) × {replicas} × ${hourly_usd:g}/h")


@dataclass(frozen=True)
class HourPlan:
    hour: int
    requests: float
    replicas: int  # serving this hour at the SLO
    cold_start: bool  # scale-to-zero: comes up from zero at the start of this hour
    missed: float  # scale-to-zero: requests arriving during that cold start (SLO misses)


@dataclass(frozen=True)
class Sizing:
    """A self-hosted target sized hour by hour on a day of traffic, at its goodput per replica.

    Always-on keeps the peak hour's replicas up all month; scale-to-zero pays each hour's
    replicas and none in an hour without requests, and every hour that starts from zero pays a
    cold start: the requests arriving during it miss the SLO."""

    hours: tuple[HourPlan, ...]
    hourly_usd: float
    hours_per_month: float
    cold_start_s: float | None
    per_replica_rps: float
    days: float = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "days", self.hours_per_month / 24.0)

    @property
    def requests_per_day(self) -> float:
        return sum(h.requests for h in self.hours)

    @property
    def peak_replicas(self) -> int:
        return max((h.replicas for h in self.hours), default=0)

    @property
    def always_on_monthly_usd(self) -> float:
        return max(self.peak_replicas, 1) * self.hourly_usd * self.hours_per_month

    @property
    def scale_to_zero_monthly_usd(self) -> float:
        return sum(h.replicas for h in self.hours) * self.hourly_usd * self.days

    @property
    def cold_starts_per_day(self) -> int:
        return sum(h.cold_start for h in self.hours)

    @property
    def missed_per_day(self) -> float:
        return sum(h.missed for h in self.hours)

    @property
    def scale_to_zero_attainment_loss(self) -> float:
        """Share of the day's requests that scale-to-zero's cold starts make miss the SLO."""
        return self.missed_per_day / self.requests_per_day if self.requests_per_day else 0.0


def size(hourly_requests: Sequence[float], per_replica_rps: float, hourly_usd: float,
         hours_per_month: float = 730.0, cold_start_s: float | None = None) -> Sizing | None:
    """Replicas per hour = ceil(requests in the hour / 3600 / goodput per replica); None when
    the target meets the SLO at no load (goodput 0) but the day has requests."""
    if per_replica_rps <= 0 and any(hourly_requests):
        return None
    plans = []
    for h, n in enumerate(hourly_requests):
        replicas = math.ceil(n / 3600.0 / per_replica_rps) if n > 0 else 0
        before = hourly_requests[h - 1] if h else hourly_requests[-1]  # the day repeats
        cold = replicas > 0 and before == 0
        missed = min(n, n / 3600.0 * cold_start_s) if cold and cold_start_s else 0.0
        plans.append(HourPlan(h, float(n), replicas, cold, missed))
    return Sizing(tuple(plans), hourly_usd, hours_per_month, cold_start_s, per_replica_rps)


def break_even_scale(hourly_requests: Sequence[float], per_replica_rps: float, hourly_usd: float,
                     api_per_request_usd: float, hours_per_month: float = 730.0
                     ) -> float | None:
    """Requests/day (the profile's shape, scaled) from which the cheaper of always-on and
    scale-to-zero costs no more than the API; None when it never does up to 10⁹ a day."""
    total = sum(hourly_requests)
    if total <= 0 or per_replica_rps <= 0 or api_per_request_usd <= 0:
        return None
    days = hours_per_month / 24.0

    def cheaper(daily: float) -> bool:
        k = daily / total
        s = size([n * k for n in hourly_requests], per_replica_rps, hourly_usd, hours_per_month)
        assert s is not None
        own = min(s.always_on_monthly_usd, s.scale_to_zero_monthly_usd)
        return own <= api_per_request_usd * daily * days

    # Own cost is a step function of traffic: find the first daily volume on a fine geometric
    # grid where it is cheaper, then bisect down to a request.
    grid = np.geomspace(1.0, 1e9, 721)
    hit = next((i for i, d in enumerate(grid) if cheaper(float(d))), None)
    if hit is None:
        return None
    lo, hi = (float(grid[hit - 1]) if hit else 0.0), float(grid[hit])
    while hi - lo > 1.0:
        mid = (lo + hi) / 2
        lo, hi = (lo, mid) if cheaper(mid) else (mid, hi)
    return hi
