"""Page logic through Streamlit's AppTest: sign-in, blind rating, submission, admin gating."""

from __future__ import annotations

import base64
import json
import re
from collections import Counter

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from slam import decision
from slam.store import Store
from slam_dashboard import data, rating
from tests.controlplane.cluster import REPO
from tests.dashboard.conftest import ADMIN_TOKEN, PROMPTS, RATER_TOKEN, TARGETS, answer

APP = str(REPO / "dashboard" / "slam_dashboard" / "app.py")


def signed_in(token: str) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=30)
    at.run()
    at.text_input[0].input(token)
    at.button[0].click()
    at.run()
    if "role" in at.session_state:
        # AppTest keeps the sign-in page's id across the rerun; a browser lands on the new
        # default page (the Playwright test checks that path).
        at.switch_page("pages/rate.py")
        at.run()
    return at


def page_text(at: AppTest) -> str:
    """Everything the page would send: markdown, text, labels, widget keys and values."""
    parts = []
    for kind in ("markdown", "text", "title", "caption", "info", "success", "error", "warning"):
        parts += [str(getattr(e, "value", "")) for e in getattr(at, kind)]
    parts += [str(e.value) for e in at.get("html")]
    for w in (*at.radio, *at.text_area, *at.selectbox, *at.button, *at.text_input):
        parts += [str(w.key), str(w.label), str(getattr(w, "options", ""))]
    return "\n".join(parts)


def test_wrong_token_is_refused(seeded) -> None:
    at = signed_in("not-a-token")
    assert "not valid" in at.error[0].value
    assert "role" not in at.session_state


def test_rater_rates_blind_and_the_winner_maps_back(seeded) -> None:
    url, run = seeded
    at = signed_in(RATER_TOKEN)
    assert at.title[0].value == "Which answer is better?"
    assert "You: 0 rated in this evaluation" in page_text(at)
    for target in TARGETS:
        assert target not in page_text(at)
    # what A and B are, according to the server-side session
    state = at.session_state[f"session-{run}"]
    first = state["assignments"][0]
    shown_a = [h.value for h in at.get("html") if "Answer number" in h.value][0]
    assert shown_a.startswith(f"<p>Answer number {TARGETS.index(first.left) + 1} ")
    at.button(key="choice-1").click().run()  # "A is better (1)"
    rows = Store.open(url).ratings(run)
    assert len(rows) == 1 and rows[0]["rater"] == "ana"
    assert rating.winner(rows[0]) == first.left  # A was first.left on the page
    assert state["index"] == 1 and "You: 1 rated in this evaluation" in page_text(at)


def test_a_repeated_submission_counts_once(seeded) -> None:
    url, run = seeded
    at = signed_in(RATER_TOKEN)
    state = at.session_state[f"session-{run}"]
    at.button(key="choice-2").click().run()
    state["index"] = 0  # the same pair submitted again (a double click, a second tab)
    at.run()
    at.button(key="choice-2").click().run()
    assert len(Store.open(url).ratings(run)) == 1
    assert not at.warning  # the same answer again: nothing to say


def test_a_different_answer_to_a_rated_pair_is_reported_not_dropped(seeded) -> None:
    """The same rater in two tabs answers one pair differently: the first answer stands and
    the second tab says so."""
    url, run = seeded
    first, second = signed_in(RATER_TOKEN), signed_in(RATER_TOKEN)
    first.button(key="choice-1").click().run()
    second.button(key="choice-4").click().run()
    (row,) = Store.open(url).ratings(run)
    assert row["choice"] == "left"
    assert second.warning[0].value == ('Pair 1: you had already answered this pair in another '
                                       'tab or window, choosing what this page shows as "A". '
                                       'That first answer stands; "Both bad" was not saved.')
    assert second.session_state[f"session-{run}"]["index"] == 1


def _swapped(at, run: int) -> None:
    """The second tab shows its first pair the other way round (its batch was drawn after
    other ratings were stored, so the sides came out differently)."""
    state = at.session_state[f"session-{run}"]
    a = state["assignments"][0]
    state["assignments"][0] = rating.Assignment(a.position, a.item, a.right, a.left)
    at.run()


