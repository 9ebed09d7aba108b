"""Derivative paths: each mode of verifier/core/program/modes.py, run by paths.run_path, against
hand-derived values.

Expected values cite their derivation. Where torch is wrong on a path, the test says that the
path is not within the tolerance of the truth (measured on torch 2.13), never which bits torch
returns. Every value is judged with the project's float64 tolerance (64 ulps relative, the
smallest normal absolute).
"""

from __future__ import annotations

import math
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import mpmath
import pytest
import torch
from autograd_functions import NoJvpSin
from slowness import SLOWNESS

from verifier.core.expression.parse import parse_expression
from verifier.core.floats.dtypes import DTYPES
from verifier.core.judge.tolerance import make_tolerance
from verifier.core.program.modes import (
    DEFAULT_MODES,
    MODES,
    Mode,
    parse_modes,
)
from verifier.core.program.paths import PathResult, expression_function, run_path
from verifier.errors import OptionError

ROOT = Path(__file__).resolve().parents[2]
FLOAT64 = DTYPES["float64"]
TOLERANCE = make_tolerance(FLOAT64)
CPU = torch.device("cpu")
FIRST_ORDER = [name for name, mode in MODES.items() if mode.order == 1]
SECOND_ORDER = [name for name, mode in MODES.items() if mode.order == 2]
NESTED_FORWARD_LEVELS = "autograd:forward-over-forward"
"""torch.autograd.forward_ad refuses a dual level inside another on torch 2.13."""
RUNNING_SECOND_ORDER = [name for name in SECOND_ORDER if name != NESTED_FORWARD_LEVELS]
FORWARD_MODES = [name for name, mode in MODES.items() if mode.forward]
REVERSE_ONLY_MODES = [name for name, mode in MODES.items() if not mode.forward]
IMPORT_TIMEOUT_S = 30 * SLOWNESS


def within(value: float, exact: float) -> bool:
    """Whether ``value`` is within the float64 tolerance of ``exact`` (NaN never is)."""
    return math.isfinite(value) and abs(value - exact) <= TOLERANCE.allowed(exact)


def program(text: str, variables: list[str]) -> Callable[..., torch.Tensor]:
    """The translated torch program of ``text``, as a check runs it."""
    return expression_function(parse_expression(text).expr, variables, FLOAT64, CPU)


def columns(**values: list[float]) -> dict[str, torch.Tensor]:
    return {name: torch.tensor(column, dtype=torch.float64) for name, column in values.items()}


def gradient(result: PathResult, name: str) -> list[float]:
    assert result.error is None, result.error
    return [float(v) for v in result.values[("gradient", (name,), None)]]


def hessian(result: PathResult, first: str, second: str) -> list[float]:
    """d/d``second`` of df/d``first``, at every point."""
    assert result.error is None, result.error
    return [float(v) for v in result.values[("hessian", (first, second), None)]]


# --- the table -------------------------------------------------------------------------------


def test_the_table_names_every_api_and_path_with_its_order() -> None:
    # The twelve names of the derivative-path options: 2 APIs x (2 first-order + 4 second-order).
    assert len(MODES) == 12
    assert [MODES[name].order for name in ("autograd:reverse", "func:forward")] == [1, 1]
    assert {MODES[name].order for name in SECOND_ORDER} == {2}
    assert len(SECOND_ORDER) == 8
    assert [mode.name for mode in parse_modes(list(DEFAULT_MODES))] == [
        "autograd:reverse",
        "autograd:reverse-over-reverse",
    ]


def test_all_names_every_mode_and_repeated_names_count_once() -> None:
    assert [mode.name for mode in parse_modes("all")] == list(MODES)
    assert [mode.name for mode in parse_modes(["func:forward", "all"])][0] == "func:forward"
    assert len(parse_modes(["func:forward", "all"])) == len(MODES)
    chosen = parse_modes(" func:reverse ,autograd:reverse,func:reverse")
    assert [mode.name for mode in chosen] == ["func:reverse", "autograd:reverse"]


def test_an_unknown_mode_is_an_option_error_naming_it_and_listing_the_known_ones() -> None:
    with pytest.raises(OptionError) as raised:
        parse_modes(["autograd:reverse", "autograd:backward"])
    assert raised.value.option == "modes"
    assert "'autograd:backward'" in str(raised.value)
    assert all(name in str(raised.value) for name in MODES)
    assert "'all'" in str(raised.value)


