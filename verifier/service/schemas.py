"""The HTTP API's request and response bodies (pydantic); ORM models live in ``models``.

Verdict names come from the verdict table (verifier/core/judge/verdict.py): ``VerdictName`` is its
``Verdict`` enum, read through the table's own parser, so an unknown name is refused naming
the name and the choices, in a request body as in a query string.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field

from verifier.core.floats.dtypes import DEVICES, DTYPES
from verifier.core.floats.points import (
    MAX_DECIMAL_EXPONENT,
    MAX_NUMBER_CHARS,
    SERVICE_POINTS_PER_CHECK,
)
from verifier.core.judge.verdict import Verdict, parse_verdict
from verifier.core.options import GIVEN_ONLY, MAX_SEED, STORED_OPTIONS, CheckOptions
from verifier.core.program.modes import MODES
from verifier.store.models import MAX_LABEL_CHARS, CheckStatus, JobStatus

PRINTABLE_TEXT = r"^[^\x00-\x1f\x7f]*$"
"""No control characters (NUL cannot even be stored by PostgreSQL)."""
if TYPE_CHECKING:
    Dtype = str
    Device = str
else:  # the core's tables, as enums of the API's schema
    Dtype = Literal[tuple(DTYPES)]
    Device = Literal[DEVICES]
GroupBy = Literal["function", "dtype", "device", "verdict"]


def utf8_text(text: str) -> str:
    """``text`` when UTF-8 can encode it; a lone surrogate (half of a UTF-16 pair, which a
    JSON escape can carry) is refused, naming where it is."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as error:
        raise ValueError(
            f"not text: a lone surrogate (half of a UTF-16 pair) at character {error.start}"
        ) from None
    return text


def _verdict(value: Any) -> Verdict:
    return parse_verdict(utf8_text(value) if isinstance(value, str) else value)


Text = Annotated[str, AfterValidator(utf8_text)]
"""A string that is text: every text field of a request is one."""
VerdictName = Annotated[Verdict, BeforeValidator(_verdict)]


class CheckIn(BaseModel):
    """One check as submitted: an expression, its points (or sampling) and options."""

    model_config = ConfigDict(extra="forbid")

    expression: Text = Field(description="SymPy syntax, e.g. 3*x**2 + 2*x*y + y**2")
    points: list[dict[Text, float | Text]] | None = Field(
        default=None,
        description="one object per point: variable -> number or decimal text (plain decimal "
        f"digits, at most {MAX_NUMBER_CHARS} characters, decimal exponent within "
        f"±{MAX_DECIMAL_EXPONENT}); each value must be finite in the check's dtype",
    )
    dtype: Dtype = "float64"
    device: Device = "auto"
    nodes: bool = Field(default=False, description="also check gradients of inner nodes")
    hessian: bool = True
    samples: int | None = Field(
        default=None,
        ge=1,
        description="random points to add; given and sampled points together at most the "
        f"service's max_points_per_check ({SERVICE_POINTS_PER_CHECK} by default)",
    )
    domain: dict[Text, tuple[float, float]] | None = Field(
        default=None, description="variable -> [low, high] for sampled points"
    )
    seed: int = Field(default=0, ge=0, le=MAX_SEED)
    rtol: float | None = Field(
        default=None,
        ge=0,
        allow_inf_nan=False,
        description="relative tolerance, from 0 to below 1 (default: the dtype's, a number of "
        "ulps times its epsilon)",
    )
    rtol_ulps: float | None = Field(
        default=None,
        strict=True,
        description="the relative tolerance in units in the last place of the dtype at 1.0, "
        "instead of rtol: 64 in float32 is rtol 64 * 2**-23; stored as that rtol",
    )
    atol: float | None = Field(default=None, ge=0, allow_inf_nan=False)
    strict: bool = Field(
        default=False,
        description="fail on every verdict but pass and domain (adds to fail_on when both given)",
    )
    fail_on: list[VerdictName] | None = Field(
        default=None,
        description="verdicts that make the check fail (default: fail and nonfinite); decides "
        "'passed', never a verdict",
    )
    compare_devices: bool | list[Text] | None = Field(
        default=None,
        description="also run autograd on a second device, both judged against the same exact "
        "values: true compares cuda (the report's device) with cpu, or give the two devices, "
        'the report\'s first, e.g. ["cuda", "cpu"]; a check naming cuda runs on a GPU worker',
    )

    modes: Text | list[Text] | None = Field(
        default=None,
        max_length=len(MODES) + 1,
        description="the derivative paths to judge: 'all', or names such as autograd:forward, "
        "func:forward-over-reverse (default: autograd:reverse and "
        "autograd:reverse-over-reverse, which always run)",
    )

    compare_batch: bool = Field(
        default=False,
        description="also compute the default paths one point at a time and judge them the "
        "same way: torch's vectorised and scalar kernels can round differently",
    )

    def option_fields(self) -> dict[str, Any]:
        """The check's options by name, as given (:data:`STORED_OPTIONS` and the
        :data:`GIVEN_ONLY` ones that resolve into them)."""
        return {name: getattr(self, name) for name in (*STORED_OPTIONS, *GIVEN_ONLY)}

    def options(self) -> CheckOptions:
        """The check's options, validated and resolved as the worker resolves them
        (OptionError names a bad one)."""
        return CheckOptions.of(**self.option_fields())


