"""Blind pairwise rating: one question, answers A and B, your choice; batch after batch.

Keys: 1 = A, 2 = B, 3 = about the same, 4 = both bad (each submits and shows the next pair);
Enter starts the next batch. A refresh or the Back button keeps you signed in (app.py) and goes
on with the same batch, at its first pair you have not rated (the batch is kept in the store).
"""

import streamlit as st

from slam_dashboard import data, rating

# The buttons, their keys, and the choice each one records.
BUTTONS = (("A is better", "1", "A"), ("B is better", "2", "B"),
           ("About the same", "3", "About the same"), ("Both bad", "4", "Both bad"))

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


def remember(batch: data.Batch) -> dict:
    return {"assignments": batch.assignments, "index": batch.index, "saved": batch.saved,
            "batch": batch.number}


if key not in st.session_state:  # a refresh or a new tab: the stored batch, where it was
    st.session_state[key] = remember(data.current_batch(url, run, rater))
state = st.session_state[key]
progress = data.rating_progress(url, run, rater)
st.caption(f"You: {progress.mine} rated in this evaluation · everyone: {progress.everyone} "
           f"from {progress.raters} rater{'s' if progress.raters != 1 else ''}")
assignments = state["assignments"]
if not assignments:
    st.success(f"This evaluation needs no more ratings from you ({progress.mine} rated). "
               "Thank you!")
    st.stop()
if state["index"] >= len(assignments):
    st.success(f"Batch {state['batch']} done: {state['saved']} ratings saved. Thank you!")
    if progress.left_for_me:
        st.write(f"{progress.left_for_me} more pair{'s' if progress.left_for_me != 1 else ''} "
                 "could use your rating.")
        if st.button("Next batch", type="primary", shortcut="Enter", key="next-batch"):
            st.session_state[key] = remember(data.next_batch(url, run, rater,
                                                             state["batch"] + 1))
            st.rerun()
    else:
        st.write("This evaluation needs no more ratings from you.")
    st.stop()

if notice := state.pop("notice", None):
    st.warning(notice)
# A control pair swaps the sides of the main rating actually stored (another tab may have shown
# that pair the other way round).
assignments[state["index"]] = data.shown_sides(url, run, rater, assignments[state["index"]])
shown = data.screen(url, run, assignments, state["index"])
st.progress(state["index"] / shown.total,
            text=f"Batch {state['batch']}: pair {shown.position} of {shown.total}")
st.markdown("**The request**")
st.text(shown.question)
left, right = st.columns(2)
with left:
    st.markdown("**Answer A**")
    st.html(rating.answer_html(shown.answer_a))
with right:
    st.markdown("**Answer B**")
    st.html(rating.answer_html(shown.answer_b))

with st.form(f"rate-{state['batch']}-{shown.position}", clear_on_submit=True, border=False,
             enter_to_submit=False):
    criteria = {}
    for c in run.criteria:
        if c != "overall":
            criteria[c] = st.radio(f"More {c}?", list(rating.CHOICES), index=None,
                                   horizontal=True, key=f"{c}-{state['batch']}-{shown.position}")
    reason = st.text_area("Why? (a sentence)" + ("" if run.require_reason else " — optional"),
                          key=f"reason-{state['batch']}-{shown.position}")
    st.caption("Overall (the keys 1 to 4 choose and submit):")
    columns = st.columns(len(BUTTONS))
    pressed = [col.form_submit_button(text, shortcut=k, width="stretch",
                                      key=f"choice-{k}")
               for col, (text, k, _) in zip(columns, BUTTONS, strict=True)]
choice = next((c for (_, _, c), p in zip(BUTTONS, pressed, strict=True) if p), None)
if choice is not None:
    if run.require_reason and not reason.strip():
        st.error("This evaluation asks for a short reason with each choice.")
    else:
        done = data.submit(url, run, rater, assignments[state["index"]], choice,
                           {k: v for k, v in criteria.items() if v}, reason)
        state["saved"] += int(done.saved)
        if done.kept is not None:
            state["notice"] = (f"Pair {shown.position}: you had already answered this pair "
                               "in another tab or window, choosing what this page shows as "
                               f"\"{done.kept}\". That first answer stands; \"{choice}\" was "
                               "not saved.")
        state["index"] += 1
        st.rerun()
