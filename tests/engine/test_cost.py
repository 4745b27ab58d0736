"""Cost model: worked examples checked by hand, and where prices come from."""

from __future__ import annotations

import pytest

from slam import cost, pricing
from tests.fakes.aws_pricing import PricingStub

GPT4 = pricing.token_price("gpt-4-0613")


def test_api_worked_example() -> None:
    # GPT-4 (0613) at $30 / $60 per 1M tokens; 500 prompt + 200 completion tokens per request:
    # (500 * 30 + 200 * 60) / 1e6 = $0.027 per request = $27 per 1,000 requests.
    api = cost.api_cost("gpt4", GPT4, 500, 200)
    assert api.per_request_usd == pytest.approx(0.027)
    assert api.per_1k_usd == pytest.approx(27.0)
    # 10,000 requests/day over 730 h (30.42 days): 0.027 * 10,000 * 30.4167 = $8,212.50
    assert api.monthly_usd(10_000, 730) == pytest.approx(8212.5)


def test_self_hosted_worked_example_and_break_even() -> None:
    # One g5.xlarge ($1.006/h, bundled table) sustaining 2 requests/s:
    # 1000 * 1.006 / (3600 * 2) = $0.13972 per 1,000 requests.
    table = pricing.INSTANCE_TYPES["g5.xlarge"].hourly_usd
    g5 = cost.self_hosted_cost("mistral", pricing.HourlyPrice(table, "bundled table"), 1, 2.0,
                               "g5.xlarge")
    assert g5.per_1k_usd == pytest.approx(0.139722, abs=1e-6)
    # Paid by the hour: 1.006 * 730 = $734.38/month while 1 replica keeps up (2 req/s = 172,800/day)
    assert g5.monthly_usd(10_000, 730) == pytest.approx(734.38)
    assert g5.monthly_usd(172_800, 730) == pytest.approx(734.38)
    assert g5.monthly_usd(172_801, 730) == pytest.approx(2 * 734.38)  # a second replica
    # Break-even vs GPT-4 at $0.027/request: 734.38 / (0.027 * 30.4167) = 894.2 requests/day.
    api = cost.api_cost("gpt4", GPT4, 500, 200)
    assert cost.break_even_requests_per_day(g5, api, 730) == pytest.approx(894.2, abs=0.1)


def test_token_prices_by_longest_prefix_and_override() -> None:
    assert pricing.token_price("gpt-4o-mini-2024-07-18").input_per_m == 0.15
    assert pricing.token_price("gpt-4o-2024-08-06").input_per_m == 2.5
    assert pricing.token_price("gpt-4-0613").output_per_m == 60.0
    assert pricing.token_price("mistral-large") is None
    own = pricing.token_price("gpt-4", {"inputPerMTokensUSD": 1, "outputPerMTokensUSD": 2})
    assert (own.input_per_m, own.source) == (1, "spec.targets[].external.pricing")
    assert "no price" in cost.api_cost("x", None, 1, 1).source


def test_instance_price_from_the_pricing_api() -> None:
    stub = PricingStub({"g5.xlarge": 1.2345})
    try:
        price = pricing.instance_hourly_usd("g5.xlarge", "eu-west-1", client=stub.client())
    finally:
        stub.close()
    assert price.usd == pytest.approx(1.2345)
    assert price.source.startswith("AWS Pricing API (eu-west-1")
    target, body = stub.requests[0]
    assert target == "AWSPriceListService.GetProducts" and body["ServiceCode"] == "AmazonEC2"
    filters = {f["Field"]: f["Value"] for f in body["Filters"]}
    assert filters["instanceType"] == "g5.xlarge" and filters["regionCode"] == "eu-west-1"
    assert filters["operatingSystem"] == "Linux"


def test_pricing_api_failure_falls_back_to_the_dated_table() -> None:
    stub = PricingStub({}, fail=True)
    try:
        price = pricing.instance_hourly_usd("g5.xlarge", client=stub.client())
    finally:
        stub.close()
    assert price.usd == 1.006 and price.source == "bundled table 2025-07 us-east-1"


