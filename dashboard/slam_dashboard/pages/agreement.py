"""Agreement: does the LLM judge agree with people, and do people agree with each other?"""

import streamlit as st

from slam_dashboard import auth, data

url, run = auth.admin_page("Agreement")
a = data.agreement(url, run.run_pk)
left, right = st.columns(2)
with left:
    st.subheader("Judge vs humans")
    if a["compared"] == 0:
        st.info("Appears once people have rated pairs that the judge also judged (candidate "
                "vs reference, both orders).")
    else:
        st.metric("Cohen's kappa", "–" if a["kappa"] is None else f"{a['kappa']:.2f}")
        st.metric("Same verdict", f"{a['agreement']:.0%}", help=f"{a['compared']} comparisons")
with right:
    st.subheader("Between raters")
    if a["alpha"] is None:
        st.info("Appears once at least two people have rated the same pair.")
    else:
        st.metric("Krippendorff's alpha (nominal)", f"{a['alpha']:.2f}",
                  help=f"{a['multiply_rated']} pairs rated by two or more people")
st.subheader("Rater consistency on repeated control pairs")
if not a["rater_consistency"]:
    st.info("Appears once raters reach their control pairs (shown again near the end).")
else:
    # Percent, as on the leaderboard: one number format for one quantity across pages.
    st.dataframe({"rater": list(a["rater_consistency"]),
                  "same choice the second time": [100 * v for v in
                                                  a["rater_consistency"].values()]},
                 hide_index=True, column_config={"same choice the second time":
                                                 st.column_config.NumberColumn(format="%.0f%%")})
