"""Every verdict, on the examples that motivated it, with the node it blames.

Expected values are hand derivations or mpmath at 50 digits, evaluated at exactly the
dtype-rounded input (``mpmath.mpf`` of the float is exact); never derivcheck's own numbers.
"""

from __future__ import annotations

import math
import struct

import mpmath
import pytest

from verifier import check
from verifier.core.judge.report import Report

mpmath.mp.dps = 50


def float32(text: str) -> float:
    """The float32 nearest ``text`` (struct rounds to nearest even)."""
    return float(struct.unpack("<f", struct.pack("<f", float(text)))[0])


def float16(text: str) -> float:
    return float(struct.unpack("<e", struct.pack("<e", float(text)))[0])


def entry(report: Report, kind: str, wrt: tuple[str, ...] | None = None):  # type: ignore[no-untyped-def]
    (found,) = [e for e in report.entries if e.kind == kind and (wrt is None or e.wrt == wrt)]
    return found


def test_overflow_of_the_exact_value_is_range_not_a_failure_in_float16() -> None:
    # exp(x) at 11.1: float16 holds 11.1015625; exp of it is 66274.6 (mpmath), above float16's
    # largest finite number 65504 (IEEE 754 binary16).
    x = float16("11.1")
    assert x == 11.1015625
    exact = float(mpmath.exp(mpmath.mpf(x)))
    assert exact > 65504
    report = check("exp(x)", at={"x": "11.1"}, dtype="float16")
    for found in report.entries:
        assert found.verdict == "range"
        assert found.reference == pytest.approx(exact, rel=1e-12)
        assert "65504" in (found.detail or "")
    assert report.passed  # range is not a defect of autograd


def test_an_intermediate_overflow_is_range_and_names_the_operation() -> None:
    # x*exp(x)/exp(x) is x: derivative 1, second derivative 0 (hand). In float32, exp(100)
    # = 2.7e43 (mpmath) overflows, so autograd computes inf/inf = nan.
    report = check("x*exp(x)/exp(x)", at={"x": 100}, dtype="float32")
    gradient = entry(report, "gradient")
    assert math.isnan(gradient.autograd)
    # The reference is certified within its radius (docs/report-format.md, reference).
    assert gradient.reference is not None and gradient.reference_radius is not None
    assert abs(gradient.reference - 1.0) <= gradient.reference_radius <= 2.0**-34
    assert (gradient.verdict, gradient.blame, gradient.phase) == ("range", "exp(x)", "forward")


def test_an_underflow_in_the_second_backward_is_range() -> None:
    # log(1 + exp(4x)) has second derivative 16 e^{4x}/(1 + e^{4x})^2 (hand), about 7.7e-30
    # at x = 17.4524. In float32, log's second derivative -1/u**2 with u = e^{4x} = 1.3e30 is
    # 5.8e-61, below float32's normal range; autograd returns 16.
    x = float32("17.4524")
    u = mpmath.exp(4 * mpmath.mpf(x))
    exact = float(16 * u / (1 + u) ** 2)
    report = check("log(1 + exp(4*x))", at={"x": "17.4524"}, dtype="float32")
    hessian = entry(report, "hessian")
    assert hessian.reference == pytest.approx(exact, rel=1e-6)
    assert hessian.autograd == pytest.approx(16, rel=1e-6)
    assert hessian.verdict == "range"
    assert hessian.phase == "second backward"
    assert hessian.blame is not None and hessian.blame.startswith("log(")


