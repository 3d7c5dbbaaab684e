"""The Streamlit dashboard: thin pages over the audit library (no SQL, no rules here)."""
