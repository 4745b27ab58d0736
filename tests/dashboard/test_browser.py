"""The dashboard in a real browser: Debian's Chromium driven by Playwright against `streamlit run`.

A rater signs in and completes five ratings; every page's HTML is checked for target names; the
stored winners are mapped back through the side randomisation; a rater cannot reach the
stakeholder pages. Screenshots go to artifacts/screenshots/.
"""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from slam.store import Store
from slam_dashboard import rating
from tests.controlplane.cluster import REPO, free_port
from tests.dashboard.conftest import (
    ADMIN_TOKEN,
    ADMIN_TOKENS,
    BO_TOKEN,
    HOSTS,
    MODELS,
    PROMPTS,
    RATER_TOKEN,
    RATER_TOKENS,
    TARGETS,
    seed,
)
from tests.servers import spawn, stop, wait_http

CHROMIUM = "/usr/bin/chromium"
SHOTS = REPO / "artifacts" / "screenshots"
# Debian's Chromium, installed by `make system-deps` (part of `make test`); never downloaded.


@contextlib.contextmanager
def streamlit(tmp_path: Path, env: dict[str, str] | None = None, store_url: str | None = None,
              **seeding) -> Iterator[tuple[str, str, int]]:
    """`streamlit run` of the dashboard on a seeded store (or on `store_url`, as it is):
    (base URL, store URL, run)."""
    url = store_url or f"sqlite:///{tmp_path / 'results.db'}"
    run = seed(url, **seeding) if store_url is None else 0
    port = free_port()
    log = tmp_path / "streamlit.log"
    proc = spawn([sys.executable, "-m", "streamlit", "run",
                  str(REPO / "dashboard" / "slam_dashboard" / "app.py"),
                  "--server.port", str(port), "--server.address", "127.0.0.1",
                  "--server.headless", "true", "--browser.gatherUsageStats", "false",
                  "--client.toolbarMode", "viewer"],
                 log, marker=tmp_path,
                 env={"SLAM_STORE_URL": url, "SLAM_RATER_TOKENS": RATER_TOKENS,
                      "SLAM_ADMIN_TOKENS": ADMIN_TOKENS, **(env or {})})
    try:
        wait_http(f"http://127.0.0.1:{port}/_stcore/health", proc, log, timeout=60)
        yield f"http://127.0.0.1:{port}", url, run
    finally:
        stop(proc)


@pytest.fixture
def dashboard(tmp_path: Path) -> Iterator[tuple[str, str, int]]:
    with streamlit(tmp_path) as running:
        yield running


@contextlib.contextmanager
def chromium():
    """Debian's Chromium, headless, driven by Playwright (never a downloaded browser)."""
    from playwright.sync_api import sync_playwright
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking",
            "--disable-component-update", "--disable-sync", "--no-first-run"])
        try:
            yield b
        finally:
            b.close()


@pytest.fixture
def browser():
    with chromium() as b:
        yield b


def sign_in(page, base: str, token: str) -> None:
    page.goto(base)
    sign_in_here(page, token)


def sign_in_here(page, token: str) -> None:
    page.get_by_label("Invite token").wait_for()
    wait_idle(page)
    page.get_by_label("Invite token").fill(token)
    page.get_by_role("button", name="Sign in").click()


def wait_idle(page) -> None:
    """Until Streamlit's script run has finished and no element of the previous run is left
    (a click on a stale widget is lost when the new run replaces it)."""
    page.locator('[data-testid="stApp"][data-test-script-state="notRunning"]').wait_for()
    page.wait_for_function("!document.querySelector('[data-stale=\"true\"]')")


SECRET_WORDS = (*TARGETS, *MODELS, *HOSTS)


def assert_blind(html: str) -> None:
    for word in SECRET_WORDS:
        assert word not in html, f"{word} leaked into the page"


def choose(page, which: str) -> None:
    """Click one of the four choice buttons ("A", "B", "About the same", "Both bad")."""
    page.get_by_role("button", name=re.compile(f"^{re.escape(which)}")).click()


def at_pair(page, n: int, batch: int = 1) -> None:
    page.get_by_text(f"Batch {batch}: pair {n} of").wait_for()
    wait_idle(page)


