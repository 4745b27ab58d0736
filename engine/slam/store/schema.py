"""The results schema (SQLAlchemy 2 ORM). Migrations in `migrations/` create exactly this.

One row per run of an evaluation; its targets and prompts as they were at the start of the run;
one response per (run, target, prompt, sample) — the idempotency key that makes runs resumable.
Scores, judge verdicts, human ratings and probe samples hang off the same keys.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    pass


class Run(Base):
    """One run (`spec.runId`) of one Evaluation."""

    __tablename__ = "runs"
    __table_args__ = (UniqueConstraint("namespace", "evaluation", "run_id", name="uq_runs_key"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    namespace: Mapped[str] = mapped_column(String(253), default="")
    evaluation: Mapped[str] = mapped_column(String(253))
    run_id: Mapped[str] = mapped_column(String(63))
    reference: Mapped[str] = mapped_column(String(63))
    spec: Mapped[dict] = mapped_column(JSON)  # the Evaluation spec (no secret values: only refs)
    total: Mapped[int] = mapped_column(Integer, default=0)  # requests the run will make
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class RunTarget(Base):
    """A target as it was evaluated: endpoint and model (never its API key)."""

    __tablename__ = "targets"

    run_pk: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"),
                                        primary_key=True)
    name: Mapped[str] = mapped_column(String(63), primary_key=True)
    kind: Mapped[str] = mapped_column(String(32))  # modelDeployment | external
    model: Mapped[str] = mapped_column(String(255))
    base_url: Mapped[str] = mapped_column(String(2048))
    is_reference: Mapped[bool] = mapped_column(Boolean, default=False)
    concurrency: Mapped[int] = mapped_column(Integer)
    details: Mapped[dict] = mapped_column(JSON, default=dict)  # runtime, instance type, pricing


class RunPrompt(Base):
    """A prompt as it was sent (resolved messages) and its reference answers."""

    __tablename__ = "prompts"

    run_pk: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"),
                                        primary_key=True)
    prompt_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    position: Mapped[int] = mapped_column(Integer)
    messages: Mapped[list] = mapped_column(JSON)
    references: Mapped[list] = mapped_column(JSON, default=list)


class Response(Base):
    """One request's final record: timings, tokens, text, or the error."""

    __tablename__ = "responses"
    __table_args__ = (
        UniqueConstraint("run_pk", "target", "prompt_id", "sample", name="uq_responses_key"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    run_pk: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), index=True)
    target: Mapped[str] = mapped_column(String(63))
    prompt_id: Mapped[str] = mapped_column(String(128))
    sample: Mapped[int] = mapped_column(Integer)
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    attempts: Mapped[int] = mapped_column(Integer)
    ttft_ms: Mapped[float | None] = mapped_column(Float, nullable=True)
    e2e_ms: Mapped[float | None] = mapped_column(Float, nullable=True)
    itl_mean_ms: Mapped[float | None] = mapped_column(Float, nullable=True)
    itl_p50_ms: Mapped[float | None] = mapped_column(Float, nullable=True)
    itl_p95_ms: Mapped[float | None] = mapped_column(Float, nullable=True)
    itl_max_ms: Mapped[float | None] = mapped_column(Float, nullable=True)
    prompt_tokens: Mapped[int | None] = mapped_column(Integer, nullable=True)
    completion_tokens: Mapped[int | None] = mapped_column(Integer, nullable=True)
    tokens_source: Mapped[str | None] = mapped_column(String(16), nullable=True)
    finish_reason: Mapped[str | None] = mapped_column(String(32), nullable=True)
    text: Mapped[str] = mapped_column(Text, default="")
    error_class: Mapped[str | None] = mapped_column(String(128), nullable=True)
    error_message: Mapped[str | None] = mapped_column(Text, nullable=True)
    status_code: Mapped[int | None] = mapped_column(Integer, nullable=True)
    schedule_lag_ms: Mapped[float | None] = mapped_column(Float, nullable=True)
    # The target_states row in effect when the request started (ModelDeployment targets of a
    # cluster run): which generation, revision and arguments served this answer.
    served_by: Mapped[int | None] = mapped_column(Integer, nullable=True)


class TargetState(Base):
    """How a ModelDeployment target served during a run, from `at` on: whether it was
    available, and the generation, revision and arguments its pods ran (the operator appends a
    row at each change, timed by the ModelDeployment's own condition transitions)."""

    __tablename__ = "target_states"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    run_pk: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), index=True)
    target: Mapped[str] = mapped_column(String(63))
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    available: Mapped[bool] = mapped_column(Boolean)
    reason: Mapped[str | None] = mapped_column(Text, nullable=True)  # why not, when not
    generation: Mapped[int | None] = mapped_column(Integer, nullable=True)
    revision: Mapped[str | None] = mapped_column(String(64), nullable=True)
    image: Mapped[str | None] = mapped_column(String(1024), nullable=True)
    args: Mapped[list | None] = mapped_column(JSON, nullable=True)
    rolling_to: Mapped[int | None] = mapped_column(Integer, nullable=True)  # a rollout under way


