"""Reads and writes of the results store. Every write is idempotent on its natural key.

Responses are keyed by (run, target, prompt, sample): saving the same record twice keeps the first
one, so a run killed at any point resumes by skipping the keys already stored, with nothing
duplicated and nothing lost (a record lost in flight is simply generated again).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, delete, event, func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import make_url

from slam.generate import RequestRecord
from slam.promptsets import PromptSet
from slam.store import migrate
from slam.store.schema import (
    CapacityProbe,
    Embedding,
    Judgment,
    ProbeSample,
    Rating,
    RatingBatch,
    Response,
    Run,
    RunPrompt,
    RunTarget,
    Score,
    TargetState,
)

RESPONSE_KEY = ["run_pk", "target", "prompt_id", "sample"]
RECORD_FIELDS = [f.name for f in dataclasses.fields(RequestRecord)]
# A run's spec source while only the shadow gateway has written to it (slam.gateway): the
# Evaluation's first run replaces that spec and the placeholder incumbent target.
GATEWAY_SOURCE = "gateway"


def _response_row(run_pk: int, record: RequestRecord) -> dict:
    return {"run_pk": run_pk, **{f: getattr(record, f) for f in RECORD_FIELDS}}


# Rows per statement: SQLite allows 32,766 bound parameters; 500 rows keep every table under it.
CHUNK = 500


def chunks(items: Sequence, size: int = CHUNK) -> Iterable[Sequence]:
    """`items` in slices of at most `size`."""
    for start in range(0, len(items), size):
        yield items[start:start + size]


def default_url() -> str:
    """$SLAM_STORE_URL, else a SQLite file under $XDG_DATA_HOME (~/.local/share)/slam."""
    if os.environ.get("SLAM_STORE_URL"):
        return os.environ["SLAM_STORE_URL"]
    base = Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share")
    return f"sqlite:///{base / 'slam' / 'results.db'}"


def display_url(url: str) -> str:
    """The URL with any password masked: safe for logs, status and the terminal."""
    return make_url(url).render_as_string(hide_password=True)


def describe_error(e: BaseException, password: object = None) -> str:
    """One line for a store error, safe for logs, status and Events: the driver's first line,
    without SQLAlchemy's SQL and parameters, and without `password` should the driver quote it."""
    inner = getattr(e, "orig", None) or e
    text = (str(inner).strip().splitlines() or [""])[0]
    if password:
        text = text.replace(str(password), "***")
    return f"{type(inner).__name__}: {text}"[:300] if text else type(inner).__name__


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cur = dbapi_connection.cursor()
    # WAL: the dashboard can read while a run writes; NORMAL is durable across process crashes.
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.close()


