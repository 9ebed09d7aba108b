"""A check's options have one home (verifier/core/options.py): the service's request schema,
the stored check's columns and the CLI carry them by the same names, and a test fails when
one of them gains or loses an option alone."""

from __future__ import annotations

import typer.main

from verifier.cli import check as cli_check
from verifier.core.options import GIVEN_ONLY, STORED_OPTIONS, CheckOptions
from verifier.service.schemas import CheckIn
from verifier.store.models import Check

CHECK_INPUTS = {"expression", "points"}
"""What a check is about, besides its options."""


def test_the_request_schema_carries_the_stored_options_by_name() -> None:
    assert set(CheckIn.model_fields) == CHECK_INPUTS | set(STORED_OPTIONS) | set(GIVEN_ONLY)


def test_the_schemas_defaults_are_the_options_defaults() -> None:
    defaults = CheckOptions().stored()
    for name in STORED_OPTIONS:
        given = CheckIn.model_fields[name].default
        if name in {"fail_on", "compare_devices", "modes"}:
            assert given is None  # None: the default, resolved by CheckOptions.of
        else:
            assert given == defaults[name], name


def test_the_stored_check_has_a_column_per_option() -> None:
    assert set(STORED_OPTIONS) <= set(Check.__table__.columns.keys())


def test_a_request_resolves_to_what_the_worker_rebuilds() -> None:
    request = CheckIn(expression="x", points=[{"x": 1}], dtype="float32", strict=True, rtol=1e-3)
    options = request.options()
    assert CheckOptions.from_stored(options.stored()) == options


def test_the_cli_check_command_takes_every_stored_option() -> None:
    command = typer.main.get_command_from_info(
        typer.models.CommandInfo(callback=cli_check.check),
        pretty_exceptions_short=True,
        rich_markup_mode=None,
    )
    parameters = {parameter.name for parameter in command.params}
    assert set(STORED_OPTIONS) <= parameters