@pytest.mark.parametrize("value", [[], [3], 3, None])
def test_modes_that_name_nothing_or_are_not_text_are_option_errors(value: Any) -> None:
    with pytest.raises(OptionError) as raised:
        parse_modes(value)
    assert raised.value.option == "modes"


def test_run_path_refuses_an_unknown_mode_name_before_running_anything() -> None:
    with pytest.raises(OptionError, match="'func:sideways'"):
        run_path(torch.sin, columns(x=[0.5]), "func:sideways")


def test_the_mode_table_loads_without_torch() -> None:
    # The service validates options without torch (docs/architecture.md: the API never loads it).
    code = "import sys, verifier.core.program.modes; assert 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True, timeout=IMPORT_TIMEOUT_S, cwd=ROOT)


def test_the_report_format_document_shows_every_mode_with_its_calls() -> None:
    text = (ROOT / "docs" / "report-format.md").read_text()
    section = text.split("## Derivative paths", 1)[1].split("\n## ", 1)[0]
    rows = {
        match[0]: (int(match[1]), match[2])
        for match in re.findall(r"^\| `([a-z:-]+)` \| (\d) \| `([^`]+)` \|", section, re.M)
    }
    assert rows == {name: (mode.order, mode.calls) for name, mode in MODES.items()}


# --- sinc at 0 -------------------------------------------------------------------------------

# sinc(x) = sin(pi x)/(pi x) = 1 - (pi x)**2/6 + (pi x)**4/120 - ... (Taylor series of sin), so
# sinc'(0) = 0 and sinc''(0) = -pi**2/3. At x = 1/2: sin(pi/2) = 1, cos(pi/2) = 0, and
# sinc''(x) = (-pi**2 x**2 sin(pi x) - 2 pi x cos(pi x) + 2 sin(pi x)) / (pi x**3) gives
# (2 - pi**2/4) / (pi/8) = (16 - 2 pi**2)/pi; sinc'(x) = (pi x cos(pi x) - sin(pi x))/(pi x**2)
# gives -4/pi (hand derivation, quotient rule twice).
SINC_SECOND_AT_ZERO = -(math.pi**2) / 3
SINC_FIRST_AT_HALF = -4 / math.pi
SINC_SECOND_AT_HALF = (16 - 2 * math.pi**2) / math.pi


@pytest.mark.parametrize("batched", [True, False])
def test_every_first_order_path_gives_sinc_a_slope_of_zero_at_zero(batched: bool) -> None:
    fn = program("sinc(x)", ["x"])
    for name in FIRST_ORDER:
        slopes = gradient(run_path(fn, columns(x=[0.0, 0.5]), name, batched=batched), "x")
        assert within(slopes[0], 0.0) and within(slopes[1], SINC_FIRST_AT_HALF), name


@pytest.mark.parametrize("batched", [True, False])
def test_no_second_order_path_gives_sinc_its_curvature_at_zero_on_torch_2_13(
    batched: bool,
) -> None:
    # Measured on torch 2.13: reverse-over-reverse and reverse-over-forward give NaN (sinc's
    # backward formula divides by x before its where() picks the x == 0 branch), the paths
    # that end in forward mode give 0.0 (their tangent at 0 is the constant branch's). The
    # truth, -pi**2/3, is given by none; away from 0 every path agrees with the hand value.
    fn = program("sinc(x)", ["x"])
    true_at_zero = []
    for name in SECOND_ORDER:
        result = run_path(fn, columns(x=[0.0, 0.5]), name, batched=batched)
        if name == NESTED_FORWARD_LEVELS:
            assert result.error is not None and not result.values
            continue
        at_zero, at_half = hessian(result, "x", "x")
        assert within(at_half, SINC_SECOND_AT_HALF), name
        if within(at_zero, SINC_SECOND_AT_ZERO):
            true_at_zero.append(name)
    assert true_at_zero == []
    reverse = run_path(fn, columns(x=[0.0]), "autograd:reverse-over-reverse", batched=batched)
    assert not within(hessian(reverse, "x", "x")[0], SINC_SECOND_AT_ZERO)


# --- x**y at (2, 0) --------------------------------------------------------------------------

# f = x**y: f_x = y x**(y-1) = 0, f_y = x**y ln x = ln 2, f_xx = y (y-1) x**(y-2) = 0,
# f_yy = x**y (ln x)**2 = (ln 2)**2 and both mixed partials d/dx(f_y) = d/dy(f_x) =
# x**(y-1) (1 + y ln x) = 1/x = 0.5 (hand derivation; f is smooth at x > 0, so they agree).
LN2 = math.log(2)


