"""The function table, its documentation, the torch translator and the arb evaluator agree.

``verifier.core.expression.functions`` is the one list of what an expression may call; the
translator (``verifier.core.program.translate``) and the certified evaluator
(``verifier.core.exact.evaluator``) each need an entry for every function in it, and
``docs/functions.md`` must describe each one.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import sympy
import torch

from verifier.core.exact import evaluator
from verifier.core.expression import special
from verifier.core.expression.functions import ALIASES, FUNCTIONS, FunctionSpec
from verifier.core.expression.parse import parse_expression
from verifier.core.floats.dtypes import DTYPES
from verifier.core.program import translate

DOC = Path(__file__).resolve().parents[2] / "docs" / "functions.md"

X = sympy.Symbol("x", real=True)
HALF = sympy.Rational(1, 2)

# Node types the translator's apply() handles itself rather than through its FUNCTIONS table.
TRANSLATED_STRUCTURALLY = (sympy.Add, sympy.Mul, sympy.Pow, sympy.Piecewise)
# Functions the evaluator compiles to its own jump instructions rather than through _SMOOTH.
EVALUATED_AS_JUMPS = (
    sympy.sign,
    sympy.Heaviside,
    sympy.floor,
    sympy.ceiling,
    sympy.Piecewise,
    sympy.atan2,
)


# The written call for functions with required parameters (the others take their defaults).
WITH_PARAMETERS = {
    "polygamma": "polygamma(2, x)",  # torch's trigamma (n = 1) is off by 1e-10 relative
    "mvlgamma": "mvlgamma(x, 2)",
    "threshold": "threshold(x, 0.5, 2)",
}


def applied(spec: FunctionSpec) -> sympy.Expr:
    """The function applied to the real symbol x (and constants where it needs more arguments)."""
    if spec.params:
        return parse_expression(WITH_PARAMETERS.get(spec.name, f"{spec.name}(x)")).expr
    if spec.name == "sqrt":
        return sympy.Pow(X, HALF, evaluate=False)
    if spec.name == "rsqrt":
        return sympy.Pow(X, -HALF, evaluate=False)
    if spec.name == "Piecewise":
        return sympy.Piecewise((X, sympy.Lt(X, 0)), (X**2, True))
    assert spec.sympy_class is not None
    if spec.arity is None:  # variadic: Max, Min
        return spec.sympy_class(X, HALF, evaluate=False)
    if spec.arity == 2:  # atan2(y, x)
        return spec.sympy_class(X, HALF, evaluate=False)
    return spec.sympy_class(X, evaluate=False)


def documented_names() -> set[str]:
    """Every name written in backticks as a call, ``name(``, in docs/functions.md."""
    text = DOC.read_text(encoding="utf-8")
    return set(re.findall(r"`([A-Za-z][A-Za-z0-9_]*)\(", text))


def documented_aliases() -> dict[str, str]:
    """The rows of the doc's alias table: written name -> canonical name."""
    text = DOC.read_text(encoding="utf-8")
    section = text.split("## Aliases", 1)[1].split("##", 1)[0]
    return dict(re.findall(r"^\| `(\w+)` \| `(\w+)` \|", section, flags=re.MULTILINE))


@pytest.mark.parametrize("name", sorted(FUNCTIONS))
def test_every_supported_function_is_documented(name: str) -> None:
    assert name in documented_names(), f"docs/functions.md has no row for {name}()"


@pytest.mark.parametrize("alias", sorted(ALIASES))
def test_every_alias_is_documented_with_its_canonical_function(alias: str) -> None:
    assert alias in documented_names(), f"docs/functions.md never shows {alias}() being written"
    assert documented_aliases().get(alias) == ALIASES[alias]


def test_doc_lists_the_arithmetic_operators() -> None:
    text = DOC.read_text(encoding="utf-8")
    for written in ("`a + b`", "`a - b`", "`-a`", "`a * b`", "`a / b`", "`a ** n`", "`a ^ n`"):
        assert written in text


def test_doc_says_which_torch_it_was_checked_with() -> None:
    assert "checked with torch 2.13" in DOC.read_text(encoding="utf-8")


@pytest.mark.parametrize("name", sorted(FUNCTIONS))
def test_translator_has_an_entry_for_every_function(name: str) -> None:
    expr = applied(FUNCTIONS[name])
    assert type(expr) in translate.FUNCTIONS or isinstance(expr, TRANSLATED_STRUCTURALLY)


@pytest.mark.parametrize("name", sorted(FUNCTIONS))
def test_evaluator_has_an_entry_for_every_function(name: str) -> None:
    expr = applied(FUNCTIONS[name])
    smooth = evaluator._SMOOTH  # the private table is exactly what is under test here
    assert (
        type(expr) in smooth
        or isinstance(expr, EVALUATED_AS_JUMPS)
        or isinstance(expr, sympy.Pow | sympy.Add | sympy.Mul)
        or isinstance(expr, special.TorchFunction)  # compiled as its definition
    )


@pytest.mark.parametrize("name", sorted(FUNCTIONS))
def test_translator_runs_every_function_on_float64_tensors(name: str) -> None:
    expr = applied(FUNCTIONS[name])
    x = torch.tensor([0.3, 0.7], dtype=torch.float64)
    translation = translate.Translation(expr, {"x": x}, DTYPES["float64"], torch.device("cpu"))
    assert translation.output.shape == (2,)
    assert translation.output.dtype == torch.float64


@pytest.mark.parametrize("name", sorted(FUNCTIONS))
def test_evaluator_runs_every_function_at_128_bits(name: str) -> None:
    expr = applied(FUNCTIONS[name])
    program = evaluator.Program([expr], ["x"])
    run = program.run({"x": 0.3}, precision=128)
    assert len(run.values) == len(program.instructions)


@pytest.mark.parametrize("name", sorted(FUNCTIONS))
def test_translator_and_evaluator_agree_at_a_generic_point(name: str) -> None:
    # Not an expected value from outside: a consistency check that the two tables compute the
    # same function (e.g. both use the normalized sinc). 0.3 is inside every function's domain
    # except acosh's (x >= 1), where both sides must give nan, and mvlgamma(x, 2)'s (x > 1/2),
    # where both are finite (torch checks no domain) and must agree.
    expr = applied(FUNCTIONS[name])
    x = torch.tensor([0.3], dtype=torch.float64)
    autograd_value = translate.Translation(
        expr, {"x": x}, DTYPES["float64"], torch.device("cpu")
    ).output
    program = evaluator.Program([expr], ["x"])
    ball = program.run({"x": 0.3}, precision=128).values[program.outputs[0]]
    if name == "acosh":
        assert torch.isnan(autograd_value).all()
        assert not ball.is_finite()
        return
    assert ball.is_finite()
    assert float(autograd_value[0]) == pytest.approx(float(ball.mid()), rel=1e-13, abs=1e-15)
