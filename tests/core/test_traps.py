"""The places where a naive comparison gets the verdict wrong.

At a kink, SymPy's derivative and torch agree on a number (sign(0) = 0, Heaviside(0) = 1/2),
so comparing numbers says `pass`; the derivative does not exist there.
"""

from __future__ import annotations

import math

import pytest

from verifier import check
from verifier.errors import OptionError


def verdicts(report, kind: str = "gradient") -> list[str]:  # type: ignore[no-untyped-def]
    return [e.verdict for e in report.entries if e.kind == kind]


def test_abs_at_zero_is_undefined_although_torch_and_sympy_agree_on_zero() -> None:
    report = check("Abs(x)", at={"x": 0})
    (entry,) = [e for e in report.entries if e.kind == "gradient"]
    assert entry.autograd == 0.0  # torch: abs'(0) = 0, and SymPy's sign(0) = 0 as well
    assert entry.verdict == "undefined"
    assert report.verdict == "undefined"


def test_abs_away_from_zero_passes() -> None:
    report = check("Abs(x)", at=[{"x": -1.5}, {"x": 2}])
    assert report.gradient == [[-1.0], [1.0]]  # sign(x) by hand
    assert report.verdict == "pass"


def test_max_at_a_tie_is_undefined_although_both_sides_give_one_half() -> None:
    report = check("Max(x, y)", at={"x": 1, "y": 1})
    assert report.gradient == [[0.5, 0.5]]  # torch splits the gradient at a tie
    assert set(verdicts(report)) == {"undefined"}


def test_min_heaviside_sign_floor_ceiling_on_their_jumps_are_undefined() -> None:
    cases = {
        "Min(x, y)": {"x": 2, "y": 2},
        "Heaviside(x)": {"x": 0},
        "sign(x)": {"x": 0},
        "floor(x)": {"x": 3},
        "ceiling(x)": {"x": -2},
        "x*floor(x)": {"x": 1},
    }
    for expression, point in cases.items():
        report = check(expression, at=point)
        assert "undefined" in verdicts(report), expression


def test_floor_between_integers_has_derivative_zero() -> None:
    report = check("floor(x)", at={"x": 2.5})
    assert report.gradient == [[0.0]] and report.verdict == "pass"


def test_piecewise_boundary_is_undefined_and_interior_passes() -> None:
    expression = "Piecewise((x, x < 0), (x**2, True))"
    assert set(verdicts(check(expression, at={"x": 0}))) == {"undefined"}
    inside = check(expression, at=[{"x": -1}, {"x": 3}])
    assert inside.gradient == [[1.0], [6.0]]  # 1 and 2x by hand
    assert inside.verdict == "pass"


def test_abs_cubed_is_differentiable_twice_at_zero() -> None:
    # |x|**3 has derivative 3x|x| and second derivative 6|x|: both 0 at 0 (hand derivation).
    report = check("Abs(x)**3", at={"x": 0})
    assert report.verdict == "pass"
    assert [e.reference for e in report.entries] == [0.0, 0.0]


def test_branch_ends_are_undefined() -> None:
    cases = {
        "sqrt(x)": {"x": 0},
        "asin(x)": {"x": 1},
        "acos(x)": {"x": -1},
        "acosh(x)": {"x": 1},
    }
    for expression, point in cases.items():
        report = check(expression, at=point)
        assert verdicts(report) == ["undefined"], expression


def test_outside_the_domain_is_domain() -> None:
    for expression, point in {
        "log(x)": {"x": -1},
        "sqrt(x)": {"x": -4},
        "atanh(x)": {"x": 1},
        "asin(x)": {"x": 2},
    }.items():
        report = check(expression, at=point)
        assert report.verdict == "domain", expression


def test_cancellation_example_is_ill_conditioned_in_float32() -> None:
    # By hand: d/dx (1 - cos x)/x**2 = (x sin x - 2(1 - cos x))/x**3 = -x/12 + O(x**3), so
    # -8.33e-5 at x = 0.001. In float32 cos(0.001) = 1 - 5.0e-7 rounds to 1 - 8 ulps (ulp
    # 5.96e-8 below 1), so 1 - cos(x) = 4.77e-7 keeps no correct digit, and the two terms of
    # about 1000 that autograd subtracts leave a number of order 10 to 100 (46.3 on the
    # development machine; one ulp more or less in cos moves it by about 120). Every
    # operation is accurate: the digits are lost at the subtraction.
    report = check("(1 - cos(x))/x**2", at={"x": "0.001"}, dtype="float32")
    (entry,) = [e for e in report.entries if e.kind == "gradient"]
    assert entry.verdict == "ill-conditioned"
    assert abs(entry.autograd - entry.reference) > 1.0  # 12,000 times the exact value, at least
    assert entry.reference == pytest.approx(-8.33e-5, rel=1e-3)
    assert (entry.blame, entry.phase) == ("1 - cos(x)", "forward")
    assert entry.correct_bits == 0


