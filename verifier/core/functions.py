"""The functions an expression may call: their names, arities and SymPy classes.

This module imports SymPy only (no torch), so the service can validate expressions without
loading torch. The torch side of each function lives in :mod:`verifier.core.translate` and the
high-precision side in :mod:`verifier.core.reference`; a test keeps the three tables in step.
"""

from __future__ import annotations

from dataclasses import dataclass

import sympy
from sympy.core.function import ArgumentIndexError


class sinc(sympy.Function):  # noqa: N801  (named as users write it, like SymPy's own classes)
    """Normalized sinc, sin(pi x)/(pi x) with sinc(0) = 1, as in torch and NumPy.

    SymPy's own ``sinc`` is the unnormalized sin(x)/x; expressions here follow torch, whose
    ``torch.sinc`` is the function being checked.

    >>> from sympy import Symbol
    >>> sinc(Symbol('x')).diff(Symbol('x'))
    (cos(pi*x) - sinc(x))/x
    """

    nargs = 1

    def fdiff(self, argindex: int = 1) -> sympy.Expr:
        if argindex != 1:
            raise ArgumentIndexError(self, argindex)
        (x,) = self.args
        return (sympy.cos(sympy.pi * x) - sinc(x)) / x

    def _eval_rewrite_as_sin(self, x: sympy.Expr, **kwargs: object) -> sympy.Expr:
        return sympy.Piecewise(
            (sympy.sin(sympy.pi * x) / (sympy.pi * x), sympy.Ne(x, 0)), (sympy.S.One, True)
        )

    def _eval_is_real(self) -> bool | None:
        return self.args[0].is_real


@dataclass(frozen=True)
class FunctionSpec:
    """One supported function: how it is written and which SymPy class it becomes."""

    name: str
    sympy_class: type[sympy.Basic] | None
    arity: int | None  # None: two or more arguments (Max, Min)
    summary: str


_SPECS = (
    FunctionSpec("exp", sympy.exp, 1, "exponential"),
    FunctionSpec("log", sympy.log, 1, "natural logarithm"),
    FunctionSpec("sqrt", None, 1, "square root, SymPy's x**(1/2)"),
    FunctionSpec("sin", sympy.sin, 1, "sine"),
    FunctionSpec("cos", sympy.cos, 1, "cosine"),
    FunctionSpec("tan", sympy.tan, 1, "tangent"),
    FunctionSpec("cot", sympy.cot, 1, "cotangent"),
    FunctionSpec("sec", sympy.sec, 1, "secant"),
    FunctionSpec("csc", sympy.csc, 1, "cosecant"),
    FunctionSpec("asin", sympy.asin, 1, "inverse sine"),
    FunctionSpec("acos", sympy.acos, 1, "inverse cosine"),
    FunctionSpec("atan", sympy.atan, 1, "inverse tangent"),
    FunctionSpec("atan2", sympy.atan2, 2, "two-argument inverse tangent atan2(y, x)"),
    FunctionSpec("sinh", sympy.sinh, 1, "hyperbolic sine"),
    FunctionSpec("cosh", sympy.cosh, 1, "hyperbolic cosine"),
    FunctionSpec("tanh", sympy.tanh, 1, "hyperbolic tangent"),
    FunctionSpec("coth", sympy.coth, 1, "hyperbolic cotangent"),
    FunctionSpec("sech", sympy.sech, 1, "hyperbolic secant"),
    FunctionSpec("csch", sympy.csch, 1, "hyperbolic cosecant"),
    FunctionSpec("asinh", sympy.asinh, 1, "inverse hyperbolic sine"),
    FunctionSpec("acosh", sympy.acosh, 1, "inverse hyperbolic cosine"),
    FunctionSpec("atanh", sympy.atanh, 1, "inverse hyperbolic tangent"),
    FunctionSpec("Abs", sympy.Abs, 1, "absolute value"),
    FunctionSpec("sign", sympy.sign, 1, "sign, with sign(0) = 0"),
    FunctionSpec("Max", sympy.Max, None, "maximum of two or more arguments"),
    FunctionSpec("Min", sympy.Min, None, "minimum of two or more arguments"),
    FunctionSpec("Heaviside", sympy.Heaviside, 1, "unit step, Heaviside(0) = 1/2"),
    FunctionSpec("Piecewise", sympy.Piecewise, None, "Piecewise((expr, cond), ..., (expr, True))"),
    FunctionSpec("floor", sympy.floor, 1, "floor"),
    FunctionSpec("ceiling", sympy.ceiling, 1, "ceiling"),
    FunctionSpec("erf", sympy.erf, 1, "error function"),
    FunctionSpec("erfc", sympy.erfc, 1, "complementary error function"),
    FunctionSpec("gamma", sympy.gamma, 1, "gamma function"),
    FunctionSpec("loggamma", sympy.loggamma, 1, "log of the gamma function"),
    FunctionSpec("digamma", sympy.digamma, 1, "digamma function"),
    FunctionSpec("sinc", sinc, 1, "normalized sinc sin(pi x)/(pi x), as torch.sinc"),
)

FUNCTIONS: dict[str, FunctionSpec] = {spec.name: spec for spec in _SPECS}
"""Supported functions by the name an expression uses."""

ALIASES: dict[str, str] = {
    "ln": "log",
    "arcsin": "asin",
    "arccos": "acos",
    "arctan": "atan",
    "abs": "Abs",
    "max": "Max",
    "min": "Min",
    "ceil": "ceiling",
}
"""Other spellings accepted for supported functions."""

CONSTANTS: dict[str, sympy.Expr] = {"pi": sympy.pi}
"""Names that are constants; every other name that is not called is a variable."""