def test_rater_completes_five_blind_ratings(dashboard, browser) -> None:
    base, url, run = dashboard
    SHOTS.mkdir(parents=True, exist_ok=True)
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    sign_in(page, base, RATER_TOKEN)
    page.get_by_text("Which answer is better?").wait_for()
    shown_a = []
    for n in range(1, 6):
        at_pair(page, n)
        html = page.content()
        assert_blind(html)
        assert_blind(page.url)
        a_text = re.search(r"Answer number (\d) to question (\d)", page.inner_text("body"))
        shown_a.append((int(a_text.group(1)), f"p{a_text.group(2)}"))
        if n == 1:
            page.screenshot(path=str(SHOTS / "rating-page.png"), full_page=True)
        choose(page, "A is better")
    at_pair(page, 6)
    assert_blind(page.content())
    rows = Store.open(url).ratings(run)
    assert len(rows) == 5 and all(r["choice"] == "left" for r in rows)
    # Each stored winner is the target whose answer was shown as A.
    winners = {(r["prompt_id"], rating.winner(r)) for r in rows}
    assert winners == {(prompt, TARGETS[k - 1]) for k, prompt in shown_a}
    # A rater token has no way to the stakeholder pages: not in the menu, and their URLs lead
    # to the sign-in page and, with the rater's token, back to rating.
    assert page.get_by_role("link", name="Leaderboard").count() == 0
    for path in ("leaderboard", "cost", "drilldown"):
        page.goto(f"{base}/{path}")
        page.get_by_text("Page not found").wait_for()
        page.keyboard.press("Escape")
        sign_in_here(page, RATER_TOKEN)
        page.get_by_text("Which answer is better?").wait_for()
        body = page.inner_text("body")
        assert "Recommendation." not in body and "Leaderboard" not in body
        assert_blind(page.content())


def test_a_token_is_one_person_and_wrong_tokens_are_throttled(dashboard, browser) -> None:
    """Nobody types a name: bo's token rates as bo, whatever the page is given. Twenty wrong
    tokens in a row from one address: the first five are told the token is wrong, the rest
    (and then even a right token) must wait."""
    base, url, run = dashboard
    page = browser.new_page()
    page.goto(base)
    page.get_by_label("Invite token").wait_for()
    assert page.get_by_label("Your name").count() == 0
    sign_in_here(page, BO_TOKEN)
    page.get_by_text("Which answer is better?").wait_for()
    page.get_by_text("Signed in as bo (rater)").wait_for()
    wait_idle(page)
    choose(page, "B is better")
    at_pair(page, 2)
    assert [r["rater"] for r in Store.open(url).ratings(run)] == ["bo"]

    other = browser.new_page()  # a new session from the same address
    other.goto(base)
    said = []
    for attempt in range(1, 22):
        sign_in_here(other, f"guess-{attempt}" if attempt <= 20 else RATER_TOKEN)
        alert = other.get_by_text(f"Sign-in attempt {attempt}:")
        alert.wait_for()
        said.append(alert.inner_text())
    assert all("not valid" in m for m in said[:5]), said[:6]
    assert all("too many wrong invite tokens from your address; try again in" in m
               for m in said[5:]), said[5:]
    assert "Which answer is better?" not in other.inner_text("body")  # the right token waited


def test_admin_sees_the_leaderboard(dashboard, browser) -> None:
    """The decision on top (recommendation, counts, a verdict per candidate), the rankings
    with ranks and percentages, the chart of their intervals; a rater's reason holding a script
    and a Markdown image shows as text and fetches nothing; exports carry the run's name."""
    import json

    from tests.dashboard.test_app import rate_some
    base, url, run = dashboard
    rate_some(url, run)
    store = Store.open(url)
    item = rating.items(store.responses(run))[0]
    hostile = "<script>window.pwned = 1</script> ![pic](http://127.0.0.1:9/pic.png) **bold**"
    store.save_rating(rating.rating_row("cy", run, "k", rating.Assignment(1, item, item.first,
                                                                          item.second),
                                        "A", reason=hostile))
    SHOTS.mkdir(parents=True, exist_ok=True)
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    fetched: list[str] = []
    page.on("request", lambda r: fetched.append(r.url))
    sign_in(page, base, ADMIN_TOKEN)
    page.get_by_text("Which answer is better?").wait_for()
    page.get_by_role("link", name="Leaderboard").click()
    page.get_by_text("No recommendation yet").wait_for()
    page.get_by_text("Ranked by human Elo.").wait_for()
    page.locator('[data-testid="stPlotlyChart"]').first.wait_for()
    wait_idle(page)
    body = page.inner_text("body")
    assert f"{TARGETS[0]} (reference)" in body and "human Elo [95% CI]" in body
    squeezed = re.sub(r"\s+", " ", body)
    assert "Human ratings 25" in squeezed and "Raters 3" in squeezed, squeezed[:2000]
    assert "undecided" in body and "33%" in body
    assert f"Judge bias (SelfJudging): the judge is the reference target {TARGETS[0]}" in body
    assert "a tie counting as half a win" in body
    page.get_by_text(hostile).wait_for()  # the reason as typed: text, not markup
    assert page.evaluate("window.pwned") is None
    assert not [u for u in fetched if "127.0.0.1:9/" in u], fetched
    page.screenshot(path=str(SHOTS / "leaderboard.png"), full_page=True)
    with page.expect_download() as download:
        page.get_by_role("button", name="Download the ratings (JSON)").click()
    assert download.value.suggested_filename == "pep-talk-run-1-ratings.json"
    rows = json.loads(Path(download.value.path()).read_text())
    assert len(rows) == 25 and {r["reason"] for r in rows} == {None, hostile}
    assert {r["winner"] for r in rows if r["rater"] == "cy"} == {item.first}


