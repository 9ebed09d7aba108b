"""The mathematics, in rooms by phase: ``floats`` (dtypes, points), ``expression`` (parsing,
the function catalogue, symbolic derivatives), ``exact`` (certified references and the
sandbox process), ``program`` (the torch program and autograd) and ``judge`` (tolerance,
comparison, audit, conditioning, diagnosis, entries and the report); ``check.py`` conducts
them with the options of ``options.py``. docs/architecture.md draws the rooms.

Imports no FastAPI, SQLAlchemy or Celery, and nothing here loads torch until a check runs.
"""