class JobIn(BaseModel):
    """A submission: one or many checks, with an optional label."""

    model_config = ConfigDict(extra="forbid")

    checks: list[CheckIn] = Field(min_length=1)
    label: Text | None = Field(default=None, max_length=MAX_LABEL_CHARS, pattern=PRINTABLE_TEXT)


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
    verdict: str | None = Field(description="the worst verdict of the job's checks")
    passed: bool | None = Field(
        description="whether every check passed its fail_on (none ran into error); null until "
        "the job is finished"
    )
    progress: Progress
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    waiting: str | None = Field(
        default=None,
        description="what the job's queued checks wait for, when no worker serves their "
        'queue: "waiting: no worker serves the gpu queue"; null otherwise',
    )


class JobPage(BaseModel):
    """One page of the caller's jobs, newest first; pass ``next_cursor`` back as ``cursor``."""

    items: list[JobOut]
    next_cursor: str | None


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
        "'check' id and 'index' in the job; 'fail_on', 'passed', 'counts' and 'blamed' are the "
        "check's, also for reports stored before they existed"
    )
    pending: list[PendingCheck]


EntrySelection = Literal["all", "failing", "none"]
"""Which entries each check of a job report page carries."""


class JobReportPage(JobReport):
    """One page of a job's report: its checks from where ``cursor`` pointed, in submission
    order; pass ``next_cursor`` back as ``cursor`` for the rest."""

    entries: EntrySelection = Field(
        description="which entries each check carries: all, failing (verdict not pass) or "
        "none (the check has no 'entries' then)"
    )
    next_cursor: str | None = Field(
        description="where the next page starts (null: this page ends the report); a check "
        "whose entries continue there comes again with the entries that follow"
    )


class Worst(BaseModel):
    """The largest errors over a report's entries that did not pass (over all entries in
    reports stored before ``ratio`` existed, which have no ratio)."""

    ratio: float | None = Field(description="error / allowed error; a pass is at most 1")
    abs_error: float | None
    rel_error: float | None
    ulp_error: float | None


class Blamed(BaseModel):
    """A node that entries of a report blame, with their verdict, phase and number."""

    verdict: str
    node: str | None
    phase: str | None = Field(description="forward, first backward or second backward")
    entries: int


class ReportItem(BaseModel):
    """One report in a listing."""

    id: int
    check: uuid.UUID
    job: uuid.UUID
    index: int
    expression: str
    verdict: str
    reason: str | None
    passed: bool = Field(description="whether no entry has a verdict of the check's fail_on")
    counts: dict[str, int] = Field(description="entries per verdict")
    blamed: list[Blamed]
    dtype: str
    device: str
    compared_device: str | None = Field(
        default=None, description="the second device of a check compared across devices"
    )
    compared_verdict: str | None = Field(
        default=None, description="the second device's verdict (null without a comparison)"
    )
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
    """Whether the database and the broker answer, and how many workers serve each queue."""

    status: Literal["ok", "unavailable"]
    database: str
    broker: str
    workers: dict[str, int | None] = {}
    """Workers that announced each queue within ``queue_served_window_s``; None where the broker
    cannot tell. 0 does not make the API unhealthy: nothing will run that queue's checks."""


class Problem(BaseModel):
    """One thing wrong with a request, in FastAPI's validation-error shape."""

    loc: list[str | int]
    msg: str
    type: str
    position: int | None = None
