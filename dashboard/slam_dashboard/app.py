"""The SLaM dashboard: `streamlit run dashboard/slam_dashboard/app.py`.

Raters sign in with an invite token and rate blind A/B pairs; admins also see the decision pages.
"""

from __future__ import annotations

from pathlib import Path

import streamlit as st

HERE = Path(__file__).parent

st.set_page_config(page_title="SLaM", layout="wide")
role = st.session_state.get("role")
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
