"""``/jobs``: submit a job, follow it, read its report."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Header, Response, status

from verifier.api.deps import SenderDep, SessionDep, SettingsDep
from verifier.api.parsing import ParserDep
from verifier.api.ratelimit import CallerDep
from verifier.api.responses import ACCESS_RESPONSES
from verifier.delivery.sender import send_checks
from verifier.service import jobs as job_cases
from verifier.service.schemas import JobAccepted, JobIn, JobOut
from verifier.store.models import MAX_IDEMPOTENCY_KEY_CHARS

router = APIRouter(prefix="/jobs", tags=["jobs"], responses=ACCESS_RESPONSES)

NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"description": "no such job (or it belongs to another key)"}
}
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
def create_job(
    body: JobIn,
    response: Response,
    caller: CallerDep,
    session: SessionDep,
    settings: SettingsDep,
    sender: SenderDep,
    parse: ParserDep,
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
    submission = job_cases.submit(
        session,
        body,
        settings,
        api_key_id=caller.key_id,
        idempotency_key=idempotency_key,
        parse=parse,
    )
    job = submission.job
    if submission.replayed:
        send_checks(session, sender, list(job_cases.unsent_checks(session, job)))
        response.status_code = status.HTTP_200_OK
        response.headers[IDEMPOTENT_REPLAYED_HEADER] = "true"
    else:
        send_checks(session, sender, list(job.checks))
    response.headers["Location"] = f"/jobs/{job.id}"
    return JobAccepted(id=job.id, status=job.status)


@router.get("/{job_id}", response_model=JobOut, responses=NOT_FOUND)
def read_job(
    job_id: uuid.UUID, caller: CallerDep, session: SessionDep, settings: SettingsDep
) -> JobOut:
    """The job's status, verdict and progress, and what its queued checks wait for."""
    return job_cases.job_status(session, job_id, caller.key_id, settings)
