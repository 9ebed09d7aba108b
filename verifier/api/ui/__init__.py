"""The report pages' rendering: page templates (``templates.py``) and SVG charts
(``charts.py``); the routes are in verifier/api/routes/ui.py (docs/pages.md)."""