def test_two_tabs_with_swapped_sides_are_judged_by_the_answer_chosen(seeded) -> None:
    url, run = seeded
    first, second, third = (signed_in(RATER_TOKEN) for _ in range(3))
    _swapped(second, run)
    _swapped(third, run)
    first.button(key="choice-1").click().run()  # A in the first tab
    second.button(key="choice-2").click().run()  # B in the second: the same answer
    (row,) = Store.open(url).ratings(run)
    assert not second.warning  # the same answer, shown on the other side: nothing to say
    third.button(key="choice-1").click().run()  # A here is the answer the first tab rejected
    assert len(Store.open(url).ratings(run)) == 1
    assert third.warning[0].value == ('Pair 1: you had already answered this pair in another '
                                      'tab or window, choosing what this page shows as "B". '
                                      'That first answer stands; "A" was not saved.')


def test_a_control_pair_swaps_the_sides_of_the_rating_actually_stored() -> None:
    item = rating.Item("p1", 0, "a", "b")
    control = rating.Assignment(5, item, "b", "a", is_control=True)  # from this tab's main
    stored = {"left": "b", "right": "a", "choice": "left"}  # another tab showed b on the left
    shown = rating.control_sides(control, stored)
    assert (shown.left, shown.right, shown.is_control) == ("a", "b", True)
    assert rating.control_sides(control, {"left": "a", "right": "b"}) == control
    assert rating.control_sides(control, None) == control


def test_rater_cannot_open_the_leaderboard_admin_can(seeded) -> None:
    board = AppTest.from_file(str(REPO / "dashboard/slam_dashboard/pages/leaderboard.py"))
    board.session_state["role"] = "rater"
    board.run()
    assert "for the evaluation's owners" in board.error[0].value
    assert len(board.table) == 0
    admin = signed_in(ADMIN_TOKEN)
    admin.switch_page("pages/leaderboard.py").run()
    assert "No human ratings yet" in admin.info[0].value
    assert len(ranking(admin)) == len(TARGETS)


def ranking(at: AppTest):
    """The leaderboard's rankings table (the one with a rank column)."""
    return next(t.value.reset_index() for t in at.table if t.value.index.name == "rank")


@pytest.mark.parametrize("rater", ["ana"])
def test_session_is_balanced_and_has_control_pairs(seeded, rater) -> None:
    url, run = seeded
    responses = Store.open(url).responses(run)
    items = rating.items(responses)
    assert len(items) == PROMPTS * 3  # three pairs of targets per prompt
    s = rating.session(rater, "k", items, [], size=12, control_pairs=2)
    main = [a for a in s if not a.is_control]
    # One pair per prompt (six), the three model pairs twice each.
    pairs = Counter((a.item.first, a.item.second) for a in main)
    assert len(main) == PROMPTS and len({a.item.prompt_id for a in main}) == PROMPTS
    assert sorted(pairs.values()) == [2, 2, 2]
    controls = [a for a in s if a.is_control]
    assert len(controls) == 2
    for c in controls:
        original = next(a for a in main if a.item == c.item)
        assert (c.left, c.right) == (original.right, original.left)


ADMIN_PAGES = ("leaderboard", "agreement", "latency", "cost", "drilldown")


def rate_some(url: str, run: int) -> None:
    """Two raters rate the same candidate-vs-reference pairs (the reference wins two times in
    three), a judge agrees with them in both orders, and a dozen probe samples exist."""
    from datetime import UTC, datetime

    from slam.probe import ProbeResult
    store = Store.open(url)
    items = [it for it in rating.items(store.responses(run)) if TARGETS[0] in
             (it.first, it.second)]
    judgments = []
    for n, it in enumerate(items, start=1):
        cand = it.second if it.first == TARGETS[0] else it.first
        cand_wins = n % 3 == 0
        for rater in ("ana", "ben"):
            a = rating.Assignment(n, it, cand, TARGETS[0])
            # Overall the reference wins 2 in 3; on clarity the candidate always does.
            store.save_rating(rating.rating_row(rater, run, "k", a, "A" if cand_wins else "B",
                                                {"clarity": "A"}))
        for first, second in ((cand, TARGETS[0]), (TARGETS[0], cand)):
            verdict = "first" if (first == cand) == cand_wins else "second"
            judgments.append({"prompt_id": it.prompt_id, "sample": 0, "judge": "j",
                              "first": first, "second": second, "verdict": verdict,
                              "parse_status": "ok", "raw": "x"})
    store.save_judgments(run, judgments)
    for i in range(12):
        store.save_probe("", f"pep-talk/{TARGETS[0]}", ProbeResult(
            TARGETS[0], datetime(2026, 1, 1, 0, i, tzinfo=UTC), 50.0 + i, 400.0 + 10 * i, 8,
            None, None))


