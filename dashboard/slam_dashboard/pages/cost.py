"""Cost: $/1k requests, monthly cost by traffic with the break-even, quality vs cost."""

import plotly.express as px
import streamlit as st

from slam import charts
from slam_dashboard import auth, data

# Decimals per quality figure: Elo in points, a 1-10 grade to a tenth, similarity to 0.01.
DIGITS = {"human Elo": 0, "judge Elo": 0, "judge grade": 1, "similarity": 2}

url, run = auth.admin_page("Cost")
c = data.costs(url, run.run_pk)
for line in c["missing"]:
    st.warning(f"No cost for {line}")


def at_the_slo() -> None:
    """Cost at the SLO on the team's traffic: always-on, scale-to-zero, break-even."""
    st.subheader(f"At the SLO: {c['slo']}")
    table = c["at_slo"]
    st.table(table.drop(columns=["kind"]).set_index("target").style.format({
        "goodput/s per replica": "{:,.3g}", "at concurrency": "{:.0f}",
        "always-on $/month": "${:,.2f}", "scale-to-zero $/month": "${:,.2f}",
        "cold starts/day": "{:.0f}", "SLO misses/day": "{:,.1f}",
        "break-even requests/day": "{:,.0f}"}, na_rep="–"))
    st.caption(
        f"Traffic: {c['traffic']}. Goodput: requests per second meeting every bound of the SLO "
        "at the highest concurrency where enough of them do (vLLM's and GuideLLM's "
        "definitions), measured for each self-hosted target alone after generation. "
        "Replicas per hour = ⌈requests in the hour / 3600 / goodput⌉. Always-on keeps the "
        "busiest hour's replicas up all month; scale-to-zero pays each hour's replicas and "
        "none in idle hours, and each hour that starts from zero pays a cold start whose "
        "requests miss the SLO. Break-even: the daily traffic, in this profile's shape, from "
        "which the cheaper of the two costs no more than the API reference.")
    hours = c["hours"]
    if not hours.empty:
        fig = px.bar(hours, x="hour", y="replicas", color="target", barmode="group",
                     hover_data=["requests"])
        fig.update_xaxes(dtick=1, title="hour of the day")
        fig.update_yaxes(title="replicas at the SLO", rangemode="tozero", dtick=1)
        st.plotly_chart(fig, width="stretch")


if c["slo"]:
    at_the_slo()
points = c["points"]
if points.empty:
    st.info("Appears once a target has both a price and measured requests.")
    st.stop()


def quality_text(row) -> str:
    if row["quality"] != row["quality"] or row["quality"] is None:  # NaN or None
        return "–"
    return f"{row['quality']:.{DIGITS.get(row['quality basis'], 2)}f} ({row['quality basis']})"


st.subheader("Per 1,000 requests")
shown = points.assign(quality=points.apply(quality_text, axis=1),
                      frontier=points["on the frontier"].map({True: "yes", False: "no"}))
st.table(shown[["target", "$/1k requests", "quality", "break-even", "frontier", "price"]]
         .set_index("target").style.format({"$/1k requests": "${:,.4f}"}))
st.caption("$/1k requests: an API's price per 1,000 requests at the measured tokens; a "
           "self-hosted target's when its instances are kept busy at "
           + ("its goodput at the SLO." if c["slo"] else "the measured throughput."))

rpd = c["requests_per_day"]
st.subheader(f"A month at {rpd:,} requests/day")
monthly = c["monthly"]
st.table(monthly[["target", "$/month", "instances", "utilisation", "$/1k at this traffic"]]
         .set_index("target").style.format(
             {"$/month": "${:,.2f}", "instances": "{:.0f}", "utilisation": "{:.0%}",
              "$/1k at this traffic": "${:,.4f}"}, na_rep="–"))
for sentence in c["floor"]:
    st.info(sentence)
st.caption(("The traffic profile's day spread evenly" if c["slo"] and c["traffic"] else
            f"Traffic from spec.cost.requestsPerDay ({rpd:,})")
           + "; a self-hosted target is paid by "
           "the hour for each instance, busy or not (utilisation: the share of the instances' "
           "measured capacity this traffic uses).")

kinds = set(points["kind"])
if len(points) > 1:
    curves = c["curves"]
    fig = px.line(curves, x="requests/day", y="$/month", color="target", log_x=True,
                  log_y=True)
    fig.add_vline(x=rpd, line_dash="dot", annotation_text=f"{rpd:,} requests/day")
    ticks, labels = charts.money_ticks(curves["$/month"], monthly["$/month"])
    fig.update_yaxes(tickvals=ticks, ticktext=labels, title="$ per month")
    fig.update_xaxes(dtick=1, tickformat=",.0f", title="requests per day")
    st.plotly_chart(fig, width="stretch")
    if kinds == {"api", "self-hosted"}:
        st.caption("Where a self-hosted line crosses an API line is the break-even traffic; "
                   "self-hosted cost steps up when another instance is needed.")
    elif kinds == {"api"}:
        st.caption("All priced targets are APIs, paid per request: their lines do not cross, "
                   "the cheaper per 1,000 requests is the cheaper at any traffic.")
    else:
        st.caption("All priced targets are self-hosted, paid by the hour: each line stays flat "
                   "at its instances' cost (the floor) until the traffic needs another "
                   "instance, so the cheaper per 1,000 requests kept busy is not the cheaper a "
                   "month while the instances idle.")
else:
    st.caption("Only one target is priced: set prices for the others (spec.targets[].external"
               ".pricing, or an instance type) to compare monthly costs.")
quality = points.dropna(subset=["quality"])
if len(quality) > 1:
    st.subheader(f"Quality vs cost ({quality['quality basis'].iloc[0]})")
    quality = quality.assign(frontier=quality["on the frontier"].map(
        {True: "on the frontier", False: "not on the frontier"}))
    fig = px.scatter(quality, x="$/1k requests", y="quality", text="target", symbol="frontier",
                     log_x=True)
    fig.update_xaxes(tickprefix="$", title="$ per 1,000 requests")
    fig.update_layout(legend_title_text="")
    st.plotly_chart(fig, width="stretch")
    st.caption("On the frontier: no other target is both better and cheaper.")
if not c["spend"].empty:
    st.subheader(f"What this run cost: ${c['spend_total']:,.4f}")
    st.table(c["spend"].set_index("target").style.format({"spent": "${:,.4f}"}))
    st.caption("An API target's tokens at its price; a self-hosted target's instance-hours × "
               "price × replicas for as long as the run kept it up; an API judge's tokens at "
               "its price.")
