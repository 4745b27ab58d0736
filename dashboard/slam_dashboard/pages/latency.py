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
    left, right = st.columns([3, 2])
    left.plotly_chart(px.box(lat, x="target", y=metric, points="outliers",
                             labels={metric: "milliseconds"}), width="stretch")
    with right:
        st.markdown("**Percentiles** (as `slam report` prints them)")
        st.dataframe(data.latency_percentiles(url, run.run_pk, metric), hide_index=True,
                     column_config={c: st.column_config.NumberColumn(c, format="%.0f")
                                    for c in ("p50 ms", "p95 ms", "p99 ms")})
        st.caption("p95: 95 of 100 requests took at most this long. Over the evaluation's "
                   "successful requests, at the concurrency it ran with.")
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