KEYS = {"1": "left", "2": "right", "3": "tie", "4": "both_bad"}


def batch_size(page) -> int:
    text = page.get_by_text(re.compile(r"Batch \d+: pair \d+ of \d+")).inner_text()
    return int(text.rsplit(" ", 1)[1])


def test_a_rater_goes_on_after_a_refresh_or_back_batch_after_batch_with_the_keyboard(
        dashboard, browser) -> None:
    """Keys 1-4 choose and submit, Enter starts the next batch; a refresh keeps the rater
    signed in and resumes the same batch at the same pair (its control pairs included), and
    so does Back from another page; a batch asks each prompt once."""
    base, url, run = dashboard
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    sign_in(page, base, RATER_TOKEN)
    at_pair(page, 1)
    total = batch_size(page)
    pressed = ["1"]
    page.keyboard.press("1")
    at_pair(page, 2)
    question = page.get_by_text(re.compile(r"^Write a pep talk number \d+$")).inner_text()
    page.reload()  # mid-batch
    page.get_by_text("Signed in as ana (rater)").wait_for()
    page.get_by_text("You: 1 rated in this evaluation").wait_for()
    assert page.get_by_label("Invite token").count() == 0
    at_pair(page, 2)  # where she was, in the same batch
    assert batch_size(page) == total
    assert page.get_by_text(question, exact=True).count() == 1
    # Away (say, a link in an answer) and Back: still ana, still where she was.
    page.goto(f"{base}/_stcore/health")
    page.go_back()
    page.get_by_text("Signed in as ana (rater)").wait_for()
    page.get_by_text("You: 1 rated in this evaluation").wait_for()
    at_pair(page, 2)
    # Digits typed into the reason box are text, not choices.
    page.get_by_role("textbox", name=re.compile(r"^Why\?")).fill("answer 1 is warmer, 2 is stiff")
    wait_idle(page)
    assert len(Store.open(url).ratings(run)) == 1
    page.get_by_role("textbox", name=re.compile(r"^Why\?")).press("Tab")
    for n in range(2, total + 1):
        at_pair(page, n)
        key = "1234"[n % 4]
        pressed.append(key)
        page.keyboard.press(key)
    page.get_by_text("Batch 1 done").wait_for()
    wait_idle(page)
    page.screenshot(path=str(SHOTS / "rating-batch-done.png"), full_page=True)
    page.keyboard.press("Enter")
    at_pair(page, 1, batch=2)
    pressed.append("4")
    page.keyboard.press("4")
    at_pair(page, 2, batch=2)
    rows = Store.open(url).ratings(run)
    assert [r["choice"] for r in rows] == [KEYS[k] for k in pressed]
    assert {r["rater"] for r in rows} == {"ana"}
    assert rows[1]["reason"] == "answer 1 is warmer, 2 is stiff"
    main = [(r["prompt_id"], r["sample"], *sorted((r["left"], r["right"])))
            for r in rows if not r["is_control"]]
    assert len(set(main)) == len(main), "a pair was served again after the refresh"
    # Batch 1, across the refresh: one pair per prompt, then its control pairs.
    first = rows[:total]
    assert len({r["prompt_id"] for r in first if not r["is_control"]}) == PROMPTS
    assert sum(r["is_control"] for r in first) == 2


def test_blindness_holds_in_every_websocket_frame(dashboard, browser) -> None:
    """Not only the HTML: every frame the server sends a rater over the websocket is scanned
    for target names, model names and endpoint hosts."""
    base, url, run = dashboard
    frames: list[bytes] = []
    page = browser.new_page()
    page.on("websocket", lambda ws: ws.on(
        "framereceived", lambda p: frames.append(p if isinstance(p, bytes) else p.encode())))
    sign_in(page, base, RATER_TOKEN)
    for n in range(1, 4):
        at_pair(page, n)
        choose(page, ("A is better", "B is better", "About the same")[n - 1])
    at_pair(page, 4)
    page.reload()
    at_pair(page, 4)  # the same batch, where the rater was
    received = b"".join(frames)
    assert b"Answer number" in received and len(frames) > 10  # the scan sees the page's data
    for word in SECRET_WORDS:
        assert word.encode() not in received, f"{word} was sent to a rater's browser"


