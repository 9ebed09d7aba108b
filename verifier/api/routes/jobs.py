"""``/jobs``: submit a job, follow it, read its report."""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import APIRouter, Response, status

from verifier import service
from verifier.api.deps import SenderDep, SessionDep, SettingsDep
from verifier.schemas import JobAccepted, JobIn, JobOut, JobReport

router = APIRouter(prefix="/jobs", tags=["jobs"])

NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"description": "no such job"}}


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
    session: SessionDep,
    settings: SettingsDep,
    sender: SenderDep,
) -> JobAccepted:
    """Validate and store a job, then queue its checks; 202 with the job's Location."""
    job = service.submit_job(session, body, settings)
    service.send_checks(session, sender, list(job.checks))
    response.headers["Location"] = f"/jobs/{job.id}"
    return JobAccepted(id=job.id, status=job.status)


@router.get("/{job_id}", response_model=JobOut, responses=NOT_FOUND)
def read_job(job_id: uuid.UUID, session: SessionDep) -> JobOut:
    """The job's status, verdict and progress."""
    return service.job_status(session, job_id)


@router.get("/{job_id}/report", response_model=JobReport, responses=NOT_FOUND)
def read_job_report(job_id: uuid.UUID, session: SessionDep) -> JobReport:
    """The job and the report of each finished check, in the core's report format."""
    return service.job_report(session, job_id)
