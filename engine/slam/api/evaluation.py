"""Evaluation (slam.dev/v1alpha1): one comparison of candidate targets against a reference."""

from __future__ import annotations

import math
from typing import Annotated, Any, ClassVar, Literal

from pydantic import Field

from slam.api.common import (
    DNS_LABEL,
    ApiModel,
    Condition,
    LocalObjectRef,
    ProbeSpec,
    Rule,
    SecretKeyRef,
    cel_exactly_one,
    exactly_one,
)

PROMPT_ID = r"^[A-Za-z0-9][A-Za-z0-9._:-]*$"
LIST_MAP = {"x-kubernetes-list-type": "map"}


# --- prompt set --------------------------------------------------------------------------------


class ChatMessage(ApiModel):
    """One chat message."""

    role: Literal["system", "user", "assistant"] = Field(description="Who speaks.")
    content: str = Field(description="Message text.", max_length=65536)


class Prompt(ApiModel):
    """One prompt: chat messages, or a template with variables; optional reference answers."""

    id: str = Field(
        description="Unique id of the prompt within the set.", pattern=PROMPT_ID, max_length=128
    )
    messages: list[ChatMessage] | None = Field(
        default=None, description="Chat messages sent as-is.", min_length=1, max_length=64
    )
    template: str | None = Field(
        default=None,
        description="User message with {variable} placeholders, filled from `variables`.",
        max_length=65536,
    )
    system: str | None = Field(
        default=None, description="System message sent before the template.", max_length=65536
    )
    variables: dict[str, str] | None = Field(
        default=None,
        description="Values for the template's placeholders.",
        json_schema_extra={"additionalProperties": {"type": "string", "maxLength": 65536}},
    )
    references: list[str] | None = Field(
        default=None,
        description="Reference answers (for similarity when the reference target gives none).",
        max_length=16,
        json_schema_extra={"items": {"type": "string", "maxLength": 65536}},
    )

    rules: ClassVar[tuple[Rule, ...]] = (
        Rule(
            cel=cel_exactly_one("messages", "template"),
            message="a prompt needs exactly one of messages or template",
            check=lambda p: exactly_one(p.messages is not None, p.template is not None),
        ),
    )


class S3Source(ApiModel):
    """A prompt-set file (YAML or JSONL) in S3."""

    bucket: str = Field(
        description="Bucket name.", pattern=r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$", max_length=63
    )
    key: str = Field(description="Object key, e.g. prompts/pep-talk.jsonl.", min_length=1,
                     max_length=1024)
    region: str | None = Field(default=None, description="AWS region of the bucket.",
                               max_length=32)


