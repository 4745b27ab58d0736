"""Goodput at an SLO and the cost on a team's traffic (issue 29, items 5 and 6): the definitions,
the search, sizing hour by hour by hand, a timestamps file, and the search against a real
llama.cpp server."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import math
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

from slam import cost, goodput, report, summary, traffic
from slam.generate import Endpoint, GenerationParams, RequestRecord
from slam.promptsets import PromptItem
from tests.engine.test_run import slam
from tests.servers import Llama, Stub

T0 = dt.datetime(2026, 12, 1, tzinfo=dt.UTC)


def rec(ttft: float | None, e2e: float | None, tokens: int | None, ok: bool = True
        ) -> RequestRecord:
    return RequestRecord("m", "p", 0, T0, 1, ttft_ms=ttft, e2e_ms=e2e, completion_tokens=tokens,
                         error_class=None if ok else "Timeout")


def test_a_request_conforms_only_when_it_meets_every_bound_as_vllm_and_guidellm_define_it(
) -> None:
    slo = goodput.Slo(ttft_ms=800, tpot_ms=60, e2e_ms=4000)
    # TPOT = (e2e - TTFT) / (tokens - 1): (2000 - 500) / 31 = 48.4 ms
    assert goodput.tpot_ms(500, 2000, 32) == pytest.approx(48.39, abs=0.01)
    assert slo.verdict(True, 500, 2000, 32) is True
    assert slo.verdict(True, 900, 2000, 32) is False          # TTFT over
    assert slo.verdict(True, 500, 3000, 32) is False          # TPOT (80.6 ms) over
    assert slo.verdict(True, 500, 4100, 61) is False          # e2e over, TPOT 60 exactly within
    assert slo.verdict(False, None, None, None) is False      # a failed request never conforms
    assert slo.verdict(True, 500, 600, 1) is None             # one token: no TPOT, undetermined
    assert goodput.Slo(ttft_ms=800).verdict(True, 500, 600, 1) is True  # no TPOT bound: decided
    probe = goodput.probe_from([rec(500, 2000, 32), rec(900, 2000, 32), rec(500, 600, 1),
                                rec(None, None, None, ok=False)], 4, 2.0, slo)
    assert (probe.requests, probe.failed, probe.determined, probe.conforming) == (4, 1, 3, 1)
    assert probe.attainment == pytest.approx(1 / 3)
    assert probe.goodput_rps == pytest.approx(0.5)  # 1 conforming request in 2 s
    assert probe.throughput_rps == pytest.approx(1.5)
    assert not probe.passed(slo)


def test_a_tighter_slo_never_counts_more_requests_as_good() -> None:
    records = [rec(100 + 37 * i % 900, 800 + 113 * i % 3000, 2 + i % 40) for i in range(200)]
    bounds = [(None, None, 5000), (900, None, 4000), (600, 80, 3000), (300, 40, 1500),
              (1, 1, 1)]
    goods = [goodput.probe_from(records, 8, 10.0, goodput.Slo(*b)).goodput_rps for b in bounds]
    assert goods == sorted(goods, reverse=True) and goods[0] > goods[-1] == 0.0


def probes_for(limit: int, levels: list[int], slo: goodput.Slo) -> list[goodput.Probe]:
    """Probes of a server that meets the SLO up to `limit` concurrent requests."""
    return [goodput.Probe(c, 32, 0, 32, 32 if c <= limit else 10, 8.0) for c in levels]


def run_search(limit: int, search: goodput.Search) -> tuple[list[int], str]:
    slo = goodput.Slo(ttft_ms=800)
    probes: list[goodput.Probe] = []
    while True:
        nxt, stop = search.next(probes, slo)
        if nxt is None:
            return [p.concurrency for p in probes], stop
        probes += probes_for(limit, [nxt], slo)


def test_the_search_doubles_then_bisects_within_its_bounds_as_guidellm_does() -> None:
    s = goodput.Search(initial=1, max_concurrency=64, max_probes=10, tolerance=0.1)
    assert run_search(11, s) == ([1, 2, 4, 8, 16, 12, 10, 11], "converged")
    assert run_search(0, s) == ([1], "not met even one request at a time")
    assert run_search(100, s) == ([1, 2, 4, 8, 16, 32, 64],
                                  "met at the highest concurrency searched (64)")
    # Starting too high walks down; the probe budget bounds the search.
    assert run_search(3, goodput.Search(initial=16, max_probes=10)) == (
        [16, 8, 4, 2, 3], "converged")
    assert run_search(11, goodput.Search(max_probes=4)) == ([1, 2, 4, 8], "probe budget spent")
    # Every stream sends at least two requests at a level.
    assert goodput.Search(requests_per_probe=32).requests_at(64) == 128
    cap = goodput.outcome(probes_for(11, [1, 2, 4, 8, 16, 12, 10, 11], goodput.Slo(800)),
                          goodput.Slo(800), s, replicas=2)
    assert cap.best.concurrency == 11 and cap.finished
    assert cap.goodput_per_replica == pytest.approx(32 / 8.0 / 2)


def test_sizing_a_day_of_traffic_by_hand() -> None:
    # Goodput 2 requests/s per replica on a g5.xlarge at $1.006/h; no traffic from 0:00 to 6:00,
    # 7,200 requests/h (2/s) by day, one busy hour of 18,000 (5/s), 3,600/h in the evening.
    hourly = [0] * 6 + [7200] * 11 + [18000] + [3600] * 6
    z = cost.size(hourly, 2.0, 1.006, 730, cold_start_s=30.0)
    assert z is not None
    assert [h.replicas for h in z.hours] == [0] * 6 + [1] * 11 + [3] + [1] * 6
    # Always-on: the busiest hour's 3 replicas all month = 3 * 1.006 * 730 = $2,203.14
    assert z.always_on_monthly_usd == pytest.approx(2203.14)
    # Scale-to-zero: 11 + 3 + 6 = 20 replica-hours a day * 1.006 * 30.4167 days = $611.98
    assert z.scale_to_zero_monthly_usd == pytest.approx(20 * 1.006 * 730 / 24)
    # One cold start a day (at 6:00): 7,200 / 3,600 * 30 s = 60 requests miss the SLO.
    assert z.cold_starts_per_day == 1 and [h.hour for h in z.hours if h.cold_start] == [6]
    assert z.missed_per_day == pytest.approx(60.0)
    assert z.scale_to_zero_attainment_loss == pytest.approx(60 / sum(hourly))
    # A flat day needs no cold start at all: the day wraps round.
    flat = cost.size([100] * 24, 2.0, 1.006, 730, cold_start_s=30.0)
    assert flat is not None and flat.cold_starts_per_day == 0
    assert cost.size([0] * 23 + [10], 0.0, 1.006) is None  # never meets the SLO: no sizing


def test_break_even_against_the_api_on_the_profile_shape_by_hand() -> None:
    # A flat day at 1 req/s per replica and $1/h; the API costs $0.001 a request. Flat traffic
    # of d requests/day needs ceil(d / 86400) replicas all day: scale-to-zero = always-on =
    # 24 * 30.4167 * $1 = $730 for one replica; the API costs 0.001 * d * 30.4167.
    # Equal at d = 730 / (0.001 * 30.4167) = 24,000 requests/day.
    d = cost.break_even_scale([1] * 24, 1.0, 1.0, 0.001, 730)
    assert d == pytest.approx(24000, abs=1.0)
    # Traffic only from 9:00 to 17:00: scale-to-zero pays 8 replica-hours a day (243.33/month),
    # so the API costs as much at 243.33 / (0.001 * 30.4167) = 8,000 requests/day.
    office = [0] * 9 + [1] * 8 + [0] * 7
    assert cost.break_even_scale(office, 1.0, 1.0, 0.001, 730) == pytest.approx(8000, abs=1.0)
    # Dearer per request than the API even fully busy: no break-even.
    assert cost.break_even_scale([1] * 24, 0.0001, 1.0, 0.001, 730) is None


def test_a_usage_export_becomes_hourly_counts(tmp_path) -> None:
    # Two days of an export (a CSV with a header, ISO and Unix times mixed): 3 requests at
    # 09:xx and 1 at 14:xx on day one, 1 at 09:xx on day two -> per day 2 at 9, 0.5 at 14.
    unix = int(dt.datetime(2026, 11, 2, 9, 59, tzinfo=dt.UTC).timestamp())
    lines = ["request_id,created,model", "a,2026-11-02T09:01:00Z,gpt-4",
             "b,2026-11-02T09:30:00+00:00,gpt-4", f"c,{unix},gpt-4",
             "d,2026-11-02T14:10:00Z,gpt-4", "e,2026-11-03T09:00:00Z,gpt-4"]
    (tmp_path / "usage.csv").write_text("\n".join(lines) + "\n")
    p = traffic.resolve({"file": "usage.csv"}, tmp_path)
    assert p is not None and p.hourly[9] == 2.0 and p.hourly[14] == 0.5
    assert sum(p.hourly) == 2.5 and "5 request timestamps over 2 days" in p.source
    # The same export counted in Berlin's hours (UTC+1 in November).
    berlin = traffic.resolve({"file": "usage.csv", "timezone": "Europe/Berlin"}, tmp_path)
    assert berlin is not None and berlin.hourly[10] == 2.0
    (tmp_path / "bad.csv").write_text("created\n2026-11-02T09:01:00Z\nyesterday\n")
    with pytest.raises(traffic.TrafficProfileError, match=r"bad.csv line 3: no timestamp"):
        traffic.resolve({"file": "bad.csv"}, tmp_path)
    with pytest.raises(traffic.TrafficProfileError, match="spec.cost.trafficProfile.file"):
        traffic.resolve({"file": "missing.csv"}, tmp_path)
    # The stored spec carries the 24 numbers and where they came from.
    spec = traffic.resolved_spec({"cost": {"trafficProfile": {"file": "usage.csv"}}}, tmp_path)
    assert spec["cost"]["trafficProfile"]["hourly"][9] == 2.0
    assert traffic.resolve(spec["cost"]["trafficProfile"]).source == p.source


def capacity_run(slo: dict, probes: list[dict], traffic_profile: dict | None,
                 startup: dict | None = None) -> summary.RunData:
    """An API reference at $0.027/request and a self-hosted g5.xlarge candidate."""
    targets = [
        {"name": "gpt4", "kind": "external", "model": "gpt-4-0613", "is_reference": True,
         "details": {}},
        {"name": "small", "kind": "modelDeployment", "model": "small", "is_reference": False,
         "details": {"instanceType": "g5.xlarge", "replicas": 1, "startup": startup}}]
    responses = [{"target": t["name"], "prompt_id": f"p{i}", "sample": 0, "error_class": None,
                  "ttft_ms": 50.0, "e2e_ms": 200.0, "prompt_tokens": 500,
                  "completion_tokens": 200, "started_at": T0, "text": "x"}
                 for t in targets for i in range(12)]
    spec = {"cost": {"slo": slo, "capacitySearch": {"maxConcurrency": 8},
                     **({"trafficProfile": traffic_profile} if traffic_profile else {})}}
    run = SimpleNamespace(evaluation="ev", run_id="1", reference="gpt4", spec=spec,
                          finished_at=None)
    rows = [{"target": "small", **dataclasses.asdict(p)} for p in probes]
    return summary.RunData(run, targets, responses, [], [], [], [], rows)


def test_the_report_prices_a_model_at_its_goodput_on_the_teams_traffic() -> None:
    slo = {"ttftMs": 800, "e2eMs": 4000}
    s = goodput.Slo.from_spec(slo)
    assert s is not None
    # Meets the SLO up to 4 concurrent requests: 32 conforming in 8 s = 4 requests/s.
    probes = probes_for(4, [1, 2, 4, 8, 6, 5], s)
    hourly = [0] * 8 + [14400] * 10 + [0] * 6  # 4 requests/s from 8:00 to 18:00
    rep = summary.compute(capacity_run(slo, probes, {"hourly": hourly}))
    small = next(t for t in rep.targets if t.target == "small")
    assert small.capacity is not None and small.capacity.best.concurrency == 4
    assert small.capacity.goodput_per_replica == pytest.approx(4.0)
    g5 = 1.006
    assert small.cost.per_1k_usd == pytest.approx(1000 * g5 / (3600 * 4.0))
    assert small.sizing is not None
    assert small.monthly_usd == pytest.approx(g5 * 730)  # always-on, one replica
    assert small.sizing.scale_to_zero_monthly_usd == pytest.approx(10 * g5 * 730 / 24)
    # GPT-4 costs 0.027/request; scale-to-zero 10 replica-hours/day; 10 h * 1.006 / 0.027 = 372.6
    assert small.break_even_requests_per_day == pytest.approx(10 * g5 / 0.027, abs=1.0)
    assert rep.requests_per_day == 144000
    md = report.to_markdown(rep)
    assert "## Goodput at the SLO: TTFT ≤ 800 ms, e2e ≤ 4000 ms for 95% of requests" in md
    assert "goodput **4 requests/s per replica** at concurrency 4" in md
    assert "vLLM's `bench serve --goodput` and GuideLLM's goodput profile" in md
    assert "## Cost on your traffic" in md and "replicas by hour: 0 0 0 0 0 0 0 0 1" in md
    assert "cold start not measured" in md
    # A model that never meets the SLO gets no price at it, so it cannot be recommended.
    never = summary.compute(capacity_run(slo, probes_for(0, [1], s), None))
    small = next(t for t in never.targets if t.target == "small")
    assert small.cost.per_1k_usd is None and "does not meet the SLO" in small.cost.source
    assert never.recommendation != "small"
    assert "**does not meet the SLO** at any concurrency searched" in report.to_markdown(never)


def test_cold_starts_count_as_slo_misses_in_the_scale_to_zero_cost() -> None:
    slo = {"ttftMs": 800}
    s = goodput.Slo.from_spec(slo)
    assert s is not None
    # Scaled up 45 s before the run's first token (T0 + 50 ms TTFT), Ready 5 s before it.
    startup = {"requestedAt": "2026-11-30T23:59:15.05Z", "created": "2026-11-30T23:59:16Z",
               "scheduled": "2026-11-30T23:59:17Z", "started": "2026-11-30T23:59:20Z",
               "ready": "2026-11-30T23:59:55Z", "pod": "small-0"}
    hourly = [0] * 8 + [3600] * 10 + [0] * 6
    rep = summary.compute(capacity_run(slo, probes_for(4, [1, 2, 4, 8, 6, 5], s),
                                       {"hourly": hourly}, startup))
    small = next(t for t in rep.targets if t.target == "small")
    assert small.sizing is not None and small.sizing.cold_start_s == pytest.approx(45.0)
    # One cold start a day at 8:00; 1 request/s arrives during its 45 s: 45 misses a day.
    assert small.sizing.missed_per_day == pytest.approx(45.0)
    assert "1 cold start/day of 45 s: 45.0 requests/day miss the SLO" in report.to_markdown(rep)


@pytest.mark.timeout(600)
def test_the_search_on_a_real_llama_server_finds_less_capacity_at_a_tighter_slo(
        llama: Llama) -> None:
    """llama.cpp's Python server answers one request at a time, so queueing shows at once: a
    loose SLO holds at every level searched, an e2e bound between one request's own time and two
    requests' holds only one at a time, and an impossible one at none."""
    endpoint = Endpoint("smol", llama.base_url, llama.alias)
    prompts = [PromptItem(f"p{i}", ({"role": "user", "content": f"Name a colour. ({i})"},))
               for i in range(4)]
    params = GenerationParams(max_tokens=8, temperature=0.0, max_retries=0, timeout_seconds=120)
    search = goodput.Search(initial=1, max_concurrency=4, max_probes=4, requests_per_probe=8)

    def measured(slo: goodput.Slo) -> goodput.Capacity:
        return goodput.outcome(asyncio.run(goodput.measure(endpoint, prompts, params, slo,
                                                           search)), slo, search)

    loose = measured(goodput.Slo(e2e_ms=600_000))
    assert [p.concurrency for p in loose.probes] == [1, 2, 4]
    assert loose.best is not None and loose.best.concurrency == 4 and loose.goodput_rps > 0
    assert all(p.failed == 0 and p.requests == 8 for p in loose.probes)
    one = loose.probes[0].e2e_p95_ms
    assert one is not None
    # Two at a time, a request waits for the other's answer: about twice one request's time.
    queueing = loose.probes[1].e2e_p95_ms
    assert queueing is not None and queueing > 1.3 * one
    # Half the requests within the geometric middle of one and two at a time (~1.4x one): met one
    # at a time, not two at a time, with room for the machine's noise between the searches.
    # A burst of the shared machine's other work can slow every request of one search (CI once
    # saw one request take 312 ms against a 195 ms bound, and a pre-check a slow spell of three
    # searches, 45 ms a token): such a search is run again, twice at most, after
    # a pause and with the bound measured again at the machine's speed of the moment; a search
    # that never meets the bound one at a time still fails.
    for attempt in range(3):
        if attempt:
            time.sleep(5)
            again = measured(goodput.Slo(e2e_ms=600_000)).probes
            one, queueing = again[0].e2e_p95_ms, again[1].e2e_p95_ms
        medium = measured(goodput.Slo(e2e_ms=math.sqrt(one * queueing), attainment=0.5))
        if medium.best is not None:
            break
    assert medium.best is not None and medium.best.concurrency < loose.best.concurrency
    assert medium.goodput_rps > 0
    tight = measured(goodput.Slo(ttft_ms=0.001))
    assert tight.best is None and tight.goodput_rps == 0.0
    assert tight.stop == "not met even one request at a time"
    assert math.isclose(tight.probes[0].attainment or 0.0, 0.0)


