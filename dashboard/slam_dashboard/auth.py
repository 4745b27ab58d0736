"""Sign-in with an invite token. Tokens come from the environment (in the cluster: a Secret):
SLAM_RATER_TOKENS and SLAM_ADMIN_TOKENS, comma-separated. Compared in constant time."""

from __future__ import annotations

import hmac
import os


def _tokens(var: str) -> list[str]:
    return [t.strip() for t in os.environ.get(var, "").split(",") if t.strip()]


def role_for(token: str) -> str | None:
    """'admin', 'rater' or None. An admin token also lets its holder rate."""
    token = token.strip()
    if not token:
        return None
    if any(hmac.compare_digest(token, t) for t in _tokens("SLAM_ADMIN_TOKENS")):
        return "admin"
    if any(hmac.compare_digest(token, t) for t in _tokens("SLAM_RATER_TOKENS")):
        return "rater"
    return None
