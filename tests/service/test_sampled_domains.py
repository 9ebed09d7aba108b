"""A sampled domain must be finite in the check's dtype: refused at submission, naming the
variable, as the worker's sampler refuses it (verifier/core/floats/points.py).

Source: IEEE 754 binary16's largest finite number is 65504 (= (2 - 2**-10) * 2**15).
"""

from __future__ import annotations

import pytest

from verifier.config import Settings
from verifier.core.check import check
from verifier.errors import JobRejectedError, OptionError
from verifier.service.schemas import CheckIn, JobIn
from verifier.service.submission import validate_job

BEYOND_FLOAT16 = {"x": (-1e6, 1e6)}
WITHIN_FLOAT16 = {"x": (-65504.0, 65504.0)}


def _job(domain: dict[str, tuple[float, float]], dtype: str) -> JobIn:
    return JobIn(checks=[CheckIn(expression="x**2", dtype=dtype, samples=4, domain=domain, seed=1)])


def test_a_domain_beyond_the_dtype_is_refused_at_submission_naming_the_variable() -> None:
    with pytest.raises(JobRejectedError) as refused:
        validate_job(_job(BEYOND_FLOAT16, "float16"), Settings())
    (problem,) = refused.value.problems
    assert problem["loc"] == ["body", "checks", 0, "domain", "x"]
    assert "float16's largest finite number" in str(problem["msg"])


def test_the_same_domain_is_accepted_in_a_dtype_that_holds_it() -> None:
    assert len(validate_job(_job(BEYOND_FLOAT16, "float32"), Settings())) == 1
    assert len(validate_job(_job(WITHIN_FLOAT16, "float16"), Settings())) == 1


def test_the_core_refuses_it_before_anything_runs() -> None:
    with pytest.raises(OptionError, match="beyond float16's largest finite number"):
        check("x**2", dtype="float16", device="cpu", samples=4, domain=BEYOND_FLOAT16)
