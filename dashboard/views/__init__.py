"""One module per page. Named views/, not pages/: Streamlit would expose a pages/ folder to
every user regardless of role."""
