"""30 raters submitting at once, each twice (a double click): every rating stored exactly once."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from slam.store import Store
from slam_dashboard import data, rating
from tests.dashboard.conftest import seed

RATERS, PER_RATER = 30, 6


def test_thirty_concurrent_raters(store_url: str) -> None:
    run_pk = seed(store_url)
    run = data.RunChoice(run_pk, "pep-talk (run 1)", "/pep-talk/1", (), False, 0)
    store = Store.open(store_url)
    items = rating.items(store.responses(run_pk))
    sessions = {f"rater-{i}": rating.session(f"rater-{i}", run.run_key, items, [],
                                             size=PER_RATER, control_pairs=0)
                for i in range(RATERS)}

    def rate(rater: str) -> int:
        saved = 0
        for a in sessions[rater]:
            for _ in range(2):  # the same submission twice
                saved += data.submit(store_url, run, rater, a, "A", reason="clear").saved
        return saved

    with ThreadPoolExecutor(max_workers=RATERS) as pool:
        saved = sum(pool.map(rate, sessions))
    rows = store.ratings(run_pk)
    assert saved == len(rows) == RATERS * PER_RATER
    assert len({r["submission"] for r in rows}) == len(rows)
    for rater, assignments in sessions.items():
        mine = {(r["prompt_id"], r["left"], r["right"]) for r in rows if r["rater"] == rater}
        assert mine == {(a.item.prompt_id, a.left, a.right) for a in assignments}