@pytest.mark.parametrize(("dtype", "bits"), [("float64", 53), ("float32", 24)])
def test_cancellation_as_written_is_ill_conditioned_at_the_subtraction(
    dtype: str, bits: int
) -> None:
    # d/dx (1 - cos x)/x^2 = (x sin x - 2(1 - cos x))/x^3 (hand), evaluated with mpmath at the
    # dtype value of 0.001. cos(0.001) = 0.9999995, so 1 - cos(x) keeps about 20 fewer bits.
    x = mpmath.mpf(float32("0.001") if dtype == "float32" else 0.001)
    exact = float((x * mpmath.sin(x) - 2 * (1 - mpmath.cos(x))) / x**3)
    report = check("(1 - cos(x))/x**2", at={"x": "0.001"}, dtype=dtype)
    gradient = entry(report, "gradient")
    assert gradient.reference == pytest.approx(exact, rel=1e-12)
    assert gradient.verdict == "ill-conditioned"
    assert (gradient.blame, gradient.phase) == ("1 - cos(x)", "forward")
    assert gradient.ratio is not None and gradient.ratio > 1
    assert gradient.condition is not None and gradient.condition > 1e5
    assert gradient.correct_bits is not None and gradient.correct_bits < bits - 15
    assert "lost at 1 - cos(x)" in (gradient.detail or "")


def test_softplus_hessian_at_20_is_no_longer_a_pass() -> None:
    # d2/dx2 log(1 + e^x) = e^x/(1 + e^x)^2 = 2.0611536e-9 at 20 (hand, mpmath). torch rounds
    # 1 + e^20 and the two terms of the second backward cancel: about 1e8 ulps off.
    exact = float(mpmath.exp(20) / (1 + mpmath.exp(20)) ** 2)
    report = check("log(1 + exp(x))", at={"x": 20})
    hessian = entry(report, "hessian")
    assert hessian.reference == pytest.approx(exact, rel=1e-14)
    assert hessian.verdict == "ill-conditioned"
    assert hessian.ulp_error is not None and hessian.ulp_error > 1e6
    assert entry(report, "gradient").verdict == "pass"


def test_torchs_tanh_backward_at_5_in_float32_fails_and_is_blamed() -> None:
    # tanh'(5) = sech(5)^2 = 1.8158323e-4 (mpmath); torch computes 1 - tanh(5)^2 from the
    # rounded tanh(5) = 0.99990922, losing about 13 bits.
    exact = float(mpmath.sech(5) ** 2)
    report = check("tanh(x)", at={"x": 5}, dtype="float32")
    gradient = entry(report, "gradient")
    assert gradient.reference == pytest.approx(exact, rel=1e-12)
    assert gradient.verdict == "fail"
    assert (gradient.blame, gradient.phase) == ("tanh(x)", "first backward")
    assert (entry(report, "hessian").blame, entry(report, "hessian").phase) == (
        "tanh(x)",
        "second backward",
    )
    assert not report.passed


def test_loggamma_derivative_next_to_digammas_root_fails_in_float32() -> None:
    # d/dx loggamma(x) = digamma(x), whose positive root is 1.4616321449683623 (mpmath.findroot).
    # At the float32 nearest 1.4616321, digamma is -1.2e-8 (mpmath), and torch's float32
    # digamma has the wrong sign.
    x = float32("1.4616321")
    exact = float(mpmath.digamma(mpmath.mpf(x)))
    report = check("loggamma(x)", at={"x": "1.4616321"}, dtype="float32")
    gradient = entry(report, "gradient")
    assert gradient.reference == pytest.approx(exact, rel=1e-12)
    assert exact < 0 < gradient.autograd
    assert gradient.verdict == "fail"
    assert (gradient.blame, gradient.phase) == ("loggamma(x)", "first backward")


@pytest.mark.parametrize("expression", ["Abs(x)*Abs(x)", "Max(x, -x)**2"])
def test_a_kink_rule_applied_to_a_smooth_composite_fails(expression: str) -> None:
    # Both are x**2 (hand), so the second derivative at 0 is 2; torch's rules sign(0) = 0 and
    # a tie's gradient give 0. The derivative exists, so this is not `undefined`.
    report = check(expression, at={"x": 0})
    hessian = entry(report, "hessian")
    assert hessian.reference == 2.0
    assert hessian.autograd == 0.0
    assert hessian.verdict == "fail"
    assert hessian.phase == "first backward"
    assert hessian.blame is not None and hessian.blame.startswith(expression[:3])
    assert entry(report, "gradient").verdict == "pass"


