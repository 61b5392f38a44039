import streamlit as st

st.title("model_info")
st.info("Coming soon.")
