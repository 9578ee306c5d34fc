"""UI-only helpers shared by the pages (may import streamlit; never duckdb, xgboost or shap)."""
