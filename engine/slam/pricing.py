"""Prices, dated and sourced: EC2 instance types (self-hosted targets) and API tokens.

- Instances: the AWS Pricing API through boto3 when AWS credentials are present
  (`instance_hourly_usd`), else the bundled table below: us-east-1, Linux on-demand, USD per
  hour, as listed in 2025 (after the June 2025 P4/P5 price cut).
- API tokens: the bundled table `API_PRICES` (OpenAI list prices, USD per 1M tokens, dated), which
  `spec.targets[].external.pricing` overrides per target.

Every price carries its source so reports can say where a number came from.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any

log = logging.getLogger(__name__)

PRICE_TABLE_DATE = "2025-07"
PRICE_TABLE_REGION = "us-east-1"


@dataclass(frozen=True)
class InstanceType:
    name: str
    gpu: str  # GPU model, "" for CPU-only types
    gpus: int
    gpu_memory_gib: float  # per GPU
    hourly_usd: float
    memory_gib: float = 0.0  # the instance's RAM (listed for the CPU types)

    @property
    def pod_memory_gib(self) -> int:
        """Memory a model server's pod can ask for on a node of this type: the RAM less what
        the kubelet, the system and the eviction threshold keep on an EKS node of this size
        (about 1.5 GiB), whole GiB."""
        return max(0, int(self.memory_gib - 1.5))


def _t(name: str, gpu: str, gpus: int, mem: float, usd: float, ram: float = 0.0
       ) -> InstanceType:
    return InstanceType(name, gpu, gpus, mem, usd, ram)


INSTANCE_TYPES: dict[str, InstanceType] = {
    t.name: t
    for t in (
        _t("g4dn.xlarge", "NVIDIA T4", 1, 16, 0.526),
        _t("g4dn.2xlarge", "NVIDIA T4", 1, 16, 0.752),
        _t("g4dn.4xlarge", "NVIDIA T4", 1, 16, 1.204),
        _t("g4dn.8xlarge", "NVIDIA T4", 1, 16, 2.176),
        _t("g4dn.12xlarge", "NVIDIA T4", 4, 16, 3.912),
        _t("g5.xlarge", "NVIDIA A10G", 1, 24, 1.006),
        _t("g5.2xlarge", "NVIDIA A10G", 1, 24, 1.212),
        _t("g5.4xlarge", "NVIDIA A10G", 1, 24, 1.624),
        _t("g5.8xlarge", "NVIDIA A10G", 1, 24, 2.448),
        _t("g5.12xlarge", "NVIDIA A10G", 4, 24, 5.672),
        _t("g5.48xlarge", "NVIDIA A10G", 8, 24, 16.288),
        _t("g6.xlarge", "NVIDIA L4", 1, 24, 0.8048),
        _t("g6.2xlarge", "NVIDIA L4", 1, 24, 0.9776),
        _t("g6.4xlarge", "NVIDIA L4", 1, 24, 1.3232),
        _t("g6.12xlarge", "NVIDIA L4", 4, 24, 4.6016),
        _t("g6.48xlarge", "NVIDIA L4", 8, 24, 13.3504),
        _t("g6e.xlarge", "NVIDIA L40S", 1, 48, 1.861),
        _t("g6e.2xlarge", "NVIDIA L40S", 1, 48, 2.24208),
        _t("g6e.12xlarge", "NVIDIA L40S", 4, 48, 10.49264),
        _t("g6e.48xlarge", "NVIDIA L40S", 8, 48, 30.13118),
        _t("p3.2xlarge", "NVIDIA V100", 1, 16, 3.06),
        _t("p4d.24xlarge", "NVIDIA A100", 8, 40, 21.96),
        _t("p5.48xlarge", "NVIDIA H100", 8, 80, 55.04),
        # CPU types, for llamacpp and vLLM's CPU backend (RAM in GiB last).
        _t("m5.large", "", 0, 0, 0.096, 8),
        _t("m5.xlarge", "", 0, 0, 0.192, 16),
        _t("c6i.xlarge", "", 0, 0, 0.17, 8),
        _t("c7i.xlarge", "", 0, 0, 0.1785, 8),
        _t("c7i.2xlarge", "", 0, 0, 0.357, 16),
        _t("m7i.xlarge", "", 0, 0, 0.2016, 16),
        _t("r7i.xlarge", "", 0, 0, 0.2646, 32),
    )
}


API_PRICES_DATE = "2025-07"


@dataclass(frozen=True)
class TokenPrice:
    input_per_m: float  # USD per 1M prompt tokens
    output_per_m: float  # USD per 1M completion tokens
    source: str


# OpenAI list prices (USD per 1M tokens), 2025-07. Looked up by the longest matching prefix of
# the model name, so dated snapshots (gpt-4o-2024-08-06) find their family.
API_PRICES: dict[str, tuple[float, float]] = {
    "gpt-4": (30.0, 60.0),
    "gpt-4-0613": (30.0, 60.0),
    "gpt-4-32k": (60.0, 120.0),
    "gpt-4-turbo": (10.0, 30.0),
    "gpt-4-1106-preview": (10.0, 30.0),
    "gpt-4-0125-preview": (10.0, 30.0),
    "gpt-4o": (2.5, 10.0),
    "gpt-4o-mini": (0.15, 0.6),
    "gpt-4.1": (2.0, 8.0),
    "gpt-4.1-mini": (0.4, 1.6),
    "gpt-4.1-nano": (0.1, 0.4),
    "gpt-3.5-turbo": (0.5, 1.5),
}


def token_price(model: str, override: dict[str, float] | None = None) -> TokenPrice | None:
    """The price of an API model: the Evaluation's override, else the table, else None."""
    if override:
        return TokenPrice(override["inputPerMTokensUSD"], override["outputPerMTokensUSD"],
                          "spec.targets[].external.pricing")
    matches = [k for k in API_PRICES if model == k or model.startswith(k + "-")]
    if not matches:
        return None
    key = max(matches, key=len)
    return TokenPrice(*API_PRICES[key], f"OpenAI list price {API_PRICES_DATE} ({key})")


