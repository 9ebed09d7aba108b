"""A key's quota of work not yet done (verifier/service/admission.py): a job that would take its
key past ``max_queued_cost_units_per_key`` is refused with a 429 and Retry-After, nothing
stored; the quota frees as the key's checks finish; another key, and callers without keys,
are not held by it.

The quota is set from the stored estimate of one job, so the claims are about the bound, not
about the cost model's numbers (docs/admission.md has those).
"""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from verifier.config import Settings
from verifier.errors import RateLimitedError
from verifier.service import jobs
from verifier.service.schemas import CheckIn, JobIn
from verifier.store import keys
from verifier.store.models import Check, CheckStatus, Job

JOB = JobIn(checks=[CheckIn(expression="sin(x)*exp(y)", points=[{"x": 1, "y": 2}] * 50)])


def _units_of_one_job(session: Session, settings: Settings) -> int:
    job = jobs.submit_job(session, JOB, settings)  # keys off: no quota
    units = [check.cost_units for check in job.checks]
    assert all(unit is not None and unit > 0 for unit in units)
    return sum(unit for unit in units if unit is not None)


def _key(session: Session, name: str) -> uuid.UUID:
    key, _ = keys.create_key(session, name)
    return key.id


def _jobs_of(session: Session, key: uuid.UUID) -> int:
    query = select(func.count()).select_from(Job).where(Job.api_key_id == key)
    return int(session.scalar(query) or 0)


def test_a_job_past_the_keys_quota_is_a_429_and_frees_as_its_checks_finish(
    session: Session, settings: Settings
) -> None:
    units = _units_of_one_job(session, settings)
    quota = settings.model_copy(update={"max_queued_cost_units_per_key": 2 * units})
    alice, bob = _key(session, "alice"), _key(session, "bob")
    first = jobs.submit_job(session, JOB, quota, alice)
    jobs.submit_job(session, JOB, quota, alice)  # exactly at the quota: accepted
    with pytest.raises(RateLimitedError, match="above its quota") as refused:
        jobs.submit_job(session, JOB, quota, alice)
    assert refused.value.retry_after_s >= 1
    assert _jobs_of(session, alice) == 2  # the refused job was not stored
    jobs.submit_job(session, JOB, quota, bob)  # another key is not held by alice's work
    session.execute(update(Check).where(Check.job_id == first.id).values(status=CheckStatus.DONE))
    jobs.submit_job(session, JOB, quota, alice)  # the first job's checks are done
    assert _jobs_of(session, alice) == 3


def test_without_keys_there_is_no_quota(session: Session, settings: Settings) -> None:
    units = _units_of_one_job(session, settings)
    quota = settings.model_copy(update={"max_queued_cost_units_per_key": units})
    for _ in range(3):
        jobs.submit_job(session, JOB, quota)  # the control: well past the quota, no key
