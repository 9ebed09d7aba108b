"""The pytest plugin on a small user project: pytest runs it, and the failure text is read.

The user's tests check softplus, f = log(1 + exp(x)), f' = sigmoid(x): a correct custom
Function, one whose backward is biased by a relative 1e-6 (which gradcheck's rtol of 1e-3
passes), a Hypothesis test over drawn points, and the fixture in the dtypes a mark chooses.
"""

from __future__ import annotations

import math
import re
import struct
from typing import Any

import pytest
from hypothesis import given, settings

from verifier.core.testing import WORST_ROWS, DerivativeMismatch, assert_derivatives, points
from verifier.errors import OptionError

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
    report = derivcheck.assert_derivatives(Softplus.apply, SPEC, at={"x": 0.5})
    assert report.dtype == derivcheck.dtype


def test_fixture_takes_the_command_line_dtype(derivcheck):
    report = derivcheck.assert_derivatives(Softplus.apply, SPEC, at={"x": 0.5})
    assert report.dtype == "float16"
"""


def test_the_plugin_fails_a_biased_backward_with_a_table_and_the_seed(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(test_user=USER_TESTS)
    result = pytester.runpytest_subprocess(
        "-q", "--derivcheck-dtype", "float16", "-p", "no:cacheprovider"
    )
    # The marked test runs once per dtype, each with its own id.
    result.assert_outcomes(passed=5, failed=1)
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


BIASED_TESTS = """
import pytest
import torch

from verifier.core.testing import assert_derivatives


