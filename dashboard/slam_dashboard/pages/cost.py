"""Cost: $/1k requests, monthly cost by traffic with the break-even, quality vs cost."""

import plotly.express as px
import streamlit as st

from slam_dashboard import auth, data

url, run = auth.admin_page("Cost")
c = data.costs(url, run.run_pk)
for line in c["missing"]:
    st.warning(f"No cost for {line}")
if c["points"].empty:
    st.info("Appears once a target has both a price and measured requests.")
    st.stop()
st.dataframe(c["points"], hide_index=True)
fig = px.line(c["curves"], x="requests/day", y="$/month", color="target", log_x=True,
              log_y=True)
fig.add_vline(x=c["requests_per_day"], line_dash="dot",
              annotation_text="spec.cost.requestsPerDay")
st.plotly_chart(fig, width="stretch")
st.caption("Where a self-hosted line crosses an API line is the break-even traffic; "
           "self-hosted cost steps up when another replica is needed.")
quality = c["points"].dropna(subset=["quality"])
if not quality.empty:
    st.subheader(f"Quality vs cost ({quality['quality basis'].iloc[0]})")
    st.plotly_chart(px.scatter(quality, x="$/1k requests", y="quality", text="target",
                               symbol="on the frontier", log_x=True), width="stretch")
    st.caption("On the frontier: no other target is both better and cheaper.")
