"""``/jobs``: submit a job, list the caller's jobs, follow one, cancel one."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Query, Request, Response, status
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from verifier.api.auth import presented_key
from verifier.api.deps import SessionDep, SettingsDep
from verifier.api.parsing import get_parser
from verifier.api.ratelimit import CallerDep, limited_caller
from verifier.api.responses import ACCESS_RESPONSES
from verifier.config import MAX_PAGE_SIZE
from verifier.delivery.reconciler import lost_checks
from verifier.delivery.sender import Sender, send_checks, send_new_checks
from verifier.service import jobs as job_cases
from verifier.service.schemas import JobAccepted, JobIn, JobOut, JobPage
from verifier.store.models import MAX_IDEMPOTENCY_KEY_CHARS, JobStatus, utc_now

router = APIRouter(prefix="/jobs", tags=["jobs"], responses=ACCESS_RESPONSES)

NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"description": "no such job (or it belongs to another key)"}
}
DEFAULT_PAGE_SIZE = 50
"""Jobs per page of ``GET /jobs`` unless ``limit`` says otherwise."""
MAX_CURSOR_CHARS = 128
MAX_PREFIX_CHARS = 36
"""A whole job id with its hyphens."""
IDEMPOTENT_REPLAYED_HEADER = "Idempotent-Replayed"
IDEMPOTENCY_KEY_DESCRIPTION = (
    f"a key of this submission (1 to {MAX_IDEMPOTENCY_KEY_CHARS} characters of "
    f"{job_cases.IDEMPOTENCY_KEY_CHARACTERS}, bare or quoted): a retry with the same key and "
    f"the same body returns the first job (200, header {IDEMPOTENT_REPLAYED_HEADER}: true) "
    "instead of making a second; with another body it is refused (422). Keys are per API key."
)


@router.post(
    "",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=JobAccepted,
    responses={
        200: {
            "model": JobAccepted,
            "description": "a retry: the job an earlier submission with this Idempotency-Key "
            "made, with its current status",
        },
        413: {"description": "request body too large"},
        503: {
            "description": "the database cannot be reached, the parser is busy, or no worker "
            "serves the gpu queue that the job's CUDA checks need (with Retry-After)"
        },
        422: {
            "description": "a check is invalid (its index, the problem and the position), or "
            "the Idempotency-Key is malformed or was used with another body"
        },
    },
)
async def create_job(
    body: JobIn,
    request: Request,
    response: Response,
    session: SessionDep,
    secret: Annotated[str | None, Depends(presented_key)],
    idempotency_key: Annotated[
        str | None,
        Header(alias=job_cases.IDEMPOTENCY_KEY_HEADER, description=IDEMPOTENCY_KEY_DESCRIPTION),
    ] = None,
) -> JobAccepted:
    """Validate and store a job, then queue its checks; 202 with the job's Location.

    A broker that does not answer delays the checks, not the answer: the job is stored and
    the reconciler publishes its checks later. A retry with the same ``Idempotency-Key``
    answers 200 with the first job and sends the checks that submission left unsent.
    """
    # One hand-off to the thread pool for the whole request: the caller, the parse, one
    # transaction, the sending (docs/performance.md, "POST /jobs").
    accepted, replayed = await run_in_threadpool(
        _create, request, session, body, secret, idempotency_key
    )
    if replayed:
        response.status_code = status.HTTP_200_OK
        response.headers[IDEMPOTENT_REPLAYED_HEADER] = "true"
    response.headers["Location"] = f"/jobs/{accepted.id}"
    return accepted


def _create(
    request: Request,
    session: Session,
    body: JobIn,
    secret: str | None,
    idempotency_key: str | None,
) -> tuple[JobAccepted, bool]:
    state = request.app.state
    sender: Sender = state.sender
    caller = limited_caller(request, session, secret)
    submission = job_cases.submit(
        session,
        body,
        state.settings,
        api_key_id=caller.key_id,
        idempotency_key=idempotency_key,
        parse=get_parser(request, caller),
        sending_at=utc_now(),
    )
    job = submission.job
    if submission.replayed:
        queued = list(job_cases.unsent_checks(session, job))
        send_checks(session, sender, lost_checks(queued, sender) if queued else [])
    else:
        send_new_checks(session, sender, job.checks)
    return JobAccepted(id=job.id, status=job.status), submission.replayed


@router.get("/{job_id}", response_model=JobOut, responses=NOT_FOUND)
def read_job(
    job_id: uuid.UUID, caller: CallerDep, session: SessionDep, settings: SettingsDep
) -> JobOut:
    """The job's status, verdict and progress, and what its queued checks wait for."""
    return job_cases.job_status(session, job_id, caller.key_id, settings)


@router.get("", response_model=JobPage)
def list_jobs(
    caller: CallerDep,
    session: SessionDep,
    settings: SettingsDep,
    status: Annotated[JobStatus | None, Query(description="only jobs with this status")] = None,
    prefix: Annotated[
        str | None,
        Query(
            max_length=MAX_PREFIX_CHARS,
            description=f"only jobs whose id starts with these hex digits (at least "
            f"{job_cases.MIN_PREFIX_DIGITS}; hyphens ignored), to resolve a short id",
        ),
    ] = None,
    cursor: Annotated[
        str | None, Query(max_length=MAX_CURSOR_CHARS, description="next_cursor of a page")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE)] = DEFAULT_PAGE_SIZE,
) -> JobPage:
    """The caller's jobs, newest first, a page at a time."""
    return job_cases.list_jobs(
        session,
        caller.key_id,
        status=status,
        prefix=prefix,
        cursor=cursor,
        limit=min(limit, settings.max_page_size),
    )


@router.delete("/{job_id}", response_model=JobOut, responses=NOT_FOUND)
def cancel_job(
    job_id: uuid.UUID, caller: CallerDep, session: SessionDep, settings: SettingsDep
) -> JobOut:
    """Cancel a job: its queued checks never run, its running checks finish and keep their
    reports, and the job ends ``cancelled``. A finished job is answered as it is (cancelling
    twice is harmless)."""
    return job_cases.cancel_job(session, job_id, caller.key_id, settings)