class BiasedSoftplus(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return torch.nn.functional.softplus(x)

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        return grad * torch.sigmoid(x) * (1 + 1e-6)


def test_biased_softplus():
    assert_derivatives(BiasedSoftplus.apply, "log(1 + exp(x))", at={"x": 0.5})


@pytest.mark.derivcheck(dtypes=["float64", "float32"])
def test_biased_softplus_in_two_dtypes(derivcheck):
    derivcheck.assert_derivatives(BiasedSoftplus.apply, "log(1 + exp(x))", at={"x": 0.5})
"""
"""A backward biased by a relative 1e-6: 4.5e9 ulps of float64, under one ulp of float32
(2**-23 = 1.2e-7 is the unit at 1.0, IEEE 754), so float64 fails and float32 passes."""
PLUGIN_SOURCE_LINES = ("def assert_derivatives", "raise DerivativeMismatch", "testing.py:")
"""Lines that only the plugin's own frames would print."""
MAX_FAILURE_LINES = 20
"""Most lines of one failure's section: the test's own lines, the message and its table
(5 table rows at most, WORST_ROWS) and the file line; the plugin's frames printed 45."""


def _failure_sections(text: str) -> dict[str, list[str]]:
    """Each failing test's section of pytest's FAILURES block, by its title."""
    block = text.split("= FAILURES =", 1)[1].split("short test summary info", 1)[0]
    sections: dict[str, list[str]] = {}
    title = ""
    for line in block.splitlines()[1:]:
        heading = re.fullmatch(r"_{3,} (\S+) _{3,}", line)
        if heading:
            title = heading.group(1)
            sections[title] = []
        elif title:
            sections[title].append(line)
    return sections


def test_a_failure_shows_the_users_call_and_the_table_not_the_plugins_source(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(test_user=BIASED_TESTS)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-k", "not two_dtypes")
    result.assert_outcomes(failed=1)
    section = _failure_sections(result.stdout.str())["test_biased_softplus"]
    shown = "\n".join(section)
    assert "assert_derivatives(BiasedSoftplus.apply" in shown  # the user's own line
    assert "DerivativeMismatch" in shown and "gradient x" in shown
    assert [line for line in section if any(s in line for s in PLUGIN_SOURCE_LINES)] == []
    assert len(section) <= MAX_FAILURE_LINES, shown


def test_the_fixture_gives_each_dtype_its_own_test_id_and_runs_them_all(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(test_user=BIASED_TESTS)
    result = pytester.runpytest_subprocess("-v", "-p", "no:cacheprovider", "-k", "two_dtypes")
    # float64 fails first, and float32 still runs, under its own id.
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(
        [
            "*test_biased_softplus_in_two_dtypes?float64? FAILED*",
            "*test_biased_softplus_in_two_dtypes?float32? PASSED*",
        ]
    )


def test_a_dtype_of_the_fixture_that_is_not_a_dtype_is_refused_naming_it(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(
        test_user="""
import pytest

@pytest.mark.derivcheck(dtypes=["float8"])
def test_x(derivcheck):
    pass
"""
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    assert result.ret != 0
    result.stdout.fnmatch_lines(["*unknown dtype 'float8'*"])


def _skewed_softplus() -> Any:
    """softplus whose backward adds 1e-9 * x to sigmoid(x): its gradient is off by 1e-9 * |x|
    and its second derivative by 1e-9, so each entry's error/allowed differs."""
    import torch

    class SkewedSoftplus(torch.autograd.Function):
        @staticmethod
        def forward(ctx: Any, x: Any) -> Any:
            ctx.save_for_backward(x)
            return torch.nn.functional.softplus(x)

        @staticmethod
        def backward(ctx: Any, grad: Any) -> Any:
            (x,) = ctx.saved_tensors
            return grad * (torch.sigmoid(x) + 1e-9 * x)

    return SkewedSoftplus


def _failure_message(**given: Any) -> str:
    with pytest.raises(DerivativeMismatch) as failed:
        assert_derivatives(_skewed_softplus().apply, "log(1 + exp(x))", **given)
    return str(failed.value)


def test_the_failure_table_is_sorted_by_a_column_it_shows_and_shows_the_absolute_error() -> None:
    lines = _failure_message(samples=10, domain={"x": (-3, 3)}, seed=7).splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("point"))
    columns = lines[header].split()
    assert "abs_error" in columns and "err/allowed" in columns
    rows = [line.split() for line in lines[header + 1 :] if line.startswith("x=")]
    assert len(rows) == WORST_ROWS
    # Cells hold no spaces (a point is x=..., an entry kind and wrt are one cell each once the
    # two words are joined): the row's cells from the right line up with the header's.
    at = columns.index("err/allowed") - len(columns)
    shown = [float(row[at]) for row in rows]
    assert shown == sorted(shown, reverse=True) and len(set(shown)) > 1
    # Off by 1e-9 * |x| (|x| <= 3) or by 1e-9, up to the rounding of the sum: every absolute
    # error shown is at most 3e-9 and none is 0.
    absolute = [float(row[columns.index("abs_error") - len(columns)]) for row in rows]
    assert all(0 < value <= 3.01e-9 for value in absolute)


def test_a_custom_function_is_named_by_its_class() -> None:
    message = _failure_message(at={"x": 0.5})
    assert message.startswith("derivcheck: SkewedSoftplus(x) against its spec")
    assert " apply(x)" not in message


def test_rtol_64_is_refused_as_a_relative_tolerance_instead_of_passing_anything() -> None:
    import torch

    # tanh'(9) = 1 - tanh(9)**2 = 6.1e-8 comes from 1 - y*y in torch: 6e4 times float64's
    # default tolerance off (docs/custom-functions.md holds a black box to one operation's
    # accuracy). rtol=64 read as relative would allow 64 times the value itself.
    with pytest.raises(OptionError, match="rtol must be a non-negative number below 1") as refused:
        assert_derivatives(torch.tanh, "tanh(x)", at={"x": 9.0}, rtol=64)
    assert refused.value.option == "rtol"
    # The refusal is its message, raised from the caller's line: pytest shows none of the
    # core's frames (the plugin's own is hidden).
    shown = refused.traceback.filter(refused)
    assert [entry for entry in shown if "verifier" in str(entry.path)] == []
    with pytest.raises(DerivativeMismatch, match="gradient x"):
        assert_derivatives(torch.tanh, "tanh(x)", at={"x": 9.0}, rtol_ulps=64)