@pytest.mark.parametrize("batched", [True, False])
def test_x_to_the_y_at_2_0_has_the_mixed_partial_one_half_from_the_y_gradient_by_every_path(
    batched: bool,
) -> None:
    fn = program("x**y", ["x", "y"])
    inputs = columns(x=[2.0], y=[0.0])
    for name in FIRST_ORDER:
        result = run_path(fn, inputs, name, batched=batched)
        assert within(gradient(result, "x")[0], 0.0), name
        assert within(gradient(result, "y")[0], LN2), name
    for name in RUNNING_SECOND_ORDER:
        result = run_path(fn, inputs, name, batched=batched)
        assert within(hessian(result, "y", "x")[0], 0.5), name
        assert within(hessian(result, "x", "x")[0], 0.0), name
        assert within(hessian(result, "y", "y")[0], LN2**2), name


def test_x_to_the_y_at_2_0_loses_the_other_order_of_the_mixed_partial_on_torch_2_13() -> None:
    # Measured on torch 2.13: pow's backward for the base is where(y == 0, 0, y x**(y-1)), so
    # every path that differentiates f_x by y sees the constant branch and gives 0, not 0.5.
    fn = program("x**y", ["x", "y"])
    for name in RUNNING_SECOND_ORDER:
        result = run_path(fn, columns(x=[2.0], y=[0.0]), name)
        assert not within(hessian(result, "x", "y")[0], 0.5), name


# --- a W1-like smooth expression -------------------------------------------------------------

W1 = "sin(x)*exp(y) + x*y*z**2 + log(1 + z**2)"
W1_POINTS = {"x": [0.3, -1.2, 2.5], "y": [-0.7, 0.4, 1.1], "z": [0.5, 2.0, -0.3]}


def w1_truth(x: float, y: float, z: float) -> dict[tuple[str, ...], float]:
    """W1's derivatives by hand, evaluated by mpmath at 40 digits at the exact float inputs:
    f_x = cos x e^y + y z^2, f_y = sin x e^y + x z^2, f_z = 2xyz + 2z/(1 + z^2), f_xx = -sin x
    e^y, f_xy = cos x e^y + z^2, f_xz = 2yz, f_yy = sin x e^y, f_yz = 2xz,
    f_zz = 2xy + 2(1 - z^2)/(1 + z^2)^2."""
    with mpmath.workdps(40):
        x_, y_, z_ = mpmath.mpf(x), mpmath.mpf(y), mpmath.mpf(z)
        ey = mpmath.exp(y_)
        values = {
            ("x",): mpmath.cos(x_) * ey + y_ * z_**2,
            ("y",): mpmath.sin(x_) * ey + x_ * z_**2,
            ("z",): 2 * x_ * y_ * z_ + 2 * z_ / (1 + z_**2),
            ("x", "x"): -mpmath.sin(x_) * ey,
            ("x", "y"): mpmath.cos(x_) * ey + z_**2,
            ("x", "z"): 2 * y_ * z_,
            ("y", "y"): mpmath.sin(x_) * ey,
            ("y", "z"): 2 * x_ * z_,
            ("z", "z"): 2 * x_ * y_ + 2 * (1 - z_**2) / (1 + z_**2) ** 2,
        }
        symmetric = {(b, a): v for (a, *rest), v in values.items() for b in rest}
        return {key: float(value) for key, value in {**values, **symmetric}.items()}


@pytest.mark.parametrize("batched", [True, False])
@pytest.mark.parametrize("name", [n for n in MODES if n != NESTED_FORWARD_LEVELS])
def test_every_path_agrees_with_the_hand_derivatives_of_a_smooth_expression(
    name: str, batched: bool
) -> None:
    result = run_path(program(W1, ["x", "y", "z"]), columns(**W1_POINTS), name, batched=batched)
    assert result.error is None
    order = MODES[name].order
    assert len(result.values) == (3 if order == 1 else 9)
    for index, point in enumerate(zip(*W1_POINTS.values(), strict=True)):
        for wrt, exact in w1_truth(*point).items():
            if len(wrt) != order:
                continue
            kind = "gradient" if order == 1 else "hessian"
            value = float(result.values[(kind, wrt, None)][index])
            assert within(value, exact), (wrt, index, value, exact)


