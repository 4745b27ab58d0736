"""Sign in with an invite token; the token says who you are. Wrong tokens are throttled per
client address (auth.Throttle; behind a trusted proxy, the address it forwarded)."""

import math

import streamlit as st

from slam_dashboard import auth

st.title("Sign in")
st.write("Rate pairs of answers to real prompts, without knowing which model wrote which.")
if ended := st.session_state.pop("signed_out", None):
    st.info(ended)
with st.form("sign-in"):
    token = st.text_input("Invite token", type="password")
    go = st.form_submit_button("Sign in")
if go:
    client = auth.client_key(st.context.ip_address, st.context.headers)
    attempt = st.session_state["sign_in_attempts"] = st.session_state.get("sign_in_attempts", 0) + 1
    if wait := auth.THROTTLE.wait(client):
        st.error(f"Sign-in attempt {attempt}: too many wrong invite tokens from your address; "
                 f"try again in {math.ceil(wait)} s.")
    elif (who := auth.identify(token)) is None:
        auth.THROTTLE.failed(client)
        st.error(f"Sign-in attempt {attempt}: that invite token is not valid. Ask the "
                 "evaluation's owner for yours.")
    else:
        auth.THROTTLE.succeeded(client)
        st.session_state.update(role=who.role, rater=who.name)
        st.rerun()
