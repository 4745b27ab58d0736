"""Per-prompt drill-down: every target's answer side by side, and the CSV of all records."""

import streamlit as st

from slam_dashboard import auth, data

url, run = auth.admin_page("Answers by prompt")
ids = data.prompt_ids(url, run.run_pk)
prompt = st.selectbox("Prompt", ids)
question, answers = data.drilldown(url, run.run_pk, prompt)
st.text(question)
if answers.empty:
    st.info("No answers to this prompt yet: the run is still in progress.")
else:
    columns = st.columns(min(len(answers), 4))
    for i, row in enumerate(answers.itertuples()):
        with columns[i % len(columns)]:
            st.markdown(f"**{row.target}**" + (f" (sample {row.sample})" if row.sample else ""))
            st.text(row.answer if row.error is None else f"(failed: {row.error})")
            if row.similarity == row.similarity and row.similarity is not None:
                st.caption(f"similarity {row.similarity:.2f} · {row.e2e_ms:,.0f} ms")
st.download_button("Download all answers (CSV)", data.responses_csv(url, run.run_pk),
                   file_name=f"{run.label.split(' ')[0]}-responses.csv", mime="text/csv")