@dataclass(frozen=True)
class HourlyPrice:
    usd: float
    source: str


def _aws_credentials() -> bool:
    import boto3
    return boto3.Session().get_credentials() is not None


def pricing_api_hourly(instance_type: str, region: str, client: Any = None) -> float | None:
    """On-demand Linux USD/hour from the AWS Pricing API (GetProducts), or None if not listed."""
    import boto3
    # The Pricing API is served from us-east-1 (and a few others) whatever region is priced.
    pricing = client or boto3.client("pricing", region_name="us-east-1")
    filters = [
        {"Type": "TERM_MATCH", "Field": k, "Value": v} for k, v in (
            ("instanceType", instance_type), ("regionCode", region),
            ("operatingSystem", "Linux"), ("tenancy", "Shared"), ("preInstalledSw", "NA"),
            ("capacitystatus", "Used"),
        )
    ]
    resp = pricing.get_products(ServiceCode="AmazonEC2", Filters=filters, MaxResults=10)
    for item in resp.get("PriceList", []):
        product = json.loads(item) if isinstance(item, str) else item
        for term in product.get("terms", {}).get("OnDemand", {}).values():
            for dim in term.get("priceDimensions", {}).values():
                usd = float(dim.get("pricePerUnit", {}).get("USD", 0))
                if usd > 0:
                    return usd
    return None


def instance_hourly_usd(instance_type: str, region: str = PRICE_TABLE_REGION,
                        client: Any = None) -> HourlyPrice | None:
    """USD/hour of one instance: the Pricing API when credentials exist, else the table."""
    if client is not None or _aws_credentials():
        try:
            usd = pricing_api_hourly(instance_type, region, client)
            if usd is not None:
                return HourlyPrice(usd, f"AWS Pricing API ({region}, on-demand Linux)")
        except Exception as e:  # noqa: BLE001 - fall back to the table, and say so
            log.warning("AWS Pricing API unavailable (%s); using the bundled %s table",
                        type(e).__name__, PRICE_TABLE_DATE)
    it = INSTANCE_TYPES.get(instance_type)
    if it is None:
        return None
    return HourlyPrice(it.hourly_usd, f"bundled table {PRICE_TABLE_DATE} {PRICE_TABLE_REGION}")
