"""Leaderboard: the decision first (recommendation, per-candidate verdicts, how much evidence),
then the rankings with their intervals (table and chart), the raters' reasons and exports."""

import pandas as pd
import plotly.express as px
import streamlit as st

from slam_dashboard import auth, data


def table(frame, index: str, formats: dict[str, str] | None = None) -> None:
    """A static table (its text is in the page, escaped: no Markdown, no HTML), `index` as its
    first column, numbers formatted with their units, a dash where there is no figure."""
    shown = frame.set_index(index)
    st.table(shown.style.format({k: v for k, v in (formats or {}).items() if k in shown},
                                na_rep="–"))

REASON_CHARS = 280
url, run = auth.admin_page("Leaderboard",
                          "No evaluation has run yet: the leaderboard appears after the first run.")
board = data.leaderboard(url, run.run_pk)
counts = board["counts"]

# The decision, after what may bias it.
for warning in board["warnings"]:
    st.warning(warning, icon="⚠️")
if missing := auth.without_token(board["roster"]):
    st.warning(f"spec.humanRating.raters lists {', '.join(missing)}, who "
               f"{'has' if len(missing) == 1 else 'have'} no invite token on this dashboard: "
               "each prompt assigned to them waits for a rating that cannot come, and the "
               "human decision's count stops there. Give them a token (SLAM_RATER_TOKENS), or "
               "take them off the list (only their prompts are reassigned).", icon="⚠️")
if board["recommended"]:
    st.success(f"**Recommendation: {board['recommended']}**")
else:
    st.warning("**No recommendation yet**")
cols = st.columns(4)
cols[0].metric("Human ratings", counts["ratings"])
cols[1].metric("Raters", counts["raters"])
cols[2].metric("Prompts rated", f"{counts['prompts rated']} of {counts['prompts']}")
cols[3].metric("Candidates", board["verdicts"]["candidate"].nunique()
               if not board["verdicts"].empty else 0)
if not board["verdicts"].empty:
    table(board["verdicts"], "candidate", {
        "estimate": "{:.3f}", "lower bound": "{:.3f}", "upper bound": "{:.3f}",
        "margin": "{:g}", "prompts": "{:.0f}", "n": "{:.0f}", "more prompts to decide": "{:.0f}",
        "$/1k requests": "${:,.4f}"})
st.caption(f"Why: {board['reason']}")
for candidate, why in board["final"].items():
    # Undecided for good on this prompt set: said plainly, with what would decide it; the
    # rating page no longer serves this candidate's pairs against the reference.
    st.warning(f"**{candidate}**: {why}")
sequences = board["sequences"]
if not sequences.empty:
    long = sequences.melt(id_vars=["candidate", "rating", "margin"],
                          value_vars=["lower", "upper"], var_name="bound")
    fig = px.line(long, x="rating", y="value", color="candidate", line_dash="bound",
                  labels={"rating": "prompts counted (one rating each)",
                          "value": "human win rate"})
    for margin in sorted(set(sequences["margin"])):
        fig.add_hline(y=margin, line_dash="dot", annotation_text=f"margin {margin:g}")
    fig.update_yaxes(range=[0, 1])
    st.plotly_chart(fig, width="stretch")
    st.caption("Each candidate's anytime-valid bounds on its human win rate against the "
               "reference, after each prompt counted (its first rating; with "
               "spec.humanRating.raters, the rating by the rater assigned to it in advance): "
               "non-inferior once the lower bound clears the margin, inferior once the upper "
               "bound falls below it. Looking at this "
               "after every rating does not inflate the error; decided candidates are no longer "
               "served to raters.")
with st.expander("How many prompts the margins need (planning)"):
    for line in board["plan"]:
        st.text(line)
if counts["ratings"] == 0:
    st.info("No human ratings yet: the human columns appear after the first ratings are in. "
            "Judge and similarity figures are shown as soon as scoring has run.")

# The rankings.
st.subheader("Rankings")
st.caption((f"Ranked by {board['basis']}. " if board["basis"] else
            "Not ranked yet: no quality figure covers every target. ")
           + "Win rates are against the reference, a tie counting as half a win.")
ranked = board["table"].assign(
    rank=[("–" if pd.isna(r) else str(int(r))) for r in board["table"]["rank"]])
table(ranked, "rank", {
    "human win rate": "{:.0f}%", "judge win rate": "{:.0f}%",
    "judge win rate, equal length": "{:.0f}%", "judge consistency": "{:.0f}%",
    "$/1k requests": "${:,.4f}"})
if not board["criteria"].empty:
    st.markdown("**By criterion** — the raters' per-criterion choices, ranked the same way")
    table(board["criteria"], "target")
forest = board["forest"]
if not forest.empty:
    forest = forest.assign(minus=forest.estimate - forest.low, plus=forest.high - forest.estimate)
    fig = px.scatter(forest, x="estimate", y="target", error_x="plus", error_x_minus="minus",
                     facet_col="measure", facet_col_spacing=0.06)
    # As tall as the targets need: plotly's fixed 450 px left wide empty bands between two.
    fig.update_layout(height=140 + 45 * forest["target"].nunique())
    fig.update_xaxes(matches=None, title="")
    fig.for_each_annotation(lambda a: a.update(text=a.text.split("=")[-1]))
    st.plotly_chart(fig, width="stretch")
    st.caption("Each point is a target's estimate, each bar its 95% interval: where the bars "
               "of two targets overlap, the data do not separate them.")
st.download_button("Download the leaderboard (CSV)", board["table"].to_csv(index=False),
                   file_name=data.file_name(run, "leaderboard", "csv"), mime="text/csv")

# What the raters said.
ratings = data.ratings_export(url, run.run_pk)
st.subheader("Ratings and reasons")
reasons = ratings[ratings["reason"].notna()]
if reasons.empty:
    st.caption("No rater gave a reason yet.")
else:
    # A long reason shows its start in the table (a 5,000-character one would stretch its row
    # over screens) and whole on demand below it.
    long = reasons[reasons["reason"].str.len() > REASON_CHARS]
    table(reasons[["rater", "prompt", "A", "B", "choice", "reason"]].assign(
        reason=reasons["reason"].map(lambda r: r if len(r) <= REASON_CHARS
                                     else r[:REASON_CHARS].rstrip() + " …")), "rater")
    if not long.empty:
        with st.expander(f"Whole text of the {len(long)} reason{'s' if len(long) != 1 else ''} "
                         f"longer than {REASON_CHARS} characters"):
            for row in long.itertuples():
                st.markdown(f"**{row.rater}**, prompt `{row.prompt}`:")
                st.text(row.reason)
left, right = st.columns(2)
left.download_button("Download the ratings (CSV)", ratings.to_csv(index=False),
                     file_name=data.file_name(run, "ratings", "csv"), mime="text/csv")
right.download_button("Download the ratings (JSON)",
                      ratings.to_json(orient="records", indent=1),
                      file_name=data.file_name(run, "ratings", "json"),
                      mime="application/json")
