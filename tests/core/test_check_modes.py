"""A check along several derivative paths (``modes``): each further path judged against the
same exact values, with the audit of that path's formulas and blame named for its phase, in
the report's ``paths`` section (verifier/core/judge/paths.py).

Expected values are hand derivations; where torch 2.13 is wrong on a path, the test asserts
that the verdict follows from the value the path gave against the truth, never which bits
torch gives.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import pytest
from autograd_functions import AloneBiasedSin, BatchBiasedSin, NoJvpSin, WrongJvpSin

from verifier import check, register_function
from verifier.core.expression import registry
from verifier.core.judge.report import Report
from verifier.core.options import CheckOptions
from verifier.core.program.modes import DEFAULT_MODES, MODES
from verifier.core.testing import DerivativeMismatch, assert_derivatives
from verifier.errors import OptionError

FURTHER = [name for name in MODES if name not in DEFAULT_MODES]
SECOND_ORDER_PHASES = {
    "reverse-over-reverse": "second backward",
    "forward-over-reverse": "tangent of the first backward",
    "reverse-over-forward": "backward of the first tangent",
    "forward-over-forward": "second tangent",
}
NESTED = "autograd:forward-over-forward"
"""torch 2.13 refuses a dual level inside another: the path is refused with torch's message."""


def within(value: Any, exact: float) -> bool:
    """Within the float64 tolerance (64 ulps relative, 2**-46) of ``exact``."""
    return isinstance(value, float) and abs(value - exact) <= 2.0**-46 * abs(exact) + 2.0**-1022


def sections(report: Report) -> dict[str, dict[str, Any]]:
    return {path["mode"]: path for path in report.paths or []}


def test_sinc_at_zero_is_judged_on_every_path_against_its_curvature() -> None:
    # sinc(x) = sin(pi x)/(pi x) = 1 - (pi x)**2/6 + ...: sinc'(0) = 0 and sinc''(0) = -pi**2/3
    # = -3.2898681336964528 (hand, Taylor series). Every first-order path gives the slope;
    # a second-order path passes exactly when its value is within the tolerance of -pi**2/3,
    # and otherwise blames sinc with the phase its path names.
    report = check("sinc(x)", {"x": 0.0}, modes="all")
    found = sections(report)
    assert list(found) == FURTHER
    curvature = -(math.pi**2) / 3
    for name, path in found.items():
        mode = MODES[name]
        if name == NESTED:
            assert path["verdict"] == "error" and "Nested forward" in path["error"]
            continue
        if mode.order == 1:
            assert path["verdict"] == "pass", name
            continue
        (entry,) = path["entries"] or [None]
        if entry is None:
            assert path["counts"] == {"pass": 1}
            continue
        assert entry["mode"] == name and entry["reference"] == pytest.approx(curvature, rel=1e-15)
        assert not within(entry["autograd"], curvature)
        assert entry["verdict"] in {"fail", "nonfinite"}, name
        assert (entry["blame"], entry["phase"]) == ("sinc(x)", SECOND_ORDER_PHASES[mode.path])


def test_the_mixed_partial_of_x_to_the_y_from_the_y_gradient_is_one_half_on_every_path() -> None:
    # f = x**y at (2, 0): df/dy = x**y log x, and d/dx of it = y x**(y-1) log x + x**(y-1)
    # = 1/2 (hand). The Hessian element [y, x] (d/dx of df/dy) is judged against 1/2 on every
    # path that runs, each path's value read from its own entries.
    report = check("x**y", {"x": 2.0, "y": 0.0}, modes="all")
    for name, path in sections(report).items():
        if MODES[name].order == 1 or path["error"] is not None:
            continue
        wrong = [e for e in path["entries"] if e["wrt"] == ["y", "x"]]
        assert wrong == [], (name, wrong)


@pytest.fixture
def sines() -> Iterator[None]:
    register_function("wrongjvpsin", WrongJvpSin.apply, "sin(x)")
    register_function("nojvpsin", NoJvpSin.apply, "sin(x)")
    yield
    registry.forget("wrongjvpsin")
    registry.forget("nojvpsin")


