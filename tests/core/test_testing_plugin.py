"""The pytest plugin on a small user project: pytest runs it, and the failure text is read.

The user's tests check softplus, f = log(1 + exp(x)), f' = sigmoid(x): a correct custom
Function, one whose backward is biased by a relative 1e-6 (which gradcheck's rtol of 1e-3
passes), a Hypothesis test over drawn points, and the fixture in the dtypes a mark chooses.
"""

from __future__ import annotations

import math
import struct

import pytest
from hypothesis import given, settings

from verifier.core.testing import DerivativeMismatch, assert_derivatives, points

pytest_plugins = ["pytester"]

USER_TESTS = """
import pytest
import torch
from hypothesis import given, settings

from verifier.core.testing import assert_derivatives, points

SPEC = "log(1 + exp(x))"


class Softplus(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return torch.nn.functional.softplus(x)

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        return grad * torch.sigmoid(x)


class Biased(Softplus):
    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        return grad * torch.sigmoid(x) * (1 + 1e-6)


def test_correct_softplus():
    assert_derivatives(Softplus.apply, SPEC, samples=10, domain={"x": (-3, 3)}, seed=1)


def test_biased_softplus():
    assert_derivatives(Biased.apply, SPEC, samples=10, domain={"x": (-3, 3)}, seed=7)


@settings(max_examples=5, deadline=None)
@given(points({"x": (-3.0, 3.0)}, "float32"))
def test_correct_softplus_at_drawn_points(point):
    assert_derivatives(Softplus.apply, SPEC, at=point, dtype="float32")


@pytest.mark.derivcheck(dtypes=["float32", "float64"])
def test_fixture_runs_every_marked_dtype(derivcheck):
    reports = derivcheck.assert_derivatives(Softplus.apply, SPEC, at={"x": 0.5})
    assert [r.dtype for r in reports] == ["float32", "float64"]


def test_fixture_takes_the_command_line_dtype(derivcheck):
    reports = derivcheck.assert_derivatives(Softplus.apply, SPEC, at={"x": 0.5})
    assert [r.dtype for r in reports] == ["float16"]
"""


def test_the_plugin_fails_a_biased_backward_with_a_table_and_the_seed(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(test_user=USER_TESTS)
    result = pytester.runpytest_subprocess(
        "-q", "--derivcheck-dtype", "float16", "-p", "no:cacheprovider"
    )
    result.assert_outcomes(passed=4, failed=1)
    text = result.stdout.str()
    assert "test_biased_softplus" in text and "DerivativeMismatch" in text
    assert "sampled points: seed=7 reproduces them" in text
    assert "point" in text and "autograd" in text and "exact" in text and "ulps" in text
    table = [line for line in text.splitlines() if "gradient x" in line]
    assert table and all(" fail" in line for line in table)
    # Ten points drawn, each gradient 1e-6 off, and each Hessian (the biased backward is
    # differentiated too): 20 failing entries, 5 shown.
    assert "20 of 30 entries fail" in text and "... and 15 more" in text


def test_assert_derivatives_returns_the_report_when_it_passes() -> None:
    import torch.nn.functional as F  # noqa: N812

    report = assert_derivatives(F.softplus, "log(1 + exp(x))", at={"x": 0.5})
    assert report.passed and report.counts == {"pass": 3}


def test_a_function_that_cannot_run_fails_with_the_reason() -> None:
    with pytest.raises(DerivativeMismatch, match="could not run: function 'fn"):
        assert_derivatives(lambda x: x.sum(), "x", at=[{"x": 1.0}, {"x": 2.0}])


def _is_float32(value: float) -> bool:
    return float(struct.unpack("<f", struct.pack("<f", value))[0]) == value


@settings(max_examples=50, deadline=None)
@given(points({"x": (-0.1, 0.1), "y": (2.0, 3.0)}, "float32"))
def test_drawn_points_are_inside_the_domain_and_exact_in_the_dtype(point: dict[str, float]) -> None:
    assert set(point) == {"x", "y"}
    assert -0.1 <= point["x"] <= 0.1 and 2.0 <= point["y"] <= 3.0
    assert all(math.isfinite(v) and _is_float32(v) for v in point.values())
