"""check_function: a user's torch function against an exact spec, bugs and all.

Expected values are hand derivations evaluated with mpmath at 50 digits at exactly the input
autograd saw (``mpmath.mpf`` of a float is exact); never derivcheck's own numbers. For the spec
log(1 + exp(x)) (softplus): f' = sigmoid(x) = 1/(1 + exp(-x)), f'' = sigmoid(x)*(1 - sigmoid(x)).
"""

from __future__ import annotations

import math
import struct
from collections.abc import Iterator
from typing import Any

import mpmath
import pytest
import torch
import torch.nn.functional as F  # noqa: N812
from torch.autograd.function import once_differentiable

from verifier import check_function
from verifier.core.expression import registry
from verifier.core.judge.report import Entry, Report
from verifier.errors import OptionError

mpmath.mp.dps = 50
SOFTPLUS = "log(1 + exp(x))"


def sigmoid(x: float) -> Any:
    return 1 / (1 + mpmath.exp(-mpmath.mpf(x)))


def float32(value: float) -> float:
    return float(struct.unpack("<f", struct.pack("<f", value))[0])


def entries(report: Report, kind: str) -> list[Entry]:
    return [e for e in report.entries if e.kind == kind]


@pytest.fixture(autouse=True)
def no_leftover_functions() -> Iterator[None]:
    """Every test leaves the registry as it found it (check_function registers for a while)."""
    before = registry.registered_here()
    yield
    assert registry.registered_here() == before


