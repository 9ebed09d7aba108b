"""The mathematics: parse, symbolic derivatives, torch translation, autograd, reference, compare,
and the diagnosis of whose fault an error is (audit, conditioning, verdict).

Imports no FastAPI, SQLAlchemy or Celery, and nothing here loads torch until a check runs.
"""
