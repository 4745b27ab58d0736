"""The SLaM dashboard: `streamlit run dashboard/slam_dashboard/app.py`.

Raters sign in with their invite token (or arrive through an authenticating proxy) and rate
blind A/B pairs; admins also see the decision pages.
"""

from __future__ import annotations

import os
from pathlib import Path

import streamlit as st

from slam_dashboard import auth

HERE = Path(__file__).parent

st.set_page_config(page_title="SLaM", layout="wide")
if auth.uses_proxy():
    who = auth.proxy_identity(st.context.headers)
    if who is None:
        st.error(f"No user in the request's {os.environ[auth.HEADER_VAR]} header: this "
                 "dashboard is meant to be reached through its sign-in proxy.")
        st.stop()
    st.session_state.update(role=who.role, rater=who.name)
elif problems := auth.config_problems():
    # Before any page (a link from before a bad edit included): nobody is signed in on it.
    st.error("Sign-in is not set up on this dashboard: " + "; ".join(problems))
    st.stop()
elif "role" not in st.session_state and (
        link := st.query_params.get(auth.SESSION_PARAM)) and (
        who := auth.from_session_token(link)):
    # A refresh, the Back button or a bookmarked page: a new Streamlit session, same person.
    st.session_state.update(role=who.role, rater=who.name, session=link)
role = st.session_state.get("role")
if role is not None and not auth.uses_proxy():
    me = auth.Identity(st.session_state["rater"], role)
    link = st.session_state.get("session")
    if link is not None and auth.from_session_token(link) != me:
        # Expired unused, or the owner replaced or removed this person's invite token: an open
        # page ends too, not only the links to it.
        st.session_state.clear()
        st.query_params.clear()
        st.session_state["signed_out"] = ("Your sign-in has ended (unused for too long, or "
                                          "your invite token was replaced): sign in again.")
        st.rerun()
    if link is None or auth.renew_due(link):  # just signed in, or past half its lifetime
        link = st.session_state["session"] = auth.session_token(me)
    if st.query_params.get(auth.SESSION_PARAM) != link:
        st.query_params[auth.SESSION_PARAM] = link
if role is not None:
    st.sidebar.text(f"Signed in as {st.session_state['rater']} ({role})")
    if not auth.uses_proxy() and st.sidebar.button("Sign out", key="sign-out"):
        st.session_state.clear()
        st.query_params.clear()
        st.rerun()
sign_in = st.Page(HERE / "pages" / "sign_in.py", title="Sign in", default=role is None)
rate = st.Page(HERE / "pages" / "rate.py", title="Rate", default=role is not None)
admin_pages = [st.Page(HERE / "pages" / f"{name}.py", title=title) for name, title in (
    ("leaderboard", "Leaderboard"), ("agreement", "Agreement"), ("latency", "Latency"),
    ("cost", "Cost"), ("drilldown", "Answers by prompt"))]
if role is None:
    pages = [sign_in]
elif role == "rater":
    pages = [rate]  # raters never see the decision pages, not even their names
else:
    pages = [rate, *admin_pages]
st.navigation(pages).run()
