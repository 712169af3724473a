"""Who may see what: roles, sign-in, audit (issue 7). No Streamlit here."""