class Softplus(torch.autograd.Function):
    """A correct custom softplus: its backward is made of differentiable torch operations."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(x)
        return F.softplus(x)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> torch.Tensor:
        (x,) = ctx.saved_tensors
        return grad * torch.sigmoid(x)


class BiasedSoftplus(Softplus):
    """Backward off by a relative 1e-9."""

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> torch.Tensor:
        (x,) = ctx.saved_tensors
        return grad * torch.sigmoid(x) * (1 + 1e-9)


class DetachedSoftplus(Softplus):
    """Backward computed under no_grad: the gradient has no graph."""

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> torch.Tensor:
        (x,) = ctx.saved_tensors
        with torch.no_grad():
            return grad * torch.sigmoid(x)


class OnceSoftplus(Softplus):
    """Backward marked once-differentiable."""

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad: torch.Tensor) -> torch.Tensor:
        (x,) = ctx.saved_tensors
        return grad * torch.sigmoid(x)


class SignBugSoftplus(Softplus):
    """Backward right for x >= 0, and sigmoid(-x) (the wrong side) for x < 0."""

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> torch.Tensor:
        (x,) = ctx.saved_tensors
        return grad * torch.sigmoid(torch.abs(x))


def test_a_correct_custom_softplus_passes_at_sampled_points_in_float64_and_float32() -> None:
    # Within |x| <= 3: beyond, the double backward runs through torch.sigmoid's backward
    # y*(1 - y), which cancels as y nears 1 (docs/functions.md); see the next test.
    for dtype in ("float64", "float32"):
        report = check_function(
            Softplus.apply, SOFTPLUS, samples=20, domain={"x": (-3, 3)}, seed=3, dtype=dtype
        )
        assert report.verdict == "pass", (dtype, report.reason, report.counts)
        assert report.counts == {"pass": 60}  # value, gradient, hessian at 20 points
        assert {e.kind for e in report.entries} == {"value", "gradient", "hessian"}


def test_a_backward_through_torch_sigmoid_loses_the_hessian_for_large_x() -> None:
    # torch's sigmoid backward is y*(1 - y) with y = sigmoid(8) rounded to float64: 1 - y has
    # lost log2(1/(1 - y)) ~ 11.5 bits, so the second derivative is off by about
    # 2**-53/3.35e-4 ~ 3e-13 relative, far above 64 ulps (hand estimate).
    report = check_function(Softplus.apply, SOFTPLUS, at={"x": 8.0})
    (hessian,) = entries(report, "hessian")
    assert hessian.reference == float(sigmoid(8) * (1 - sigmoid(8)))
    assert hessian.verdict == "fail" and hessian.phase == "second backward"
    assert 1e-14 < (hessian.rel_error or 0) < 1e-11


def test_value_gradient_and_hessian_are_compared_with_the_exact_ones() -> None:
    def my_stable_softplus(x: torch.Tensor) -> torch.Tensor:
        return F.softplus(x)

    report = check_function(my_stable_softplus, SOFTPLUS, at={"x": 0.5})
    value, gradient, hessian = report.entries
    assert (value.kind, value.wrt, gradient.wrt, hessian.wrt) == ("value", None, ("x",), ("x", "x"))
    assert value.reference == float(mpmath.log(1 + mpmath.exp(mpmath.mpf(0.5))))
    assert gradient.reference == float(sigmoid(0.5))
    assert hessian.reference == float(sigmoid(0.5) * (1 - sigmoid(0.5)))
    assert report.expression == "my_stable_softplus(x)"
    # F.softplus's own name is a built-in function: it is checked under a numbered name.
    assert check_function(F.softplus, SOFTPLUS, at={"x": 0.5}).expression.startswith("fn")
    assert "black box" in report.notes[0] and "rtol x |exact value|" in report.notes[0]


def test_a_backward_biased_by_1e_9_fails_its_gradient_naming_the_first_backward() -> None:
    report = check_function(BiasedSoftplus.apply, SOFTPLUS, at={"x": 0.5})
    (value,) = entries(report, "value")
    (gradient,) = entries(report, "gradient")
    assert value.verdict == "pass"
    assert gradient.verdict == "fail" and gradient.phase == "first backward"
    # A custom Function's apply is named by its class (every one's __name__ is "apply").
    assert gradient.blame == "BiasedSoftplus(x)" and report.expression == "BiasedSoftplus(x)"
    # torch computes sigmoid(0.5)*(1 + 1e-9) in float64: within a few ulps of the product.
    assert math.isclose(
        gradient.autograd, float(sigmoid(0.5) * (1 + mpmath.mpf(1e-9))), rel_tol=1e-15
    )
    assert "first backward" in (gradient.detail or "")
    assert report.passed is False


def test_a_detached_double_backward_fails_the_hessian_as_zeros_with_the_reason() -> None:
    report = check_function(DetachedSoftplus.apply, SOFTPLUS, at=[{"x": 0.5}, {"x": -1.5}])
    assert [e.verdict for e in entries(report, "gradient")] == ["pass", "pass"]
    for hessian, x in zip(entries(report, "hessian"), (0.5, -1.5), strict=True):
        assert hessian.verdict == "fail"
        assert hessian.autograd == 0.0
        assert hessian.reference == float(sigmoid(x) * (1 - sigmoid(x)))
        assert "has no graph" in (hessian.detail or "") and hessian.phase == "second backward"


def test_a_detached_backward_of_a_linear_function_passes_its_zero_hessian() -> None:
    class Double(torch.autograd.Function):
        @staticmethod
        def forward(ctx: Any, x: torch.Tensor) -> torch.Tensor:
            return 2 * x

        @staticmethod
        def backward(ctx: Any, grad: torch.Tensor) -> torch.Tensor:
            with torch.no_grad():
                return 2 * grad

    # d2(2x)/dx2 = 0 exactly (hand derivation): zeros compared as zeros pass.
    report = check_function(Double.apply, "2*x", at={"x": 0.75})
    assert report.verdict == "pass", report.entries


def test_a_once_differentiable_backward_fails_the_hessian_with_torchs_message() -> None:
    report = check_function(OnceSoftplus.apply, SOFTPLUS, at={"x": 0.5})
    assert report.reason is None
    (hessian,) = entries(report, "hessian")
    assert hessian.verdict == "fail" and math.isnan(hessian.autograd)
    assert "once_differentiable" in (hessian.detail or "")
    assert [e.verdict for e in entries(report, "gradient")] == ["pass"]


def test_a_sign_bug_fails_only_at_the_negative_points() -> None:
    points = [{"x": -2.0}, {"x": -0.25}, {"x": 0.25}, {"x": 2.0}]
    report = check_function(SignBugSoftplus.apply, SOFTPLUS, at=points, hessian=False)
    verdicts = [e.verdict for e in entries(report, "gradient")]
    assert verdicts == ["fail", "fail", "pass", "pass"]
    wrong = entries(report, "gradient")[0]
    assert wrong.reference == float(sigmoid(-2.0))
    assert wrong.autograd == pytest.approx(float(sigmoid(2.0)), rel=1e-15)


def test_an_approximating_forward_fails_its_value_and_says_so_on_its_derivatives() -> None:
    # The sigmoid approximation x*sigmoid(1.702 x) of gelu x*ndtr(x): off by about 1e-2.
    def gelu_sigmoid(x: torch.Tensor) -> torch.Tensor:
        return x * torch.sigmoid(1.702 * x)

    report = check_function(gelu_sigmoid, "x*ndtr(x)", at={"x": 1.0})
    (value,) = entries(report, "value")
    assert value.verdict == "fail" and value.phase == "forward"
    # gelu(1) = ndtr(1) = 0.8413447460685429 (mpmath: ncdf(1)).
    assert value.reference == float(mpmath.ncdf(1))
    (gradient,) = entries(report, "gradient")
    assert gradient.verdict == "fail"
    assert "own value is wrong at this point" in (gradient.detail or "")


def test_float32_gradients_of_a_float32_function_are_judged_in_float32() -> None:
    x = float32(0.3)
    report = check_function(Softplus.apply, SOFTPLUS, at={"x": 0.3}, dtype="float32")
    (gradient,) = entries(report, "gradient")
    assert report.dtype == "float32" and report.verdict == "pass"
    assert gradient.reference == pytest.approx(float(sigmoid(x)), rel=2**-40)


def test_variables_give_the_order_of_the_positional_arguments() -> None:
    def minus(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return a - b

    right = check_function(minus, "x - y", at={"x": 3, "y": 1}, variables=["x", "y"])
    assert right.verdict == "pass"
    swapped = check_function(minus, "x - y", at={"x": 3, "y": 1}, variables=["y", "x"])
    (value,) = entries(swapped, "value")
    assert value.verdict == "fail" and (value.autograd, value.reference) == (-2.0, 2.0)


def test_a_spec_of_two_variables_needs_their_order() -> None:
    with pytest.raises(OptionError, match="give variables"):
        check_function(torch.hypot, "sqrt(x**2 + y**2)", at={"x": 3, "y": 4})
    with pytest.raises(OptionError, match="'y', which is not among variables"):
        check_function(torch.hypot, "sqrt(x**2 + y**2)", at={"x": 3, "y": 4}, variables=["x"])


@pytest.mark.parametrize(
    ("fn", "words"),
    [
        (lambda x: (_ for _ in ()).throw(ValueError("bad input")), "raised ValueError: bad input"),
        (lambda x: x.sum(), "returned shape () for inputs of shape (2,)"),
        (lambda x: x.tolist(), "returned list, not a tensor"),
        (lambda x: x.float(), "returned float32 for float64 inputs"),
        (lambda x: float(x), "one tensor per argument holding every point"),
    ],
)
def test_a_function_that_misbehaves_ends_as_an_error_that_names_it(fn: Any, words: str) -> None:
    report = check_function(fn, "x", at=[{"x": 0.5}, {"x": 1.5}])
    assert report.verdict == "error"
    assert words in (report.reason or "")
    assert "function 'fn" in (report.reason or "") and "<lambda>" in (report.reason or "")


def test_a_backward_that_raises_ends_as_an_error_saying_where() -> None:
    class Broken(Softplus):
        @staticmethod
        def backward(ctx: Any, grad: torch.Tensor) -> torch.Tensor:
            raise RuntimeError("backward not written yet")

    report = check_function(Broken.apply, SOFTPLUS, at={"x": 0.5})
    assert report.verdict == "error"
    assert "backward not written yet" in (report.reason or "")
    assert "custom function" in (report.reason or "")


def test_a_function_that_does_not_batch_is_checked_point_by_point() -> None:
    # branchy reads its input as a Python number, so it takes one point at a time; its value
    # is sin on either branch, whose derivatives are cos and -sin (hand). Batched, it is
    # handed two points at once and raises, which ends the check as error naming it; called
    # point by point it passes, on the forward path too.
    def branchy(x: torch.Tensor) -> torch.Tensor:
        return torch.sin(x) if x.item() > 0 else torch.sin(x)

    points = [{"x": 0.5}, {"x": -0.25}]
    batched = check_function(branchy, "sin(x)", at=points)
    assert batched.verdict == "error" and "branchy" in (batched.reason or "")
    alone = check_function(branchy, "sin(x)", at=points, batched=False, modes="autograd:forward")
    assert alone.verdict == "pass" and alone.counts == {"pass": 6}
    assert [(p["mode"], p["verdict"]) for p in alone.paths or []] == [("autograd:forward", "pass")]
