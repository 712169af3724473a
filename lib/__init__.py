"""Joined Up analysis core: plain Python, no Streamlit (see docs/ARCHITECTURE.md)."""
