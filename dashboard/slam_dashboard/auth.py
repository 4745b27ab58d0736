"""Who is signing in, and as whom. Two ways, one per deployment:

- **Invite tokens** (the default). `SLAM_RATER_TOKENS` and `SLAM_ADMIN_TOKENS` (in the cluster:
  a Secret) hold comma-separated `name=token` entries: each token belongs to one person, whose
  name comes with it (nobody types a name, so nobody can rate as someone else). Tokens are
  compared in constant time; wrong tokens are throttled per client address (`Throttle`,
  `client_key`: behind a trusted proxy, the address it forwarded).
- **An authenticating proxy** in front of the dashboard (oauth2-proxy and the like): with
  `SLAM_AUTH_USER_HEADER` set (e.g. `X-Forwarded-User`), the dashboard takes the user from that
  header and shows no sign-in form; `SLAM_ADMIN_USERS` (comma-separated) are the owners, every
  other user rates. Set it only when the dashboard can be reached through the proxy alone.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import ipaddress
import json
import os
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass

RATER_VAR, ADMIN_VAR = "SLAM_RATER_TOKENS", "SLAM_ADMIN_TOKENS"
HEADER_VAR, ADMIN_USERS_VAR = "SLAM_AUTH_USER_HEADER", "SLAM_ADMIN_USERS"


@dataclass(frozen=True)
class Identity:
    name: str
    role: str  # 'admin' (also rates) or 'rater'


class TokenListError(ValueError):
    """A token variable that cannot be read; the message names the variable and the entry."""


def parse_tokens(var: str, env: Mapping[str, str] = os.environ) -> list[tuple[str, str]]:
    """(name, token) pairs of one variable's `name=token,name=token` list."""
    pairs = []
    for i, entry in enumerate((e.strip() for e in env.get(var, "").split(",")), start=1):
        if not entry:
            continue
        name, sep, token = (part.strip() for part in entry.partition("="))
        if not sep or not name or not token:
            raise TokenListError(
                f"{var}: entry {i} is not name=token (each invite token belongs to one person: "
                "write e.g. ana=3f9c...,bo=8d1e...)")
        pairs.append((name, token))
    names = [n for n, _ in pairs]
    if len(set(names)) != len(names):
        twice = next(n for n in names if names.count(n) > 1)
        raise TokenListError(f"{var}: {twice} has two entries; give each person one token "
                             "(replacing it signs out only that person)")
    tokens = [t for _, t in pairs]
    if len(set(tokens)) != len(tokens):
        raise TokenListError(f"{var}: the same token is given to two names; give each its own")
    return pairs


def config_problems(env: Mapping[str, str] = os.environ) -> list[str]:
    """What is wrong with the sign-in settings in `env` (empty: nothing)."""
    if env.get(HEADER_VAR, "").strip():
        return []
    problems = []
    seen: dict[str, str] = {}
    for var in (ADMIN_VAR, RATER_VAR):
        try:
            for name, token in parse_tokens(var, env):
                if token in seen and seen[token] != var:
                    problems.append(f"{var}: {name}'s token is also in {seen[token]}")
                seen[token] = var
        except TokenListError as e:
            problems.append(str(e))
    for check in (session_hours, trusted_proxies):
        try:
            check(env)
        except ValueError as e:
            problems.append(str(e))
    if not seen and not problems:
        problems.append(f"no invite tokens: set {ADMIN_VAR} and {RATER_VAR} (name=token,...) "
                        f"or {HEADER_VAR} behind an authenticating proxy")
    return problems


def identify(token: str) -> Identity | None:
    """Whose token this is, or None. Every entry is compared, so the time taken does not tell
    how close a guess came or which list it matched."""
    token = token.strip()
    found = None
    for var, role in ((ADMIN_VAR, "admin"), (RATER_VAR, "rater")):
        for name, candidate in parse_tokens(var):
            if hmac.compare_digest(token.encode(), candidate.encode()) and found is None:
                found = Identity(name, role)
    return found if token else None


def without_token(names: list[str], env: Mapping[str, str] = os.environ) -> list[str]:
    """The names (say, spec.humanRating.raters) that no invite token signs in as; empty
    behind an authenticating proxy, where the users are not known in advance."""
    if env.get(HEADER_VAR, "").strip():
        return []
    known = set()
    for var in (ADMIN_VAR, RATER_VAR):
        with contextlib.suppress(TokenListError):  # config_problems names that one
            known |= {n for n, _ in parse_tokens(var, env)}
    return [n for n in names if n not in known]


