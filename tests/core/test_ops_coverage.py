"""Coverage of torch's operator database, parameters refused at parse time, a CI-sized survey.

The universe is read from torch's own OpInfo database at run time: every unary and binary
elementwise operation (``UnaryUfuncInfo``, ``BinaryUfuncInfo``) that supports autograd on real
floating point. Each is either covered by a row of ``verifier.core.ops.OPERATIONS`` or listed in
``LEFT_OUT`` with the reason.
"""

from __future__ import annotations

import math

import pytest
import torch

from verifier.core.expression.parse import parse_expression
from verifier.core.ops import LEFT_OUT, OPERATIONS, covered_opinfo_names
from verifier.core.survey import markdown, run_survey, sample_points
from verifier.errors import ArityError, ExpressionError

MIN_COVERED_OPERATIONS = 80


def opinfo_universe() -> set[str]:
    """Names of OpInfo's differentiable real elementwise operations (torch 2.13: 121)."""
    from torch.testing._internal.common_methods_invocations import (
        BinaryUfuncInfo,
        UnaryUfuncInfo,
        op_db,
    )

    return {
        op.name
        for op in op_db
        if isinstance(op, UnaryUfuncInfo | BinaryUfuncInfo)
        and op.supports_autograd
        and torch.float64 in op.supported_dtypes("cpu")
    }


def test_every_opinfo_operation_is_covered_or_left_out_with_a_reason(
    capsys: pytest.CaptureFixture[str],
) -> None:
    universe = opinfo_universe()
    covered = covered_opinfo_names() & universe
    with capsys.disabled():
        print(f"\nOpInfo coverage: {len(covered)} / {len(universe)} covered")
    assert universe - covered - set(LEFT_OUT) == set()
    assert len(covered) >= MIN_COVERED_OPERATIONS
    assert not covered & set(LEFT_OUT)


def test_every_row_names_an_operation_torch_knows() -> None:
    from torch.testing._internal.common_methods_invocations import op_db

    known = {op.name for op in op_db}
    assert covered_opinfo_names() <= known


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("polygamma(-1, x)", "'n' (argument 1) must be an integer from 0 to 100, got -1"),
        ("polygamma(1.5, x)", "'n' (argument 1) must be an integer from 0 to 100, got 1.5"),
        ("mvlgamma(x, -2)", "'p' (argument 2) must be an integer from 1 to 100, got -2"),
        ("mvlgamma(x, 0)", "'p' (argument 2) must be an integer from 1 to 100"),
        ("celu(x, 0)", "'alpha' (argument 2) must be a non-zero number"),
        ("softplus(x, 0)", "'beta' (argument 2) must be a non-zero number"),
        ("softshrink(x, -0.5)", "'lambd' (argument 2) must be a number >= 0"),
        ("softplus(x, y)", "'beta' (argument 2) must be a number literal"),
        ("hardtanh(x, 2, 1)", "hardtanh() needs min_val <= max_val"),
        ("round(x, 0.5)", "'decimals' (argument 2) must be an integer"),
    ],
)
def test_parameters_outside_torchs_domain_are_refused_by_name(text: str, message: str) -> None:
    with pytest.raises(ExpressionError, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse_expression(text)


def test_a_refused_parameter_names_its_position_in_the_expression() -> None:
    with pytest.raises(ExpressionError) as raised:
        parse_expression("x + polygamma(-1, x)")
    assert raised.value.position == 14  # the "-" of -1


def test_too_many_or_too_few_arguments_are_an_arity_error() -> None:
    with pytest.raises(ArityError, match=r"softplus\(\) takes 1 to 3"):
        parse_expression("softplus(x, 1, 20, 3)")
    with pytest.raises(ArityError, match=r"polygamma\(\) takes 2"):
        parse_expression("polygamma(x)")


def test_omitted_parameters_take_torchs_defaults() -> None:
    # torch.nn.functional.softplus(input, beta=1.0, threshold=20.0) (torch documentation).
    assert parse_expression("softplus(x)").expr.args[1:] == (1, 20)
    assert parse_expression("hardtanh(x)").expr.args[1:] == (-1, 1)


def test_sampled_points_reach_tiny_and_large_magnitudes() -> None:
    points = sample_points({"x": (-1e10, 1e10)}, 400, seed=1)
    magnitudes = [abs(p["x"]) for p in points if p["x"] != 0]
    assert min(magnitudes) < 1e-100 and max(magnitudes) > 1e8
    assert all(-1e10 <= p["x"] <= 1e10 for p in points)


def test_a_ci_sized_survey_runs_every_operation_in_float64() -> None:
    findings = run_survey(OPERATIONS, ["float64"], points=1, workers=1, region_points=1)
    assert len(findings) == len(OPERATIONS)
    errors = {f.operation: f.error or "" for f in findings if f.error is not None}
    # torch has no double backward for hardsigmoid; a gradient-only check no longer asks
    # for second local derivatives, so every row runs.
    assert set(errors) == set()
    assert all(sum(f.counts.values()) > 0 for f in findings if f.error is None)
    table = markdown(findings, {"command": "test"})
    assert table.count("| `") == len(OPERATIONS)


def test_the_survey_finds_tanhs_known_cancellation_at_10() -> None:
    # docs/functions.md: torch's tanh backward 1 - tanh(u)**2 has relative error 9e-9 at 10
    # (exact 8.244614455767395e-09, mpmath); far beyond float64's tolerance.
    [tanh] = [op for op in OPERATIONS if op.name == "tanh"]
    [finding] = run_survey([tanh], ["float64"], points=1, workers=1, region_points=3)
    assert finding.counts.get("fail", 0) >= 1
    assert finding.worst_ratio is not None and math.isfinite(finding.worst_ratio)
    # Its worst entry is ranked by ulps, which error/allowed (capped at 1/tolerance for an
    # autograd 0) cannot do: 0 against 8.2e-9 is more than 2**52 ulps.
    assert finding.worst_ulps is not None and finding.worst_ulps > 2.0**52


def test_a_survey_row_says_its_device_and_the_table_shows_it() -> None:
    [tanh] = [op for op in OPERATIONS if op.name == "tanh"]
    [finding] = run_survey(
        [tanh], ["float64"], points=1, workers=1, devices=["cpu"], region_points=3
    )
    assert finding.device == "cpu"
    table = markdown([finding], {"command": "test", "device": "cpu"})
    assert "| operation | dtype | device | pass |" in table
    assert f"| `{tanh.expression}` | float64 | cpu | " in table
    assert f"- `{tanh.expression}` in float64 on cpu: " in table  # its failure, listed first