class Store:
    """A results database. Open with `Store.open(url)`; the schema is migrated on open."""

    def __init__(self, engine: Engine):
        self.engine = engine
        self._insert = postgresql.insert if engine.dialect.name == "postgresql" else sqlite.insert

    @classmethod
    def open(cls, url: str | None = None, *, migrate_schema: bool = True) -> Store:
        url = url or default_url()
        parsed = make_url(url)
        if parsed.drivername == "postgresql":
            parsed = parsed.set(drivername="postgresql+psycopg")
        kwargs: dict[str, Any] = {}
        if parsed.get_backend_name() == "sqlite":
            if parsed.database and parsed.database != ":memory:":
                Path(parsed.database).expanduser().parent.mkdir(parents=True, exist_ok=True)
            kwargs["connect_args"] = {"timeout": 60}
        else:
            kwargs["pool_pre_ping"] = True
        engine = create_engine(parsed, **kwargs)
        if parsed.get_backend_name() == "sqlite":
            event.listen(engine, "connect", _sqlite_pragmas)
        if migrate_schema:
            migrate.upgrade(engine)
        return cls(engine)

    def close(self) -> None:
        self.engine.dispose()

    @property
    def display_url(self) -> str:
        """This store's URL with the password masked."""
        return self.engine.url.render_as_string(hide_password=True)

    def describe_error(self, e: BaseException) -> str:
        """One line for an error of this store, safe for logs, status and Events."""
        return describe_error(e, self.engine.url.password)

    # --- runs ----------------------------------------------------------------------------------

    def begin_run(
        self,
        *,
        evaluation: str,
        run_id: str,
        reference: str,
        spec: dict,
        targets: Sequence[dict],
        prompts: PromptSet,
        total: int,
        namespace: str = "",
    ) -> int:
        """Create the run (or find the one being resumed); returns its key. Idempotent."""
        now = datetime.now(UTC)
        key = {"namespace": namespace, "evaluation": evaluation, "run_id": run_id}
        with self.engine.begin() as conn:
            conn.execute(
                self._insert(Run)
                .values(**key, reference=reference, spec=spec, total=total, created_at=now)
                .on_conflict_do_nothing(index_elements=list(key))
            )
            run_pk, stored_spec = conn.execute(
                select(Run.id, Run.spec).filter_by(**key)).one()
            values: dict[str, Any] = {"total": total, "finished_at": None}
            if (stored_spec or {}).get("source") == GATEWAY_SOURCE:
                # The shadow gateway opened the run to record into: the Evaluation's spec is
                # the run's from now on, its targets with it.
                values |= {"spec": spec, "reference": reference}
                conn.execute(delete(RunTarget).where(RunTarget.run_pk == run_pk))
            conn.execute(update(Run).where(Run.id == run_pk).values(**values))
            if targets:
                conn.execute(
                    self._insert(RunTarget)
                    .values([{**t, "run_pk": run_pk} for t in targets])
                    .on_conflict_do_nothing(index_elements=["run_pk", "name"])
                )
            rows = [
                {"run_pk": run_pk, "prompt_id": p.id, "position": i,
                 "messages": list(p.messages), "references": list(p.references)}
                for i, p in enumerate(prompts.prompts)
            ]
            for part in chunks(rows):
                conn.execute(
                    self._insert(RunPrompt)
                    .values(part)
                    .on_conflict_do_nothing(index_elements=["run_pk", "prompt_id"])
                )
        return run_pk

    def recording_run(self, *, evaluation: str, run_id: str, reference: str, spec: dict,
                      target: dict, namespace: str = "") -> int:
        """The run the shadow gateway records into: created (with `spec` and the incumbent
        `target` as placeholders that the Evaluation's first run replaces) when it does not
        exist, never changed when it does. Returns its key."""
        key = {"namespace": namespace, "evaluation": evaluation, "run_id": run_id}
        with self.engine.begin() as conn:
            conn.execute(
                self._insert(Run)
                .values(**key, reference=reference, spec={**spec, "source": GATEWAY_SOURCE},
                        total=0, created_at=datetime.now(UTC))
                .on_conflict_do_nothing(index_elements=list(key)))
            run_pk, stored_spec = conn.execute(select(Run.id, Run.spec).filter_by(**key)).one()
            if (stored_spec or {}).get("source") == GATEWAY_SOURCE:
                conn.execute(self._insert(RunTarget).values(**target, run_pk=run_pk)
                             .on_conflict_do_nothing(index_elements=["run_pk", "name"]))
            return run_pk

    def finish_run(self, run_pk: int) -> None:
        with self.engine.begin() as conn:
            conn.execute(update(Run).where(Run.id == run_pk).values(finished_at=datetime.now(UTC)))

    def find_run(self, evaluation: str, run_id: str | None = None,
                 namespace: str = "") -> Run | None:
        """The run `run_id` of an evaluation, or its latest run."""
        q = select(Run).filter_by(namespace=namespace, evaluation=evaluation)
        if run_id:
            q = q.filter_by(run_id=run_id)
        else:
            q = q.order_by(Run.created_at.desc(), Run.id.desc())
        with self.engine.connect() as conn:
            row = conn.execute(q.limit(1)).first()
        return Run(**row._mapping) if row else None

    def run(self, run_pk: int) -> Run:
        """The run with this primary key (KeyError when there is none)."""
        with self.engine.connect() as conn:
            row = conn.execute(select(Run).where(Run.id == run_pk)).first()
        if row is None:
            raise KeyError(f"no run {run_pk} in the store")
        return Run(**row._mapping)

    def runs(self) -> list[Run]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(Run).order_by(Run.created_at)).all()
        return [Run(**r._mapping) for r in rows]

    def targets(self, run_pk: int) -> list[dict]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(RunTarget).filter_by(run_pk=run_pk)).mappings().all()
        return [dict(r) for r in rows]

    def prompts(self, run_pk: int) -> list[dict]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                # Two gateway replicas appending at once can give two prompts one position:
                # the id breaks the tie, so every reader (and every shard) sees one order.
                select(RunPrompt).filter_by(run_pk=run_pk)
                .order_by(RunPrompt.position, RunPrompt.prompt_id)
            ).mappings().all()
        return [dict(r) for r in rows]

    def add_prompt(self, run_pk: int, prompt_id: str, messages: Sequence[dict],
                   references: Sequence[str] = (), *,
                   record: RequestRecord | None = None) -> bool:
        """Append one prompt to a run's set and, in the same transaction, the answer it
        already has (the shadow gateway's sampled traffic and the incumbent's answer); False,
        and nothing written, when the run already has the prompt."""
        return self.add_prompts(run_pk, [(prompt_id, messages, references, record)])[0]

    def add_prompts(self, run_pk: int, items: Sequence[tuple[str, Sequence[dict], Sequence[str],
                                                             RequestRecord | None]],
                    *, between: Callable[[], None] | None = None) -> list[bool]:
        """`add_prompt` for several (prompt id, messages, references, record) in one
        transaction, in order: for each, whether it was added (False: the run, or an earlier
        item, already had the prompt). `between` is called after each item's statement (the
        shadow gateway's recorder gives its core back there)."""
        added: list[bool] = []
        with self.engine.begin() as conn:
            position = conn.execute(
                select(func.coalesce(func.max(RunPrompt.position) + 1, 0)).filter_by(
                    run_pk=run_pk)).scalar_one()
            # The values go as parameters, not .values(): the statement is then the same every
            # call and compiled once (the recorder calls this per batch of sampled requests,
            # and .values() rebuilt and re-keyed both statements each time: 2/3 of its CPU).
            stmt = (self._insert(RunPrompt)
                    .on_conflict_do_nothing(index_elements=["run_pk", "prompt_id"])
                    .returning(RunPrompt.prompt_id))
            answers = []
            for prompt_id, messages, references, record in items:
                row = {"run_pk": run_pk, "prompt_id": prompt_id, "position": position,
                       "messages": list(messages), "references": list(references)}
                added.append(len(conn.execute(stmt, row).all()) == 1)
                if added[-1]:
                    position += 1
                    if record is not None:
                        answers.append(_response_row(run_pk, record))
                if between is not None:
                    between()
            if answers:
                conn.execute(self._insert(Response)
                             .on_conflict_do_nothing(index_elements=RESPONSE_KEY), answers)
        return added

    def recorded_prompts(self, evaluation: str, run_id: str, namespace: str = "") -> PromptSet:
        """The prompts the shadow gateway recorded into a run, in the order it recorded them
        (an empty set when it has recorded nothing yet)."""
        from slam.promptsets import PromptItem

        run = self.find_run(evaluation, run_id, namespace)
        rows = self.prompts(run.id) if run is not None else []
        where = f"the requests recorded into run {run_id} of {evaluation}"
        return PromptSet("recorded", where, tuple(
            PromptItem(r["prompt_id"], tuple(r["messages"]), tuple(r["references"] or ()))
            for r in rows))

    # --- responses -----------------------------------------------------------------------------

    def done_keys(self, run_pk: int, *, include_failed: bool = True) -> set[tuple[str, str, int]]:
        q = select(Response.target, Response.prompt_id, Response.sample).filter_by(run_pk=run_pk)
        if not include_failed:
            q = q.where(Response.error_class.is_(None))
        with self.engine.connect() as conn:
            return {tuple(r) for r in conn.execute(q)}

    def save(self, run_pk: int, records: Iterable[RequestRecord], *,
             replace_failed: bool = False) -> int:
        """Store final records; a key already stored is kept (or, if it failed and
        `replace_failed`, replaced). Returns the number of rows written."""
        rows = [_response_row(run_pk, r) for r in records]
        if not rows:
            return 0
        stmt = self._insert(Response).values(rows)
        if replace_failed:
            stmt = stmt.on_conflict_do_update(
                index_elements=RESPONSE_KEY,
                set_={f: stmt.excluded[f] for f in RECORD_FIELDS},
                where=Response.error_class.is_not(None),
            )
        else:
            stmt = stmt.on_conflict_do_nothing(index_elements=RESPONSE_KEY)
        return self._written(stmt, Response.id)

    def _written(self, stmt, id_column) -> int:
        """Run an insert; how many rows it wrote. RETURNING counts them on every backend
        (rowcount is -1 for batches) and leaves out rows that a conflict skipped."""
        with self.engine.begin() as conn:
            return len(conn.execute(stmt.returning(id_column)).all())

    def _rows(self, q) -> list[dict]:
        with self.engine.connect() as conn:
            return [dict(r) for r in conn.execute(q).mappings()]

    def responses(self, run_pk: int, target: str | None = None) -> list[dict]:
        q = select(Response).filter_by(run_pk=run_pk)
        if target:
            q = q.filter_by(target=target)
        q = q.order_by(Response.target, Response.prompt_id, Response.sample)
        return self._rows(q)

    def progress(self, run_pk: int) -> tuple[int, int, int]:
        """(done, failed, total) for a run."""
        with self.engine.connect() as conn:
            done, failed = conn.execute(
                select(func.count(), func.count(Response.error_class)).filter_by(run_pk=run_pk)
            ).one()
            total = conn.execute(select(Run.total).where(Run.id == run_pk)).scalar_one()
        return int(done), int(failed), int(total)

    # --- target states (which configuration served each answer) -------------------------------

    def target_states(self, run_pk: int) -> list[dict]:
        q = select(TargetState).filter_by(run_pk=run_pk).order_by(TargetState.at, TargetState.id)
        return self._rows(q)

    def record_target_states(self, run_pk: int, states: Sequence[dict]) -> int:
        """Append each target's state (target, at, available, reason, generation, revision,
        image, args, rolling_to) when it differs from the last one recorded; returns rows
        written."""
        from slam import timeline
        last = {}
        for s in self.target_states(run_pk):
            last[s["target"]] = s
        rows = [{**s, "run_pk": run_pk} for s in states
                if timeline.changed(last.get(s["target"]), s)]
        if not rows:
            return 0
        with self.engine.begin() as conn:
            conn.execute(self._insert(TargetState).values(rows))
        return len(rows)

    def attribute_responses(self, run_pk: int) -> int:
        """Set each response's `served_by` to the target state in effect when it started;
        returns the rows changed."""
        from slam import timeline
        states = self.target_states(run_pk)
        if not states:
            return 0
        rows = self._rows(select(Response.id, Response.target, Response.started_at,
                                 Response.served_by).filter_by(run_pk=run_pk))
        changes = {rid: sid for rid, sid in timeline.served_by(rows, states).items()}
        current = {r["id"]: r["served_by"] for r in rows}
        todo = [{"rid": rid, "sid": sid} for rid, sid in changes.items() if current[rid] != sid]
        if todo:
            from sqlalchemy import bindparam
            with self.engine.begin() as conn:
                conn.execute(update(Response).where(Response.id == bindparam("rid"))
                             .values(served_by=bindparam("sid")), todo)
        return len(todo)

    # --- scores, judgments, embeddings -----------------------------------------------------------

    def save_scores(self, rows: Sequence[dict]) -> int:
        """Rows: response_id, scorer, score, passed, reason, raw. Existing (response, scorer)
        pairs are kept."""
        if not rows:
            return 0
        now = datetime.now(UTC)
        stmt = self._insert(Score).values([{**r, "created_at": now} for r in rows])
        stmt = stmt.on_conflict_do_nothing(index_elements=["response_id", "scorer"])
        return self._written(stmt, Score.id)

    def scores(self, run_pk: int, scorer: str | None = None) -> list[dict]:
        q = (select(Score.scorer, Score.score, Score.passed, Score.reason, Score.raw,
                    Response.id.label("response_id"), Response.target, Response.prompt_id,
                    Response.sample)
             .join(Response, Response.id == Score.response_id)
             .where(Response.run_pk == run_pk))
        if scorer:
            q = q.where(Score.scorer == scorer)
        return self._rows(q)

    def save_judgments(self, run_pk: int, rows: Sequence[dict]) -> int:
        """Rows: prompt_id, sample, judge, first, second, verdict, parse_status, raw."""
        if not rows:
            return 0
        now = datetime.now(UTC)
        stmt = self._insert(Judgment).values(
            [{**r, "run_pk": run_pk, "created_at": now} for r in rows])
        stmt = stmt.on_conflict_do_nothing(
            index_elements=["run_pk", "prompt_id", "sample", "judge", "first", "second"])
        return self._written(stmt, Judgment.id)

    def judgments(self, run_pk: int) -> list[dict]:
        q = select(Judgment).filter_by(run_pk=run_pk).order_by(Judgment.id)
        return self._rows(q)

    def embeddings(self, model: str, shas: Sequence[str]) -> dict[str, bytes]:
        out: dict[str, bytes] = {}
        with self.engine.connect() as conn:
            for part in chunks(shas):
                q = select(Embedding.text_sha256, Embedding.vector).where(
                    Embedding.model == model, Embedding.text_sha256.in_(part))
                out.update({sha: bytes(v) for sha, v in conn.execute(q)})
        return out

    def save_embeddings(self, model: str, vectors: dict[str, bytes]) -> None:
        rows = [{"model": model, "text_sha256": k, "vector": v} for k, v in vectors.items()]
        with self.engine.begin() as conn:
            for part in chunks(rows):
                conn.execute(self._insert(Embedding).values(part)
                             .on_conflict_do_nothing(index_elements=["model", "text_sha256"]))

    # --- latency probes --------------------------------------------------------------------------

    def save_capacity_probe(self, run_pk: int, target: str, number: int, probe: Any) -> bool:
        """Store probe `number` of `target`'s capacity search (`probe`: a slam.goodput.Probe);
        False when it is already stored."""
        stmt = self._insert(CapacityProbe).values(
            run_pk=run_pk, target=target, number=number, created_at=datetime.now(UTC),
            **dataclasses.asdict(probe))
        stmt = stmt.on_conflict_do_nothing(index_elements=["run_pk", "target", "number"])
        return bool(self._written(stmt, CapacityProbe.number))

    def capacity_probes(self, run_pk: int, target: str | None = None) -> list[dict]:
        q = select(CapacityProbe).filter_by(run_pk=run_pk)
        if target:
            q = q.filter_by(target=target)
        return self._rows(q.order_by(CapacityProbe.target, CapacityProbe.number))

    def save_probe(self, namespace: str, target: str, result: Any) -> None:
        """`result`: a slam.probe.ProbeResult; `target` names the probed thing in `namespace`
        (a ModelDeployment, or evaluation/target for an external endpoint)."""
        with self.engine.begin() as conn:
            conn.execute(self._insert(ProbeSample).values(
                namespace=namespace, target=target, at=result.at, ttft_ms=result.ttft_ms,
                e2e_ms=result.e2e_ms, completion_tokens=result.completion_tokens,
                error_class=result.error_class, error_message=result.error_message))

    def probe_samples(self, namespace: str, target: str | None = None) -> list[dict]:
        q = select(ProbeSample).filter_by(namespace=namespace)
        if target:
            q = q.filter_by(target=target)
        return self._rows(q.order_by(ProbeSample.at))

    def delete_evaluation(self, evaluation: str, namespace: str = "") -> int:
        """Delete every run of an evaluation with everything under it; returns the runs deleted."""
        with self.engine.begin() as conn:
            runs = [r for (r,) in conn.execute(select(Run.id).filter_by(
                namespace=namespace, evaluation=evaluation))]
            if not runs:
                return 0
            # Children first: SQLite enforces ON DELETE CASCADE only with foreign_keys on, and
            # explicit deletes keep the behaviour identical on every backend.
            response_ids = select(Response.id).where(Response.run_pk.in_(runs))
            conn.execute(delete(Score).where(Score.response_id.in_(response_ids)))
            for table in (Response, Judgment, Rating, RatingBatch, RunPrompt, RunTarget,
                          TargetState, CapacityProbe):
                conn.execute(delete(table).where(table.run_pk.in_(runs)))
            conn.execute(delete(Run).where(Run.id.in_(runs)))
        return len(runs)

    # --- human ratings ---------------------------------------------------------------------------

    def save_rating(self, row: dict) -> bool:
        """Store one rating; False when its `submission` key is already there (a repeat)."""
        stmt = self._insert(Rating).values({**row, "created_at": datetime.now(UTC)})
        stmt = stmt.on_conflict_do_nothing(index_elements=["submission"])
        return bool(self._written(stmt, Rating.id))

    def rating(self, submission: str) -> dict | None:
        """The rating stored under a submission key, if any."""
        rows = self._rows(select(Rating).filter_by(submission=submission))
        return rows[0] if rows else None

    def save_rating_batch(self, run_pk: int, rater: str, number: int,
                          assignments: list[dict]) -> bool:
        """Store a rater's batch `number`; False when that batch is already stored (another tab
        made it first: read it with `rating_batch`)."""
        stmt = self._insert(RatingBatch).values(
            run_pk=run_pk, rater=rater, number=number, assignments=assignments,
            created_at=datetime.now(UTC))
        stmt = stmt.on_conflict_do_nothing(index_elements=["run_pk", "rater", "number"])
        return bool(self._written(stmt, RatingBatch.number))

    def rating_batch(self, run_pk: int, rater: str) -> tuple[int, list[dict]] | None:
        """The rater's latest batch in this run: (number, assignments), or None."""
        with self.engine.connect() as conn:
            row = conn.execute(select(RatingBatch.number, RatingBatch.assignments)
                               .filter_by(run_pk=run_pk, rater=rater)
                               .order_by(RatingBatch.number.desc()).limit(1)).first()
        return (row.number, row.assignments) if row is not None else None

    def ratings(self, run_pk: int) -> list[dict]:
        q = select(Rating).filter_by(run_pk=run_pk).order_by(Rating.id)
        return self._rows(q)
