"""Blind pairwise rating: one question, answers A and B, your choice."""

import streamlit as st

from slam_dashboard import data, rating

url = data.store_url()
rater = st.session_state["rater"]
runs = data.runs_open_for_rating(url)
st.title("Which answer is better?")
if not runs:
    st.info("Nothing to rate yet: answers appear here as soon as an evaluation has run.")
    st.stop()
labels = {r.label: r for r in runs}
run = labels[st.selectbox("Evaluation", list(labels))]
key = f"session-{run.run_pk}"
if key not in st.session_state:
    st.session_state[key] = {"assignments": data.rater_session(url, run, rater), "index": 0,
                             "saved": 0}
state = st.session_state[key]
assignments = state["assignments"]
if not assignments:
    st.success("You have rated every pair in this evaluation. Thank you!")
    st.stop()
if state["index"] >= len(assignments):
    st.success(f"All done: {state['saved']} ratings saved. Thank you!")
    st.stop()

if notice := state.pop("notice", None):
    st.warning(notice)
shown = data.screen(url, run, assignments, state["index"])
st.progress(state["index"] / shown.total)
st.caption(f"Pair {shown.position} of {shown.total}")
st.markdown("**The request**")
st.text(shown.question)
left, right = st.columns(2)
with left:
    st.markdown("**Answer A**")
    st.text(shown.answer_a)
with right:
    st.markdown("**Answer B**")
    st.text(shown.answer_b)

with st.form(f"rate-{shown.position}", clear_on_submit=True):
    choice = st.radio("Which is better overall?", list(rating.CHOICES), index=None,
                      horizontal=True, key=f"choice-{shown.position}")
    criteria = {}
    for c in run.criteria:
        if c != "overall":
            criteria[c] = st.radio(f"More {c}?", list(rating.CHOICES), index=None,
                                   horizontal=True, key=f"{c}-{shown.position}")
    reason = st.text_area("Why? (a sentence)" + ("" if run.require_reason else " — optional"),
                          key=f"reason-{shown.position}")
    sent = st.form_submit_button("Submit and next")
if sent:
    if choice is None:
        st.error("Pick one of A, B, About the same or Both bad.")
    elif run.require_reason and not reason.strip():
        st.error("This evaluation asks for a short reason with each choice.")
    else:
        done = data.submit(url, run, rater, assignments[state["index"]], choice,
                           {k: v for k, v in criteria.items() if v}, reason)
        state["saved"] += int(done.saved)
        if done.kept is not None:
            state["notice"] = (f"Pair {shown.position}: you had already answered \"{done.kept}\" "
                               "in another tab or window. That first answer stands; "
                               f"\"{choice}\" was not saved.")
        state["index"] += 1
        st.rerun()
