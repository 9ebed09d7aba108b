"""The diagnosis (verifier/core/judge/diagnosis.py): which verdict, blame and phase an entry
outside the tolerance gets, from the audit's findings and the conditioning bound.

Everything is built by hand: the judgement, the findings and the conditioning, so each test
states one rule of the module docstring (and docs/report-format.md) and its order against the
next: range events before inaccuracies, inaccuracies before the bound, the bound before an
underflow; a finding counts only where the entry depends on it.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import sympy

from verifier.core.expression.symbolic import GRADIENT, HESSIAN, NODE, VALUE, Key, node_key
from verifier.core.expression.syntax import make_symbol
from verifier.core.floats.dtypes import DTYPES
from verifier.core.judge.audit import (
    FIRST_BACKWARD,
    FORWARD,
    INACCURATE,
    KINK,
    NONFINITE,
    OVERFLOW,
    SECOND_BACKWARD,
    UNDERFLOW,
    Finding,
)
from verifier.core.judge.compare import Judgement
from verifier.core.judge.conditioning import Conditioning
from verifier.core.judge.diagnosis import Diagnosis, diagnose
from verifier.core.judge.verdict import Verdict

FP64 = DTYPES["float64"]
x, y = make_symbol("x"), make_symbol("y")
SIN_X, SIN_Y, EXP_X, ABS_X = sympy.sin(x), sympy.sin(y), sympy.exp(x), sympy.Abs(x)
ONE_MINUS_COS = 1 - sympy.cos(x)
GRAD_X: Key = (GRADIENT, ("x",), None)
GRAD_Y: Key = (GRADIENT, ("y",), None)
HESS_XY: Key = (HESSIAN, ("x", "y"), None)
VALUE_KEY: Key = (VALUE, (), None)
NODE_KEY: Key = (NODE, (), node_key(SIN_X))
KEYS = (GRAD_X, GRAD_Y, HESS_XY, VALUE_KEY, NODE_KEY)
BOUND = 1e-12
"""The error rounding explains for every entry below (absolute)."""


def outside(abs_error: float, reference: float = 2.0, bits: float = 30.0) -> Judgement:
    """A judgement outside the tolerance (verdict None): ``abs_error`` from ``reference``."""
    allowed = 64 * 2.0**-52 * abs(reference)
    return Judgement(
        None, reference, abs_error, abs_error / reference, None, allowed, abs_error / allowed, bits
    )


def analysis(weight: float = 2e6, site: int = -1) -> Conditioning:
    """Every key bounded by BOUND with ``weight``; ``site`` 0 names cos(x)'s rounding as the
    dominant one, and above it 1 - cos(x), which amplifies most (local condition 1e6)."""
    cos_x = sympy.cos(x)
    return Conditioning(
        bound={key: np.array([BOUND]) for key in KEYS},
        weight={key: np.array([weight]) for key in KEYS},
        site={key: np.array([site]) for key in KEYS},
        sites=[cos_x],
        order=[x, cos_x, ONE_MINUS_COS],
        local={cos_x: np.array([5e-4]), ONE_MINUS_COS: np.array([1e6])},
    )


def finding(node: sympy.Basic, phase: str, kind: str, ratio: float = math.inf) -> Finding:
    return Finding(node, phase, kind, ratio, f"{node} did {kind} in the {phase}")


def diagnosed(
    findings: list[Finding],
    *,
    key: Key = GRAD_X,
    autograd: float = 2.5,
    abs_error: float = 5e-13,
    weight: float = 2e6,
    site: int = -1,
) -> Diagnosis:
    return diagnose(key, 0, autograd, outside(abs_error), findings, analysis(weight, site), FP64)


def test_nan_from_an_overflow_is_range_naming_the_overflow() -> None:
    found = [finding(EXP_X, FORWARD, OVERFLOW)]
    result = diagnosed(found, autograd=math.nan, abs_error=math.inf)
    assert (result.verdict, result.blame, result.phase) == (Verdict.RANGE, EXP_X, FORWARD)
    assert result.detail.startswith("autograd gave nan: ")


def test_inf_from_an_underflow_is_range_too() -> None:
    # A value rounded to 0 that is then divided by gives inf: the underflow explains it.
    found = [finding(SIN_X, FIRST_BACKWARD, UNDERFLOW)]
    result = diagnosed(found, autograd=math.inf, abs_error=math.inf)
    assert (result.verdict, result.blame, result.phase) == (
        Verdict.RANGE,
        SIN_X,
        FIRST_BACKWARD,
    )


def test_a_non_finite_value_with_no_finding_is_nonfinite_and_blames_nothing() -> None:
    judgement = outside(math.inf, reference=0.1)
    result = diagnose(GRAD_X, 0, math.inf, judgement, [], analysis(), FP64)
    assert (result.verdict, result.blame, result.phase) == (Verdict.NONFINITE, None, None)
    # 0.1 to 17 significant digits is 0.10000000000000001 (the float64 nearest 0.1).
    assert result.detail == "autograd gave inf where the exact value is 0.10000000000000001"


def test_a_non_finite_value_names_the_first_operation_that_went_wrong() -> None:
    found = [finding(SIN_X, FIRST_BACKWARD, NONFINITE), finding(EXP_X, FORWARD, INACCURATE, 9)]
    result = diagnosed(found, autograd=math.nan, abs_error=math.inf)
    assert (result.verdict, result.blame, result.phase) == (
        Verdict.NONFINITE,
        SIN_X,
        FIRST_BACKWARD,
    )
    assert result.detail.endswith(found[0].detail)


def test_an_overflow_outranks_an_inaccurate_operation() -> None:
    found = [finding(SIN_X, FORWARD, INACCURATE, 50.0), finding(EXP_X, FIRST_BACKWARD, OVERFLOW)]
    result = diagnosed(found)
    assert (result.verdict, result.blame, result.phase) == (
        Verdict.RANGE,
        EXP_X,
        FIRST_BACKWARD,
    )


def test_the_most_inaccurate_operation_is_blamed_even_where_the_bound_would_explain() -> None:
    # abs_error 5e-13 is within BOUND (1e-12), yet an inaccurate operation is torch's fault.
    found = [
        finding(EXP_X, FORWARD, INACCURATE, 3.0),
        finding(SIN_X, FIRST_BACKWARD, INACCURATE, 70.0),
    ]
    result = diagnosed(found)
    assert (result.verdict, result.blame, result.phase) == (Verdict.FAIL, SIN_X, FIRST_BACKWARD)
    assert result.detail.endswith(", 70 times the tolerance")


def test_a_derivative_rule_applied_at_a_kink_fails() -> None:
    result = diagnosed([finding(ABS_X, FIRST_BACKWARD, KINK)])
    assert (result.verdict, result.blame, result.phase) == (Verdict.FAIL, ABS_X, FIRST_BACKWARD)
    assert "kink or tie" in result.detail


def test_an_error_the_bound_explains_is_ill_conditioned_where_the_digits_are_lost() -> None:
    # Site 0 (cos(x)) dominates; of it and the nodes above it, 1 - cos(x) amplifies most.
    # Condition factor = weight / |exact| = 2e6 / 2 = 1e6 (module docstring).
    result = diagnosed([], site=0)
    assert (result.verdict, result.blame, result.phase) == (
        Verdict.ILL_CONDITIONED,
        ONE_MINUS_COS,
        FORWARD,
    )
    assert "condition factor 1e+06" in result.detail
    assert "30 of 53 bits correct" in result.detail
    assert result.detail.endswith("the digits are lost at 1 - cos(x)")


def test_an_error_beyond_the_bound_with_nothing_found_fails_and_blames_nothing() -> None:
    # Control of the one above: the same entry, its error just above the bound.
    result = diagnosed([], site=0, abs_error=math.nextafter(BOUND, 1.0))
    assert (result.verdict, result.blame, result.phase) == (Verdict.FAIL, None, None)
    assert "no operation is locally inaccurate" in result.detail


@pytest.mark.parametrize(
    ("key", "blame", "phase"),
    [
        (GRAD_X, "x", FIRST_BACKWARD),
        (HESS_XY, "y", SECOND_BACKWARD),
        (VALUE_KEY, None, FORWARD),
    ],
)
def test_cancelling_chain_rule_terms_blame_the_last_variable_in_their_phase(
    key: Key, blame: str | None, phase: str
) -> None:
    # Site -1: the backward terms weigh more than any forward rounding. The blame is compared
    # as the report shows it (its text): the module names the variable by a plain Symbol.
    result = diagnosed([], key=key, site=-1)
    shown = None if result.blame is None else str(result.blame)
    assert (result.verdict, shown, result.phase) == (Verdict.ILL_CONDITIONED, blame, phase)


def test_an_underflow_explains_only_what_the_bound_does_not() -> None:
    found = [finding(SIN_X, FIRST_BACKWARD, UNDERFLOW)]
    beyond = diagnosed(found, abs_error=1e-6)
    assert (beyond.verdict, beyond.blame) == (Verdict.RANGE, SIN_X)
    within = diagnosed(found, abs_error=5e-13)
    assert within.verdict is Verdict.ILL_CONDITIONED


def test_a_finding_on_an_operation_the_entry_does_not_depend_on_is_ignored() -> None:
    # sin(y) is inaccurate: df/dy depends on it, df/dx does not (its node has no x).
    found = [finding(SIN_Y, FIRST_BACKWARD, INACCURATE, 10.0)]
    assert diagnosed(found, key=GRAD_Y).verdict is Verdict.FAIL
    assert diagnosed(found, key=GRAD_X).verdict is Verdict.ILL_CONDITIONED
    # A node without variables (a literal's operation) can touch every entry.
    constant = sympy.exp(sympy.Integer(2), evaluate=False)
    assert diagnosed([finding(constant, FORWARD, INACCURATE, 10.0)], key=GRAD_X).verdict is (
        Verdict.FAIL
    )


@pytest.mark.parametrize(
    ("phase", "failing"),
    [
        (FORWARD, {VALUE_KEY, GRAD_X, HESS_XY, NODE_KEY}),
        (FIRST_BACKWARD, {GRAD_X, HESS_XY, NODE_KEY}),
        (SECOND_BACKWARD, {HESS_XY}),
    ],
)
def test_a_finding_touches_only_the_entries_that_go_through_its_phase(
    phase: str, failing: set[Key]
) -> None:
    # A value entry runs the forward pass only, a gradient or node gradient the first
    # backward too, a Hessian element all three. sin(x) touches every entry here except df/dy.
    found = [finding(SIN_X, phase, INACCURATE, 10.0)]
    verdicts = {key: diagnosed(found, key=key).verdict for key in KEYS}
    assert {key for key, v in verdicts.items() if v is Verdict.FAIL} == failing


def test_a_node_gradient_sees_findings_on_every_node() -> None:
    # sin(y) does not involve the node sin(x), but a node gradient hears of every operation.
    found = [finding(SIN_Y, FIRST_BACKWARD, INACCURATE, 10.0)]
    assert diagnosed(found, key=NODE_KEY).verdict is Verdict.FAIL


def test_an_operation_that_gave_a_non_finite_value_is_not_excused_by_the_bound() -> None:
    # exp(-inf) = 0 and 1/inf = 0 can turn an operation's inf into a finite entry. Seen end
    # to end: a registered function defined as x**2 whose torch code adds a detached inf for
    # u > 10 (derivatives right, value inf), inside exp(-f(x)) at x = 11: autograd's gradient
    # is -0.0 against -6.2e-52, and the entry is called ill-conditioned, which the default
    # fail-on set lets pass.
    found = [finding(EXP_X, FORWARD, NONFINITE)]
    result = diagnosed(found, abs_error=5e-13)
    assert (result.verdict, result.blame, result.phase) == (Verdict.FAIL, EXP_X, FORWARD)


def test_a_local_second_derivative_touches_only_the_hessian_elements_of_its_pair() -> None:
    # x**y: an overflow of its d2/dx2 (children x, x) is not d2/dxdy's, its d2/dxdy is.
    power = x**y
    by_xx = Finding(power, SECOND_BACKWARD, OVERFLOW, math.inf, "d2/dx2 overflows", wrt=(x, x))
    by_xy = Finding(power, SECOND_BACKWARD, OVERFLOW, math.inf, "d2/dxdy overflows", wrt=(x, y))
    assert diagnosed([by_xx], key=HESS_XY).verdict is Verdict.ILL_CONDITIONED
    assert diagnosed([by_xy], key=HESS_XY).verdict is Verdict.RANGE


def test_a_forward_value_counts_only_for_the_gradients_that_read_it() -> None:
    # read_by is what the audit found in torch's saved tensors: ndtr(x)'s value is read by no
    # backward, exp(y)'s by x's (through x*exp(y)) although exp(y) has no x.
    ndtr_value = Finding(SIN_X, FORWARD, INACCURATE, 9.0, "value off", read_by=frozenset())
    exp_y = Finding(sympy.exp(y), FORWARD, OVERFLOW, math.inf, "inf", read_by=frozenset("x"))
    assert diagnosed([ndtr_value]).verdict is Verdict.ILL_CONDITIONED
    assert diagnosed([exp_y]).verdict is Verdict.RANGE
    assert diagnosed([ndtr_value], key=VALUE_KEY).verdict is Verdict.FAIL