def test_nested_forward_levels_are_refused_by_torch_autograd_with_its_message() -> None:
    result = run_path(program(W1, ["x", "y", "z"]), columns(**W1_POINTS), NESTED_FORWARD_LEVELS)
    assert result.values == {}
    assert result.error is not None and "Nested forward mode AD is not supported" in result.error


# --- operations torch refuses on some paths --------------------------------------------------


def test_an_operation_without_a_second_derivative_fails_only_the_second_order_paths() -> None:
    # hardsigmoid(x) = x/6 + 1/2 on [-3, 3] (torch's definition): slope 1/6. Torch 2.13 has
    # neither a double backward nor a forward-mode formula for hardsigmoid_backward, so every
    # second-order path is refused with torch's message; the first-order paths still run (and
    # agree: torch's backward multiplies by 1/6 rounded to float32, so 1e-7 relative is what
    # this test allows, the audit's business rather than the paths').
    fn = program("hardsigmoid(x)", ["x"])
    slopes = {gradient(run_path(fn, columns(x=[0.3]), name), "x")[0] for name in FIRST_ORDER}
    assert len(slopes) == 1 and slopes.pop() == pytest.approx(1 / 6, rel=1e-7)
    for name in SECOND_ORDER:
        result = run_path(fn, columns(x=[0.3]), name)
        assert result.values == {} and result.error, name
    messages = {run_path(fn, columns(x=[0.3]), name).error for name in SECOND_ORDER}
    assert "RuntimeError: derivative for aten::hardsigmoid_backward is not implemented" in messages


def scale_in_place(x: torch.Tensor) -> torch.Tensor:
    """2x, written into its own input."""
    return x.mul_(2)


def test_a_program_writing_into_its_input_is_refused_on_reverse_paths_only() -> None:
    # d(2x)/dx = 2, d2/dx2 = 0 (hand derivation). A reverse pass cannot go through an in-place
    # write into a leaf that requires grad: torch's in-place message, for those paths only.
    # The caller's tensor is left as it was: every path runs on copies.
    inputs = columns(x=[0.3, 0.7])
    for name in MODES:
        result = run_path(scale_in_place, inputs, name)
        if name == NESTED_FORWARD_LEVELS:
            continue
        if name in ("autograd:forward", "func:forward"):
            assert [within(v, 2.0) for v in gradient(result, "x")] == [True, True]
        elif name == "func:forward-over-forward":
            assert [within(v, 0.0) for v in hessian(result, "x", "x")] == [True, True]
        else:
            assert result.error is not None and "in-place" in result.error, name
    assert inputs["x"].tolist() == [0.3, 0.7]


# --- custom torch.autograd.Functions ---------------------------------------------------------


class WrongJvpCube(torch.autograd.Function):
    """x**3 with the right backward (3x**2) and a wrong jvp (2x**2)."""

    generate_vmap_rule = True

    @staticmethod
    def forward(x: torch.Tensor) -> torch.Tensor:
        return x**3

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple[torch.Tensor], output: torch.Tensor) -> None:
        ctx.save_for_backward(inputs[0])
        ctx.save_for_forward(inputs[0])

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> torch.Tensor:
        (x,) = ctx.saved_tensors
        return grad * 3 * x**2

    @staticmethod
    def jvp(ctx: Any, tangent: torch.Tensor) -> torch.Tensor:
        (x,) = ctx.saved_tensors
        return tangent * 2 * x**2


class ConstantCosineSin(torch.autograd.Function):
    """sin x with a differentiable backward (g cos x) and a jvp right in value whose cos x is
    detached, so a path that differentiates the jvp sees a constant."""

    generate_vmap_rule = True

    @staticmethod
    def forward(x: torch.Tensor) -> torch.Tensor:
        return torch.sin(x)

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple[torch.Tensor], output: torch.Tensor) -> None:
        ctx.save_for_backward(inputs[0])
        ctx.save_for_forward(inputs[0])

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> torch.Tensor:
        (x,) = ctx.saved_tensors
        return grad * torch.cos(x)

    @staticmethod
    def jvp(ctx: Any, tangent: torch.Tensor) -> torch.Tensor:
        (x,) = ctx.saved_tensors
        return tangent * torch.cos(x).detach()