def test_slam_run_searches_each_self_hosted_target_and_prices_it_on_a_configmap_profile(
        tmp_path: Path) -> None:
    """A ModelDeployment target served elsewhere (--endpoint), an API reference, the SLO and
    a traffic profile from a ConfigMap of request timestamps in the manifests."""
    server = Stub(tmp_path / "stub", tokens=8, interval=0.002).start()
    try:
        folder = tmp_path / "m"
        folder.mkdir()
        (folder / "prompts.jsonl").write_text("".join(
            f'{{"id": "p{i}", "messages": [{{"role": "user", "content": "q {i}"}}]}}\n'
            for i in range(3)))
        usage = "created\n" + "".join(f"2026-11-02T{h:02d}:{m:02d}:00Z\n"
                                      for h in (9, 9, 10, 15) for m in (5,))
        docs = [
            {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "usage"},
             "data": {"usage.csv": usage}},
            {"apiVersion": "slam.dev/v1alpha1", "kind": "ModelDeployment",
             "metadata": {"name": "small-md"},
             "spec": {"model": {"id": "org/small"}, "runtime": "vllm",
                      "instanceType": "g5.xlarge"}},
            {"apiVersion": "slam.dev/v1alpha1", "kind": "Evaluation",
             "metadata": {"name": "priced"},
             "spec": {"promptSet": {"file": "prompts.jsonl"}, "reference": "gpt4",
                      "targets": [
                          {"name": "gpt4", "external": {"baseUrl": server.base_url,
                                                        "model": "gpt-4-0613"}},
                          {"name": "small", "modelDeploymentRef": {"name": "small-md"}}],
                      "generation": {"maxTokens": 8, "maxRetries": 0},
                      "cost": {"slo": {"e2eMs": 60000},
                               "capacitySearch": {"maxConcurrency": 4, "maxProbes": 3,
                                                  "requestsPerProbe": 8},
                               "trafficProfile": {"configMap": {"name": "usage",
                                                                "key": "usage.csv"}}}}}]
        (folder / "all.yaml").write_text(yaml.safe_dump_all(docs))
        url = f"sqlite:///{tmp_path / 'r.db'}"
        out = slam("run", str(folder), "--store", url, "--endpoint", f"small={server.base_url}",
                   "--no-progress")
        assert out.returncode == 0, out.stderr
        assert "capacity small: concurrency 1, 8 requests" in out.stderr
        assert "capacity small: concurrency 4, 8 requests" in out.stderr
        assert "capacity gpt4" not in out.stderr  # an API is not searched
        assert "small: goodput at the SLO (e2e ≤ 60000 ms for 95% of requests)" in out.stdout
        md = slam("report", "--store", url, "-e", "priced").stdout
        assert "## Goodput at the SLO: e2e ≤ 60000 ms for 95% of requests" in md
        assert "met at the highest concurrency searched (4)" in md
        assert "Traffic: 4 request timestamps over 1 day in" in md and "(ConfigMap usage)" in md
        assert "replicas by hour: 0 0 0 0 0 0 0 0 0 1 1 0 0 0 0 1 0" in md
        # A profile that names a ConfigMap the manifests lack fails before any request.
        server.reset()
        cm = next(d for d in docs if d["kind"] == "ConfigMap")
        cm["metadata"]["name"] = "other"
        (folder / "all.yaml").write_text(yaml.safe_dump_all(docs))
        bad = slam("run", str(folder), "--store", url, "--endpoint",
                   f"small={server.base_url}", "--run-id", "2")
        assert bad.returncode == 1
        assert "spec.cost.trafficProfile.configMap: ConfigMap usage key usage.csv" in bad.stderr
        assert server.hits() == {}
    finally:
        server.stop()
