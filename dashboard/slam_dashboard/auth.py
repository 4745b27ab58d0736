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
