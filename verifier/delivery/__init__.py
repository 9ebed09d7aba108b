"""Delivery: the queue seam (``Sender``), its Celery implementation, claim execution in a
worker, and the reconciler (docs/delivery.md)."""