def test_answers_show_markdown_and_fetch_or_run_nothing(tmp_path: Path, browser) -> None:
    hostile = (" <script>window.pwned = 1</script> ![pic](http://127.0.0.1:9/pic.png) "
               "**bold** `code`")
    with streamlit(tmp_path, answer_extra=hostile) as (base, _, _):
        page = browser.new_page()
        fetched: list[str] = []
        page.on("request", lambda r: fetched.append(r.url))
        sign_in(page, base, RATER_TOKEN)
        at_pair(page, 1)
        assert page.locator("strong", has_text="bold").count() == 2  # Markdown, both answers
        assert page.locator("code", has_text="code").count() == 2
        body = page.inner_text("body")
        assert body.count("<script>window.pwned = 1</script>") == 2  # shown as text
        assert page.evaluate("window.pwned") is None
        assert page.locator("img[src*='127.0.0.1:9']").count() == 0
        assert not [u for u in fetched if "127.0.0.1:9/" in u], fetched


def test_behind_a_proxy_the_user_header_is_who_rates(tmp_path: Path, browser) -> None:
    """oauth2-proxy's convention: the dashboard takes the user from the header it is told to
    trust, shows no sign-in form, and a user cannot rate as another (not even with the other's
    page address)."""
    env = {"SLAM_AUTH_USER_HEADER": "X-Forwarded-User", "SLAM_ADMIN_USERS": "boss",
           "SLAM_RATER_TOKENS": "", "SLAM_ADMIN_TOKENS": ""}
    with streamlit(tmp_path, env=env) as (base, url, run):
        nobody = browser.new_page()
        nobody.goto(base)
        nobody.get_by_text("No user in the request's X-Forwarded-User header").wait_for()
        assert nobody.get_by_label("Invite token").count() == 0

        def as_user(name: str):
            page = browser.new_context(
                extra_http_headers={"X-Forwarded-User": name}).new_page()
            page.goto(base)
            page.get_by_text(f"Signed in as {name} (").wait_for()
            return page

        alice = as_user("alice")
        at_pair(alice, 1)
        choose(alice, "A is better")
        at_pair(alice, 2)
        assert alice.get_by_label("Invite token").count() == 0
        mallory = as_user("mallory")
        mallory.goto(alice.url)  # alice's address gives mallory nothing of alice's
        mallory.get_by_text("Signed in as mallory (rater)").wait_for()
        at_pair(mallory, 1)
        choose(mallory, "B is better")
        at_pair(mallory, 2)
        boss = as_user("boss")
        boss.get_by_text("Signed in as boss (admin)").wait_for()
        boss.get_by_role("link", name="Leaderboard").wait_for()
        assert [r["rater"] for r in Store.open(url).ratings(run)] == ["alice", "mallory"]


if __name__ == "__main__":  # pragma: no cover - handy for a look at the pages
    os.execvp(sys.executable, [sys.executable, "-m", "pytest", __file__, "-v"])


def test_slam_dashboard_serves_the_store_with_one_time_tokens(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'results.db'}"
    seed(url)
    port = free_port()
    log = tmp_path / "dashboard.log"
    # No tokens configured: the command makes up one-time tokens and prints them.
    proc = spawn([str(Path(sys.executable).parent / "slam"), "dashboard", "--store", url,
                  "--port", str(port)], log, marker=tmp_path,
                 env={"SLAM_ADMIN_TOKENS": "", "SLAM_RATER_TOKENS": ""})
    try:
        wait_http(f"http://127.0.0.1:{port}/_stcore/health", proc, log, timeout=60)
        text = log.read_text()
        assert "admin invite token for 'owner' (this session only):" in text
        assert f"http://127.0.0.1:{port}" in text
    finally:
        stop(proc)


