"""The HTTP API's request and response bodies (pydantic); ORM models live in ``models``."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from verifier.models import MAX_LABEL_CHARS, CheckStatus, JobStatus

Dtype = Literal["float64", "float32", "float16", "bfloat16"]
MAX_SEED = 2**31 - 1
"""Seeds are stored in a 32-bit integer column."""
PRINTABLE_TEXT = r"^[^\x00-\x1f\x7f]*$"
"""No control characters (NUL cannot even be stored by PostgreSQL)."""
Device = Literal["auto", "cpu", "cuda"]
GroupBy = Literal["function", "dtype", "device", "verdict"]


class CheckIn(BaseModel):
    """One check as submitted: an expression, its points (or sampling) and options."""

    model_config = ConfigDict(extra="forbid")

    expression: str = Field(description="SymPy syntax, e.g. 3*x**2 + 2*x*y + y**2")
    points: list[dict[str, float | str]] | None = Field(
        default=None, description="one object per point: variable -> number or decimal text"
    )
    dtype: Dtype = "float64"
    device: Device = "auto"
    nodes: bool = Field(default=False, description="also check gradients of inner nodes")
    hessian: bool = True
    samples: int | None = Field(default=None, ge=1, description="random points to add")
    domain: dict[str, tuple[float, float]] | None = Field(
        default=None, description="variable -> [low, high] for sampled points"
    )
    seed: int = Field(default=0, ge=0, le=MAX_SEED)
    rtol: float | None = Field(default=None, ge=0, allow_inf_nan=False)
    atol: float | None = Field(default=None, ge=0, allow_inf_nan=False)
    strict: bool = Field(default=False, description="count undefined derivatives as failures")


class JobIn(BaseModel):
    """A submission: one or many checks, with an optional label."""

    model_config = ConfigDict(extra="forbid")

    checks: list[CheckIn] = Field(min_length=1)
    label: str | None = Field(default=None, max_length=MAX_LABEL_CHARS, pattern=PRINTABLE_TEXT)


class JobAccepted(BaseModel):
    """The answer to a submission: where to follow the job."""

    id: uuid.UUID
    status: JobStatus


class Progress(BaseModel):
    """How many of a job's checks have a report."""

    done: int
    total: int


class JobOut(BaseModel):
    """A job's state."""

    id: uuid.UUID
    label: str | None
    status: JobStatus
    verdict: str | None
    progress: Progress
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None


class PendingCheck(BaseModel):
    """A check of a job that has no report yet."""

    check: uuid.UUID
    index: int
    expression: str
    status: CheckStatus


class JobReport(BaseModel):
    """A job and the reports of its checks, in submission order, in the core's format."""

    job: JobOut
    checks: list[dict[str, Any]] = Field(
        description="one report per finished check (docs/report-format.md) plus its "
        "'check' id and 'index' in the job"
    )
    pending: list[PendingCheck]


class Worst(BaseModel):
    """The largest errors over a report's entries."""

    abs_error: float | None
    rel_error: float | None
    ulp_error: float | None


class ReportItem(BaseModel):
    """One report in a listing."""

    id: int
    check: uuid.UUID
    job: uuid.UUID
    index: int
    expression: str
    verdict: str
    reason: str | None
    dtype: str
    device: str
    functions: list[str]
    worst: Worst
    created_at: datetime


class ReportPage(BaseModel):
    """One page of reports, newest first; pass ``next_cursor`` back as ``cursor``."""

    items: list[ReportItem]
    next_cursor: str | None


class StatsGroup(BaseModel):
    """Counts by verdict within one group."""

    key: str | None
    counts: dict[str, int]
    total: int


class Stats(BaseModel):
    """Counts of reports by verdict, overall and per group."""

    group_by: GroupBy | None
    counts: dict[str, int]
    total: int
    groups: list[StatsGroup]


class Health(BaseModel):
    """Whether the database and the broker answer."""

    status: Literal["ok", "unavailable"]
    database: str
    broker: str


class Problem(BaseModel):
    """One thing wrong with a request, in FastAPI's validation-error shape."""

    loc: list[str | int]
    msg: str
    type: str
    position: int | None = None
