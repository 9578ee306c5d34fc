"""Streamlit glue shared by the pages (``shared``). Kept below ``pages/`` so that Streamlit never lists it as a
page."""
