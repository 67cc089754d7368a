"""The Streamlit front end: `ui/app.py` (entry), `ui/page.py` (drawing), `ui/view.py` (pure), `ui/runner.py`."""
