"""The mathematics: parse, symbolic derivatives, torch translation, autograd, reference, compare.

Imports no FastAPI, SQLAlchemy or Celery, and nothing here loads torch until a check runs.
"""
