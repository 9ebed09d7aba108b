"""The functions an expression may call: their names, arities, parameters and SymPy classes.

This module imports SymPy only (no torch), so the service can validate expressions without
loading torch. The torch side of each function lives in :mod:`verifier.core.program.translate` and
the high-precision side in :mod:`verifier.core.exact.evaluator`; a test keeps the three tables in
step. Functions that SymPy lacks are in :mod:`verifier.core.expression.special`. A parameter
(``polygamma``'s order, ``softplus``'s beta) is a number literal, checked here when the expression
is parsed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction

import sympy
from sympy.core.function import ArgumentIndexError

from verifier.core.expression import special


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


MAX_INTEGER_PARAMETER = 100
"""Largest integer parameter (a polygamma order, an mvlgamma dimension, round's decimals), in
absolute value: each is a sum or a derivative order the reference evaluates term by term."""

ANY = "any"
NONZERO = "nonzero"
NONNEGATIVE = "nonnegative"
ORDER = "order"  # an integer >= 0
DIMENSION = "dimension"  # an integer >= 1
INTEGER = "integer"

_RULE_WORDS = {
    ANY: "a number",
    NONZERO: "a non-zero number",
    NONNEGATIVE: "a number >= 0",
    ORDER: f"an integer from 0 to {MAX_INTEGER_PARAMETER}",
    DIMENSION: f"an integer from 1 to {MAX_INTEGER_PARAMETER}",
    INTEGER: f"an integer from -{MAX_INTEGER_PARAMETER} to {MAX_INTEGER_PARAMETER}",
}


@dataclass(frozen=True)
class Param:
    """A literal parameter of a function: its name, what it may be, its default (None: it must
    be written)."""

    name: str
    rule: str = ANY
    default: Fraction | None = None

    def problem(self, value: Fraction) -> str | None:
        """Why ``value`` is refused, in words; None when it is accepted."""
        whole = value.denominator == 1
        limit = MAX_INTEGER_PARAMETER
        accepted = {
            ANY: True,
            NONZERO: value != 0,
            NONNEGATIVE: value >= 0,
            ORDER: whole and 0 <= value <= limit,
            DIMENSION: whole and 1 <= value <= limit,
            INTEGER: whole and abs(value) <= limit,
        }[self.rule]
        return None if accepted else f"must be {_RULE_WORDS[self.rule]}"


@dataclass(frozen=True)
class FunctionSpec:
    """One supported function: how it is written and which SymPy class it becomes.

    ``arity`` counts the tensor arguments; ``params`` follow them, except the first
    ``leading_params`` of them, which come first (``polygamma(n, x)``). ``ascending``: the
    parameters must not decrease (``hardtanh``'s min_val <= max_val).
    """

    name: str
    sympy_class: type[sympy.Basic] | None
    arity: int | None  # None: two or more arguments (Max, Min)
    summary: str
    params: tuple[Param, ...] = ()
    leading_params: int = 0
    ascending: bool = False

    def parameter_positions(self, count: int) -> tuple[int, ...]:
        """Which of ``count`` written arguments are parameters."""
        lead = tuple(range(self.leading_params))
        return lead + tuple(range(self.leading_params + (self.arity or 0), count))

    def relation_problem(self, values: Sequence[Fraction]) -> str | None:
        """Why the parameters together are refused; None when they are accepted."""
        if self.ascending and any(a > b for a, b in zip(values, values[1:], strict=False)):
            names = " <= ".join(p.name for p in self.params)
            return f"needs {names}"
        return None


def _unary(name: str, summary: str, *params: Param) -> FunctionSpec:
    return FunctionSpec(name, getattr(special, name), 1, summary, params)


def _binary(name: str, summary: str) -> FunctionSpec:
    return FunctionSpec(name, getattr(special, name), 2, summary)


def _one(value: float | str) -> Fraction:
    return Fraction(value)


_SPECS = (
    FunctionSpec("exp", sympy.exp, 1, "exponential"),
    FunctionSpec("log", sympy.log, 1, "natural logarithm"),
    FunctionSpec("sqrt", None, 1, "square root, SymPy's x**(1/2)"),
    FunctionSpec("rsqrt", None, 1, "reciprocal square root, SymPy's x**(-1/2)"),
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
    # torch's own operations, each by its dedicated torch function (docs/functions.md).
    FunctionSpec("add", sympy.Add, 2, "a + b, torch.add"),
    FunctionSpec("mul", sympy.Mul, 2, "a*b, torch.mul"),
    FunctionSpec("pow", sympy.Pow, 2, "a**b, torch.pow"),
    FunctionSpec("maximum", sympy.Max, 2, "maximum of two, torch.maximum"),
    FunctionSpec("minimum", sympy.Min, 2, "minimum of two, torch.minimum"),
    FunctionSpec(
        "polygamma",
        sympy.polygamma,
        1,
        "polygamma(n, x), the n-th derivative of digamma",
        (Param("n", ORDER),),
        leading_params=1,
    ),
    _unary("log1p", "log(1 + x)"),
    _unary("expm1", "exp(x) - 1"),
    _unary("exp2", "2**x"),
    _unary("log2", "base-2 logarithm"),
    _unary("log10", "base-10 logarithm"),
    _unary("reciprocal", "1/x"),
    _unary("square", "x**2"),
    _unary("neg", "-x"),
    _unary("positive", "x"),
    _unary("nan_to_num", "x, with nan and infinities replaced"),
    _unary("deg2rad", "degrees to radians"),
    _unary("rad2deg", "radians to degrees"),
    _unary("sigmoid", "logistic function 1/(1 + exp(-x))"),
    _unary("logit", "log(x/(1 - x))"),
    _unary("erfinv", "inverse error function"),
    _unary("ndtr", "standard normal CDF"),
    _unary("ndtri", "inverse standard normal CDF"),
    _unary("log_ndtr", "log of the standard normal CDF"),
    _unary("erfcx", "scaled complementary error function exp(x**2)*erfc(x)"),
    _unary("i0", "modified Bessel function I0"),
    _unary("i1", "modified Bessel function I1"),
    _unary("i0e", "exp(-|x|)*I0(x)"),
    _unary("i1e", "exp(-|x|)*I1(x)"),
    _unary("entr", "-x*log(x)"),
    _unary("lgamma", "log|gamma(x)|"),
    _unary("silu", "x*sigmoid(x)"),
    _unary("mish", "x*tanh(softplus(x))"),
    _unary("gelu", "x*ndtr(x)"),
    _unary("gelu_tanh", "tanh approximation of gelu"),
    _unary("logsigmoid", "log(sigmoid(x))"),
    _unary("softsign", "x/(1 + |x|)"),
    _unary("tanhshrink", "x - tanh(x)"),
    _unary("selu", "scaled exponential linear unit"),
    _unary("relu", "max(x, 0)"),
    _unary("relu6", "min(max(x, 0), 6)"),
    _unary("hardsigmoid", "relu6(x + 3)/6"),
    _unary("hardswish", "x*relu6(x + 3)/6"),
    _unary("sgn", "sign, with sgn(0) = 0"),
    _unary("trunc", "rounding toward zero"),
    _unary("frac", "x - trunc(x)"),
    _unary("angle", "argument of a real number: pi below 0, else 0"),
    _unary(
        "round", "rounding half to even, to decimals places", Param("decimals", INTEGER, _one(0))
    ),
    _unary("mvlgamma", "multivariate log-gamma of dimension p", Param("p", DIMENSION)),
    _unary("elu", "exponential linear unit", Param("alpha", ANY, _one(1))),
    _unary("celu", "continuously differentiable elu", Param("alpha", NONZERO, _one(1))),
    _unary("leaky_relu", "x, or slope*x below 0", Param("negative_slope", ANY, _one("0.01"))),
    _unary(
        "softplus",
        "log1p(exp(beta*x))/beta, x above the threshold",
        Param("beta", NONZERO, _one(1)),
        Param("threshold", ANY, _one(20)),
    ),
    FunctionSpec(
        "hardtanh",
        special.hardtanh,
        1,
        "x clamped to [min_val, max_val]",
        (Param("min_val", ANY, _one(-1)), Param("max_val", ANY, _one(1))),
        ascending=True,
    ),
    _unary("threshold", "x above threshold, else value", Param("threshold"), Param("value")),
    _unary("softshrink", "shrink toward 0 by lambd", Param("lambd", NONNEGATIVE, _one("0.5"))),
    _unary("hardshrink", "x where |x| > lambd, else 0", Param("lambd", ANY, _one("0.5"))),
    _binary("sub", "a - b"),
    _binary("rsub", "b - a"),
    _binary("div", "a/b"),
    _binary("prelu", "x, or a*x below 0"),
    _binary("copysign", "|a| with the sign of b"),
    _binary("fmax", "maximum ignoring nan"),
    _binary("fmin", "minimum ignoring nan"),
    _binary("clamp_min", "max(x, m)"),
    _binary("clamp_max", "min(x, m)"),
    _binary("fmod", "a - b*trunc(a/b)"),
    _binary("remainder", "a - b*floor(a/b)"),
    _binary("ldexp", "x*2**e"),
    _binary("logaddexp", "log(exp(a) + exp(b))"),
    _binary("hypot", "sqrt(a**2 + b**2)"),
    _binary("xlogy", "x*log(y), 0 where x = 0"),
    _binary("xlog1py", "x*log1p(y), 0 where x = 0"),
)

PARAMETER_POSITIONS: dict[type, tuple[int, ...]] = {
    spec.sympy_class: spec.parameter_positions(spec.arity + len(spec.params))
    for spec in _SPECS
    if spec.params and spec.sympy_class is not None and spec.arity is not None
}
"""For each function class with parameters, which arguments are parameters."""

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
    "true_divide": "div",
    "expit": "sigmoid",
}
"""Other spellings accepted for supported functions."""

CONSTANTS: dict[str, sympy.Expr] = {"pi": sympy.pi}
"""Names that are constants; every other name that is not called is a variable."""
