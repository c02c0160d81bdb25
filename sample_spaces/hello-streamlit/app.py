import os

import streamlit as st

st.title("Hello from Streamlit")
name = st.text_input("Your name", value="world")
st.write(f"Hello, {name}!")
st.caption(f"Space: {os.environ.get('SPACE_ID', 'local')}")
