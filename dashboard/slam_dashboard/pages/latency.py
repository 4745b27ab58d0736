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
st.subheader("Cold start")
starts = data.cold_starts(url, run.run_pk)
if starts.empty:
    st.info("Appears for a ModelDeployment target once its server pod has started under the "
            "operator: set spec.scaling on the Evaluation to scale a model up for the run (and "
            "back down afterwards) and see what its cold start costs.")
else:
    bars = px.bar(starts[~starts["part"].str.startswith("total")], x="seconds", y="target",
                  color="part", orientation="h", labels={"seconds": "seconds", "target": ""},
                  height=160 + 60 * starts["target"].nunique())
    st.plotly_chart(bars, width="stretch")
    st.dataframe(starts, hide_index=True,
                 column_config={"seconds": st.column_config.NumberColumn("seconds",
                                                                         format="%.1f")})
    st.caption("From the scale-up that asked for the server pod to the run's first token, as "
               "the pod's status timed each step: scheduling, image and container start, the "
               "model fetched and loaded until Ready, then the run's first answer.")
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