def test_x_to_the_y_at_zero_has_its_derivatives_from_the_real_side() -> None:
    # x**y at (0, 2): d/dx = y x^(y-1) = 0, d/dy = x^y log x -> 0 from x > 0 (hand); the
    # expression is not real left of 0 for non-integer y, so that side does not count.
    report = check("x**y", at={"x": 0, "y": 2})
    assert entry(report, "gradient", ("x",)).verdict == "pass"
    assert entry(report, "gradient", ("y",)).verdict == "pass"
    assert entry(report, "gradient", ("y",)).reference == 0.0
    # d2/dy dx = x^(y-1)(1 + y log x) -> 0 (hand); torch's pow double backward gives nan.
    mixed = entry(report, "hessian", ("y", "x"))
    assert mixed.reference == 0.0
    assert math.isnan(mixed.autograd)
    assert mixed.verdict == "nonfinite"
    assert mixed.blame == "x**y" and mixed.phase == "second backward"


def test_a_literal_is_rounded_like_the_graph_holds_it() -> None:
    # float64(0.7) is 0.6999999999999999555910790149937383830547332763671875, and torch's
    # x - 0.7 subtracts exactly that: at x = float64(0.7), Abs(x - 0.7) sits on its kink.
    report = check("Abs(x - 0.7)", at={"x": "0.7"})
    assert {e.verdict for e in report.entries} == {"undefined"}
    assert report.literals == [{"written": "-7/10", "rounded": -0.7}]
    # In float32 the literal is 13421773/2**27 (IEEE 754 rounding of 1/10), and so is the
    # exact derivative of 0.1*x as the graph computes it.
    report32 = check("x*0.1", at={"x": 1}, dtype="float32")
    assert entry(report32, "gradient").reference == 13421773 / 2**27
    assert entry(report32, "gradient").verdict == "pass"


def test_max_of_x_and_minus_x_squared_is_defined_at_zero() -> None:
    # Only one-sided choices that occur together count: left of 0 both Heavisides of the
    # derivative flip together, so d2/dx2 Max(x, -x)**2 = 2 from both sides (hand).
    report = check("Max(x, -x)**2", at={"x": 0})
    assert "undefined" not in {e.verdict for e in report.entries}


def test_atan2_branch_cut_is_a_jump() -> None:
    # atan2(0, -1) = pi but atan2(-0+, -1) -> -pi: atan2 itself jumps across y = 0 for x < 0,
    # so its first derivatives do not exist there (hand).
    report = check("atan2(y, x)", at={"x": -1, "y": 0})
    assert {e.verdict for e in report.entries} == {"undefined"}
    assert check("atan2(y, x)", at={"x": -1, "y": "0.5"}).verdict == "pass"


def test_an_uncertifiable_reference_is_unverified_and_shows_no_midpoint() -> None:
    # exp(exp(8)) = e^2981 is about 10^1294: reducing sin's argument needs more than the
    # 4096 bits derivcheck allows, so no value is certified.
    report = check("sin(exp(exp(x)))", at={"x": 8})
    for found in report.entries:
        assert found.verdict == "unverified"
        assert found.reference is None
        assert found.detail is not None and "could not be" in found.detail
    assert "unverified" in report.to_dict()["counts"]


def test_no_slack_for_exact_inputs_at_1e22() -> None:
    # sin'(x) = cos(x); at x = 1e22 (exact in float64) cos(1e22) = 0.5232147853951389 (mpmath
    # at 50 digits). The tolerance is 64 ulps of that value, nothing more.
    exact = float(mpmath.cos(mpmath.mpf(10) ** 22))
    report = check("sin(x)", at={"x": "1e22"})
    gradient = entry(report, "gradient")
    assert gradient.reference == pytest.approx(exact, rel=1e-15)
    assert gradient.tolerance is not None
    assert gradient.tolerance <= 64 * 2.0**-52 * abs(exact) + 2.0**-1022
    assert gradient.verdict == "pass" and gradient.ratio is not None and gradient.ratio <= 1


