"""Verdicts and blame that hold up under an independent audit: one reproducer per rule.

Each test checks one expression at one float point end to end and asserts the claim (verdict,
blamed operation, phase), not torch's bits. Exact values are mpmath at 50 digits at exactly
the dtype-rounded input (``mpmath.mpf`` of a float is exact); float64's largest finite number
is 1.797e308, its smallest normal 2**-1022 = 2.2e-308 and its smallest subnormal 2**-1074 =
4.9e-324 (IEEE 754 binary64).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import mpmath
import numpy as np
import pytest
import torch

from verifier import check, register_function
from verifier.core.expression import registry
from verifier.core.judge.report import Entry, Report

mpmath.mp.dps = 50


def entry(report: Report, kind: str, wrt: tuple[str, ...]) -> Entry:
    (found,) = [e for e in report.entries if e.kind == kind and e.wrt == wrt]
    return found


def claim(found: Entry) -> tuple[str, str | None, str | None]:
    return found.verdict, found.blame, found.phase


def test_an_overflow_in_a_node_without_the_variable_reaches_its_gradient_as_range() -> None:
    # x*exp(y)/exp(y) at (1, 800): exp(800) = 2.726e347 (mpmath) is beyond float64, so the
    # tensor exp(y) is inf, 1/exp(y) is 0 and x*inf*0 is nan. d/dx is exactly 1, and x's
    # backward through the product reads exp(y): the overflow explains the nan.
    assert mpmath.exp(800) > mpmath.mpf("1.7976931348623157e308")
    report = check("x*exp(y)/exp(y)", {"x": 1.0, "y": 800.0})
    assert claim(entry(report, "gradient", ("x",))) == ("range", "exp(y)", "forward")
    assert report.counts.get("nonfinite", 0) == 0


def test_a_forward_value_its_own_backward_never_reads_is_not_blamed_for_a_gradient() -> None:
    # ndtr(x) at x = -34.0938181856216: torch's value is 0 against 4.554e-255 (mpmath ncdf),
    # but ndtr's backward computes exp(-x**2/2)/sqrt(2*pi) from x alone: exactly
    # 1.5540598382831054500e-253 (mpmath). torch's derivative is off by more than the
    # tolerance (2**-46 relative) at that exact input: rounding x*x = 1162 (half an ulp,
    # 2**-43) alone moves exp(-x*x/2) by up to 2**-44 relative, four tolerances. The
    # gradient's error is the first backward's own.
    x = -34.0938181856216
    exact = mpmath.exp(-(mpmath.mpf(x) ** 2) / 2) / mpmath.sqrt(2 * mpmath.pi)
    report = check("ndtr(x)", {"x": x})
    found = entry(report, "gradient", ("x",))
    assert found.reference == float(exact)
    assert claim(found) == ("fail", "ndtr(x)", "first backward")


def test_an_overflowing_second_derivative_stays_with_its_own_hessian_element() -> None:
    # x**y at x = 5.689981688051112e-206, y = 0.00018968770343749157 (mpmath):
    # d2/dx2 = y(y-1)x**(y-2) = -5.36e406, beyond float64 (its own entry is range), while
    # d2/dxdy = x**(y-1)(1 + y log x) = 1.4627407772690492546e205 is in range: its error is
    # that of torch's mixed second derivative of pow, judged at the very inputs it received.
    x, y = 5.689981688051112e-206, 0.00018968770343749157
    mx, my = mpmath.mpf(x), mpmath.mpf(y)
    assert abs(my * (my - 1) * mx ** (my - 2)) > mpmath.mpf("1.8e308")
    mixed = mx ** (my - 1) * (1 + my * mpmath.log(mx))
    report = check("x**y", {"x": x, "y": y})
    found = entry(report, "hessian", ("x", "y"))
    assert found.reference == float(mixed)
    if found.verdict != "pass":  # torch's last bits decide whether it is outside at all
        assert claim(found) == ("fail", "x**y", "second backward")


def test_an_underflow_below_the_subnormals_is_range_on_the_operation_that_underflowed() -> None:
    # 1/exp(y) at y = 400: d/dy = -exp(-400) = -1.915e-174 (mpmath), in range, but the pow's
    # backward computes -exp(y)**-2 = -exp(-800) = -3.668e-348 (mpmath), below float64's
    # smallest subnormal 4.9e-324: it is 0, and so is autograd's gradient. The exact local
    # value keeps its exponent, so the underflow is seen.
    assert mpmath.exp(-800) < mpmath.mpf(2) ** -1074
    report = check("1/exp(y)", {"y": 400.0})
    found = entry(report, "gradient", ("y",))
    assert found.reference == float(-mpmath.exp(-400))
    assert found.autograd == 0.0
    assert claim(found) == ("range", "1/exp(y)", "first backward")
    assert "below float64's normal range" in (found.detail or "")


def test_nan_against_a_finite_bound_is_judged_as_nan_and_traced_to_the_overflow() -> None:
    # x*cos(exp(exp(y))) at (1, 9.733): exp(9.733) = 16865.07 (mpmath) > log(float64 max) =
    # 709.78, so exp(exp(y)) is inf and cos(inf) nan. d/dx = cos(exp(exp(y))) lies in [-1, 1]
    # but arb cannot narrow it (the argument needs 24,000 bits before its first digit): nan
    # is wrong for every value of that ball, and the overflow explains it.
    assert mpmath.exp(mpmath.mpf(9.733)) > mpmath.log(mpmath.mpf("1.7976931348623157e308"))
    report = check("x*cos(exp(exp(y)))", {"x": 1.0, "y": 9.733})
    found = entry(report, "gradient", ("x",))
    assert found.reference is None
    assert claim(found) == ("range", "exp(exp(y))", "forward")


def test_the_audit_judges_the_values_the_batch_run_computed_not_a_rerun_on_part_of_it() -> None:
    # fmod(x, y) in bfloat16 at (58.75, -9.8125): d/dy = -trunc(x/y) = -trunc(-5.987) = 5
    # (hand). torch's backward divides in bfloat16, where 58.75/-9.8125 rounds to -6.0 on its
    # vectorised path (a batch of 8) and may not on its scalar path (one point). Whatever the
    # batch gives, an entry that is wrong is blamed on the operation that gave it: the audit
    # takes torch's local derivative on the same whole batch, not on the failing point alone.
    points = [{"x": 1.0 + i, "y": 3.0} for i in range(7)] + [{"x": 58.75, "y": -9.8125}]
    report = check("fmod(x, y)", points, dtype="bfloat16")
    (found,) = [e for e in report.entries if e.point == 7 and e.wrt == ("y",)]
    assert found.reference == 5.0
    if found.autograd != 5.0:
        assert claim(found) == ("fail", "fmod(x, y)", "first backward")
    else:
        assert found.verdict == "pass"


def test_an_overflow_inside_one_torch_formula_is_that_operations_fault() -> None:
    # acosh in float16 at 257.5 (exact in float16): d/dx = 1/sqrt(x**2 - 1) = 0.0038835
    # (mpmath), in range; torch squares x first, 66306.25 > 65504 (float16's largest), and
    # returns 0. The overflow is inside acosh's own formula, not a value of the expression:
    # docs/report-format.md ("Range inside one torch formula") makes that a fail on acosh.
    exact = 1 / mpmath.sqrt(mpmath.mpf(257.5) ** 2 - 1)
    assert 257.5**2 > 65504
    report = check("acosh(x)", {"x": 257.5}, dtype="float16")
    found = entry(report, "gradient", ("x",))
    assert found.reference is not None
    assert abs(found.reference - float(exact)) < 1e-6
    if found.autograd != found.reference:  # torch's kernel decides whether it overflows
        assert claim(found) == ("fail", "acosh(x)", "first backward")


def test_a_local_second_derivative_below_the_normal_range_is_range_on_that_operation() -> None:
    # The DSO corpus's Livermore2-Vars4-15 in float32 at its second sampled point: log's
    # argument A = x3 + x4 + exp(x2**2) - 0.28/x1 = 1.6e22 (mpmath, at the float32 inputs),
    # so log's exact second derivative -1/A**2 = -3.9e-45 is below float32's smallest normal
    # 2**-126 = 1.18e-38 (a subnormal keeps 2 bits here: 1.4e-45 is the smallest). Its product
    # with the incoming gradient x1 (2.76e-44, rounded to a subnormal 1.4 % off) is multiplied
    # by (dA/dx2)**2 = 5.2e46, so d2/dx2**2 = -14.09 comes out wrong; the exact local value is
    # itself out of range (docs/report-format.md, "Range inside one torch formula"): range on
    # log's second backward, and the same for the other elements by x2 that read it.
    point = {
        "x1": -7.044427871704102,
        "x2": 7.150206089019775,
        "x3": -8.279621124267578,
        "x4": 0.3639562129974365,
    }
    m = {name: mpmath.mpf(value) for name, value in point.items()}
    argument = (
        m["x3"] + m["x4"] + mpmath.exp(m["x2"] ** 2) - mpmath.mpf(float(_f32(0.28))) / m["x1"]
    )
    assert 1 / argument**2 < mpmath.mpf(2) ** -126
    expression = "x1 * (x2 + log(x3 + x4 + exp(x2 ** 2) - 0.28 / x1)) - x3 - x4 / (2 * x1 * x3)"
    report = check(expression, point, dtype="float32")
    log = "log(x3 + x4 + exp(x2**2) - 7/(25*x1))"
    for wrt in (("x2", "x2"), ("x2", "x3"), ("x2", "x4")):
        found = entry(report, "hessian", wrt)
        if found.verdict != "pass":  # torch's subnormal rounding decides how far off it is
            assert claim(found) == ("range", log, "second backward")
    assert claim(entry(report, "hessian", ("x2", "x2")))[0] == "range"


def _f32(value: float) -> float:
    """``value`` rounded to float32, as the torch graph holds a literal."""
    return float(np.float32(value))


def test_an_operation_just_over_the_tolerance_at_its_exact_inputs_is_blamed_not_rounding() -> None:
    # logaddexp(x, y) at (-93.97315308954602, 83.85647068032273): d/dx = exp(x)/(exp(x) +
    # exp(y)) = 5.8826861372889124340e-78 (mpmath). torch's backward is the entry itself (the
    # incoming gradient is the seed 1), so whatever the entry's error is, it is logaddexp's
    # own at its exact inputs: it cannot pass the local audit and fail the entry. Judged against
    # the exact value rounded to float64 first, the audit saw an error half an ulp smaller
    # than the entry's and called rounding of the computation (condition factor 1) what was
    # the operation's.
    x, y = -93.97315308954602, 83.85647068032273
    exact = mpmath.exp(x) / (mpmath.exp(x) + mpmath.exp(y))
    report = check("logaddexp(x, y)", {"x": x, "y": y})
    found = entry(report, "gradient", ("x",))
    assert found.reference == float(exact)
    if found.verdict != "pass":  # torch's last bits decide whether it is outside at all
        assert claim(found) == ("fail", "logaddexp(x, y)", "first backward")


def test_an_error_without_a_sum_is_not_blamed_on_cancelling_terms() -> None:
    # x/exp(y**4) at (1, -4.807074230625076): d/dx = exp(-y**4) with y**4 = 533.98 (mpmath).
    # x occurs once, so its gradient is one chain-rule term and nothing cancels; rounding y**4
    # by half an ulp (5.7e-14) moves exp(y**4) by 533.98 times as much relative: the digits
    # are lost at exp(y**4) (its local condition number, |y**4|), not in a sum.
    y = -4.807074230625076
    assert 500 < mpmath.mpf(y) ** 4 < 600
    report = check("x/exp(y**4)", {"x": 1.0, "y": y})
    found = entry(report, "gradient", ("x",))
    assert found.reference == float(mpmath.exp(-(mpmath.mpf(y) ** 4)))
    if found.verdict != "pass":  # torch's last bits decide whether it is outside at all
        assert claim(found) == ("ill-conditioned", "exp(y**4)", "forward")
        assert "cancel" not in (found.detail or "")
        # The condition factor explains the error it names: y**4 is three roundings (half an
        # ulp, 2**-53, each), which exp amplifies 533.98 times: 533.98 * 3 * 2**-53 relative
        # is 12.5 tolerances (2**-46). The float64 shadow's own weight of that rounding
        # underflowed (the division's backward squares exp(533.98) = 1e232), which read 1.01.
        assert found.ratio is not None and found.condition is not None
        assert found.ratio <= found.condition < 100
        assert found.condition > 533.98 * 3 * 2.0**-53 / 2.0**-46


def test_an_infinite_bound_explains_nothing_where_a_range_event_does() -> None:
    # 1/exp(y) at y = 400: d2/dy2 = exp(-400) = 1.915e-174 (mpmath), but pow's backward
    # computes exp(-800) = 3.7e-348, below float64's subnormals, so autograd gives 0, and the
    # float64 shadow that bounds rounding breaks down there too (its bound is infinite). The
    # underflow explains the entry: range, not ill-conditioned with an infinite factor.
    report = check("1/exp(y)", {"y": 400.0})
    found = entry(report, "hessian", ("y", "y"))
    assert found.reference == float(mpmath.exp(-400))
    assert found.autograd == 0.0
    assert claim(found) == ("range", "1/exp(y)", "first backward")


class _SeedOnlySine(torch.autograd.Function):
    """sin whose backward is right for the seed gradient 1 and off for any other: it adds
    (grad - 1) * cos(u) * OFF_SEED, so the local audit (gradient 1 in) measures no error."""

    @staticmethod
    def forward(u: torch.Tensor) -> torch.Tensor:
        return torch.sin(u)

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple[torch.Tensor], output: torch.Tensor) -> None:
        ctx.save_for_backward(inputs[0])

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> torch.Tensor:
        (u,) = ctx.saved_tensors
        return grad * torch.cos(u) + (grad - 1) * torch.cos(u) * OFF_SEED


OFF_SEED = 3 * 2.0**-46
"""Three float64 tolerances (64 ulps at 1.0 is 2**-46 relative)."""


@pytest.fixture
def seed_only_sine() -> Iterator[None]:
    register_function("seedonlysin", _SeedOnlySine.apply, "sin(x)")
    yield
    registry.forget("seedonlysin")


def test_the_bound_grants_an_operation_what_it_measured_not_the_whole_tolerance(
    seed_only_sine: None,
) -> None:
    # d/dx 3*seedonlysin(x) at x = 0.5 is 3 cos(0.5) = 2.6327476856711183 (hand, mpmath).
    # The backward gets gradient 3 and adds 2 cos(0.5) OFF_SEED: an error of 2 * 3 * 2**-46
    # * cos(0.5) against the allowed 2**-46 * 3 cos(0.5), twice the tolerance. One term,
    # nothing cancels (condition factor about 1), and the local audit measures the function's
    # derivative exact at gradient 1: granting it the whole tolerance per chain-rule term (24
    # times it with the bound's safety) called that rounding. Nothing rounding does explains
    # twice the tolerance here: fail.
    report = check("3*seedonlysin(x)", {"x": 0.5})
    found = entry(report, "gradient", ("x",))
    assert found.reference == float(3 * mpmath.cos(mpmath.mpf(0.5)))
    assert found.ratio is not None and 1.5 < found.ratio < 2.5
    assert found.verdict == "fail"
    assert found.condition is not None and found.condition < 2


def test_entries_judged_without_a_diagnosis_beside_points_diagnosed_keep_their_verdicts() -> None:
    # exp(x) + ndtr(y): at (800, 0.5) d/dx is exp(800) = 2.7e347 (mpmath), beyond float64's
    # 1.8e308, so that entry is range as it is compared, without a diagnosis (its exact value is
    # a certified number all the same); at (1, -34.0938181856216) the gradient by y is ndtr's
    # derivative, where torch's formula is off at its exact input (see the ndtr test above):
    # that point alone is audited and bounded, the first keeps its own verdict and factor.
    assert mpmath.exp(800) > mpmath.mpf("1.7976931348623157e308")
    report = check("exp(x) + ndtr(y)", [{"x": 800.0, "y": 0.5}, {"x": 1.0, "y": -34.0938181856216}])
    assert entry_at(report, 0, ("x",)).verdict == "range"
    assert claim(entry_at(report, 1, ("y",))) == ("fail", "ndtr(y)", "first backward")


def entry_at(report: Report, point: int, wrt: tuple[str, ...]) -> Entry:
    (found,) = [
        e for e in report.entries if e.point == point and e.kind == "gradient" and e.wrt == wrt
    ]
    return found


def test_a_gradient_flowing_back_below_float64s_subnormals_is_range_where_it_underflows() -> None:
    # y*log(z*exp(x)) at x = 690, y = z = 1e-200: d/dx = y exactly (log(z e**x) = log z + x).
    # Backward, the gradient reaching z*exp(x) is y/(z e**x) = 2.17e-300 (mpmath), in range,
    # and the one reaching exp(x) is that times z, y e**-x = 2.1717e-500: below 2**-1074, so
    # float64 holds it as 0 and d/dx comes out 0. Every local derivative is in range (1/u =
    # 1e-100, z, e**x = 4.6e299): only the product flowing back underflows, where the shadow
    # saw nothing (the entry was fail, no operation blamed).
    flowing = mpmath.mpf(1e-200) * mpmath.exp(-690)
    assert flowing < mpmath.mpf(2) ** -1074
    report = check("y*log(z*exp(x))", {"x": 690.0, "y": 1e-200, "z": 1e-200}, hessian=False)
    found = entry(report, "gradient", ("x",))
    assert found.reference == 1e-200
    assert claim(found) == ("range", "exp(x)", "first backward")
    assert mpmath.nstr(flowing, 6) in (found.detail or "")