def proxy_identity(headers) -> Identity | None:
    """The proxy's user when SLAM_AUTH_USER_HEADER is set and the request carries it."""
    header = os.environ.get(HEADER_VAR, "").strip()
    user = (headers.get(header) or "").strip() if header else ""
    if not user:
        return None
    admins = {u.strip() for u in os.environ.get(ADMIN_USERS_VAR, "").split(",") if u.strip()}
    return Identity(user, "admin" if user in admins else "rater")


def uses_proxy() -> bool:
    return bool(os.environ.get(HEADER_VAR, "").strip())


# --- staying signed in across a refresh or the Back button ---------------------------------------
# Streamlit starts a new session on every page load, so the sign-in is carried in the page's
# address as `?s=<session>`: the name, the role and an expiry, signed with a key derived from
# that person's own invite token. It is not the invite token: it expires, and it cannot be turned
# back into one. Replacing one person's token in the list ends that person's links and open
# pages, and nobody else's; removing the name ends them too. A page in use renews its link
# before it expires (`renew_due`): the lifetime, SLAM_SESSION_HOURS, is how long a link lasts
# once nobody uses it.
SESSION_PARAM = "s"
SESSION_HOURS_VAR = "SLAM_SESSION_HOURS"
SESSION_HOURS = 4.0


def session_hours(env: Mapping[str, str] = os.environ) -> float:
    """SLAM_SESSION_HOURS, or the default. Raises ValueError naming the variable."""
    raw = env.get(SESSION_HOURS_VAR, "").strip()
    if not raw:
        return SESSION_HOURS
    try:
        hours = float(raw)
    except ValueError:
        hours = float("nan")
    if not 0 < hours <= 24 * 30:
        raise ValueError(f"{SESSION_HOURS_VAR}={raw!r} is not a number of hours between 0 and "
                         f"720 (how long a sign-in link lasts unused; e.g. {SESSION_HOURS:g})")
    return hours


def _person_key(name: str, role: str, env: Mapping[str, str]) -> bytes | None:
    """The key that signs `name`'s links: from that person's current invite token (None: no
    such person in the lists now)."""
    var = ADMIN_VAR if role == "admin" else RATER_VAR if role == "rater" else None
    try:
        token = next((t for n, t in parse_tokens(var, env) if n == name), None) if var else None
    except TokenListError:
        return None
    if token is None:
        return None
    return hashlib.sha256(
        f"slam-dashboard-session|{role}|{name}|{token}".encode()).digest()


def session_token(who: Identity, now: float | None = None,
                  env: Mapping[str, str] = os.environ) -> str:
    key = _person_key(who.name, who.role, env)
    if key is None:
        raise ValueError(f"{who.name} ({who.role}) has no invite token")
    expires = int((time.time() if now is None else now) + session_hours(env) * 3600)
    body = base64.urlsafe_b64encode(
        json.dumps([who.name, who.role, expires]).encode()).decode().rstrip("=")
    mac = hmac.new(key, body.encode(), hashlib.sha256).hexdigest()[:32]
    return f"{body}.{mac}"


def _read_session(token: str | None, now: float | None, env: Mapping[str, str]
                  ) -> tuple[Identity, int] | None:
    body, _, mac = (token or "").partition(".")
    try:
        name, role, expires = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
        key = _person_key(str(name), str(role), env)
    except (ValueError, TypeError):
        return None
    if key is None:
        return None
    want = hmac.new(key, body.encode(), hashlib.sha256).hexdigest()[:32]
    if not hmac.compare_digest(mac.encode(), want.encode()):
        return None
    if not isinstance(expires, int) or (time.time() if now is None else now) > expires:
        return None
    return Identity(name, role), expires


def from_session_token(token: str | None, now: float | None = None,
                       env: Mapping[str, str] = os.environ) -> Identity | None:
    """Who a session token is, or None: tampered with, expired, or its holder's invite token
    was replaced or removed since it was issued."""
    found = _read_session(token, now, env)
    return found[0] if found else None


def renew_due(token: str, now: float | None = None, env: Mapping[str, str] = os.environ
              ) -> bool:
    """Whether a valid link is past half its lifetime (a page in use then gets a new one)."""
    found = _read_session(token, now, env)
    left = found[1] - (time.time() if now is None else now) if found else 0.0
    return left < session_hours(env) * 3600 / 2


