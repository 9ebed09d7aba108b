"""Facts several parts of the service need are kept once; each pair here is one fact read from
its source and from where it is used, so the two cannot drift."""

from __future__ import annotations

from typing import get_args

import pytest
from pydantic import ValidationError

from verifier.api import create_app
from verifier.config import DEFAULT_CLAIM_LEASE_S, MAX_PAGE_SIZE, Settings
from verifier.core.exact.sandbox import DEFAULT_SYMBOLIC_TIMEOUT_S
from verifier.core.expression.cost import DEFAULT_MAX_CHECK_COST_UNITS, DEFAULT_MAX_JOB_COST_UNITS
from verifier.core.floats.dtypes import DEVICES, DTYPES, get_dtype
from verifier.core.floats.points import MAX_POINTS_PER_CHECK, SERVICE_POINTS_PER_CHECK, round_value
from verifier.core.options import CheckOptions
from verifier.delivery.sender import InMemorySender
from verifier.errors import InputError, JobRejectedError
from verifier.service.schemas import CheckIn, Device, Dtype, JobIn
from verifier.service.submission import validate_job


def test_settings_defaults_are_the_cores_constants() -> None:
    settings = Settings()
    assert settings.max_points_per_check == SERVICE_POINTS_PER_CHECK <= MAX_POINTS_PER_CHECK
    assert settings.max_samples_per_check == SERVICE_POINTS_PER_CHECK
    assert settings.symbolic_timeout_s == DEFAULT_SYMBOLIC_TIMEOUT_S
    assert settings.max_check_cost_units == DEFAULT_MAX_CHECK_COST_UNITS
    assert settings.max_job_cost_units == DEFAULT_MAX_JOB_COST_UNITS
    assert settings.claim_lease_s == DEFAULT_CLAIM_LEASE_S
    assert settings.max_page_size == MAX_PAGE_SIZE
    assert CheckOptions().symbolic_timeout_s == DEFAULT_SYMBOLIC_TIMEOUT_S


@pytest.mark.parametrize(
    ("field", "limit"),
    [
        ("max_points_per_check", MAX_POINTS_PER_CHECK),
        ("max_samples_per_check", MAX_POINTS_PER_CHECK),
        ("max_page_size", MAX_PAGE_SIZE),
    ],
)
def test_settings_may_not_go_past_a_core_limit(field: str, limit: int) -> None:
    assert getattr(Settings(**{field: limit}), field) == limit
    assert getattr(Settings(**{field: 1}), field) == 1
    with pytest.raises(ValidationError):
        Settings(**{field: limit + 1})


def test_the_schemas_dtypes_and_devices_are_the_cores_tables() -> None:
    assert get_args(Dtype) == tuple(DTYPES)
    assert get_args(Device) == DEVICES
    schema = create_app(Settings(), InMemorySender()).openapi()["components"]["schemas"]
    properties = schema["CheckIn"]["properties"]
    assert properties["dtype"]["enum"] == list(DTYPES)
    assert properties["device"]["enum"] == list(DEVICES)


def test_the_reports_page_limit_is_the_settings_bound() -> None:
    app = create_app(Settings(), InMemorySender())
    parameters = app.openapi()["paths"]["/reports"]["get"]["parameters"]
    (limit,) = [parameter for parameter in parameters if parameter["name"] == "limit"]
    assert limit["schema"]["maximum"] == MAX_PAGE_SIZE


NUMBER_TEXTS = [
    "1.5",
    "-0.25",
    "1e-500",
    "1e308",
    "1e309",
    "0." + "0" * 150 + "1",
    "1" + "0" * 99,
    ".5",
    "5.",
    "0x10",
    "1_000",
    "inf",
    "nan",
    " 1",
    "1e+0400",
    "١",
]


@pytest.mark.parametrize("text", NUMBER_TEXTS)
@pytest.mark.parametrize("dtype", ["float64", "float16"])
def test_submission_accepts_a_point_exactly_when_the_core_does(text: str, dtype: str) -> None:
    try:
        round_value(text, get_dtype(dtype), where="x")
        core_accepts = True
    except InputError:
        core_accepts = False
    request = JobIn(checks=[CheckIn(expression="x", points=[{"x": text}], dtype=dtype)])
    try:
        validate_job(request, Settings())
        submission_accepts = True
    except JobRejectedError:
        submission_accepts = False
    assert submission_accepts == core_accepts
