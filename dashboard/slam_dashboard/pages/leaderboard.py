"""Leaderboard: human and judge rankings with intervals, similarity, cost."""

import streamlit as st

from slam_dashboard import auth, data

url, run = auth.admin_page("Leaderboard",
                          "No evaluation has run yet: the leaderboard appears after the first run.")
table, basis, recommendation, n_ratings = data.leaderboard(url, run.run_pk)
if n_ratings == 0:
    st.info("No human ratings yet: the human columns appear after the first ratings are in. "
            "Judge and similarity figures are shown as soon as scoring has run.")
st.caption(f"Ranked by {basis}." if basis else "Not ranked yet: no quality figure covers "
           "every target.")
st.table(table.set_index("rank") if "rank" in table else table)
st.markdown(f"**Recommendation.** {recommendation}")
st.download_button("Download CSV", table.to_csv(index=False), file_name="leaderboard.csv",
                   mime="text/csv")
