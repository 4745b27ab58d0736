"""Invite tokens name their holder; bad token lists are named; the throttle's schedule."""

from __future__ import annotations

import base64
import json

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
    assert auth.from_session_token(link, now=1_000 + 5 * 3600, env=env) is None  # expired
    body, mac = link.split(".")
    forged = auth.session_token(auth.Identity("lee", "admin"), now=1_000, env=env)
    assert auth.from_session_token(forged.split(".")[0] + "." + mac, now=1_000, env=env) is None
    assert auth.from_session_token(body + ".", now=1_000, env=env) is None
    assert auth.from_session_token("garbage", env=env) is None
    assert auth.from_session_token(None, env=env) is None
    rotated = {**env, auth.RATER_VAR: "ana=t-ana-new-0123456789"}
    assert auth.from_session_token(link, now=1_000, env=rotated) is None


def test_replacing_one_raters_token_ends_only_that_raters_links() -> None:
    env = {auth.RATER_VAR: "ana=t-ana-0123456789,bo=t-bo-01234567890",
           auth.ADMIN_VAR: "lee=t-lee-0123456789"}
    ana, bo, lee = (auth.Identity("ana", "rater"), auth.Identity("bo", "rater"),
                    auth.Identity("lee", "admin"))
    links = {who: auth.session_token(who, now=1_000, env=env) for who in (ana, bo, lee)}
    rotated = {**env, auth.RATER_VAR: "ana=t-ana-new-0123456789,bo=t-bo-01234567890"}
    assert auth.from_session_token(links[ana], now=1_000, env=rotated) is None
    assert auth.from_session_token(links[bo], now=1_000, env=rotated) == bo
    assert auth.from_session_token(links[lee], now=1_000, env=rotated) == lee
    removed = {**env, auth.RATER_VAR: "bo=t-bo-01234567890"}  # ana taken off the list
    assert auth.from_session_token(links[ana], now=1_000, env=removed) is None
    assert auth.from_session_token(links[bo], now=1_000, env=removed) == bo
    # A rater's link does not become an owner's by editing the role it carries.
    body, mac = links[bo].split(".")
    name, _, expires = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    promoted = base64.urlsafe_b64encode(json.dumps([name, "admin", expires]).encode()
                                        ).decode().rstrip("=")
    assert auth.from_session_token(f"{promoted}.{mac}", now=1_000, env=env) is None


def test_the_session_lifetime_is_the_owners_to_set_and_a_page_in_use_renews_it() -> None:
    env = {auth.RATER_VAR: "ana=t-ana-0123456789"}
    ana = auth.Identity("ana", "rater")
    assert auth.session_hours(env) == 4.0  # was 12 h
    link = auth.session_token(ana, now=0, env=env)
    assert auth.from_session_token(link, now=4 * 3600 - 1, env=env) == ana
    assert auth.from_session_token(link, now=4 * 3600 + 1, env=env) is None
    assert not auth.renew_due(link, now=3600, env=env)
    assert auth.renew_due(link, now=2 * 3600 + 1, env=env)  # past half: the page renews it
    short = {**env, auth.SESSION_HOURS_VAR: "0.5"}
    link = auth.session_token(ana, now=0, env=short)
    assert auth.from_session_token(link, now=1801, env=short) is None
    for bad in ("soon", "0", "-1", "nan", "100000"):
        problems = auth.config_problems({**env, auth.SESSION_HOURS_VAR: bad})
        assert len(problems) == 1 and problems[0].startswith(f"{auth.SESSION_HOURS_VAR}={bad!r}")


def test_behind_a_trusted_proxy_wrong_tokens_count_against_the_forwarded_client() -> None:
    """One person's typos behind a load balancer lock out that person, not everyone behind
    it; a client that is not a trusted proxy cannot pick its key by sending the header."""
    env = {auth.TRUSTED_PROXIES_VAR: "10.0.0.0/8, 192.168.1.5"}
    key = auth.client_key
    assert key("10.1.2.3", {"X-Forwarded-For": "203.0.113.7"}, env) == "203.0.113.7"
    assert key("10.1.2.3", {"x-forwarded-for": "198.51.100.1, 203.0.113.7, 10.9.9.9"},
               env) == "203.0.113.7"  # the nearest hop that is not one of the proxies
    assert key("192.168.1.5", {}, env) == "192.168.1.5"  # nothing forwarded
    assert key("203.0.113.9", {"X-Forwarded-For": "1.2.3.4"}, env) == "203.0.113.9"
    assert key("10.1.2.3", {"X-Forwarded-For": "203.0.113.7"}, {}) == "10.1.2.3"  # not set
    assert key(None, None, env) == "unknown"
    throttle = auth.Throttle(free=2, base=30.0)
    mallory = key("10.1.2.3", {"X-Forwarded-For": "203.0.113.66"}, env)
    for _ in range(5):
        throttle.failed(mallory, now=0.0)
    assert throttle.wait(mallory, now=0.0) > 0
    ana = key("10.1.2.3", {"X-Forwarded-For": "203.0.113.7"}, env)
    assert throttle.wait(ana, now=0.0) == 0  # same proxy, another person: not locked out
    problems = auth.config_problems({auth.RATER_VAR: "ana=t-ana-0123456789",
                                     auth.TRUSTED_PROXIES_VAR: "10.0.0.0/8,lb.internal"})
    assert problems == [f"{auth.TRUSTED_PROXIES_VAR}: 'lb.internal' is not an address or "
                        "network (write e.g. 10.0.0.0/8,192.168.1.5)"]


def test_one_name_with_two_tokens_is_refused() -> None:
    problems = auth.config_problems({auth.RATER_VAR: "ana=t-ana-0123456789,ana=t-ana-98765432"})
    assert problems and "ana has two entries" in problems[0] and "t-ana" not in problems[0]


def test_roster_names_without_a_token_are_found() -> None:
    env = {auth.RATER_VAR: "ana=t-ana-0123456789,bo=t-bo-01234567890",
           auth.ADMIN_VAR: "lee=t-lee-0123456789"}
    assert auth.without_token(["ana", "lee", "anna", "cy"], env) == ["anna", "cy"]
    assert auth.without_token(["anna"], {auth.HEADER_VAR: "X-Forwarded-User"}) == []
