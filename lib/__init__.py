"""Joined Up analysis core: plain Python, no Streamlit (see README "Architecture")."""
