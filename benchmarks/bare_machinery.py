"""The bare machinery the service is measured against (benchmarks/service.py): what any
FastAPI + Celery + PostgreSQL service pays per task, with none of derivcheck's own work.

- ``POST /bare`` (a plain FastAPI endpoint, ``def``, as FastAPI's tutorials write one) inserts
  one PostgreSQL row in one transaction and sends ``tasks`` Celery tasks by name through the
  app's producer pool;
- the task ``bare.run`` is empty but for inserting one PostgreSQL row in one transaction;
- the Celery app has the service's delivery choices (late acknowledgement, prefetch 1, no
  result backend, JSON) on the same Redis, and its worker runs the solo pool, one process a
  slot, as derivcheck's workers do.

Started as ``uvicorn bare_machinery:app`` and ``celery --app bare_machinery:celery_app
worker`` with BARE_DATABASE_URL and BARE_BROKER_URL in the environment (this module is run
from benchmarks/, never imported by the service).
"""

from __future__ import annotations

import os
from functools import cache
from typing import Any

from celery import Celery
from fastapi import FastAPI
from pydantic import BaseModel
from sqlalchemy import (
    Column,
    DateTime,
    Engine,
    Integer,
    MetaData,
    Table,
    create_engine,
    func,
    insert,
)

TASK = "bare.run"
QUEUE = "bare"
metadata = MetaData()
bare_jobs = Table(
    "bare_jobs",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("tasks", Integer, nullable=False),
    Column("created_at", DateTime(timezone=True), server_default=func.now()),
)
bare_results = Table(
    "bare_results",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("job_id", Integer, nullable=False),
    Column("created_at", DateTime(timezone=True), server_default=func.now()),
)
_INSERT_JOB = insert(bare_jobs).returning(bare_jobs.c.id)
_INSERT_RESULT = insert(bare_results)


@cache
def engine() -> Engine:
    """The process's engine (made after any fork), a plain pool as SQLAlchemy makes it."""
    return create_engine(os.environ["BARE_DATABASE_URL"])


def create_tables(database_url: str) -> None:
    """Create the two tables (in the caller, before the processes start)."""
    made = create_engine(database_url)
    try:
        metadata.create_all(made)
    finally:
        made.dispose()


def make_celery_app() -> Celery:
    """The Celery app of both sides."""
    celery = Celery("bare", set_as_current=False)
    celery.conf.update(
        broker_url=os.environ.get("BARE_BROKER_URL", "redis://127.0.0.1:6379/14"),
        result_backend=None,
        task_ignore_result=True,
        task_acks_late=True,
        worker_prefetch_multiplier=1,
        task_default_queue=QUEUE,
        task_serializer="json",
        accept_content=["json"],
        worker_hijack_root_logger=False,
        worker_send_task_events=False,
    )
    return celery


celery_app = make_celery_app()


@celery_app.task(name=TASK, ignore_result=True)
def run(job_id: int) -> None:
    """Insert one row: the task's whole work."""
    with engine().begin() as connection:
        connection.execute(_INSERT_RESULT, {"job_id": job_id})


class BareJob(BaseModel):
    """A request: how many tasks to send."""

    tasks: int = 1


app = FastAPI()


@app.post("/bare", status_code=202)
def submit(body: BareJob) -> dict[str, Any]:
    """Insert one row, then send ``tasks`` tasks naming it."""
    with engine().begin() as connection:
        job_id = connection.execute(_INSERT_JOB, {"tasks": body.tasks}).scalar_one()
    with celery_app.producer_or_acquire() as producer:
        for _ in range(body.tasks):
            celery_app.send_task(TASK, args=[job_id], queue=QUEUE, producer=producer)
    return {"id": job_id}


@app.get("/health")
def health() -> dict[str, str]:
    """200 once the app serves."""
    return {"status": "ok"}
