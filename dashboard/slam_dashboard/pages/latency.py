"""Latency: distributions per target, and latency over time from the probes."""

import plotly.express as px
import streamlit as st

from slam_dashboard import auth, data

url, run = auth.admin_page("Latency")
lat = data.latencies(url, run.run_pk)
if lat.empty:
    st.info("Appears as soon as the first requests of this evaluation succeed.")
else:
    metric = st.radio("Measure", ["e2e_ms", "ttft_ms"], horizontal=True,
                      format_func={"e2e_ms": "End to end", "ttft_ms": "Time to first token"}.get)
    st.plotly_chart(px.box(lat, x="target", y=metric, points="outliers",
                           labels={metric: "milliseconds"}), width="stretch")
st.subheader("Over time (latency probes)")
samples, table = data.probes(url, run.run_pk)
if samples.empty:
    st.info("Set spec.probe on the Evaluation (external targets) or on a ModelDeployment: "
            "the operator then sends a small request on schedule and the samples appear here.")
else:
    fig = px.line(samples, x="at", y=["p50", "p95"], color="target",
                  labels={"value": "end to end, ms (rolling)", "at": "time"})
    st.plotly_chart(fig, width="stretch")
    st.dataframe(table.round(3), hide_index=True,
                 column_config={"cv": "coefficient of variation"})
