"""The Streamlit dashboard: blind pairwise rating and stakeholder decision views."""