def test_a_wrong_jvp_fails_the_forward_paths_and_is_blamed_on_the_function(sines: None) -> None:
    # d/dx sin(x) at 0.5 = cos(0.5) (hand); the jvp is 2**-20 relative off: 2**26 float64
    # tolerances (2**-46). The reverse path is right; the forward paths fail, blamed on the
    # function's first tangent, which the audit finds off at the very input it received.
    report = check("wrongjvpsin(x)", {"x": 0.5}, modes="autograd:forward,func:forward")
    assert report.counts == {"pass": 2}  # the gradient and Hessian of the default paths
    for name, path in sections(report).items():
        (entry,) = path["entries"]
        assert entry["reference"] == pytest.approx(math.cos(0.5), rel=1e-15)
        assert (entry["verdict"], entry["blame"], entry["phase"]) == (
            "fail",
            "wrongjvpsin(x)",
            "first tangent",
        ), name
    assert report.verdict == "fail" and not report.passed


def test_a_function_without_jvp_refuses_the_forward_paths_alone(sines: None) -> None:
    # torch needs a jvp for forward mode: each forward path is an error naming the function;
    # the reverse paths run and pass (sin's derivatives, hand), and a refusal alone does not
    # fail the check unless fail_on names error.
    modes = "autograd:forward,func:reverse,func:forward"
    report = check("nojvpsin(x)", {"x": 0.5}, modes=modes)
    found = sections(report)
    assert found["func:reverse"]["verdict"] == "pass"
    for name in ("autograd:forward", "func:forward"):
        assert found[name]["verdict"] == "error"
        assert "nojvpsin" in found[name]["error"] and "jvp" in found[name]["error"], name
    assert report.verdict == "pass" and report.passed
    strict = check("nojvpsin(x)", {"x": 0.5}, modes=modes, fail_on=["fail", "error"])
    assert not strict.passed


def test_second_order_modes_without_a_hessian_are_a_note_not_a_path() -> None:
    report = check("sin(x)", {"x": 0.5}, modes="all", hessian=False)
    assert all(MODES[name].order == 1 for name in sections(report))
    assert any("computes Hessians" in note for note in report.notes)


def test_modes_are_validated_and_stored_by_name() -> None:
    with pytest.raises(OptionError) as caught:
        CheckOptions.of(modes="autograd:sideways")
    assert caught.value.option == "modes" and "autograd:sideways" in str(caught.value)
    options = CheckOptions.of(modes="all")
    assert options.stored()["modes"] == list(MODES)
    assert CheckOptions.from_stored(options.stored()) == options
    assert CheckOptions.of().modes == DEFAULT_MODES


def test_the_test_helper_fails_on_a_wrong_path_and_says_which() -> None:
    # The jvp is 2**-20 relative off cos(0.5) (hand): the default paths pass, the forward path
    # fails, and the assertion names the path and the function's first tangent.
    with pytest.raises(DerivativeMismatch) as caught:
        assert_derivatives(WrongJvpSin.apply, "sin(x)", at={"x": 0.5}, modes="autograd:forward")
    text = str(caught.value)
    assert "along autograd:forward: 1 fail" in text and "first tangent" in text
    assert_derivatives(WrongJvpSin.apply, "sin(x)", at={"x": 0.5})  # the default paths pass


@pytest.fixture
def batch_biased() -> Iterator[None]:
    register_function("batchysin", BatchBiasedSin.apply, "sin(x)")
    register_function("alonesin", AloneBiasedSin.apply, "sin(x)")
    yield
    registry.forget("batchysin")
    registry.forget("alonesin")


def test_compare_batch_judges_each_point_alone_beside_the_batch(batch_biased: None) -> None:
    # d/dx sin at 0.5 and 1.0 is cos (hand). In the batch the backward is 2**-20 relative off,
    # 2**26 float64 tolerances: both gradients fail; one point at a time it is cos itself: the
    # point-by-point gradients pass, and both values differ from the batch's.
    points = [{"x": 0.5}, {"x": 1.0}]
    report = check("batchysin(x)", points, compare_batch=True, hessian=False)
    gradients = [e for e in report.entries if e.kind == "gradient"]
    assert [e.verdict for e in gradients] == ["fail", "fail"]
    (alone,) = report.paths or []
    assert (alone["mode"], alone["batched"]) == ("autograd:reverse", False)
    assert alone["counts"] == {"pass": 2} and alone["differing"] == 2
    assert report.verdict == "fail"

    # The other way round: right in the batch, off alone; the point-by-point gradients fail,
    # blamed on the function's first backward as the audit takes it one point at a time.
    report = check("alonesin(x)", points, compare_batch=True, hessian=False)
    assert {e.verdict for e in report.entries} == {"pass"}
    (alone,) = report.paths or []
    assert alone["counts"] == {"fail": 2}
    assert {(e["blame"], e["phase"]) for e in alone["entries"]} == {
        ("alonesin(x)", "first backward")
    }
