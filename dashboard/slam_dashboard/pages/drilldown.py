"""Per-prompt drill-down: every target's answer side by side, and the CSV of all records."""

import streamlit as st

from slam_dashboard import auth, data

url, run = auth.admin_page("Answers by prompt")
ids = data.prompt_ids(url, run.run_pk)
prompt = st.selectbox("Prompt", ids)
question, reference, by_target = data.drilldown(url, run.run_pk, prompt)
st.text(question)
if not by_target:
    st.info("No answers to this prompt yet: the run is still in progress.")
else:
    # One column per target, the reference first; samples numbered from 1.
    for column, (target, answers) in zip(st.columns(len(by_target)), by_target.items(),
                                         strict=True):
        with column:
            st.markdown(f"**{target}**" + (" (reference)" if target == reference else ""))
            for a in answers:
                if len(answers) > 1:
                    st.caption(f"Sample {a['sample'] + 1}")
                if a["error"] is not None:
                    st.error(f"Failed: {a['error']}")
                    continue
                st.text(a["answer"])
                facts = [f"{a['e2e_ms']:,.0f} ms"] if a["e2e_ms"] is not None else []
                if a["similarity"] is not None:
                    facts.insert(0, f"similarity to the reference answers {a['similarity']:.2f}")
                if facts:
                    st.caption(" · ".join(facts))
st.download_button("Download all answers (CSV)", data.responses_csv(url, run.run_pk),
                   file_name=data.file_name(run, "responses", "csv"), mime="text/csv")
