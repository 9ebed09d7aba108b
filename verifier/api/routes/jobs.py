"""``/jobs``: submit a job, follow it, read its report."""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import APIRouter, Response, status

from verifier import service
from verifier.api.deps import SenderDep, SessionDep, SettingsDep
from verifier.api.ratelimit import CallerDep
from verifier.api.responses import ACCESS_RESPONSES
from verifier.schemas import JobAccepted, JobIn, JobOut, JobReport

router = APIRouter(prefix="/jobs", tags=["jobs"], responses=ACCESS_RESPONSES)

NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"description": "no such job (or it belongs to another key)"}
}


@router.post(
    "",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=JobAccepted,
    responses={
        413: {"description": "request body too large"},
        422: {"description": "a check is invalid: its index, the problem and the position"},
    },
)
def create_job(
    body: JobIn,
    response: Response,
    caller: CallerDep,
    session: SessionDep,
    settings: SettingsDep,
    sender: SenderDep,
) -> JobAccepted:
    """Validate and store a job, then queue its checks; 202 with the job's Location.

    A broker that does not answer delays the checks, not the answer: the job is stored and
    the reconciler publishes its checks later.
    """
    job = service.submit_job(session, body, settings, owner=caller.key_id)
    service.send_checks(session, sender, list(job.checks))
    response.headers["Location"] = f"/jobs/{job.id}"
    return JobAccepted(id=job.id, status=job.status)


@router.get("/{job_id}", response_model=JobOut, responses=NOT_FOUND)
def read_job(job_id: uuid.UUID, caller: CallerDep, session: SessionDep) -> JobOut:
    """The job's status, verdict and progress."""
    return service.job_status(session, job_id, caller.key_id)


@router.get("/{job_id}/report", response_model=JobReport, responses=NOT_FOUND)
def read_job_report(job_id: uuid.UUID, caller: CallerDep, session: SessionDep) -> JobReport:
    """The job and the report of each finished check, in the core's report format."""
    return service.job_report(session, job_id, caller.key_id)