def test_heaviside_node_gradient_runs() -> None:
    # d(Heaviside(x) + x)/d Heaviside(x) = 1 (hand); the node is a where() of constants.
    report = check("Heaviside(x) + x", at={"x": 1}, nodes=True)
    assert report.verdict == "pass", report.reason
    (node,) = [e for e in report.entries if e.kind == "node" and e.node == "Heaviside(x)"]
    assert node.reference == 1.0 and node.autograd == 1.0


def test_summary_counts_and_blamed_operations() -> None:
    report = check("tanh(x)", at=[{"x": 0}, {"x": 5}], dtype="float32")
    data = report.to_dict()
    assert data["counts"] == {"pass": 2, "fail": 2}
    assert data["blamed"] == [
        {"verdict": "fail", "node": "tanh(x)", "phase": "first backward", "entries": 1},
        {"verdict": "fail", "node": "tanh(x)", "phase": "second backward", "entries": 1},
    ]
    assert data["passed"] is False and data["fail_on"] == ["fail", "nonfinite"]


def test_a_backward_only_overflow_in_float16_is_range_in_the_first_backward() -> None:
    # d/dx x**20/1000 = x**19/50 = 479.19 at float16(1.7) = 1.7001953125 (mpmath); the value
    # x**20/1000 = 40.7 fits, but torch's pow backward forms 20*x**19 = 4.8e5 > 65504.
    x = mpmath.mpf(float16("1.7"))
    exact = float(x**19 / 50)
    report = check("x**20/1000", at={"x": "1.7"}, dtype="float16")
    gradient = entry(report, "gradient")
    assert gradient.reference == pytest.approx(exact, rel=1e-12)
    assert gradient.autograd == math.inf
    assert (gradient.verdict, gradient.blame, gradient.phase) == (
        "range",
        "x**20",
        "first backward",
    )


def test_a_silent_overflow_is_range_not_a_pass_or_fail() -> None:
    # d/dx sqrt(x**2) = 1 for x > 0 (hand); at 2e19 in float32, x**2 = 4e38 overflows and
    # autograd returns 0, a finite wrong number.
    report = check("sqrt(x**2)", at={"x": "2e19"}, dtype="float32")
    gradient = entry(report, "gradient")
    assert (gradient.autograd, gradient.reference) == (0.0, 1.0)
    assert (gradient.verdict, gradient.blame, gradient.phase) == ("range", "x**2", "forward")


def test_trigamma_at_its_worst_in_float64_fails_and_blames_digamma() -> None:
    # digamma'(x) = trigamma(x) = 0.99929808119462716480 at x = 1.4269999999999998
    # (mpmath.psi(1, x) at 60 digits); torch's polygamma(1, x) gives 0.9992980816605661,
    # 4.2e6 ulps off, where the function is well-conditioned.
    x = 1.4269999999999998
    exact = float(mpmath.psi(1, mpmath.mpf(x)))
    report = check("digamma(x)", at={"x": x})
    gradient = entry(report, "gradient")
    assert gradient.reference == pytest.approx(exact, rel=1e-15)
    assert gradient.ulp_error is not None and gradient.ulp_error > 1e6
    assert (gradient.verdict, gradient.blame, gradient.phase) == (
        "fail",
        "digamma(x)",
        "first backward",
    )


def test_a_literal_beyond_the_dtype_is_shown_and_its_entries_are_range() -> None:
    # 1e5 is above float16's largest finite number 65504 (IEEE 754 binary16): the graph holds
    # inf, so d/dx 1e5*x = 1e5 (hand) cannot be represented.
    data = check("1e5*x", at={"x": 1}, dtype="float16").to_dict()
    assert data["literals"] == [{"written": "100000", "rounded": "inf"}]
    gradient = [e for e in data["entries"] if e["kind"] == "gradient"][0]
    assert gradient["reference"] == 1e5 and gradient["verdict"] == "range"