def test_no_credentials_means_the_table_without_calling_aws(
        monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    for var in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    price = pricing.instance_hourly_usd("g6.xlarge")
    assert price.usd == 0.8048 and "bundled table" in price.source
    assert pricing.instance_hourly_usd("x9.huge") is None
    missing = cost.self_hosted_cost("m", None, 1, 2.0, None)
    assert missing.per_1k_usd is None and "set spec.instanceType" in missing.source


def test_a_self_hosted_month_is_its_instances_busy_or_not() -> None:
    """One c7i.xlarge ($0.1785/h) sustaining 0.5 requests/s: 10,000 requests/day keep it 23%
    busy at the one-instance floor; 100,000 need three instances."""
    from slam import charts
    c = cost.CostEstimate("gemma3", "self-hosted", 0.0992, "table", hourly_usd=0.1785,
                          replicas=1, capacity_rps=0.5)
    assert c.instances(10_000) == 1 and c.instances(100_000) == 3
    assert c.utilisation(10_000) == pytest.approx(10_000 / 86_400 / 0.5)
    assert c.utilisation(100_000) == pytest.approx(100_000 / 86_400 / 1.5)
    assert cost.CostEstimate("gpt4", "api", 1.0, "t", per_request_usd=0.001).utilisation(1) \
        is None

    class Rep:  # what monthly_at reads of a report
        hours_per_month = 730.0
        targets = [type("T", (), {"target": "gemma3", "cost": c})()]
    row = charts.monthly_at(Rep(), 10_000)[0]
    assert row["$/month"] == pytest.approx(0.1785 * 730)
    assert row["floor"] and row["instances"] == 1
    assert row["$/1k at this traffic"] == pytest.approx(1000 * 0.1785 * 730 / (10_000 * 730 / 24))
    said = charts.floor_sentence(row, 10_000)
    assert said.startswith("gemma3: at 10,000 requests/day its 1 instance is 23% busy, and "
                           "$130.31 a month is the floor: the same up to 43,200 requests/day")
    busy = charts.monthly_at(Rep(), 100_000)[0]
    assert not busy["floor"] and charts.floor_sentence(busy, 100_000).startswith(
        "gemma3: 100,000 requests/day need 3 instances (77% busy): $390.91 a month")


def test_money_ticks_label_every_decade_and_where_the_lines_sit() -> None:
    from slam import charts
    ticks, labels = charts.money_ticks([130.31, 130.31, 390.93, 2000.0], [130.31, 130.31])
    assert labels == ["$130", "$1,000"]
    assert ticks == [130.31, 1000.0]
    assert charts.money_ticks([120.0, 125.0], [125.0]) == ([125.0], ["$125"])  # within a decade
    assert charts.money_ticks([0.5, 3.0], [None]) == ([1.0], ["$1.00"])
    assert charts.money_ticks([], []) == ([], [])


def test_what_a_run_itself_cost_worked_example() -> None:
    from datetime import UTC, datetime

    # The reference: 3 answers, 120 + 80 + 100 input and 40 + 60 + 50 output tokens (a failed
    # request that reported none adds nothing) at $10/M in and $30/M out:
    # 300 × 10 / 1e6 + 150 × 30 / 1e6 = 0.003 + 0.0045 = $0.0075.
    rows = [{"prompt_tokens": 120, "completion_tokens": 40},
            {"prompt_tokens": 80, "completion_tokens": 60},
            {"prompt_tokens": 100, "completion_tokens": 50},
            {"prompt_tokens": None, "completion_tokens": None}]
    spent = cost.api_spend(pricing.TokenPrice(10.0, 30.0, "test"), rows)
    assert spent is not None and spent.usd == pytest.approx(0.0075)
    assert spent.how == "300 input tokens × $10/M + 150 output tokens × $30/M"
    assert cost.api_spend(None, rows) is None
    # A g5.xlarge ($1.006/h) held at 2 replicas from the scale-up at 10:00 to the run's end at
    # 10:45: 0.75 h × 2 × 1.006 = $1.509.
    held = cost.instance_spend(1.006, 2, datetime(2026, 12, 3, 10, tzinfo=UTC),
                               datetime(2026, 12, 3, 10, 45, tzinfo=UTC), "from the scale-up")
    assert held is not None and held.usd == pytest.approx(1.509)
    assert held.how == "0.750 h (from the scale-up) × 2 × $1.006/h"
    assert cost.instance_spend(None, 1, datetime(2026, 12, 3, tzinfo=UTC),
                               datetime(2026, 12, 3, 1, tzinfo=UTC), "x") is None