@pytest.mark.parametrize("page", ADMIN_PAGES)
def test_admin_pages_render_and_raters_are_refused(seeded, page) -> None:
    url, run = seeded
    rate_some(url, run)
    rater = AppTest.from_file(str(REPO / f"dashboard/slam_dashboard/pages/{page}.py"))
    rater.session_state["role"] = "rater"
    rater.run()
    assert "for the evaluation's owners" in rater.error[0].value
    admin = signed_in(ADMIN_TOKEN)
    admin.switch_page(f"pages/{page}.py").run()
    assert not admin.exception, admin.exception
    text = page_text(admin)
    if page == "leaderboard":
        table = ranking(admin)
        assert list(table["target"])[0] == f"{TARGETS[0]} (reference)"  # humans prefer it
        assert list(table["rank"]) == ["1", "2", "3"]
        assert "human Elo [95% CI]" in table.columns
        # Win rates in percent: each candidate wins one in three against the reference.
        assert [round(x) for x in table["human win rate"].iloc[1:]] == [33, 33]
        # The decision on top: counts and a verdict per candidate with its evidence.
        metrics = {m.label: m.value for m in admin.metric}
        assert metrics["Human ratings"] == "24" and metrics["Raters"] == "2"
        assert metrics["Prompts rated"] == f"{PROMPTS} of {PROMPTS}"
        every = next(t.value.reset_index() for t in admin.table if "verdict" in t.value)
        # The verdict that decides, then every other kind of evidence with data beside it.
        verdicts = every[every["decides"] == "yes"]
        others = every[every["decides"] != "yes"]
        assert sorted(verdicts["candidate"]) == sorted(TARGETS[1:])
        assert len(others) and "human win rate" not in set(others["evidence"])
        assert metrics["Candidates"] == str(len(TARGETS) - 1)
        assert set(verdicts["evidence"]) == {"human win rate"}
        # 4 better, 8 worse over 6 prompts: the anytime-valid bounds still straddle the margin.
        assert set(verdicts["verdict"]) == {"undecided"}
        assert (verdicts["n"] == 12).all() and (verdicts["prompts"] == PROMPTS).all()
        assert (verdicts["margin"] == 0.45).all()
        assert ((verdicts["lower bound"] < 0.45) & (verdicts["upper bound"] > 0.45)).all()
        assert "over the first ratings of 6 prompts (12 ratings)" in text
        # Every prompt has its first rating: no further rating can decide (issue 35: the card
        # said "keep rating" beside "Prompts rated 6 of 6"); what would decide is said instead.
        assert "keep rating" not in text
        assert "undecided, and ratings cannot change this decision: every one of the 6 " \
            "prompts has its counted rating" in text
        assert "To decide: add about " in text
        assert "or decide on judge win rate (spec.decision.evidence: judgeWinRate)" in text
        assert f"Judge bias (SelfJudging): the judge is the reference target {TARGETS[0]}" \
            in text
        # Per criterion: on clarity the candidates lead, whatever the overall ranking says.
        by = next(t.value.reset_index() for t in admin.table
                  if "clarity Elo [95% CI]" in t.value.reset_index())
        elo = {r["target"]: float(r["clarity Elo [95% CI]"].split()[0]) for _, r in by.iterrows()}
        assert all(elo[c] > elo[f"{TARGETS[0]} (reference)"] for c in TARGETS[1:])
        # The anytime-valid bounds after each rated prompt, per candidate, beside the forest.
        charts = [json.loads(c.proto.spec) for c in admin.get("plotly_chart")]
        bounds = next(c for c in charts if c["layout"]["xaxis"]["title"]["text"]
                      == "prompts counted (one rating each)")
        assert {t["name"] for t in bounds["data"]} == {
            f"{c}, {b}" for c in TARGETS[1:] for b in ("lower", "upper")}

        def points(xs) -> list:  # plotly sends arrays as base64 typed arrays
            if isinstance(xs, dict):
                return list(np.frombuffer(base64.b64decode(xs["bdata"]), dtype=xs["dtype"]))
            return list(xs)
        assert [points(t["x"]) for t in bounds["data"]] == [list(range(1, PROMPTS + 1))] * 4
        # The plan, in its expander: two candidates split alpha (Holm's first step).
        need = decision.prompts_needed(decision.Margin(0.45, 0.5, 0.5), decision.HUMAN,
                                       alpha=0.025, power=0.8)
        assert f"{need} prompts, each rated once per candidate" in text
    if page == "agreement":
        assert [m.value for m in admin.metric][:2] == ["1.00", "100%"]  # judge agrees with all
        assert "Krippendorff" in " ".join(m.label for m in admin.metric)
    if page == "drilldown":
        assert TARGETS[1] in text  # admins do see who wrote what
    if page == "latency":  # the numbers beside the box plot, as `slam report` has them
        table = next(t.value for t in admin.dataframe if "p95 ms" in t.value)
        assert list(table["target"]) == list(TARGETS)
        assert (table["requests"] == PROMPTS).all() and (table["p50 ms"] == 100.0).all()


