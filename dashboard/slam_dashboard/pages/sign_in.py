"""Sign in: a name and an invite token."""

import streamlit as st

from slam_dashboard import auth

st.title("Sign in")
st.write("Rate pairs of answers to real prompts, without knowing which model wrote which.")
with st.form("sign-in"):
    name = st.text_input("Your name")
    token = st.text_input("Invite token", type="password")
    go = st.form_submit_button("Sign in")
if go:
    role = auth.role_for(token)
    if not name.strip():
        st.error("Enter your name: it keeps your ratings apart from other raters'.")
    elif role is None:
        st.error("That invite token is not valid. Ask the evaluation's owner for one.")
    else:
        st.session_state.update(role=role, rater=name.strip())
        st.rerun()