class ConfigMapSource(ApiModel):
    """A prompt-set file (YAML or JSONL) stored under a key of a ConfigMap."""

    name: str = Field(description="ConfigMap name (same namespace).", max_length=253,
                      pattern=r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")
    key: str = Field(description="Key holding the file, e.g. prompts.jsonl.", max_length=253,
                     pattern=r"^[-._a-zA-Z0-9]+$")


class RecordedSource(ApiModel):
    """The feature's own requests, as the shadow gateway recorded them into this run
    (`slam gateway --evaluation <this Evaluation> --run-id <spec.runId>`, or the chart's
    gateway.* values): redacted, each with the incumbent's answer."""

    min_prompts: int = Field(
        default=1, ge=1, description="Fail the run when the gateway has recorded fewer requests "
        "than this (the run takes those recorded when it starts; a retry adds later ones).")


class PromptSetSource(ApiModel):
    """Where the prompts come from: exactly one of inline, configMap, s3, file or recorded."""

    inline: list[Prompt] | None = Field(
        default=None,
        description="Prompts written in the manifest (keep it small: etcd objects are limited).",
        min_length=1,
        max_length=500,
        json_schema_extra={**LIST_MAP, "x-kubernetes-list-map-keys": ["id"]},
    )
    config_map: ConfigMapSource | None = Field(
        default=None, description="A ConfigMap key holding a YAML or JSONL prompt-set file."
    )
    s3: S3Source | None = Field(default=None, description="An S3 object holding the file.")
    file: str | None = Field(
        default=None,
        description=(
            "Path to a YAML or JSONL prompt-set file: relative to the manifest for `slam run`, or "
            "inside the scoring image in the cluster."
        ),
        min_length=1,
        max_length=1024,
    )
    recorded: RecordedSource | None = Field(
        default=None, description="The requests the shadow gateway recorded into this run "
        "(the incumbent is then a `recorded` target: its answers are the ones the feature got)."
    )
    limit: int | None = Field(
        default=None, description="Use only the first N prompts (for a quick trial run).", ge=1
    )

    rules: ClassVar[tuple[Rule, ...]] = (
        Rule(
            cel=None,  # inline is a list-map keyed by id: the API server rejects duplicates
            message="prompt ids in spec.promptSet.inline must be unique",
            check=lambda p: p.inline is None or len({x.id for x in p.inline}) == len(p.inline),
            field_path=".inline",
        ),
        Rule(
            cel=cel_exactly_one("inline", "configMap", "s3", "file", "recorded"),
            message="spec.promptSet needs exactly one source: inline, configMap, s3, file or "
                    "recorded",
            check=lambda p: exactly_one(
                p.inline is not None, p.config_map is not None, p.s3 is not None,
                p.file is not None, p.recorded is not None,
            ),
        ),
    )


# --- targets -----------------------------------------------------------------------------------


class TokenPricing(ApiModel):
    """API token prices, USD per million tokens."""

    input_per_m_tokens_usd: float = Field(
        alias="inputPerMTokensUSD", description="USD per 1M prompt tokens.", ge=0
    )
    output_per_m_tokens_usd: float = Field(
        alias="outputPerMTokensUSD", description="USD per 1M completion tokens.", ge=0
    )


class ExternalEndpoint(ApiModel):
    """An OpenAI-compatible chat completions endpoint outside the cluster (e.g. the OpenAI API)."""

    base_url: str = Field(
        description="Base URL including /v1, e.g. https://api.openai.com/v1.",
        pattern=r"^https?://[^\s]+$",
        max_length=2048,
    )
    model: str = Field(description="Model name to request, e.g. gpt-4-0613.", min_length=1,
                       max_length=255)
    api_key_secret_ref: SecretKeyRef | None = Field(
        default=None,
        description="Secret key holding the API key (sent as a bearer token; never logged).",
    )
    pricing: TokenPricing | None = Field(
        default=None,
        description="Token prices; overrides the bundled, dated price table for this model.",
    )


# Requests/s one load-generator process is planned for: what one held at schedule lag p99 <= 5 ms
# on the slowest machine of our kind it was measured on (250; 1,000 on another), see
# bench/generator.py.
GENERATOR_RATE_PER_PROCESS = 250.0


def planned_processes(process: str, rate: float | None, processes: int | None) -> int:
    """Generator processes a target's load is planned for: `processes` when set, else one per
    GENERATOR_RATE_PER_PROCESS requests/s of a scheduled rate (one for `max`)."""
    if processes:
        return processes
    if process == "max" or not rate:
        return 1
    return max(1, math.ceil(rate / GENERATOR_RATE_PER_PROCESS))


class ArrivalSpec(ApiModel):
    """How requests are sent: as fast as concurrency allows, at a constant rate, or Poisson."""

    process: Literal["max", "constant", "poisson"] = Field(
        default="max",
        description="max (back to back within the concurrency limit), constant or poisson.",
    )
    rate: float | None = Field(
        default=None, description="Requests per second (constant and poisson).", gt=0, le=100000
    )

    rules: ClassVar[tuple[Rule, ...]] = (
        Rule(
            cel="self.process == 'max' || has(self.rate)",
            message="constant and poisson arrivals need a rate (requests per second)",
            check=lambda a: a.process == "max" or a.rate is not None,
            field_path=".rate",
        ),
    )


class ScalingSpec(ApiModel):
    """Scale a ModelDeployment up for the run and back down afterwards."""

    replicas: int = Field(
        default=1,
        description="Replicas while the run needs the model (it is never scaled below its own "
        "spec.replicas).", ge=1, le=64)
    after: int | None = Field(
        default=None,
        description="Replicas to leave once the run ends, fails or its Evaluation is deleted "
        "(default: the ModelDeployment's own spec.replicas, what it had).", ge=0, le=64)


class RecordedTarget(ApiModel):
    """The incumbent as the shadow gateway recorded it: its answers are the ones the feature
    got; it is never called by the run."""

    model: str = Field(description="The model the feature calls, e.g. gpt-4o (for reports and "
                       "the price table).", min_length=1, max_length=255)
    pricing: TokenPricing | None = Field(
        default=None,
        description="Token prices; overrides the bundled, dated price table for this model.",
    )


class Target(ApiModel):
    """A model under comparison: a ModelDeployment, an external endpoint, or the incumbent's
    recorded answers."""

    name: str = Field(
        description="Short unique name used in results and reports.", pattern=DNS_LABEL,
        max_length=63,
    )
    model_deployment_ref: LocalObjectRef | None = Field(
        default=None, description="A ModelDeployment in this namespace."
    )
    external: ExternalEndpoint | None = Field(
        default=None, description="An external OpenAI-compatible endpoint."
    )
    recorded: RecordedTarget | None = Field(
        default=None, description="The answers the shadow gateway recorded (with "
        "spec.promptSet.recorded; name the target as the gateway's --incumbent, default "
        "`incumbent`)."
    )
    concurrency: int = Field(
        default=4, description="Most requests in flight at once to this target.", ge=1, le=4096
    )
    arrival: ArrivalSpec | None = Field(
        default=None, description="Arrival process (default: as fast as concurrency allows)."
    )
    processes: int | None = Field(
        default=None,
        description="Load-generator processes sending this target's requests, each with its "
        "share of the schedule and of the concurrency (default: one per 250 requests/s of a "
        "constant or Poisson rate, at most one per core the run has; the scoring Job requests "
        "a CPU for each).", ge=1, le=64)
    scaling: ScalingSpec | None = Field(
        default=None,
        description="Scale this target's ModelDeployment up for the run and back afterwards "
        "(overrides spec.scaling).")

    @property
    def generator_processes(self) -> int:
        a = self.arrival or ArrivalSpec()
        return planned_processes(a.process, a.rate, self.processes)

    rules: ClassVar[tuple[Rule, ...]] = (
        Rule(
            cel=cel_exactly_one("modelDeploymentRef", "external", "recorded"),
            message="a target needs exactly one of modelDeploymentRef, external or recorded",
            check=lambda t: exactly_one(t.model_deployment_ref is not None,
                                        t.external is not None, t.recorded is not None),
        ),
        Rule(
            cel="!has(self.scaling) || has(self.modelDeploymentRef)",
            message="scaling is for modelDeploymentRef targets: an external endpoint is not "
                    "scaled by the operator",
            check=lambda t: t.scaling is None or t.model_deployment_ref is not None,
            field_path=".scaling",
        ),
    )


# --- generation, scoring, rating, cost ---------------------------------------------------------


class GenerationSpec(ApiModel):
    """Generation parameters, the same for every target."""

    max_tokens: int = Field(default=256, description="max_tokens per response.", ge=1, le=32768)
    temperature: float = Field(default=0.7, description="Sampling temperature.", ge=0, le=2)
    top_p: float | None = Field(default=None, description="Nucleus sampling.", gt=0, le=1)
    seed: int | None = Field(default=None, description="Sampling seed, where supported.", ge=0)
    samples_per_prompt: int = Field(
        default=1, description="Responses per prompt and target.", ge=1, le=32
    )
    timeout_seconds: float = Field(
        default=120, description="Per-request timeout (each attempt).", gt=0, le=3600
    )
    max_retries: int = Field(
        default=3, description="Retries on 429, 5xx and connection errors.", ge=0, le=10
    )


class SimilarityScorer(ApiModel):
    """Cosine similarity of sentence embeddings to the reference answer."""

    enabled: bool = Field(default=True, description="Score similarity to the reference.")
    model: str = Field(
        default="sentence-transformers/all-MiniLM-L6-v2",
        description="Sentence-transformers model (must be available offline).",
        max_length=255,
    )


class JudgeScorer(ApiModel):
    """An LLM judge: pairwise vs the reference in both orders, and/or a 1-10 rubric grade."""

    target: str | None = Field(
        default=None,
        description="Name of a target in spec.targets that acts as the judge.",
        pattern=DNS_LABEL,
        max_length=63,
    )
    external: ExternalEndpoint | None = Field(
        default=None, description="A judge endpoint that is not itself evaluated."
    )
    mode: Literal["pairwise", "single", "both"] = Field(
        default="pairwise",
        description="pairwise (both orders; a flip counts as a tie), single (1-10 rubric) or both.",
    )
    rubric: str | None = Field(
        default=None,
        description="Grading rubric for single-answer grading (a sensible default otherwise).",
        max_length=16384,
    )

    rules: ClassVar[tuple[Rule, ...]] = (
        Rule(
            cel=cel_exactly_one("target", "external"),
            message="the judge needs exactly one of target (a target's name) or external",
            check=lambda j: exactly_one(j.target is not None, j.external is not None),
        ),
    )


class ScorersSpec(ApiModel):
    """Automated scorers."""

    similarity: SimilarityScorer | None = Field(
        default=None, description="Embedding similarity (on unless disabled)."
    )
    judge: JudgeScorer | None = Field(default=None, description="LLM judge (off when unset).")


Criterion = Literal["clarity", "intelligence", "likability", "trustworthiness", "overall"]


class HumanRatingSpec(ApiModel):
    """Blind pairwise rating in the dashboard."""

    enabled: bool = Field(default=True, description="Offer this evaluation to raters.")
    criteria: list[Criterion] | None = Field(
        default=None,
        description="Optional per-criterion choices shown besides the overall choice.",
        max_length=5,
        json_schema_extra={"x-kubernetes-list-type": "set"},
    )
    require_reason: bool = Field(
        default=False, description="Raters must write a short reason with each choice."
    )
    control_pairs: int = Field(
        default=2,
        description="Pairs shown twice to each rater, to measure their consistency.",
        ge=0,
        le=50,
    )
    raters: list[Annotated[str, Field(min_length=1, max_length=253)]] | None = Field(
        default=None,
        description="The raters whose ratings count for the sequential human decision (their "
        "sign-in names). Each prompt's counted rating is assigned in advance to one of them and "
        "prompts are counted in an order fixed in advance, so a fast or lenient rater cannot "
        "steer the verdict; the rating queue serves each their assigned prompts first. Unset: "
        "the first rating of each prompt counts, whoever gives it.",
        max_length=200,
        json_schema_extra={"x-kubernetes-list-type": "set"},
    )


class SloSpec(ApiModel):
    """Per-request latency objectives. A request conforms when it succeeded and meets every
    bound set (vLLM's `bench serve --goodput` and GuideLLM's goodput definitions); a load level
    meets the SLO when at least `attainment` of its requests conform."""

    ttft_ms: float | None = Field(default=None, description="Time to first token, ms.", gt=0,
                                  le=3600000)
    tpot_ms: float | None = Field(
        default=None, description="Time per output token after the first, ms: (e2e - TTFT) / "
        "(output tokens - 1). Requests with one output token have none and are left out.",
        gt=0, le=3600000)
    e2e_ms: float | None = Field(default=None, alias="e2eMs",
                                 description="End-to-end latency, ms.", gt=0, le=3600000)
    attainment: float = Field(
        default=0.95, description="Share of requests that must conform (0.95: the p95 of each "
        "bounded metric is within its bound).", gt=0, lt=1)

    rules: ClassVar[tuple[Rule, ...]] = (
        Rule(
            cel="has(self.ttftMs) || has(self.tpotMs) || has(self.e2eMs)",
            message="an SLO needs at least one bound: ttftMs, tpotMs or e2eMs "
                    "(e.g. ttftMs: 800)",
            check=lambda s: any(x is not None for x in (s.ttft_ms, s.tpot_ms, s.e2e_ms)),
        ),
    )


class CapacitySearchSpec(ApiModel):
    """The search for the highest concurrency that meets the SLO, run on each self-hosted target
    one at a time after generation (GuideLLM's goodput search: double, then bisect)."""

    initial_concurrency: int = Field(default=1, description="Concurrency probed first.",
                                     ge=1, le=4096)
    max_concurrency: int = Field(default=64, description="Highest concurrency probed.",
                                 ge=1, le=4096)
    max_probes: int = Field(default=8, description="Most load levels measured per target.",
                            ge=1, le=20)
    requests_per_probe: int = Field(
        default=32, description="Requests sent at each level (at least twice the concurrency, "
        "so every stream sends two).", ge=4, le=100000)
    tolerance: float = Field(
        default=0.1, description="Stop once the highest passing and lowest failing levels are "
        "within this share of the passing one (or 1 apart).", gt=0, le=1)

    rules: ClassVar[tuple[Rule, ...]] = (
        Rule(
            cel="!has(self.initialConcurrency) || !has(self.maxConcurrency) || "
                "self.initialConcurrency <= self.maxConcurrency",
            message="initialConcurrency must not exceed maxConcurrency",
            check=lambda c: c.initial_concurrency <= c.max_concurrency,
            field_path=".initialConcurrency",
        ),
    )


class TrafficProfile(ApiModel):
    """The team's traffic over a day, to size replicas hour by hour: 24 hourly request counts,
    or a file of request timestamps (an API usage export) averaged per hour of day."""

    hourly: list[Annotated[int, Field(ge=0, le=10**9)]] | None = Field(
        default=None, description="Requests in each hour of the day, hour 0 first (24 numbers).",
        min_length=24, max_length=24)
    file: str | None = Field(
        default=None, description="A file of request timestamps, one per line (ISO 8601 or "
        "Unix seconds; a CSV's first column whose values parse as times): relative to the "
        "manifest for `slam run`, or inside the scoring image in the cluster.",
        min_length=1, max_length=1024)
    config_map: ConfigMapSource | None = Field(
        default=None, description="A ConfigMap key holding such a file.")
    timezone: str = Field(default="UTC", description="IANA time zone whose hours of the day "
                          "the timestamps are counted in.", max_length=64)

    rules: ClassVar[tuple[Rule, ...]] = (
        Rule(
            cel=cel_exactly_one("hourly", "file", "configMap"),
            message="spec.cost.trafficProfile needs exactly one of hourly (24 counts), file or "
                    "configMap",
            check=lambda t: exactly_one(t.hourly is not None, t.file is not None,
                                        t.config_map is not None),
        ),
    )


class CostSpec(ApiModel):
    """Assumptions for the cost comparison."""

    requests_per_day: int = Field(
        default=10000, description="Expected traffic, for the monthly cost projection (spread "
        "evenly over the day unless trafficProfile says how).", ge=1
    )
    hours_per_month: float = Field(
        default=730, description="Hours a self-hosted deployment runs per month.", gt=0, le=744
    )
    slo: SloSpec | None = Field(
        default=None, description="Latency the feature needs. Set, each self-hosted target's "
        "capacity is searched for the highest load meeting it and priced at that goodput.")
    capacity_search: CapacitySearchSpec | None = Field(
        default=None, description="Bounds of the capacity search (with slo).")
    traffic_profile: TrafficProfile | None = Field(
        default=None, description="The team's traffic by hour of day, for sizing replicas hour "
        "by hour, always-on and with scale-to-zero.")


class EvidenceMargin(ApiModel):
    """The non-inferiority margin on one kind of evidence, and what planning assumes."""

    at_least: float = Field(
        description="The candidate's mean must exceed this: a win rate against the reference "
        "(ties count half), e.g. 0.45, or a difference to the reference, e.g. -0.03.",
        ge=-10, le=1,
    )
    assumed: float = Field(
        description="The candidate's true mean that planning assumes (e.g. 0.5: as good as the "
        "reference); must exceed atLeast.", ge=-10, le=10,
    )
    sd: float = Field(
        description="Standard deviation of one prompt's mean that planning assumes until there "
        "are data.", gt=0, le=10,
    )

    rules: ClassVar[tuple[Rule, ...]] = (
        Rule(
            cel="self.assumed > self.atLeast",
            message="assumed must exceed atLeast: planning needs a candidate that clears the "
            "margin (set assumed to the quality you expect, e.g. 0.5 for a win rate)",
            check=lambda m: m.assumed > m.at_least,
            field_path=".assumed",
        ),
    )


# Per evidence: (atLeast, assumed, sd) when the spec does not say, and what the evidence is.
DEFAULT_MARGINS = {
    "humanWinRate": (0.45, 0.5, 0.5, "Human choices against the reference, ties half"),
    "judgeWinRate": (0.45, 0.5, 0.5, "Judge verdicts against the reference, ties half"),
    "similarity": (-0.03, 0.0, 0.1,
                   "Candidate minus reference similarity to the hand-written answers"),
    "judgeGrade": (-0.5, 0.0, 2.0, "Candidate minus reference judge grade (1-10)"),
}


def _margin(evidence: str) -> Any:
    at_least, assumed, sd, what = DEFAULT_MARGINS[evidence]
    return Field(default=None, description=f"{what} (default atLeast {at_least}, assumed "
                 f"{assumed}, sd {sd}).")


class DecisionSpec(ApiModel):
    """The pre-registered decision: a candidate is non-inferior when the one-sided bound of its
    mean over prompts (a betting test for bounded means, Holm over the candidates) clears
    atLeast, inferior when the other bound falls below it, else undecided."""

    evidence: Literal["auto", "humanWinRate", "judgeWinRate", "similarity", "judgeGrade"] = Field(
        default="auto",
        description="Evidence the decision uses; auto: the first with 10 prompts of data among "
        "humanWinRate, judgeWinRate, similarity, judgeGrade.",
    )
    sequential: bool = Field(
        default=True,
        description="Human ratings: decide with an anytime-valid betting test, so the result may "
        "be looked at after every rating; false: the fixed-sample test at the end.")
    judge_min_kappa: float = Field(
        default=0.2, description="Judge verdicts count towards decisions only while the judge's "
        "agreement with the human raters (Cohen's kappa, over at least 10 ratings) is at least "
        "this; below it they are reported, not used.", ge=-1, le=1)
    alpha: float = Field(default=0.05, description="Family-wise one-sided error level.",
                         gt=0, le=0.2)
    power: float = Field(default=0.8, description="Planned power at the assumed quality.",
                         ge=0.5, lt=1)
    human_win_rate: EvidenceMargin | None = _margin("humanWinRate")
    judge_win_rate: EvidenceMargin | None = _margin("judgeWinRate")
    similarity: EvidenceMargin | None = _margin("similarity")
    judge_grade: EvidenceMargin | None = _margin("judgeGrade")

    rules: ClassVar[tuple[Rule, ...]] = (
        *(Rule(
            cel=f"!has(self.{key}) || self.{key}.atLeast >= 0.0",
            message=f"{key}.atLeast is a win rate against the reference: between 0 and 1, "
            "e.g. 0.45",
            check=lambda d, attr=attr: getattr(d, attr) is None or getattr(d, attr).at_least >= 0,
            field_path=f".{key}.atLeast",
        ) for key, attr in (("humanWinRate", "human_win_rate"),
                            ("judgeWinRate", "judge_win_rate"))),
        # The test's error holds within the range a value can take: margins outside it are
        # a typo (a grade difference of -12 on a 1-10 scale), refused by field.
        *(Rule(
            cel=f"!has(self.{key}) || ({'' if wins else f'self.{key}.atLeast >= {lo} && '}"
                f"self.{key}.assumed >= {lo} && self.{key}.assumed <= {hi})",
            message=f"{key}: {what}, between {lo:g} and {hi:g}",
            check=lambda d, attr=attr, lo=lo, hi=hi: getattr(d, attr) is None or (
                getattr(d, attr).at_least >= lo and lo <= getattr(d, attr).assumed <= hi),
            field_path=f".{key}",
        ) for key, attr, lo, hi, what, wins in (
            ("humanWinRate", "human_win_rate", 0.0, 1.0, "assumed is a win rate", True),
            ("judgeWinRate", "judge_win_rate", 0.0, 1.0, "assumed is a win rate", True),
            ("similarity", "similarity", -2.0, 2.0,
             "atLeast and assumed are differences of two similarities", False),
            ("judgeGrade", "judge_grade", -9.0, 9.0,
             "atLeast and assumed are differences of two 1-10 grades", False))),
    )

    def margin(self, evidence: str) -> EvidenceMargin:
        """The margin on `evidence`, the default one when the spec does not set it."""
        given = {"humanWinRate": self.human_win_rate, "judgeWinRate": self.judge_win_rate,
                 "similarity": self.similarity, "judgeGrade": self.judge_grade}[evidence]
        at_least, assumed, sd, _ = DEFAULT_MARGINS[evidence]
        return given or EvidenceMargin(at_least=at_least, assumed=assumed, sd=sd)


class StoreSpec(ApiModel):
    """Where results go (defaults to the operator's store)."""

    url_secret_ref: SecretKeyRef | None = Field(
        default=None,
        description="Secret key holding a SQLAlchemy URL (default: the operator's).",
    )
    delete_results_on_delete: bool = Field(
        default=False, description="Delete this evaluation's results when it is deleted."
    )
    wait_seconds: int = Field(
        default=120, ge=0, le=86400,
        description="How long a scoring pod that starts while the store does not answer keeps "
        "trying (with backoff) before it fails. A pod already running waits as long as it "
        "takes, keeping its answers in memory (at most 32 wait before generation pauses).")


class EvaluationSpec(ApiModel):
    """Desired comparison."""

    prompt_set: PromptSetSource = Field(description="The prompts to evaluate on.")
    targets: list[Target] = Field(
        description="Models to compare, including the reference.",
        min_length=1,
        max_length=32,
        json_schema_extra={**LIST_MAP, "x-kubernetes-list-map-keys": ["name"]},
    )
    reference: str = Field(
        description="Name of the target that is the incumbent (e.g. the GPT-4 API).",
        pattern=DNS_LABEL,
        max_length=63,
    )
    generation: GenerationSpec | None = Field(default=None, description="Generation parameters.")
    scorers: ScorersSpec | None = Field(default=None, description="Automated scoring.")
    human_rating: HumanRatingSpec | None = Field(default=None, description="Blind human rating.")
    cost: CostSpec | None = Field(default=None, description="Cost assumptions.")
    decision: DecisionSpec | None = Field(
        default=None, description="How a candidate is judged against the reference "
        "(non-inferiority margins, alpha, power).")
    store: StoreSpec | None = Field(default=None, description="Results store.")
    probe: ProbeSpec | None = Field(
        default=None, description="Continuous latency probe against the external targets."
    )
    run_id: str = Field(
        default="1",
        description="Change it to run the evaluation again; results are kept per run.",
        pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$",
        max_length=63,
    )
    parallelism: int = Field(
        default=1, description="Scoring pods; >1 shards the prompts over an Indexed Job.",
        ge=1, le=64,
    )
    ready_timeout_seconds: int = Field(
        default=3600,
        description="How long to wait for every ModelDeployment to be Ready before failing "
        "(with scaling, the time a scaled-up model has to load).",
        ge=1,
    )
    scaling: ScalingSpec | None = Field(
        default=None,
        description="Scale every ModelDeployment target up for the run and back down when it "
        "ends, fails or this Evaluation is deleted (a target's own scaling overrides it). "
        "Evaluations sharing a ModelDeployment keep it up until the last one ends.")
    active_deadline_seconds: int = Field(
        default=86400, description="Longest the scoring Job may run.", ge=60
    )
    service_account_name: str | None = Field(
        default=None,
        description="ServiceAccount the scoring Job runs as, e.g. one annotated for IRSA when the "
        "prompt set is in S3. Default: <evaluation>-scoring, created by the operator with no "
        "permissions and no API token.",
        min_length=1, max_length=253, pattern=r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$",
    )

    rules: ClassVar[tuple[Rule, ...]] = (
        Rule(
            cel="self.targets.all(t, self.targets.exists_one(u, u.name == t.name))",
            message="target names in spec.targets must be unique",
            check=lambda s: len({t.name for t in s.targets}) == len(s.targets),
            field_path=".targets",
        ),
        Rule(
            cel="self.targets.exists(t, t.name == self.reference)",
            message="spec.reference must be the name of one of spec.targets",
            check=lambda s: any(t.name == s.reference for t in s.targets),
            field_path=".reference",
        ),
        Rule(
            cel="self.targets.size() >= 2",
            message="spec.targets needs the reference and at least one candidate",
            check=lambda s: len(s.targets) >= 2,
            field_path=".targets",
        ),
        Rule(
            cel=(
                "!has(self.scorers) || !has(self.scorers.judge) || "
                "!has(self.scorers.judge.target) || "
                "self.targets.exists(t, t.name == self.scorers.judge.target)"
            ),
            message="spec.scorers.judge.target must be the name of one of spec.targets",
            check=lambda s: (
                s.scorers is None
                or s.scorers.judge is None
                or s.scorers.judge.target is None
                or any(t.name == s.scorers.judge.target for t in s.targets)
            ),
            field_path=".scorers.judge.target",
        ),
        Rule(
            cel=(
                "!has(self.scorers) || !has(self.scorers.judge) || "
                "!has(self.scorers.judge.target) || !self.targets.exists(t, "
                "t.name == self.scorers.judge.target && has(t.recorded))"
            ),
            message="spec.scorers.judge.target cannot be a recorded target (it is never "
                    "called): name another target or set spec.scorers.judge.external",
            check=lambda s: (
                s.scorers is None or s.scorers.judge is None or s.scorers.judge.target is None
                or not any(t.name == s.scorers.judge.target and t.recorded for t in s.targets)
            ),
            field_path=".scorers.judge.target",
        ),
        Rule(
            cel="!self.targets.exists(t, has(t.recorded)) || has(self.promptSet.recorded)",
            message="a recorded target answers only the requests the gateway recorded: set "
                    "spec.promptSet.recorded",
            check=lambda s: not any(t.recorded for t in s.targets)
            or s.prompt_set.recorded is not None,
            field_path=".promptSet",
        ),
        Rule(
            cel="!has(self.promptSet.recorded) || "
                "self.targets.filter(t, has(t.recorded)).size() == 1",
            message="spec.promptSet.recorded needs exactly one target with `recorded: {model: "
                    "...}`: the incumbent whose answers the gateway recorded",
            check=lambda s: s.prompt_set.recorded is None
            or sum(1 for t in s.targets if t.recorded) == 1,
            field_path=".targets",
        ),
        Rule(
            cel="!has(self.promptSet.recorded) || !has(self.generation) || "
                "!has(self.generation.samplesPerPrompt) || self.generation.samplesPerPrompt == 1",
            message="spec.generation.samplesPerPrompt must be 1 with recorded traffic (the "
                    "incumbent answered each request once)",
            check=lambda s: s.prompt_set.recorded is None or s.generation is None
            or s.generation.samples_per_prompt == 1,
            field_path=".generation.samplesPerPrompt",
        ),
    )

    def scaled(self) -> dict[str, ScalingSpec]:
        """ModelDeployment name -> how this Evaluation scales it for the run (the most
        replicas when two targets name the same one)."""
        out: dict[str, ScalingSpec] = {}
        for t in self.targets:
            scaling = t.scaling or self.scaling
            if t.model_deployment_ref is None or scaling is None:
                continue
            name = t.model_deployment_ref.name
            if name not in out or scaling.replicas > out[name].replicas:
                out[name] = scaling
        return out

    def target(self, name: str) -> Target:
        for t in self.targets:
            if t.name == name:
                return t
        raise KeyError(name)


# --- status ------------------------------------------------------------------------------------


class Progress(ApiModel):
    """Requests done out of the total for the current run."""

    done: int = Field(default=0, description="Requests finished (successfully or not).", ge=0)
    failed: int = Field(default=0, description="Requests that ended in an error.", ge=0)
    total: int = Field(default=0, description="Requests in the run.", ge=0)
    display: str | None = Field(
        default=None, description="done/total, for the printer column.", max_length=64
    )


class TargetSummary(ApiModel):
    """Compact per-target results (full results live in the store)."""

    target: str = Field(description="Target name.", max_length=63)
    success_rate: float | None = Field(
        default=None, description="Share of requests that succeeded.", ge=0, le=1
    )
    similarity: float | None = Field(default=None, description="Mean similarity to the reference.")
    judge_win_rate: float | None = Field(
        default=None, description="Judge win rate vs the reference (ties count half).", ge=0, le=1
    )
    human_win_rate: float | None = Field(
        default=None, description="Human win rate vs the reference (ties count half).", ge=0, le=1
    )
    ttft_p50_ms: float | None = Field(default=None, description="Time to first token, median (ms).")
    ttft_p95_ms: float | None = Field(default=None, description="Time to first token, p95 (ms).")
    e2e_p50_ms: float | None = Field(default=None, alias="e2eP50Ms",
                                     description="End-to-end latency, median (ms).")
    e2e_p95_ms: float | None = Field(default=None, alias="e2eP95Ms",
                                     description="End-to-end latency, p95 (ms).")
    tokens_per_second: float | None = Field(default=None, description="Output tokens per second.")
    cost_per_1k_requests_usd: float | None = Field(
        default=None, alias="costPer1kRequestsUSD", description="USD per 1,000 requests."
    )
    run_spend_usd: float | None = Field(
        default=None, alias="runSpendUSD", description="What this run itself cost on this "
        "target: its tokens at the API's price, or instance-hours × price for as long as the "
        "run kept the ModelDeployment up (the report shows the arithmetic).")
    goodput_rps: float | None = Field(
        default=None, alias="goodputRPS", description="Self-hosted, with spec.cost.slo: "
        "requests per second per replica meeting the SLO at the highest load that does.")
    monthly_usd: float | None = Field(
        default=None, alias="monthlyUSD", description="Monthly cost on the expected traffic "
        "(with an SLO: always-on, sized for the busiest hour at the goodput).")
    monthly_scale_to_zero_usd: float | None = Field(
        default=None, alias="monthlyScaleToZeroUSD", description="Self-hosted, with an SLO: "
        "monthly cost scaling to zero in hours without traffic (cold starts miss the SLO).")
    break_even_requests_per_day: float | None = Field(
        default=None, description="Self-hosted: the daily traffic from which it costs no more "
        "than the API reference.")
    cold_start_seconds: float | None = Field(
        default=None, description="A ModelDeployment this run scaled up: seconds from the "
        "scale-up to the run's first token (the report splits it into its parts).")
    decision: Literal["non-inferior", "inferior", "undecided"] | None = Field(
        default=None, description="Candidates: the verdict against the reference "
        "(spec.decision); the recommendation's reason says why.")


class Recommendation(ApiModel):
    """The cheapest non-inferior candidate cheaper than the reference, or none with the reason."""

    target: str | None = Field(default=None, description="Recommended target, if any.",
                               max_length=63)
    reason: str = Field(description="Why, with the test used.", max_length=4096)


class RetryStatus(ApiModel):
    """Retries of the run's failed or missing answers (the slam.dev/retry annotation)."""

    token: str | None = Field(
        default=None, description="The slam.dev/retry value last taken in: another value "
        "starts a retry once the run has ended.", max_length=253)
    attempt: int = Field(default=0, description="Retries of this run so far (0: none); the "
                         "Job of retry N is <evaluation>-run-<runId>-retry-N.", ge=0)
    start_time: str | None = Field(
        default=None, description="When the latest retry started.",
        json_schema_extra={"format": "date-time"})


class EvaluationStatus(ApiModel):
    """Observed state, written by the operator."""

    observed_generation: int | None = Field(
        default=None, description="metadata.generation this status was computed from.", ge=0
    )
    phase: Literal["Pending", "WaitingForTargets", "Running", "Succeeded", "Failed"] | None = Field(
        default=None, description="Where the evaluation is."
    )
    run_id: str | None = Field(default=None, description="Run the status describes.", max_length=63)
    conditions: list[Condition] | None = Field(
        default=None,
        description="TargetsResolved, TargetsReady, JobComplete, the roll-up Ready, "
        "StoreReachable (once the store is read: False while it does not answer), and "
        "JudgeIndependent (with a judge: False when it may favour a target's answers).",
        max_length=16,
        json_schema_extra={**LIST_MAP, "x-kubernetes-list-map-keys": ["type"]},
    )
    progress: Progress | None = Field(default=None, description="Requests done out of the total.")
    summary: list[TargetSummary] | None = Field(
        default=None,
        description="Per-target summary of the finished run.",
        max_length=32,
        json_schema_extra={**LIST_MAP, "x-kubernetes-list-map-keys": ["target"]},
    )
    leader: str | None = Field(
        default=None, description="Recommended target, or 'none'.", max_length=63
    )
    recommendation: Recommendation | None = Field(default=None, description="The recommendation.")
    plan: list[Annotated[str, Field(max_length=512)]] | None = Field(
        default=None, description="Per kind of evidence: the prompts its margin needs for the "
        "planned power, and what the prompt set has (slam plan).", max_length=4)
    job_name: str | None = Field(default=None, description="Scoring Job of this run (of its "
                                 "latest retry).", max_length=253)
    retry: RetryStatus | None = Field(default=None, description="Retries of this run's failed "
                                      "or missing answers.")
    start_time: str | None = Field(
        default=None, description="When the run started.", json_schema_extra={"format": "date-time"}
    )
    completion_time: str | None = Field(
        default=None, description="When the run ended.", json_schema_extra={"format": "date-time"}
    )


class Evaluation(ApiModel):
    """A comparison (the whole object, as read from a manifest)."""

    api_version: Literal["slam.dev/v1alpha1"] = Field(
        default="slam.dev/v1alpha1", description="slam.dev/v1alpha1"
    )
    kind: Literal["Evaluation"] = Field(default="Evaluation", description="Kind.")
    metadata: dict = Field(default_factory=dict, description="Standard object metadata.")
    spec: EvaluationSpec = Field(description="Desired state.")
    status: EvaluationStatus | None = Field(default=None, description="Observed state.")
