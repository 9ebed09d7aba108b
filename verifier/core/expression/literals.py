"""Literals are inputs too: every number written in an expression, as the torch graph holds it.

The translator materialises each literal (``0.7``, ``pi``, the ``1/3`` of ``x**(1/3)`` once
computed) as a tensor of the check's dtype, rounded once. So that the reference is taken at the
very inputs autograd saw, every literal that the dtype does not hold exactly is replaced, before
differentiation, by a placeholder symbol whose value is that rounded number. ``Abs(x - 0.7)`` at
the float64 nearest 0.7 is then exactly at its kink, as it is for torch. Integer exponents and
the exponents 1/2 and -1/2 are not literals of the graph (``pow(x, 2)``, ``sqrt``, ``rsqrt``).

>>> import sympy
>>> from verifier.core.floats.dtypes import DTYPES
>>> from verifier.core.expression.parse import parse_expression
>>> bound = bind_literals(parse_expression("x - 0.7").expr, DTYPES["float32"])
>>> bound.shown
[{'written': '-7/10', 'rounded': -0.699999988079071}]
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from fractions import Fraction

import sympy

from verifier.core.expression.syntax import make_symbol
from verifier.core.floats.dtypes import DType, round_to_dtype

PLACEHOLDER_PREFIX = "_k"
"""Placeholder names start with ``_``, which no variable name may (the parser refuses it)."""

_CONSTANT_DIGITS = 60


def literal_value(value: sympy.Basic) -> Fraction:
    """The exact value of a literal (a number constant such as pi to 60 digits)."""
    exact = (
        sympy.Rational(value)
        if value.is_Rational
        else sympy.Rational(value.evalf(_CONSTANT_DIGITS))
    )
    return Fraction(int(exact.p), int(exact.q))


def round_literal(value: sympy.Basic, dtype: DType) -> float:
    """A literal rounded once, exactly, to ``dtype``: the number its tensor holds."""
    return round_to_dtype(literal_value(value), dtype)


@dataclass(frozen=True)
class Literals:
    """An expression with its inexact literals bound to placeholders.

    Attributes:
        expr: the expression, same tree, each inexact literal replaced by its placeholder.
        values: placeholder name to the dtype value the torch graph holds.
        forward: literal to placeholder, to map other subtrees the same way.
        shown: each literal whose rounded value differs from what was written.
        overflowed: literals beyond the dtype's range (their tensor is infinite).
    """

    expr: sympy.Expr
    values: dict[str, float] = field(default_factory=dict)
    forward: dict[sympy.Basic, sympy.Basic] = field(default_factory=dict)
    shown: list[dict[str, object]] = field(default_factory=list)
    overflowed: list[sympy.Basic] = field(default_factory=list)

    def bind(self, subtree: sympy.Basic) -> sympy.Basic:
        """``subtree`` of the original expression, with the same placeholders."""
        if not self.forward:
            return subtree
        with sympy.evaluate(False):
            return subtree.xreplace(self.forward)


def bind_literals(expr: sympy.Expr, dtype: DType) -> Literals:
    """Replace every literal that ``dtype`` does not hold exactly by a placeholder."""
    forward: dict[sympy.Basic, sympy.Basic] = {}
    values: dict[str, float] = {}
    shown: list[dict[str, object]] = []
    overflowed: list[sympy.Basic] = []
    for literal in graph_literals(expr):
        rounded = round_literal(literal, dtype)
        if not math.isfinite(rounded):
            # The reference keeps the exact value; the diagnosis calls the overflow `range`.
            overflowed.append(literal)
            shown.append({"written": str(literal), "rounded": rounded})
            continue
        if literal.is_Rational and Fraction(rounded) == literal_value(literal):
            continue
        name = f"{PLACEHOLDER_PREFIX}{len(values)}"
        forward[literal] = make_symbol(name)
        values[name] = rounded
        shown.append({"written": str(literal), "rounded": rounded})
    if not forward:
        return Literals(expr, shown=shown, overflowed=overflowed)
    with sympy.evaluate(False):
        bound = expr.xreplace(forward)
    return Literals(bound, values, forward, shown, overflowed)


def graph_literals(expr: sympy.Basic) -> list[sympy.Basic]:
    """The distinct literals the translator materialises as tensors, in tree order."""
    found: dict[sympy.Basic, None] = {}
    stack = [expr]
    while stack:
        node = stack.pop()
        if node.is_Number or node.is_NumberSymbol:
            found[node] = None
            continue
        args = list(node.args)
        if isinstance(node, sympy.Pow) and _exact_exponent(args[1]):
            args = args[:1]
        stack.extend(reversed(args))
    return list(found)


def _exact_exponent(exponent: sympy.Basic) -> bool:
    return isinstance(exponent, sympy.Integer) or exponent in (sympy.S.Half, -sympy.S.Half)