class Score(Base):
    """An automated score of one response (similarity, single-answer judge grade)."""

    __tablename__ = "scores"
    __table_args__ = (UniqueConstraint("response_id", "scorer", name="uq_scores_key"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    response_id: Mapped[int] = mapped_column(ForeignKey("responses.id", ondelete="CASCADE"))
    scorer: Mapped[str] = mapped_column(String(64))
    score: Mapped[float | None] = mapped_column(Float, nullable=True)
    passed: Mapped[bool | None] = mapped_column(Boolean, nullable=True)
    reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    raw: Mapped[dict | None] = mapped_column(JSON, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class Judgment(Base):
    """A pairwise judge verdict for one order of presentation (both orders are stored)."""

    __tablename__ = "judgments"
    __table_args__ = (
        UniqueConstraint("run_pk", "prompt_id", "sample", "judge", "first", "second",
                         name="uq_judgments_key"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    run_pk: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), index=True)
    prompt_id: Mapped[str] = mapped_column(String(128))
    sample: Mapped[int] = mapped_column(Integer)
    judge: Mapped[str] = mapped_column(String(63))
    first: Mapped[str] = mapped_column(String(63))  # target shown as answer A
    second: Mapped[str] = mapped_column(String(63))  # target shown as answer B
    verdict: Mapped[str | None] = mapped_column(String(16), nullable=True)  # first|second|tie
    parse_status: Mapped[str] = mapped_column(String(32))  # ok | unparseable | error
    raw: Mapped[str | None] = mapped_column(Text, nullable=True)
    prompt_tokens: Mapped[int | None] = mapped_column(Integer, nullable=True)  # the judge's
    completion_tokens: Mapped[int | None] = mapped_column(Integer, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class Rating(Base):
    """A blind human A/B choice; `submission` makes double submits count once."""

    __tablename__ = "ratings"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    submission: Mapped[str] = mapped_column(String(128), unique=True)
    run_pk: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), index=True)
    rater: Mapped[str] = mapped_column(String(128))
    prompt_id: Mapped[str] = mapped_column(String(128))
    sample: Mapped[int] = mapped_column(Integer)
    left: Mapped[str] = mapped_column(String(63))
    right: Mapped[str] = mapped_column(String(63))
    choice: Mapped[str] = mapped_column(String(16))  # left | right | tie | both_bad
    criteria: Mapped[dict] = mapped_column(JSON, default=dict)
    reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    is_control: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class RatingBatch(Base):
    """A batch of pairs served to one rater (the rating page's list, in order), so a refresh or
    another replica of the dashboard goes on with the same batch where the rater was."""

    __tablename__ = "rating_batches"

    run_pk: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"),
                                        primary_key=True)
    rater: Mapped[str] = mapped_column(String(128), primary_key=True)
    number: Mapped[int] = mapped_column(Integer, primary_key=True)
    assignments: Mapped[list] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class CapacityProbe(Base):
    """One load level of a target's capacity search at the run's SLO (slam.goodput)."""

    __tablename__ = "capacity_probes"

    run_pk: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"),
                                        primary_key=True)
    target: Mapped[str] = mapped_column(String(63), primary_key=True)
    number: Mapped[int] = mapped_column(Integer, primary_key=True)  # 0, 1, … in search order
    concurrency: Mapped[int] = mapped_column(Integer)
    requests: Mapped[int] = mapped_column(Integer)
    failed: Mapped[int] = mapped_column(Integer)
    determined: Mapped[int] = mapped_column(Integer)
    conforming: Mapped[int] = mapped_column(Integer)
    seconds: Mapped[float] = mapped_column(Float)
    ttft_p95_ms: Mapped[float | None] = mapped_column(Float, nullable=True)
    tpot_p95_ms: Mapped[float | None] = mapped_column(Float, nullable=True)
    e2e_p95_ms: Mapped[float | None] = mapped_column(Float, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class ProbeSample(Base):
    """One continuous latency probe of a target (ModelDeployment or external endpoint)."""

    __tablename__ = "probe_samples"
    __table_args__ = (Index("ix_probe_samples_target_at", "namespace", "target", "at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    namespace: Mapped[str] = mapped_column(String(253))
    target: Mapped[str] = mapped_column(String(253))  # ModelDeployment name or evaluation/target
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    ttft_ms: Mapped[float | None] = mapped_column(Float, nullable=True)
    e2e_ms: Mapped[float | None] = mapped_column(Float, nullable=True)
    completion_tokens: Mapped[int | None] = mapped_column(Integer, nullable=True)
    error_class: Mapped[str | None] = mapped_column(String(128), nullable=True)
    error_message: Mapped[str | None] = mapped_column(Text, nullable=True)


class Embedding(Base):
    """A cached sentence embedding (float32, L2-normalised), so re-scoring does not re-encode."""

    __tablename__ = "embeddings"

    model: Mapped[str] = mapped_column(String(255), primary_key=True)
    text_sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    vector: Mapped[bytes] = mapped_column(LargeBinary)
