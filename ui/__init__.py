"""Streamlit pages. Only this package and app.py import streamlit; they call plain functions."""
