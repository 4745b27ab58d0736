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

What the evaluation itself cost (`run_spend`): an API target, the tokens it was sent and
answered at its price (every request that reported them, failed ones included); a self-hosted
target, instance-hours × price × replicas for as long as the run kept it up: from the scale-up
that brought it up for the run (Evaluation spec.scaling), else from the run's first request, to
the run's end.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

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
