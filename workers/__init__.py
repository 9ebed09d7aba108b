"""The Celery worker fleet: ``create_celery(settings)`` and the task that runs one check."""

from workers.app import create_celery

__all__ = ["create_celery"]