# --- who is trying to sign in --------------------------------------------------------------------
# Wrong tokens are throttled per client. Behind a load balancer or proxy every request comes from
# the proxy's address, and one person's typos would lock out everyone: with SLAM_TRUSTED_PROXIES
# (addresses or networks, comma-separated) a request from one of them is keyed by the client
# address the proxies recorded in X-Forwarded-For (the nearest one that is not itself a trusted
# proxy). A request from anywhere else is keyed by its own address, whatever it claims.
TRUSTED_PROXIES_VAR = "SLAM_TRUSTED_PROXIES"


def trusted_proxies(env: Mapping[str, str] = os.environ
                    ) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    """SLAM_TRUSTED_PROXIES as networks. Raises ValueError naming the variable and entry."""
    nets = []
    for entry in (e.strip() for e in env.get(TRUSTED_PROXIES_VAR, "").split(",")):
        if not entry:
            continue
        try:
            nets.append(ipaddress.ip_network(entry, strict=False))
        except ValueError:
            raise ValueError(f"{TRUSTED_PROXIES_VAR}: {entry!r} is not an address or network "
                             "(write e.g. 10.0.0.0/8,192.168.1.5)") from None
    return nets


def client_key(peer: str | None, headers: Mapping[str, str] | None,
               env: Mapping[str, str] = os.environ) -> str:
    """The address wrong tokens are counted against."""
    nets = trusted_proxies(env)

    def trusted(addr: str) -> bool:
        try:
            ip = ipaddress.ip_address(addr)
        except ValueError:
            return False
        return any(ip in net for net in nets)

    peer = (peer or "").strip() or "unknown"
    if not nets or not trusted(peer):
        return peer
    forwarded = ",".join(v for k, v in (headers or {}).items()
                         if k.lower() == "x-forwarded-for")
    hops = [h.strip() for h in forwarded.split(",") if h.strip()]
    for hop in reversed(hops):  # the proxies append: the nearest untrusted hop is the client
        if not trusted(hop):
            return hop
    return peer


class Throttle:
    """Failed sign-ins per client: `free` wrong tokens in a row are allowed, then each further
    attempt must wait `base` seconds, doubling up to `cap`; a success or `window` seconds without
    a failure starts afresh. Shared by every session of the dashboard process."""

    def __init__(self, free: int = 5, base: float = 30.0, cap: float = 900.0,
                 window: float = 3600.0) -> None:
        self.free, self.base, self.cap, self.window = free, base, cap, window
        self._failures: dict[str, tuple[int, float]] = {}
        self._lock = threading.Lock()

    def wait(self, client: str, now: float | None = None) -> float:
        """Seconds before `client` may try again (0: now)."""
        now = time.monotonic() if now is None else now
        with self._lock:
            n, last = self._failures.get(client, (0, now))
            if now - last > self.window:
                self._failures.pop(client, None)
                return 0.0
            if n < self.free:
                return 0.0
            return max(0.0, min(self.cap, self.base * 2 ** (n - self.free)) - (now - last))

    def failed(self, client: str, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        with self._lock:
            n, _ = self._failures.get(client, (0, now))
            self._failures[client] = (n + 1, now)

    def succeeded(self, client: str) -> None:
        with self._lock:
            self._failures.pop(client, None)


THROTTLE = Throttle()


def require_admin() -> None:
    """Stop the page unless the session belongs to an admin (a rater token is not enough)."""
    import streamlit as st
    if st.session_state.get("role") != "admin":
        st.error("This page is for the evaluation's owners.")
        st.stop()


def pick_run(runs: list, label: str = "Evaluation"):
    """The evaluation run the page is about (one selectbox, shared wording)."""
    import streamlit as st
    by_label = {r.label: r for r in runs}
    return by_label[st.selectbox(label, list(by_label))]


def admin_page(title: str, empty: str = "No evaluation has run yet."):
    """The start every owner page shares: admin only, a title, the run to show (stops with
    `empty` when no evaluation has run). Returns (store URL, run)."""
    import streamlit as st

    from slam_dashboard import data
    require_admin()
    url = data.store_url()
    runs = data.runs(url)  # every run: rating may be off for some (spec.humanRating.enabled)
    st.title(title)
    if not runs:
        st.info(empty)
        st.stop()
    return url, pick_run(runs)