def test_slam_dashboard_refuses_a_token_without_a_name(tmp_path: Path) -> None:
    """A bare token would let its holders rate under any name: refused before serving, the
    variable and entry named, the token itself not printed."""
    out = subprocess.run([str(Path(sys.executable).parent / "slam"), "dashboard", "--store",
                          f"sqlite:///{tmp_path / 'r.db'}", "--port", str(free_port())],
                         env={**os.environ, "SLAM_ADMIN_TOKENS": "boss=t-boss-secret",
                              "SLAM_RATER_TOKENS": "ana=t-ana-secret,t-shared-secret"},
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 2, out.stdout + out.stderr
    assert "SLAM_RATER_TOKENS: entry 2 is not name=token" in out.stderr
    assert "secret" not in out.stdout + out.stderr


def test_replacing_one_raters_token_ends_that_raters_links_only(tmp_path: Path,
                                                                browser) -> None:
    """The owner replaces ana's invite token (the Secret changes, the dashboard restarts):
    ana's link now opens the sign-in page, saying nothing of who she was; bo's link still
    signs bo in. The links carry no invite token."""
    links = {}
    (tmp_path / "before").mkdir()
    (tmp_path / "after").mkdir()
    with streamlit(tmp_path / "before") as (base, _, _):
        for who, token in (("ana", RATER_TOKEN), ("bo", BO_TOKEN)):
            page = browser.new_page()
            sign_in(page, base, token)
            page.get_by_text(f"Signed in as {who} (rater)").wait_for()
            page.wait_for_url(re.compile(r"[?&]s="))
            links[who] = page.url.split("?", 1)[1]
            assert token not in page.url
            page.close()
    replaced = RATER_TOKENS.replace(RATER_TOKEN, "ana-new-invite-000")
    with streamlit(tmp_path / "after", env={"SLAM_RATER_TOKENS": replaced}) as (base, _, _):
        ana, bo = browser.new_page(), browser.new_page()
        bo.goto(f"{base}/?{links['bo']}")
        bo.get_by_text("Signed in as bo (rater)").wait_for()
        bo.get_by_text("Which answer is better?").wait_for()
        ana.goto(f"{base}/?{links['ana']}")
        ana.get_by_label("Invite token").wait_for()
        wait_idle(ana)
        assert "ana" not in ana.inner_text("body")
        sign_in_here(ana, "ana-new-invite-000")
        ana.get_by_text("Signed in as ana (rater)").wait_for()


def seed_finished_prompt_set(url: str) -> int:
    """The shape of `make demo`'s results when issue 35 was found: two targets, 32 prompts,
    the candidate clearly worse on similarity, and every prompt's first rating in at about
    even odds (the human decision cannot be reached on this prompt set)."""
    from datetime import UTC, datetime

    from slam.generate import RequestRecord
    from slam.promptsets import PromptItem, PromptSet
    store = Store.open(url)
    ref, cand, n = "smollm2", "gemma3", 32
    prompts = PromptSet("demo", "demo", tuple(
        PromptItem(f"q{i:02d}", ({"role": "user", "content": f"Question {i}?"},))
        for i in range(n)))
    run = store.begin_run(evaluation="demo", run_id="1", reference=ref, spec={},
                          targets=[{"name": t, "kind": "external", "model": t,
                                    "base_url": "http://127.0.0.1:9/v1",
                                    "is_reference": t == ref, "concurrency": 1, "details": {}}
                                   for t in (ref, cand)],
                          prompts=prompts, total=2 * n)
    store.save(run, [RequestRecord(target=t, prompt_id=f"q{i:02d}", sample=0,
                                   started_at=datetime.now(UTC), attempts=1, ttft_ms=10.0,
                                   e2e_ms=100.0, prompt_tokens=5, completion_tokens=5,
                                   text=f"{t} says {i}") for t in (ref, cand) for i in range(n)])
    store.save_scores([{"response_id": r["id"], "scorer": "similarity",
                        "score": 0.8 + 0.02 * ((int(r["prompt_id"][1:]) * 3) % 4)
                        if r["target"] == ref else
                        0.35 + 0.03 * ((int(r["prompt_id"][1:]) * 7) % 5),
                        "passed": None, "reason": None, "raw": None}
                       for r in store.responses(run)])
    for i in range(n):
        item = rating.Item(f"q{i:02d}", 0, *sorted((ref, cand)))
        a = rating.Assignment(1, item, cand, ref)  # the candidate on the left
        store.save_rating(rating.rating_row("ana", run, "demo/1", a, "A" if i % 2 else "B"))
    return run


def test_a_finished_prompt_set_says_ratings_cannot_change_the_decision(tmp_path: Path,
                                                                       browser) -> None:
    """Every prompt has its counted rating and the human decision is still open: the owner
    sees that no rating can change it and what would, beside the similarity verdict that is
    decided; raters are served nothing more."""
    url = f"sqlite:///{tmp_path / 'demo.db'}"
    run = seed_finished_prompt_set(url)
    with streamlit(tmp_path, store_url=url) as (base, _, _):
        page = browser.new_page(viewport={"width": 1280, "height": 1000})
        sign_in(page, base, ADMIN_TOKEN)
        page.get_by_text("Which answer is better?").wait_for()
        page.get_by_text("This evaluation needs no more ratings from you").wait_for()
        page.get_by_role("link", name="Leaderboard").click()
        page.get_by_text("ratings cannot change this decision").first.wait_for()
        wait_idle(page)
        body = re.sub(r"\s+", " ", page.inner_text("body"))
        assert "Prompts rated 32 of 32" in body
        assert ("gemma3: undecided, and ratings cannot change this decision: every one of the "
                "32 prompts has its counted rating") in body
        assert "or decide on similarity difference (spec.decision.evidence: similarity)" in body
        assert "keep rating" not in body
        page.get_by_text("similarity difference").first.wait_for()
        rows = [re.sub(r"\s+", " ", r) for r in
                page.locator('[data-testid="stTable"]').first.locator("tr").all_inner_texts()]
        assert any("undecided" in r and "human win rate" in r for r in rows), rows
        assert any("inferior" in r and "similarity difference" in r
                   and "undecided" not in r for r in rows), rows
        page.screenshot(path=str(SHOTS / "leaderboard-finished-prompt-set.png"), full_page=True)
        rater = browser.new_page()
        sign_in(rater, base, BO_TOKEN)
        rater.get_by_text("This evaluation needs no more ratings from you").wait_for()
        assert Store.open(url).ratings(run) and len(Store.open(url).ratings(run)) == 32


def cost_page(browser, base: str, heading: str, height: int):
    """The cost page as the owner sees it, once `heading` and its first chart are drawn."""
    page = browser.new_page(viewport={"width": 1280, "height": height})
    sign_in(page, base, ADMIN_TOKEN)
    page.get_by_text("Which answer is better?").wait_for()
    page.get_by_role("link", name="Cost").click()
    page.get_by_text(heading).wait_for()
    page.locator('[data-testid="stPlotlyChart"]').first.wait_for()
    wait_idle(page)
    return page


def test_the_cost_page_explains_the_one_instance_floor_with_readable_axes(tmp_path: Path,
                                                                           browser) -> None:
    """Two self-hosted models on the same CPU instance, one twice as fast (issue 35: $/1k
    differed but both cost the same a month, and the page said "the cheaper one stays
    cheaper"): the page says why the month costs the same, how busy each instance is, and
    labels the monthly chart's axes in dollars and requests/day."""
    from datetime import UTC, datetime, timedelta

    from slam.generate import RequestRecord
    from slam.promptsets import PromptItem, PromptSet
    url = f"sqlite:///{tmp_path / 'cost.db'}"
    store = Store.open(url)
    n, start = 20, datetime(2026, 12, 1, tzinfo=UTC)
    prompts = PromptSet("p", "p", tuple(PromptItem(f"q{i}", ({"role": "user", "content": "?"},))
                                        for i in range(n)))
    run = store.begin_run(evaluation="demo", run_id="1", reference="smollm2", spec={},
                          targets=[{"name": t, "kind": "model_deployment", "model": t,
                                    "base_url": "http://127.0.0.1:9/v1",
                                    "is_reference": t == "smollm2", "concurrency": 1,
                                    "details": {"instanceType": "c7i.xlarge"}}
                                   for t in ("smollm2", "gemma3")],
                          prompts=prompts, total=2 * n)
    store.save(run, [RequestRecord(target=t, prompt_id=f"q{i}", sample=0,
                                   started_at=start + timedelta(seconds=i * step),
                                   attempts=1, ttft_ms=50.0, e2e_ms=1000.0 * step,
                                   prompt_tokens=20, completion_tokens=40, text="ok")
                     for t, step in (("smollm2", 1.0), ("gemma3", 2.0)) for i in range(n)])
    with streamlit(tmp_path, store_url=url) as (base, _, _):
        page = cost_page(browser, base, "A month at 10,000 requests/day", 1400)
        body = re.sub(r"\s+", " ", page.inner_text("body"))
        month = "$130.31"  # c7i.xlarge at $0.1785/h, 730 h
        for target in ("smollm2", "gemma3"):
            assert (f"{target}: at 10,000 requests/day its 1 instance is ") in body, body
        assert f"and {month} a month is the floor: the same up to" in body
        assert "holds only when kept busy; at this traffic 1,000 requests cost $0.4284" in body
        assert "the cheaper one stays cheaper" not in body
        assert "the cheaper per 1,000 requests kept busy is not the cheaper a month" in body
        # The chart's axes: dollars and traffic, with a labelled tick where the lines sit.
        ticks = page.locator('[data-testid="stPlotlyChart"] .ytick text').all_text_contents()
        assert "$130" in ticks, ticks
        assert all(t.startswith("$") for t in ticks), ticks
        xticks = page.locator('[data-testid="stPlotlyChart"] .xtick text').all_text_contents()
        assert "10,000" in xticks and "1,000,000" in xticks, xticks
        assert page.get_by_text("$ per month").count() and page.get_by_text(
            "requests per day").count()
        page.screenshot(path=str(SHOTS / "cost.png"), full_page=True)


def test_two_tabs_of_one_rater_with_swapped_sides_are_judged_by_the_answer(dashboard,
                                                                            browser) -> None:
    """ana's first tab shows pairs 1 and 2 one way round, her second tab the other way round
    (its batch stored with the sides drawn differently, as a batch drawn from newer ratings
    would be). The same answer chosen in both tabs is stored once and nothing is said; a
    different answer is refused in the letters of the tab that gave it."""
    from sqlalchemy import update

    from slam.store.schema import RatingBatch
    base, url, run = dashboard
    first = browser.new_page()
    sign_in(first, base, RATER_TOKEN)
    at_pair(first, 1)
    store = Store.open(url)
    number, rows = store.rating_batch(run, "ana")
    swapped = [{**r, "left": r["right"], "right": r["left"]} if r["position"] in (1, 2) else r
               for r in rows]
    with store.engine.begin() as conn:
        conn.execute(update(RatingBatch).where(RatingBatch.run_pk == run,
                                               RatingBatch.rater == "ana")
                     .values(assignments=swapped))
    second = browser.new_page()
    sign_in(second, base, RATER_TOKEN)
    at_pair(second, 1)

    def answers(page) -> tuple[str, str]:
        texts = page.locator('[data-testid="stHtml"]').all_inner_texts()
        return texts[0].strip(), texts[1].strip()

    a1, b1 = answers(first)
    assert answers(second) == (b1, a1)  # the same pair, the other way round
    choose(first, "A is better")
    at_pair(first, 2)
    choose(second, "B is better")  # the same answer, on its other side
    at_pair(second, 2)
    assert second.get_by_text("already answered").count() == 0
    (row,) = Store.open(url).ratings(run)
    assert rating.outcome(row) == rows[0]["left"]  # the answer shown as A in the first tab

    choose(first, "A is better")
    at_pair(first, 3)
    choose(second, "A is better")  # the other answer this time
    at_pair(second, 3)
    second.get_by_text("Pair 2: you had already answered this pair in another tab or window, "
                       "choosing what this page shows as \"B\". That first answer stands; "
                       "\"A\" was not saved.").wait_for()
    stored = Store.open(url).ratings(run)
    assert len(stored) == 2 and rating.outcome(stored[1]) == rows[1]["left"]


def test_the_latency_page_shows_a_scaled_up_models_cold_start_part_by_part(
        tmp_path: Path, browser) -> None:
    """A ModelDeployment the run scaled up from zero (issue 29): the latency page splits its
    cold start into the steps the operator timed and the run's first token, with the total."""
    from datetime import UTC, datetime, timedelta

    from slam.generate import RequestRecord
    from slam.promptsets import PromptItem, PromptSet
    url = f"sqlite:///{tmp_path / 'cold.db'}"
    store = Store.open(url)
    startup = {"pod": "smollm2-5c7d-x2x9q", "requestedAt": "2026-12-01T00:00:00Z",
               "created": "2026-12-01T00:00:01Z", "scheduled": "2026-12-01T00:00:03Z",
               "started": "2026-12-01T00:00:41Z", "ready": "2026-12-01T00:01:31Z"}
    prompts = PromptSet("p", "p", (PromptItem("q0", ({"role": "user", "content": "?"},)),))
    run = store.begin_run(
        evaluation="demo", run_id="1", reference="api", spec={},
        targets=[{"name": "api", "kind": "external", "model": "gpt-4",
                  "base_url": "http://127.0.0.1:9/v1", "is_reference": True, "concurrency": 1,
                  "details": {}},
                 {"name": "smollm2", "kind": "model_deployment", "model": "smollm2",
                  "base_url": "http://127.0.0.1:9/v1", "is_reference": False,
                  "concurrency": 1, "details": {"instanceType": "c7i.xlarge",
                                                "startup": startup}}],
        prompts=prompts, total=2)
    first = datetime(2026, 12, 1, 0, 1, 40, tzinfo=UTC)  # 9 s after Ready, + 0.5 s to a token
    store.save(run, [RequestRecord(target=t, prompt_id="q0", sample=0, started_at=first,
                                   attempts=1, ttft_ms=500.0, e2e_ms=900.0, prompt_tokens=5,
                                   completion_tokens=5, text="ok") for t in ("api", "smollm2")])
    with streamlit(tmp_path, store_url=url) as (base, _, _):
        page = browser.new_page(viewport={"width": 1280, "height": 1600})
        sign_in(page, base, ADMIN_TOKEN)
        page.get_by_text("Which answer is better?").wait_for()
        page.get_by_role("link", name="Latency").click()
        page.get_by_text("Cold start", exact=True).wait_for()
        wait_idle(page)
        table = page.locator('[data-testid="stDataFrame"]').nth(1)
        table.wait_for()
        body = re.sub(r"\s+", " ", page.inner_text("body"))
        assert "From the scale-up that asked for the server pod to the run's first token" in body
        # The bars: one per part, the parts as the legend (Plotly draws after the page idles).
        page.locator('[data-testid="stPlotlyChart"] .legendtext').filter(
            has_text="Ready → first token").wait_for()
        legend = page.locator('[data-testid="stPlotlyChart"] .legendtext').all_text_contents()
        assert "scheduled → container running (image, container)" in legend, legend
        assert "Ready → first token (the run's first answer)" in legend, legend
        page.screenshot(path=str(SHOTS / "cold-start.png"), full_page=True)
    # The same figures as the page's table and the report: 1 + 2 + 38 + 50 + 9.5 s.
    from slam_dashboard import data
    frame = data.cold_starts(url, run)
    assert frame.loc[frame["part"] == "total: scale-up → first token", "seconds"].item() == \
        timedelta(seconds=100.5).total_seconds()


def test_the_cost_page_shows_the_cost_at_the_slo_on_the_teams_traffic(tmp_path: Path,
                                                                      browser) -> None:
    """Issue 29: an SLO, a capacity search, a day of traffic and a measured cold start. The
    owner sees each target's goodput, the month always-on and with scale-to-zero (cold starts
    counted as SLO misses), the break-even against the API, the replicas hour by hour, and what
    the run itself cost."""
    from datetime import UTC, datetime, timedelta

    from slam import goodput
    from slam.generate import RequestRecord
    from slam.promptsets import PromptItem, PromptSet
    url = f"sqlite:///{tmp_path / 'slo.db'}"
    store = Store.open(url)
    start = datetime(2026, 12, 1, 8, 0, 30, tzinfo=UTC)
    startup = {"pod": "small-0", "requestedAt": "2026-12-01T07:59:55Z",
               "created": "2026-12-01T07:59:56Z", "scheduled": "2026-12-01T07:59:57Z",
               "started": "2026-12-01T08:00:05Z", "ready": "2026-12-01T08:00:25Z"}
    hourly = [0] * 8 + [7200] * 10 + [0] * 6  # 2 requests/s from 8:00 to 18:00
    spec = {"cost": {"slo": {"ttftMs": 800, "e2eMs": 4000},
                     "trafficProfile": {"hourly": hourly}}}
    prompts = PromptSet("p", "p", tuple(PromptItem(f"q{i}", ({"role": "user", "content": "?"},))
                                        for i in range(4)))
    run = store.begin_run(
        evaluation="demo", run_id="1", reference="gpt4", spec=spec,
        targets=[{"name": "gpt4", "kind": "external", "model": "gpt-4-0613",
                  "base_url": "http://127.0.0.1:9/v1", "is_reference": True, "concurrency": 1,
                  "details": {}},
                 {"name": "small", "kind": "modelDeployment", "model": "small",
                  "base_url": "http://127.0.0.1:9/v1", "is_reference": False,
                  "concurrency": 1, "details": {"instanceType": "g5.xlarge", "replicas": 1,
                                                "startup": startup}}],
        prompts=prompts, total=8)
    store.save(run, [RequestRecord(target=t, prompt_id=f"q{i}", sample=0,
                                   started_at=start + timedelta(seconds=i), attempts=1,
                                   ttft_ms=200.0, e2e_ms=900.0, prompt_tokens=500,
                                   completion_tokens=200, text="ok")
                     for t in ("gpt4", "small") for i in range(4)])
    # Meets the SLO up to 2 concurrent requests: 32 conforming in 16 s, 2 requests/s.
    for number, (c, good) in enumerate(((1, 32), (2, 32), (4, 10), (3, 12))):
        store.save_capacity_probe(run, "small", number, goodput.Probe(
            c, 32, 0, 32, good, 16.0, 300.0, 20.0, 1500.0))
    with streamlit(tmp_path, store_url=url) as (base, _, _):
        page = cost_page(browser, base,
                         "At the SLO: TTFT ≤ 800 ms, e2e ≤ 4000 ms for 95% of requests", 1800)
        rows = [re.sub(r"\s+", " ", r) for r in
                page.locator('[data-testid="stTable"]').first.locator("tr").all_inner_texts()]
        small = next(r for r in rows if r.startswith("small"))
        # One g5.xlarge ($1.006/h) meets 2 requests/s: always-on 734.38; scale-to-zero 10
        # replica-hours a day = 10 * 1.006 * 30.4167 = 305.99; one cold start a day of
        # 35.2 s (scale-up at 7:59:55 to the first token at 8:00:30.2): 70.4 requests at 2/s
        # miss the SLO; break-even with GPT-4 ($0.027 a request): 10 * 1.006 / 0.027 = 373/day.
        for figure in ("2", "$734.38", "$305.99", "1", "70.4", "373"):
            assert f" {figure} " in f" {small} ", small
        gpt4 = next(r for r in rows if r.startswith("gpt4"))
        # GPT-4 at $0.027 a request, 72,000 a day: 0.027 * 72,000 * 30.4167 = $59,130.00
        assert "$59,130.00" in gpt4 and "paid per request" in gpt4, gpt4
        body = re.sub(r"\s+", " ", page.inner_text("body"))
        assert "Traffic: spec.cost.trafficProfile.hourly" in body
        assert "What this run cost: $" in body
        page.locator('[data-testid="stPlotlyChart"] .legendtext').filter(
            has_text="small").first.wait_for()
        xtitle = page.locator('[data-testid="stPlotlyChart"] .xtitle').first.text_content()
        assert xtitle == "hour of the day"
        page.screenshot(path=str(SHOTS / "cost-at-slo.png"), full_page=True)
