"""Cost: $/1k requests, monthly cost by traffic with the break-even, quality vs cost."""

import plotly.express as px
import streamlit as st

from slam_dashboard import auth, data

# Decimals per quality figure: Elo in points, a 1-10 grade to a tenth, similarity to 0.01.
DIGITS = {"human Elo": 0, "judge Elo": 0, "judge grade": 1, "similarity": 2}

url, run = auth.admin_page("Cost")
c = data.costs(url, run.run_pk)
for line in c["missing"]:
    st.warning(f"No cost for {line}")
points = c["points"]
if points.empty:
    st.info("Appears once a target has both a price and measured requests.")
    st.stop()


def quality_text(row) -> str:
    if row["quality"] != row["quality"] or row["quality"] is None:  # NaN or None
        return "–"
    return f"{row['quality']:.{DIGITS.get(row['quality basis'], 2)}f} ({row['quality basis']})"


shown = points.assign(quality=points.apply(quality_text, axis=1),
                      frontier=points["on the frontier"].map({True: "yes", False: ""}))
st.table(shown[["target", "$/1k requests", "quality", "break-even", "frontier", "price"]]
         .set_index("target").style.format({"$/1k requests": "${:,.4f}"}))
st.caption(f"Monthly cost below assumes {c['requests_per_day']:,} requests/day "
           "(spec.cost.requestsPerDay).")

kinds = set(points["kind"])
if len(points) > 1:
    fig = px.line(c["curves"], x="requests/day", y="$/month", color="target", log_x=True,
                  log_y=True)
    fig.add_vline(x=c["requests_per_day"], line_dash="dot",
                  annotation_text="spec.cost.requestsPerDay")
    st.plotly_chart(fig, width="stretch")
    if kinds == {"api", "self-hosted"}:
        st.caption("Where a self-hosted line crosses an API line is the break-even traffic; "
                   "self-hosted cost steps up when another replica is needed.")
    else:
        st.caption("All priced targets are billed the same way (per request, or per hour): "
                   "their lines do not cross, the cheaper one stays cheaper.")
else:
    st.caption("Only one target is priced: set prices for the others (spec.targets[].external"
               ".pricing, or an instance type) to compare monthly costs.")
quality = points.dropna(subset=["quality"])
if len(quality) > 1:
    st.subheader(f"Quality vs cost ({quality['quality basis'].iloc[0]})")
    st.plotly_chart(px.scatter(quality, x="$/1k requests", y="quality", text="target",
                               symbol="on the frontier", log_x=True), width="stretch")
    st.caption("On the frontier: no other target is both better and cheaper.")