def test_a_long_reason_shows_its_start_and_the_whole_text_on_demand(seeded) -> None:
    url, run = seeded
    store = Store.open(url)
    item = rating.items(store.responses(run))[0]
    long = "The second answer is kinder. " * 200  # ~5,800 characters
    store.save_rating(rating.rating_row("ana", run, "k", rating.Assignment(
        1, item, item.first, item.second), "B", reason=long))
    admin = signed_in(ADMIN_TOKEN)
    admin.switch_page("pages/leaderboard.py").run()
    shown = next(t.value.reset_index() for t in admin.table if "reason" in t.value)
    cell = shown["reason"].iloc[0]
    assert cell.endswith(" …") and len(cell) <= 282 and long.startswith(cell[:-2])
    whole = next(e for e in admin.expander if "longer than 280 characters" in e.label)
    assert long.strip() in [t.value.strip() for t in whole.text]


def test_empty_store_explains_what_will_appear(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("SLAM_STORE_URL", f"sqlite:///{tmp_path / 'empty.db'}")
    monkeypatch.setenv("SLAM_ADMIN_TOKENS", f"boss={ADMIN_TOKEN}")
    at = signed_in(ADMIN_TOKEN)
    assert "Nothing to rate yet" in at.info[0].value
    at.switch_page("pages/leaderboard.py").run()
    assert "No evaluation has run yet" in at.info[0].value


def test_an_evaluation_without_human_rating_is_on_the_owner_pages_not_the_rating_page(
        seeded) -> None:
    """humanRating.enabled: false turns rating off, not the evaluation's results."""
    from tests.dashboard.conftest import seed
    url, _ = seeded
    seed(url, evaluation="judge-only", human_rating={"enabled": False})
    at = signed_in(ADMIN_TOKEN)
    assert at.selectbox[0].options == ["pep-talk (run 1)"]  # nothing to rate in judge-only
    for page in ("leaderboard", "latency", "cost", "drilldown", "agreement"):
        at.switch_page(f"pages/{page}.py").run()
        assert not at.exception, at.exception
        assert "judge-only (run 1)" in at.selectbox[0].options, page
        at.selectbox[0].select("judge-only (run 1)").run()
        assert not at.exception and not at.error, page


def test_answers_by_prompt_shows_one_column_per_target_and_failures_as_failures(seeded) -> None:
    """A prompt where one target failed once: the others' answers are shown as answers (a
    frame once turned them into "(failed: nan)"), samples are numbered, the failure says so."""
    from datetime import UTC, datetime

    from slam.generate import RequestRecord
    url, run = seeded
    Store.open(url).save(run, [
        RequestRecord(target=TARGETS[1], prompt_id="p0", sample=1, started_at=datetime.now(UTC),
                      attempts=3, error_class="timeout", error_message="read timed out"),
    ])
    at = signed_in(ADMIN_TOKEN)
    at.switch_page("pages/drilldown.py").run()
    assert not at.exception, at.exception
    text = page_text(at)
    assert "nan" not in text
    assert [m.value for m in at.markdown if m.value.startswith("**")] == [
        f"**{TARGETS[0]}** (reference)", f"**{TARGETS[1]}**", f"**{TARGETS[2]}**"]
    assert [t.value for t in at.text[1:]] == [answer(t, 0) for t in TARGETS]
    assert [c.value for c in at.caption if c.value.startswith("Sample")] == ["Sample 1",
                                                                              "Sample 2"]
    assert [e.value for e in at.error] == ["Failed: timeout"]


def test_the_cost_page_rounds_with_units_and_explains_the_break_even(tmp_path,
                                                                      monkeypatch) -> None:
    """An API reference and a self-hosted candidate: dollars with their sign, quality rounded
    to its unit, the break-even as a traffic, and for the unpriced one a warning saying why."""
    from tests.dashboard.conftest import ADMIN_TOKENS, seed
    url = f"sqlite:///{tmp_path / 'priced.db'}"
    run = seed(url, priced=True)
    rate_some(url, run)
    monkeypatch.setenv("SLAM_STORE_URL", url)
    monkeypatch.setenv("SLAM_ADMIN_TOKENS", ADMIN_TOKENS)
    monkeypatch.delenv("AWS_ACCESS_KEY_ID", raising=False)
    at = signed_in(ADMIN_TOKEN)
    at.switch_page("pages/cost.py").run()
    assert not at.exception, at.exception
    table = at.table[0].value
    assert list(table.index) == [TARGETS[0], TARGETS[1]]
    assert table.loc[TARGETS[0], "break-even"] == "the reference"
    assert re.fullmatch(r"cheaper above [\d,]+ requests/day", table.loc[TARGETS[1], "break-even"])
    assert re.fullmatch(r"\d+ \(human Elo\)", table.loc[TARGETS[1], "quality"])
    assert any(TARGETS[2] in w.value for w in at.warning)  # no price: said, not shown as None
    captions = " ".join(c.value for c in at.caption)
    assert "crosses an API line is the break-even" in captions


def test_a_batch_is_kept_in_the_store_and_resumed_where_the_rater_was(seeded) -> None:
    """A new tab, a refresh or another replica: the same pairs, at the first one not rated;
    a second tab asking for the same next batch gets the one the first tab made."""
    url, run_pk = seeded
    run = next(r for r in data.runs(url) if r.run_pk == run_pk)
    first = data.current_batch(url, run, "ana")
    assert (first.number, first.index, first.saved) == (1, 0, 0)
    assert any(a.is_control for a in first.assignments)
    for a, choice in zip(first.assignments[:3], ("A", "B", "Both bad"), strict=True):
        data.submit(url, run, "ana", a, choice)
    again = data.current_batch(url, run, "ana")
    assert again.assignments == first.assignments  # not rebuilt from the newer ratings
    assert (again.number, again.index, again.saved) == (1, 3, 3)
    assert data.current_batch(url, run, "bo").assignments != first.assignments  # bo's own
    for a in first.assignments[3:]:
        data.submit(url, run, "ana", a, "A")
    done = data.current_batch(url, run, "ana")
    assert done.index == len(done.assignments) == done.saved
    second = data.next_batch(url, run, "ana", 2)
    other_tab = data.next_batch(url, run, "ana", 2)
    assert other_tab.assignments == second.assignments and other_tab.number == 2


def test_a_roster_name_nobody_signs_in_as_is_named_on_the_leaderboard(tmp_path,
                                                                      monkeypatch) -> None:
    """spec.humanRating.raters with a typo ("anna"): her assigned prompts would wait forever;
    the owner is told who, and the two ways out."""
    from tests.dashboard.conftest import ADMIN_TOKENS, RATER_TOKENS, seed
    url = f"sqlite:///{tmp_path / 'roster.db'}"
    seed(url, human_rating={"raters": ["anna", "bo"]})
    monkeypatch.setenv("SLAM_STORE_URL", url)
    monkeypatch.setenv("SLAM_RATER_TOKENS", RATER_TOKENS)
    monkeypatch.setenv("SLAM_ADMIN_TOKENS", ADMIN_TOKENS)
    at = signed_in(ADMIN_TOKEN)
    at.switch_page("pages/leaderboard.py").run()
    said = [w.value for w in at.warning if "spec.humanRating.raters" in w.value]
    assert said and said[0].startswith("spec.humanRating.raters lists anna, who has no invite "
                                       "token on this dashboard")
    assert "bo" not in said[0].split("who")[0]
