"""register_function: a user's torch function inside larger expressions, node gradients too.

Expected values are hand derivations, evaluated with mpmath at 50 digits at the float input.
For s(y) = log(1 + exp(y)): s' = sigmoid(y); for g = 2*s(y) + y: dg/dy = 2*sigmoid(y) + 1,
d2g/dy2 = 2*sigmoid(y)*(1 - sigmoid(y)), and d g / d s(y) = 2 (the node gradient).
"""

from __future__ import annotations

import pickle
from collections.abc import Iterator
from typing import Any

import mpmath
import pytest
import torch
import torch.nn.functional as F  # noqa: N812

from verifier import check, register_function
from verifier.core.expression import registry
from verifier.core.expression.parse import parse_expression
from verifier.errors import ExpressionError, OptionError

mpmath.mp.dps = 50


def sigmoid(y: float) -> Any:
    return 1 / (1 + mpmath.exp(-mpmath.mpf(y)))


@pytest.fixture
def functions() -> Iterator[list[str]]:
    """Names registered by the test, forgotten afterwards."""
    names: list[str] = []
    yield names
    for name in names:
        registry.forget(name)


def biased_softplus(y: torch.Tensor) -> torch.Tensor:
    class Biased(torch.autograd.Function):
        @staticmethod
        def forward(ctx: Any, u: torch.Tensor) -> torch.Tensor:
            ctx.save_for_backward(u)
            return F.softplus(u)

        @staticmethod
        def backward(ctx: Any, grad: torch.Tensor) -> torch.Tensor:
            (u,) = ctx.saved_tensors
            return grad * torch.sigmoid(u) * (1 - 1e-8)

    return Biased.apply(y)


def test_a_registered_function_is_checked_inside_a_larger_expression(functions: list[str]) -> None:
    register_function("mysoftplus", F.softplus, "log(1 + exp(x))")
    functions.append("mysoftplus")
    report = check("2*mysoftplus(y) + y", at={"y": 0.5}, nodes=True)
    assert report.verdict == "pass", report.entries
    (gradient,) = [e for e in report.entries if e.kind == "gradient"]
    (hessian,) = [e for e in report.entries if e.kind == "hessian"]
    assert gradient.reference == float(2 * sigmoid(0.5) + 1)
    assert hessian.reference == float(2 * sigmoid(0.5) * (1 - sigmoid(0.5)))
    nodes = {e.node: e for e in report.entries if e.kind == "node"}
    assert nodes["mysoftplus(y)"].reference == 2.0
    assert nodes["mysoftplus(y)"].autograd == 2.0
    assert "mysoftplus" in report.functions


def test_a_buggy_registered_function_is_blamed_by_name(functions: list[str]) -> None:
    register_function("biasedsp", biased_softplus, "log(1 + exp(x))")
    functions.append("biasedsp")
    report = check("2*biasedsp(y) + y", at={"y": 0.5}, nodes=True)
    (gradient,) = [e for e in report.entries if e.kind == "gradient"]
    assert gradient.verdict == "fail"
    assert gradient.blame == "biasedsp(y)" and gradient.phase == "first backward"
    # autograd: 2*sigmoid(0.5)*(1 - 1e-8) + 1, up to float64 rounding.
    expected = float(2 * sigmoid(0.5) * (1 - mpmath.mpf(1e-8)) + 1)
    assert gradient.autograd == pytest.approx(expected, rel=1e-15)


def test_a_function_of_two_arguments_takes_them_in_declared_order(functions: list[str]) -> None:
    register_function("scaled", lambda a, b: a * torch.exp(b), "u*exp(v)", args=("u", "v"))
    functions.append("scaled")
    # d/dy of scaled(x, y) = x*exp(y): x*exp(y); at (2, 0): 2 (hand derivation).
    report = check("scaled(x, y)", at={"x": 2, "y": 0})
    assert report.verdict == "pass"
    assert report.gradient == [[1.0, 2.0]]


@pytest.mark.parametrize(
    ("name", "words"),
    [
        ("sin", "built-in function"),
        ("ln", "built-in function"),
        ("pi", "constant"),
        ("_hidden", "not starting with '_'"),
        ("two words", "not starting with '_'"),
    ],
)
def test_names_of_built_ins_and_bad_names_are_refused(name: str, words: str) -> None:
    with pytest.raises(OptionError, match=words):
        register_function(name, torch.sin, "sin(x)")


def test_a_plugins_function_cannot_be_taken_over_by_registering_its_name() -> None:
    registry.declare("pluginlike", "x**2", origin="plugin example (test)")
    try:
        with pytest.raises(OptionError, match="already declared"):
            register_function("pluginlike", lambda x: x * x, "x**2")
        assert registry.missing_implementations(["pluginlike"])  # still none of the user's
    finally:
        del registry._declarations["pluginlike"], registry._classes["pluginlike"]


def test_a_second_definition_under_one_name_is_refused(functions: list[str]) -> None:
    register_function("twice", lambda x: 2 * x, "2*x")
    functions.append("twice")
    register_function("twice", lambda x: x + x, "2*x")  # same definition: a new impl is fine
    with pytest.raises(OptionError, match="already declared"):
        register_function("twice", lambda x: 3 * x, "3*x")


def test_a_definition_must_use_only_its_arguments() -> None:
    with pytest.raises(OptionError, match="'y', which is not an argument"):
        register_function("leaky", lambda x: x, "x + y")
    with pytest.raises(OptionError, match="definition is refused"):
        register_function("broken", lambda x: x, "x +")
    assert registry.lookup("leaky") is None and registry.lookup("broken") is None


def test_a_registered_name_used_as_a_variable_is_refused(functions: list[str]) -> None:
    register_function("gain", lambda x: 3 * x, "3*x")
    functions.append("gain")
    with pytest.raises(ExpressionError, match="'gain' is a custom function, not a variable"):
        parse_expression("gain + x")


def test_a_declared_function_without_an_implementation_ends_as_an_error(
    functions: list[str],
) -> None:
    registry.declare("declaredonly", "x**2")
    functions.append("declaredonly")
    report = check("declaredonly(x)", at={"x": 1})
    assert report.verdict == "error"
    assert "no torch implementation of function 'declaredonly'" in (report.reason or "")


def test_custom_nodes_pickle_by_name(functions: list[str]) -> None:
    register_function("cube", lambda x: x**3, "x**3")
    functions.append("cube")
    expr = parse_expression("cube(x)").expr
    copy = pickle.loads(pickle.dumps(expr))
    assert copy == expr and type(copy) is type(expr)
