"""Invite tokens name their holder; bad token lists are named; the throttle's schedule."""

from __future__ import annotations

import pytest

from slam_dashboard import auth


def test_a_token_names_its_holder(monkeypatch) -> None:
    monkeypatch.setenv("SLAM_RATER_TOKENS", "ana=t-ana, bo=t-bo")
    monkeypatch.setenv("SLAM_ADMIN_TOKENS", "boss=t-boss")
    monkeypatch.delenv("SLAM_AUTH_USER_HEADER", raising=False)
    assert auth.config_problems() == []
    assert auth.identify("t-bo") == auth.Identity("bo", "rater")
    assert auth.identify(" t-boss ") == auth.Identity("boss", "admin")
    assert auth.identify("t-b") is None and auth.identify("") is None
    assert auth.identify("bo=t-bo") is None


@pytest.mark.parametrize(("rater", "admin", "problem"), [
    ("t-shared", "boss=t-boss", "SLAM_RATER_TOKENS: entry 1 is not name=token"),
    ("ana=t-1,=t-2", "boss=t-boss", "SLAM_RATER_TOKENS: entry 2 is not name=token"),
    ("ana=t-1,bo=t-1", "boss=t-boss", "SLAM_RATER_TOKENS: the same token is given to two names"),
    ("ana=t-1", "boss=t-1", "SLAM_RATER_TOKENS: ana's token is also in SLAM_ADMIN_TOKENS"),
    ("", "", "no invite tokens: set SLAM_ADMIN_TOKENS and SLAM_RATER_TOKENS"),
])
def test_a_bad_token_list_is_named_without_its_tokens(monkeypatch, rater, admin, problem) -> None:
    monkeypatch.setenv("SLAM_RATER_TOKENS", rater)
    monkeypatch.setenv("SLAM_ADMIN_TOKENS", admin)
    monkeypatch.delenv("SLAM_AUTH_USER_HEADER", raising=False)
    (said,) = auth.config_problems()
    assert said.startswith(problem), said
    assert "t-1" not in said and "t-shared" not in said and "t-boss" not in said


def test_behind_a_proxy_the_header_names_the_user(monkeypatch) -> None:
    monkeypatch.setenv("SLAM_AUTH_USER_HEADER", "X-Forwarded-User")
    monkeypatch.setenv("SLAM_ADMIN_USERS", "boss@example.com")
    monkeypatch.setenv("SLAM_RATER_TOKENS", "")
    assert auth.config_problems() == [] and auth.uses_proxy()
    assert auth.proxy_identity({"X-Forwarded-User": "ana@example.com"}) == \
        auth.Identity("ana@example.com", "rater")
    assert auth.proxy_identity({"X-Forwarded-User": "boss@example.com"}).role == "admin"
    assert auth.proxy_identity({}) is None
    monkeypatch.delenv("SLAM_AUTH_USER_HEADER")
    assert auth.proxy_identity({"X-Forwarded-User": "mallory"}) is None  # not trusted unset


def test_the_throttle_pauses_after_five_failures_doubling_and_forgives_a_success() -> None:
    t = auth.Throttle(free=5, base=30, cap=900, window=3600)
    for i in range(5):
        assert t.wait("10.0.0.7", now=100.0 + i) == 0
        t.failed("10.0.0.7", now=100.0 + i)
    assert t.wait("10.0.0.7", now=104.0) == 30
    assert t.wait("10.0.0.8", now=104.0) == 0  # per client
    assert t.wait("10.0.0.7", now=134.0) == 0
    t.failed("10.0.0.7", now=134.0)
    assert t.wait("10.0.0.7", now=134.0) == 60
    for _ in range(10):
        t.failed("10.0.0.7", now=200.0)
    assert t.wait("10.0.0.7", now=200.0) == 900  # capped
    assert t.wait("10.0.0.7", now=200.0 + 3601) == 0  # forgotten after the window
    for _ in range(6):
        t.failed("10.0.0.9", now=0.0)
    assert t.wait("10.0.0.9", now=0.0) == 60
    t.succeeded("10.0.0.9")  # the right token, once the pause was over
    assert t.wait("10.0.0.9", now=0.0) == 0


def test_a_session_link_keeps_its_holder_signed_in_and_nothing_else(monkeypatch) -> None:
    """What a refresh restores: the same person until the link expires; a link edited to name
    someone else, an expired one, or one issued before the invite tokens changed, is nobody."""
    env = {auth.RATER_VAR: "ana=t-ana-0123456789", auth.ADMIN_VAR: "lee=t-lee-0123456789"}
    ana = auth.Identity("ana", "rater")
    link = auth.session_token(ana, now=1_000, env=env)
    assert auth.from_session_token(link, now=1_000 + 3600, env=env) == ana
    assert "t-ana" not in link  # not the invite token
    assert auth.from_session_token(link, now=1_000 + 13 * 3600, env=env) is None  # expired
    body, mac = link.split(".")
    forged = auth.session_token(auth.Identity("lee", "admin"), now=1_000, env=env)
    assert auth.from_session_token(forged.split(".")[0] + "." + mac, now=1_000, env=env) is None
    assert auth.from_session_token(body + ".", now=1_000, env=env) is None
    assert auth.from_session_token("garbage", env=env) is None
    assert auth.from_session_token(None, env=env) is None
    rotated = {**env, auth.RATER_VAR: "ana=t-ana-new-0123456789"}
    assert auth.from_session_token(link, now=1_000, env=rotated) is None