def test_cancellation_example_is_ill_conditioned_in_float64_too() -> None:
    # The same cancellation in float64: 1 - cos(0.001) = 5.0e-7 holds about 7 fewer digits
    # than cos(x), and the two terms of about 1000 cancel to -8.33e-5, 7 digits more; half an
    # ulp of cos (1.1e-16 / 2) becomes 1.3e-3 relative in the result (by hand: 2/x**3 * 5.5e-17
    # / 8.33e-5). The development machine measured 1.9e-4, far above float64's tolerance.
    report = check("(1 - cos(x))/x**2", at={"x": "0.001"})
    (entry,) = [e for e in report.entries if e.kind == "gradient"]
    assert entry.verdict == "ill-conditioned"
    assert 1e-8 < entry.rel_error < 1e-2
    assert entry.blame == "1 - cos(x)"


def test_sinc_second_derivative_at_zero_uses_the_limit() -> None:
    # Normalized sinc: sinc''(0) = -pi**2/3 (from the series 1 - (pi x)**2/6 + ...);
    # torch's backward formula divides by x, so autograd gives nan there.
    report = check("sinc(x)", at={"x": 0})
    gradient, hessian = report.entries
    assert gradient.reference == 0.0 and gradient.verdict == "pass"
    assert hessian.reference == pytest.approx(-(math.pi**2) / 3, rel=1e-15)
    assert math.isnan(hessian.autograd)
    assert hessian.verdict == "nonfinite"
    assert "limit" in (report.reference_method or "")


def test_x_over_x_stays_as_written_and_passes() -> None:
    report = check("x/x", at={"x": 3}, nodes=True)
    assert report.verdict == "pass"
    assert {e.node for e in report.entries if e.kind == "node"} == {"x/x", "1/x"}


def test_strict_mode_fails_on_undefined_without_changing_the_verdict() -> None:
    report = check("Abs(x)", at={"x": 0}, strict=True)
    assert set(verdicts(report)) == {"undefined"}
    assert not report.passed
    assert check("Abs(x)", at={"x": 0}).passed


def test_fail_on_names_the_verdicts_that_fail() -> None:
    point = {"x": "0.001"}
    assert check("(1 - cos(x))/x**2", at=point).passed
    assert not check("(1 - cos(x))/x**2", at=point, fail_on=["ill-conditioned"]).passed
    with pytest.raises(OptionError, match="unknown verdict 'wrong'"):
        check("x", at={"x": 1}, fail_on=["wrong"])


def test_tolerance_override_changes_the_verdict_of_a_small_error() -> None:
    # In float64 the cancellation example is off by at most about 1.3e-3 relative while cos is
    # correctly rounded (test_cancellation_example_is_ill_conditioned_in_float64_too): an rtol
    # of 1e-2 forgives it, the default does not.
    text, point = "(1 - cos(x))/x**2", {"x": "0.001"}
    assert check(text, at=point, hessian=False).verdict == "ill-conditioned"
    assert check(text, at=point, hessian=False, rtol=1e-2).verdict == "pass"


def test_tanh_derivative_for_large_arguments_is_caught() -> None:
    # torch computes tanh'(u) as 1 - tanh(u)**2; at u = 9, sech(9)**2 = 6.09e-8 while
    # tanh(9)**2 rounds with an absolute error near 1.1e-16, so the relative error is about
    # 1e-9, far above float64's tolerance (docs/functions.md, hand estimate).
    report = check("tanh(x)", at={"x": 9}, hessian=False)
    (entry,) = report.entries
    assert entry.reference == pytest.approx(4 / (math.exp(9) + math.exp(-9)) ** 2, rel=1e-12)
    assert entry.verdict == "fail"
    assert (entry.blame, entry.phase) == ("tanh(x)", "first backward")
    assert 1e-11 < entry.rel_error < 1e-6


def test_trigamma_inaccuracy_in_torch_is_caught() -> None:
    # digamma'(2) = trigamma(2) = zeta(2) - 1 = pi**2/6 - 1 = 0.6449340668482264 (a standard
    # identity); torch 2.13's polygamma(1, 2.0) in float64 is 0.6449340670881899
    # (docs/functions.md), a relative error of about 4e-10.
    report = check("digamma(x)", at={"x": 2}, hessian=False)
    (entry,) = report.entries
    assert entry.reference == pytest.approx(math.pi**2 / 6 - 1, rel=1e-15)
    assert entry.verdict == "fail"
    assert (entry.blame, entry.phase) == ("digamma(x)", "first backward")
    assert 1e-11 < entry.rel_error < 1e-8


def test_trigamma_for_negative_arguments_is_caught() -> None:
    # gamma''(x) = gamma(x) * (digamma(x)**2 + trigamma(x)); mpmath at 50 digits gives
    # trigamma(-2.5) = 9.5392466449891..., torch.polygamma(1, -2.5) = 9.5392466449375...
    # (docs/functions.md), so autograd's second derivative is off by about 5e-12 relative.
    report = check("gamma(x)", at={"x": -2.5})
    hessian = [e for e in report.entries if e.kind == "hessian"][0]
    assert hessian.verdict == "fail"
    assert (hessian.blame, hessian.phase) == ("gamma(x)", "second backward")
    assert 1e-13 < hessian.rel_error < 1e-9