def outcome(fn: Callable[..., torch.Tensor], name: str, exact: float) -> str:
    """``right``, ``wrong`` or ``refused``: the path's value at x = 2 against ``exact``."""
    result = run_path(fn, columns(x=[2.0]), name)
    if result.error is not None:
        return "refused"
    kind, wrt = ("gradient", ("x",)) if MODES[name].order == 1 else ("hessian", ("x", "x"))
    return "right" if within(float(result.values[(kind, wrt, None)][0]), exact) else "wrong"


def test_a_function_with_a_wrong_jvp_is_wrong_on_the_paths_that_call_it() -> None:
    # x**3 at 2: f' = 3x**2 = 12, f'' = 6x = 12 (hand derivation); the jvp gives 2x**2 = 8,
    # and differentiated, 4x = 8. Paths that run the jvp (first-order forward, and the second
    # derivative of a forward first derivative) are wrong; the reverse paths and hessian's
    # forward-over-reverse (a jvp of the backward's own operations) are right.
    found = {
        name: outcome(WrongJvpCube.apply, name, 12.0)
        for name in MODES
        if name != NESTED_FORWARD_LEVELS
    }
    assert found == {
        "autograd:reverse": "right",
        "autograd:forward": "wrong",
        "autograd:reverse-over-reverse": "right",
        "autograd:forward-over-reverse": "right",
        "autograd:reverse-over-forward": "wrong",
        "func:reverse": "right",
        "func:forward": "wrong",
        "func:reverse-over-reverse": "right",
        "func:forward-over-reverse": "right",
        "func:reverse-over-forward": "wrong",
        "func:forward-over-forward": "wrong",
    }


def test_a_function_right_in_double_backward_is_wrong_in_nested_forward() -> None:
    # sin at 2: f' = cos 2, f'' = -sin 2 (hand derivation). Every first-order path is right,
    # and so are the second derivatives through the backward; nested forward (jacfwd of
    # jacfwd) and reverse-over-forward differentiate the jvp, whose detached cos x is a
    # constant to them: 0, not -sin 2.
    fn = ConstantCosineSin.apply
    assert {outcome(fn, name, math.cos(2.0)) for name in FIRST_ORDER} == {"right"}
    found = {name: outcome(fn, name, -math.sin(2.0)) for name in RUNNING_SECOND_ORDER}
    assert found == {
        "autograd:reverse-over-reverse": "right",
        "autograd:forward-over-reverse": "right",
        "autograd:reverse-over-forward": "wrong",
        "func:reverse-over-reverse": "right",
        "func:forward-over-reverse": "right",
        "func:reverse-over-forward": "wrong",
        "func:forward-over-forward": "wrong",
    }


@pytest.mark.parametrize("batched", [True, False])
def test_a_function_without_jvp_is_a_per_path_error_naming_it_on_every_forward_path(
    batched: bool,
) -> None:
    # sin at 2: f' = cos 2, f'' = -sin 2 (hand derivation) on the paths with no forward mode.
    for name in MODES:
        result = run_path(NoJvpSin.apply, columns(x=[2.0]), name, batched=batched)
        if name == NESTED_FORWARD_LEVELS:
            continue  # refused before any Function runs
        if MODES[name].forward:
            assert result.values == {}, name
            assert result.error is not None
            assert "NoJvpSin defines no jvp, which forward-mode AD needs" in result.error, name
        elif MODES[name].order == 1:
            assert within(gradient(result, "x")[0], math.cos(2.0)), name
        else:
            assert within(hessian(result, "x", "x")[0], -math.sin(2.0)), name


def test_the_reverse_paths_of_a_function_without_jvp_are_the_ones_not_in_forward_mode() -> None:
    assert REVERSE_ONLY_MODES == [
        "autograd:reverse",
        "autograd:reverse-over-reverse",
        "func:reverse",
        "func:reverse-over-reverse",
    ]
    assert all(isinstance(MODES[name], Mode) for name in FORWARD_MODES)


# --- the expression programs under torch.func ------------------------------------------------


@pytest.mark.xfail(
    strict=True,
    reason="translate.py gives a where() of constants (Heaviside) a fresh requires_grad_() "
    "tensor for its node gradient, which torch.func's grad transform refuses",
)
def test_a_jump_function_runs_on_the_func_reverse_paths() -> None:
    # d/dx (Heaviside(x) x) = 1 at x = 0.5 (hand derivation: Heaviside is 1 there).
    result = run_path(program("Heaviside(x)*x", ["x"]), columns(x=[0.5]), "func:reverse")
    assert within(gradient(result, "x")[0], 1.0)
