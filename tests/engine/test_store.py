"""The results store on SQLite and on a real PostgreSQL server: migrations, idempotent writes."""

from __future__ import annotations

from datetime import UTC, datetime

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from slam.generate import RequestRecord
from slam.promptsets import PromptItem, PromptSet
from slam.store import Store, display_url
from slam.store.schema import Base

PROMPTS = PromptSet("t", "test", tuple(
    PromptItem(f"p{i}", ({"role": "user", "content": f"q{i}"},), (f"ref {i}",)) for i in range(3)
))


def record(prompt: str, target: str = "a", sample: int = 0, error: str | None = None,
           text: str = "answer") -> RequestRecord:
    return RequestRecord(target=target, prompt_id=prompt, sample=sample,
                         started_at=datetime.now(UTC), attempts=1, ttft_ms=10.0, e2e_ms=20.0,
                         completion_tokens=3, text=text, error_class=error,
                         error_message="boom" if error else None)


def begin(store: Store, total: int = 6) -> int:
    return store.begin_run(evaluation="ev", run_id="1", reference="a", spec={"x": 1},
                           targets=[{"name": n, "kind": "external", "model": "m",
                                     "base_url": "http://h/v1", "is_reference": n == "a",
                                     "concurrency": 1, "details": {}} for n in ("a", "b")],
                           prompts=PROMPTS, total=total)


def test_migrations_create_exactly_the_schema(store_url: str) -> None:
    store = Store.open(store_url)
    with store.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert diff == [], "schema.py and the migrations disagree: add a migration"
    Store.open(store_url)  # opening again is a no-op upgrade


def test_saving_the_same_key_twice_keeps_one_record(store_url: str) -> None:
    store = Store.open(store_url)
    run = begin(store)
    assert store.save(run, [record("p0"), record("p1")]) == 2
    assert store.save(run, [record("p0", text="second"), record("p2")]) == 1
    rows = store.responses(run)
    assert [(r["prompt_id"], r["text"]) for r in rows] == [
        ("p0", "answer"), ("p1", "answer"), ("p2", "answer")]
    assert store.done_keys(run) == {("a", "p0", 0), ("a", "p1", 0), ("a", "p2", 0)}
    assert store.progress(run) == (3, 0, 6)


def test_begin_run_is_idempotent_and_keeps_prompts(store_url: str) -> None:
    store = Store.open(store_url)
    first, again = begin(store), begin(store, total=6)
    assert first == again
    assert [p["prompt_id"] for p in store.prompts(first)] == ["p0", "p1", "p2"]
    assert store.prompts(first)[1]["references"] == ["ref 1"]
    assert [t["name"] for t in store.targets(first)] == ["a", "b"]
    assert store.find_run("ev").id == first and store.find_run("ev", "2") is None


def test_recorded_prompts_keep_their_order_answers_and_refuse_a_second_copy(
        store_url: str) -> None:
    # The shadow gateway's write: one prompt and the incumbent's answer per sampled request.
    store = Store.open(store_url)
    run = store.recording_run(evaluation="shadow", run_id="live", reference="incumbent",
                              spec={"upstream": "http://api"},
                              target={"name": "incumbent", "kind": "external", "model": "gpt-4o",
                                      "base_url": "http://api", "is_reference": True,
                                      "concurrency": 0, "details": {}})
    asked = [[{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Grüße?"}],
             [{"role": "user", "content": "Second"}]]
    for i, messages in enumerate(asked):
        assert store.add_prompt(run, f"gw-{i}", messages,
                                record=record(f"gw-{i}", target="incumbent", text=f"answer {i}"))
    assert not store.add_prompt(run, "gw-0", [{"role": "user", "content": "changed"}],
                                record=record("gw-0", target="incumbent", text="changed"))
    recorded = store.recorded_prompts("shadow", "live")
    assert [(item.id, list(item.messages)) for item in recorded.prompts] == [
        ("gw-0", asked[0]), ("gw-1", asked[1])]
    assert [p["position"] for p in store.prompts(run)] == [0, 1]
    assert [(r["prompt_id"], r["text"], r["ttft_ms"]) for r in store.responses(run)] == [
        ("gw-0", "answer 0", 10.0), ("gw-1", "answer 1", 10.0)]


def test_replace_failed_only_replaces_errors(store_url: str) -> None:
    store = Store.open(store_url)
    run = begin(store)
    store.save(run, [record("p0", error="Timeout"), record("p1")])
    assert store.done_keys(run, include_failed=False) == {("a", "p1", 0)}
    store.save(run, [record("p0", text="retried"), record("p1", text="not replaced")],
               replace_failed=True)
    rows = {r["prompt_id"]: r for r in store.responses(run)}
    assert rows["p0"]["text"] == "retried" and rows["p0"]["error_class"] is None
    assert rows["p1"]["text"] == "answer"
    assert store.progress(run) == (2, 0, 6)


def test_display_url_hides_the_password(postgres) -> None:
    url = postgres.url()
    assert postgres.password in url
    assert postgres.password not in display_url(url)


def test_delete_evaluation_removes_its_runs_and_everything_under_them(store_url: str) -> None:
    store = Store.open(store_url)
    run = begin(store)
    store.save(run, [record("p0"), record("p1")])
    rid = store.responses(run)[0]["id"]
    store.save_scores([{"response_id": rid, "scorer": "similarity", "score": 0.5,
                        "passed": None, "reason": None, "raw": None}])
    store.save_judgments(run, [{"prompt_id": "p0", "sample": 0, "judge": "j", "first": "a",
                                "second": "b", "verdict": "tie", "parse_status": "ok",
                                "raw": "[[C]]"}])
    other = store.begin_run(evaluation="other", run_id="1", reference="a", spec={}, targets=[],
                            prompts=PROMPTS, total=1)
    store.save(other, [record("p0")])
    assert store.delete_evaluation("ev") == 1
    assert store.find_run("ev") is None and store.scores(run) == []
    assert store.judgments(run) == [] and store.responses(run) == []
    assert len(store.responses(other)) == 1
