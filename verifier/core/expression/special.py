"""SymPy functions for torch operations that SymPy has no class for.

Each class is the exact mathematical function that one dedicated torch operation computes (in
real arithmetic, at exactly its inputs), with its derivatives (``fdiff``) in closed form and a
``definition`` in SymPy's own functions. The certified evaluator evaluates a class either with a
direct arb counterpart (``verifier.core.exact.evaluator``) or by compiling its definition, which is
how functions with jumps and kinks (``trunc``, ``threshold``, ``fmod`` ...) reuse the evaluator's
jump handling. SymPy's limits see the definitions too. Trailing literal arguments are parameters
(``softplus(x, beta, threshold)``); they are never differentiated by.

This module imports SymPy only, like :mod:`verifier.core.expression.functions`.
``docs/functions.md`` lists every function with its torch operation and special points.

>>> from sympy import Symbol
>>> x = Symbol('x', real=True)
>>> sigmoid(x).diff(x)
sigmoid(-x)*sigmoid(x)
"""

from __future__ import annotations

from typing import ClassVar

import sympy
from sympy import Abs, Heaviside, Piecewise, S, exp, log, pi, sqrt
from sympy.core.function import ArgumentIndexError

SELU_ALPHA = sympy.Rational("1.6732632423543772848170429916717")
"""torch's SELU constants, as written in its source (ATen Activation.h)."""
SELU_SCALE = sympy.Rational("1.0507009873554804934193349852946")
GELU_TANH_CUBIC = sympy.Rational("0.044715")
"""The cubic coefficient of torch's tanh approximation of GELU."""


class TorchFunction(sympy.Function):
    """A function of torch that SymPy lacks: exact definition and derivatives.

    Piecewise definitions never put two equal values next to each other: SymPy would merge
    them under an ``Or`` condition, which the evaluator does not take.
    """

    parameters: ClassVar[int] = 0
    """How many trailing arguments are literal parameters."""

    @property
    def tensor_args(self) -> tuple[sympy.Expr, ...]:
        """The arguments that are tensors (everything before the parameters)."""
        return tuple(self.args[: len(self.args) - self.parameters])

    def definition(self) -> sympy.Expr:
        """The function in SymPy's own functions (and other classes of this module)."""
        raise NotImplementedError

    def _derivative(self, index: int) -> sympy.Expr:
        raise NotImplementedError

    def fdiff(self, argindex: int = 1) -> sympy.Expr:
        if argindex > len(self.tensor_args):
            raise ArgumentIndexError(self, argindex)
        return self._derivative(argindex)


def expand_definitions(expr: sympy.Basic) -> sympy.Basic:
    """``expr`` with every class of this module replaced by its definition, recursively."""
    while expr.atoms(TorchFunction):
        expr = expr.replace(lambda e: isinstance(e, TorchFunction), lambda e: e.definition())
    return expr


# Unary functions: one tensor argument.


class _Unary(TorchFunction):
    nargs = 1

    @property
    def x(self) -> sympy.Expr:
        return self.args[0]


class log1p(_Unary):  # noqa: N801  (named as torch names it, like SymPy's own classes)
    """log(1 + x), torch.log1p."""

    def definition(self) -> sympy.Expr:
        return log(1 + self.x)

    def _derivative(self, index: int) -> sympy.Expr:
        return 1 / (1 + self.x)


class expm1(_Unary):  # noqa: N801
    """exp(x) - 1, torch.expm1."""

    def definition(self) -> sympy.Expr:
        return exp(self.x) - 1

    def _derivative(self, index: int) -> sympy.Expr:
        return exp(self.x)


class exp2(_Unary):  # noqa: N801
    """2**x, torch.exp2."""

    def definition(self) -> sympy.Expr:
        return 2**self.x

    def _derivative(self, index: int) -> sympy.Expr:
        return log(2) * exp2(self.x)


class log2(_Unary):  # noqa: N801
    """Base-2 logarithm, torch.log2."""

    def definition(self) -> sympy.Expr:
        return log(self.x) / log(2)

    def _derivative(self, index: int) -> sympy.Expr:
        return 1 / (self.x * log(2))


class log10(_Unary):  # noqa: N801
    """Base-10 logarithm, torch.log10."""

    def definition(self) -> sympy.Expr:
        return log(self.x) / log(10)

    def _derivative(self, index: int) -> sympy.Expr:
        return 1 / (self.x * log(10))


class reciprocal(_Unary):  # noqa: N801
    """1/x, torch.reciprocal."""

    def definition(self) -> sympy.Expr:
        return 1 / self.x

    def _derivative(self, index: int) -> sympy.Expr:
        return -1 / self.x**2


class square(_Unary):  # noqa: N801
    """x**2, torch.square."""

    def definition(self) -> sympy.Expr:
        return self.x**2

    def _derivative(self, index: int) -> sympy.Expr:
        return 2 * self.x


class neg(_Unary):  # noqa: N801
    """-x, torch.neg."""

    def definition(self) -> sympy.Expr:
        return -self.x

    def _derivative(self, index: int) -> sympy.Expr:
        return S.NegativeOne


class positive(_Unary):  # noqa: N801
    """x itself, torch.positive."""

    def definition(self) -> sympy.Expr:
        return self.x

    def _derivative(self, index: int) -> sympy.Expr:
        return S.One


class nan_to_num(_Unary):  # noqa: N801
    """x itself for finite real x, torch.nan_to_num."""

    def definition(self) -> sympy.Expr:
        return self.x

    def _derivative(self, index: int) -> sympy.Expr:
        return S.One


class deg2rad(_Unary):  # noqa: N801
    """x*pi/180, torch.deg2rad."""

    def definition(self) -> sympy.Expr:
        return self.x * pi / 180

    def _derivative(self, index: int) -> sympy.Expr:
        return pi / 180


class rad2deg(_Unary):  # noqa: N801
    """x*180/pi, torch.rad2deg."""

    def definition(self) -> sympy.Expr:
        return self.x * 180 / pi

    def _derivative(self, index: int) -> sympy.Expr:
        return 180 / pi


class sigmoid(_Unary):  # noqa: N801
    """1/(1 + exp(-x)), torch.sigmoid."""

    def definition(self) -> sympy.Expr:
        return 1 / (1 + exp(-self.x))

    def _derivative(self, index: int) -> sympy.Expr:
        # sigmoid(x)*(1 - sigmoid(x)), written without the cancellation.
        return sigmoid(self.x) * sigmoid(-self.x)


class logit(_Unary):  # noqa: N801
    """log(x/(1 - x)), torch.logit (no eps)."""

    def definition(self) -> sympy.Expr:
        return log(self.x / (1 - self.x))

    def _derivative(self, index: int) -> sympy.Expr:
        return 1 / (self.x * (1 - self.x))


class erfinv(_Unary):  # noqa: N801
    """Inverse error function, torch.erfinv."""

    def definition(self) -> sympy.Expr:
        return sympy.erfinv(self.x)

    def _derivative(self, index: int) -> sympy.Expr:
        return sqrt(pi) / 2 * exp(erfinv(self.x) ** 2)


class ndtr(_Unary):  # noqa: N801
    """Standard normal CDF, torch.special.ndtr."""

    def definition(self) -> sympy.Expr:
        return sympy.erfc(-self.x / sqrt(2)) / 2

    def _derivative(self, index: int) -> sympy.Expr:
        return exp(-(self.x**2) / 2) / sqrt(2 * pi)


class ndtri(_Unary):  # noqa: N801
    """Inverse of the standard normal CDF, torch.special.ndtri."""

    def definition(self) -> sympy.Expr:
        return -sqrt(2) * sympy.erfcinv(2 * self.x)

    def _derivative(self, index: int) -> sympy.Expr:
        return sqrt(2 * pi) * exp(ndtri(self.x) ** 2 / 2)


class log_ndtr(_Unary):  # noqa: N801
    """log of the standard normal CDF, torch.special.log_ndtr."""

    def definition(self) -> sympy.Expr:
        return log(ndtr(self.x))

    def _derivative(self, index: int) -> sympy.Expr:
        return exp(-(self.x**2) / 2) / (sqrt(2 * pi) * ndtr(self.x))


class erfcx(_Unary):  # noqa: N801
    """Scaled complementary error function exp(x**2)*erfc(x), torch.special.erfcx."""

    def definition(self) -> sympy.Expr:
        return exp(self.x**2) * sympy.erfc(self.x)

    def _derivative(self, index: int) -> sympy.Expr:
        return 2 * self.x * erfcx(self.x) - 2 / sqrt(pi)


class i0(_Unary):  # noqa: N801
    """Modified Bessel function I0, torch.i0."""

    def definition(self) -> sympy.Expr:
        return sympy.besseli(0, self.x)

    def _derivative(self, index: int) -> sympy.Expr:
        return i1(self.x)


class i1(_Unary):  # noqa: N801
    """Modified Bessel function I1, torch.special.i1."""

    def definition(self) -> sympy.Expr:
        return sympy.besseli(1, self.x)

    def _derivative(self, index: int) -> sympy.Expr:
        # I1' = (I0 + I2)/2 (DLMF 10.29.1), free of the removable 0/0 of I0 - I1/x.
        return (i0(self.x) + sympy.besseli(2, self.x)) / 2


class i0e(_Unary):  # noqa: N801
    """Exponentially scaled I0, exp(-|x|)*I0(x), torch.special.i0e (a kink at 0)."""

    def definition(self) -> sympy.Expr:
        return exp(-Abs(self.x)) * sympy.besseli(0, self.x)

    def _derivative(self, index: int) -> sympy.Expr:
        return i1e(self.x) - sympy.sign(self.x) * i0e(self.x)


class i1e(_Unary):  # noqa: N801
    """Exponentially scaled I1, exp(-|x|)*I1(x), torch.special.i1e."""

    def definition(self) -> sympy.Expr:
        return exp(-Abs(self.x)) * sympy.besseli(1, self.x)

    def _derivative(self, index: int) -> sympy.Expr:
        x = self.x
        scaled_i2 = exp(-Abs(x)) * sympy.besseli(2, x)
        return (i0e(x) + scaled_i2) / 2 - sympy.sign(x) * i1e(x)


class entr(_Unary):  # noqa: N801
    """-x*log(x), 0 at 0, torch.special.entr (torch gives -inf below 0: not real there)."""

    def definition(self) -> sympy.Expr:
        return Piecewise((-self.x * log(self.x), self.x > 0), (S.Zero, sympy.Eq(self.x, 0)))

    def _derivative(self, index: int) -> sympy.Expr:
        return -(log(self.x) + 1)


class lgamma(_Unary):  # noqa: N801
    """log|gamma(x)|, real for every real x but the poles, torch.lgamma."""

    def definition(self) -> sympy.Expr:
        return log(Abs(sympy.gamma(self.x)))

    def _derivative(self, index: int) -> sympy.Expr:
        return sympy.digamma(self.x)


class silu(_Unary):  # noqa: N801
    """x*sigmoid(x), torch.nn.functional.silu."""

    def definition(self) -> sympy.Expr:
        return self.x * sigmoid(self.x)

    def _derivative(self, index: int) -> sympy.Expr:
        x = self.x
        return sigmoid(x) * (1 + x * sigmoid(-x))


class mish(_Unary):  # noqa: N801
    """x*tanh(softplus(x)), torch.nn.functional.mish."""

    def definition(self) -> sympy.Expr:
        return self.x * sympy.tanh(log1p(exp(self.x)))

    def _derivative(self, index: int) -> sympy.Expr:
        x = self.x
        s = log1p(exp(x))
        return sympy.tanh(s) + x * sympy.sech(s) ** 2 * sigmoid(x)


class gelu(_Unary):  # noqa: N801
    """x*ndtr(x), torch.nn.functional.gelu (approximate='none')."""

    def definition(self) -> sympy.Expr:
        return self.x * ndtr(self.x)

    def _derivative(self, index: int) -> sympy.Expr:
        x = self.x
        return ndtr(x) + x * exp(-(x**2) / 2) / sqrt(2 * pi)


class gelu_tanh(_Unary):  # noqa: N801
    """torch.nn.functional.gelu with approximate='tanh', exactly as its formula reads."""

    def definition(self) -> sympy.Expr:
        x = self.x
        inner = sqrt(2 / pi) * (x + GELU_TANH_CUBIC * x**3)
        return x * (1 + sympy.tanh(inner)) / 2

    def _derivative(self, index: int) -> sympy.Expr:
        u = sympy.Dummy("u", real=True)
        return self.definition().xreplace({self.x: u}).diff(u).xreplace({u: self.x})


class logsigmoid(_Unary):  # noqa: N801
    """log(sigmoid(x)) = -log1p(exp(-x)), torch.nn.functional.logsigmoid."""

    def definition(self) -> sympy.Expr:
        return -log1p(exp(-self.x))

    def _derivative(self, index: int) -> sympy.Expr:
        return sigmoid(-self.x)


class softsign(_Unary):  # noqa: N801
    """x/(1 + |x|), torch.nn.functional.softsign."""

    def definition(self) -> sympy.Expr:
        return self.x / (1 + Abs(self.x))

    def _derivative(self, index: int) -> sympy.Expr:
        return 1 / (1 + Abs(self.x)) ** 2


class tanhshrink(_Unary):  # noqa: N801
    """x - tanh(x), torch.nn.functional.tanhshrink."""

    def definition(self) -> sympy.Expr:
        return self.x - sympy.tanh(self.x)

    def _derivative(self, index: int) -> sympy.Expr:
        return sympy.tanh(self.x) ** 2


class selu(_Unary):  # noqa: N801
    """scale*(x if x > 0 else alpha*expm1(x)), torch.nn.functional.selu."""

    def definition(self) -> sympy.Expr:
        x = self.x
        return SELU_SCALE * Piecewise((x, x > 0), (SELU_ALPHA * expm1(x), True))

    def _derivative(self, index: int) -> sympy.Expr:
        x = self.x
        return SELU_SCALE * Piecewise((S.One, x > 0), (SELU_ALPHA * exp(x), True))


class relu(_Unary):  # noqa: N801
    """max(x, 0), torch.relu."""

    def definition(self) -> sympy.Expr:
        return Piecewise((self.x, self.x > 0), (S.Zero, True))

    def _derivative(self, index: int) -> sympy.Expr:
        return Piecewise((S.One, self.x > 0), (S.Zero, True))


class relu6(_Unary):  # noqa: N801
    """min(max(x, 0), 6), torch.nn.functional.relu6."""

    def definition(self) -> sympy.Expr:
        x = self.x
        return Piecewise((S.Zero, x <= 0), (x, x < 6), (S(6), True))

    def _derivative(self, index: int) -> sympy.Expr:
        x = self.x
        return Piecewise((S.Zero, x <= 0), (S.One, x < 6), (S.Zero, True))


class hardsigmoid(_Unary):  # noqa: N801
    """relu6(x + 3)/6, torch.nn.functional.hardsigmoid."""

    def definition(self) -> sympy.Expr:
        x = self.x
        return Piecewise((S.Zero, x <= -3), (S.One, x >= 3), (x / 6 + S.Half, True))

    def _derivative(self, index: int) -> sympy.Expr:
        x = self.x
        return Piecewise((S.Zero, x <= -3), (S(1) / 6, x < 3), (S.Zero, True))


class hardswish(_Unary):  # noqa: N801
    """x*relu6(x + 3)/6, torch.nn.functional.hardswish."""

    def definition(self) -> sympy.Expr:
        x = self.x
        return Piecewise((S.Zero, x <= -3), (x, x >= 3), (x * (x + 3) / 6, True))

    def _derivative(self, index: int) -> sympy.Expr:
        x = self.x
        return Piecewise((S.Zero, x <= -3), (S.One, x >= 3), ((2 * x + 3) / 6, True))


class sgn(_Unary):  # noqa: N801
    """sign(x) with sgn(0) = 0, torch.sgn."""

    def definition(self) -> sympy.Expr:
        return sympy.sign(self.x)

    def _derivative(self, index: int) -> sympy.Expr:
        return 2 * sympy.DiracDelta(self.x)


class trunc(_Unary):  # noqa: N801
    """Rounding toward zero, torch.trunc."""

    def definition(self) -> sympy.Expr:
        x = self.x
        return Piecewise((sympy.floor(x), x >= 0), (sympy.ceiling(x), True))

    def _derivative(self, index: int) -> sympy.Expr:
        return S.Zero


class frac(_Unary):  # noqa: N801
    """x - trunc(x), torch.frac."""

    def definition(self) -> sympy.Expr:
        return self.x - trunc(self.x)

    def _derivative(self, index: int) -> sympy.Expr:
        return S.One


class angle(_Unary):  # noqa: N801
    """The argument of a real number: pi below 0, else 0, torch.angle."""

    def definition(self) -> sympy.Expr:
        return Piecewise((pi, self.x < 0), (S.Zero, True))

    def _derivative(self, index: int) -> sympy.Expr:
        return S.Zero


class rint(_Unary):  # noqa: N801
    """Rounding to the nearest integer, ties to even, as torch.round; the evaluator has it as
    a jump instruction of its own."""

    def definition(self) -> sympy.Expr:
        raise NotImplementedError("rint is evaluated as a jump instruction")

    def _derivative(self, index: int) -> sympy.Expr:
        return S.Zero


# Unary functions with parameters.


class round(TorchFunction):  # noqa: N801  (torch.round, with its decimals)
    """round(x, decimals): rint(x*10**decimals)/10**decimals, torch.round."""

    nargs = 2
    parameters = 1

    def definition(self) -> sympy.Expr:
        x, decimals = self.args
        scale = sympy.Integer(10) ** decimals
        return rint(x * scale) / scale

    def _derivative(self, index: int) -> sympy.Expr:
        return S.Zero


class mvlgamma(TorchFunction):  # noqa: N801
    """Multivariate log-gamma of dimension p, torch.mvlgamma(x, p)."""

    nargs = 2
    parameters = 1

    def _terms(self, function: type[sympy.Function]) -> list[sympy.Expr]:
        x, p = self.args
        if not isinstance(p, sympy.Integer):
            raise ValueError("mvlgamma needs an integer dimension p")
        return [function(x - sympy.Rational(j, 2)) for j in range(int(p))]

    def definition(self) -> sympy.Expr:
        p = self.args[1]
        return p * (p - 1) / 4 * log(pi) + sympy.Add(*self._terms(lgamma))

    def _derivative(self, index: int) -> sympy.Expr:
        return sympy.Add(*self._terms(sympy.digamma))


class elu(TorchFunction):  # noqa: N801
    """x if x > 0 else alpha*expm1(x), torch.nn.functional.elu."""

    nargs = 2
    parameters = 1

    def definition(self) -> sympy.Expr:
        x, alpha = self.args
        return Piecewise((x, x > 0), (alpha * expm1(x), True))

    def _derivative(self, index: int) -> sympy.Expr:
        x, alpha = self.args
        return Piecewise((S.One, x > 0), (alpha * exp(x), True))


class celu(TorchFunction):  # noqa: N801
    """max(0, x) + min(0, alpha*expm1(x/alpha)), torch.nn.functional.celu."""

    nargs = 2
    parameters = 1

    def definition(self) -> sympy.Expr:
        x, alpha = self.args
        return Piecewise((x, x > 0), (alpha * expm1(x / alpha), True))

    def _derivative(self, index: int) -> sympy.Expr:
        x, alpha = self.args
        return Piecewise((S.One, x > 0), (exp(x / alpha), True))


class leaky_relu(TorchFunction):  # noqa: N801
    """x if x > 0 else slope*x, torch.nn.functional.leaky_relu."""

    nargs = 2
    parameters = 1

    def definition(self) -> sympy.Expr:
        x, slope = self.args
        return Piecewise((x, x > 0), (slope * x, True))

    def _derivative(self, index: int) -> sympy.Expr:
        x, slope = self.args
        return Piecewise((S.One, x > 0), (slope, True))


class softplus(TorchFunction):  # noqa: N801
    """log1p(exp(beta*x))/beta, and x itself where beta*x > threshold (a small jump there),
    torch.nn.functional.softplus."""

    nargs = 3
    parameters = 2

    def definition(self) -> sympy.Expr:
        x, beta, threshold = self.args
        return Piecewise((x, beta * x > threshold), (log1p(exp(beta * x)) / beta, True))

    def _derivative(self, index: int) -> sympy.Expr:
        x, beta, threshold = self.args
        return Piecewise((S.One, beta * x > threshold), (sigmoid(beta * x), True))


class hardtanh(TorchFunction):  # noqa: N801
    """x clamped to [min_val, max_val], torch.nn.functional.hardtanh."""

    nargs = 3
    parameters = 2

    def definition(self) -> sympy.Expr:
        x, low, high = self.args
        return Piecewise((low, x < low), (high, x > high), (x, True))

    def _derivative(self, index: int) -> sympy.Expr:
        x, low, high = self.args
        return Piecewise((S.Zero, x < low), (S.One, x <= high), (S.Zero, True))


class threshold(TorchFunction):  # noqa: N801
    """x if x > threshold else value, torch.nn.functional.threshold."""

    nargs = 3
    parameters = 2

    def definition(self) -> sympy.Expr:
        x, limit, value = self.args
        return Piecewise((x, x > limit), (value, True))

    def _derivative(self, index: int) -> sympy.Expr:
        x, limit, value = self.args
        return Piecewise((S.One, x > limit), (S.Zero, True))


class softshrink(TorchFunction):  # noqa: N801
    """x - lambd above lambd, x + lambd below -lambd, else 0, torch.nn.functional.softshrink."""

    nargs = 2
    parameters = 1

    def definition(self) -> sympy.Expr:
        x, lambd = self.args
        return Piecewise((x - lambd, x > lambd), (x + lambd, x < -lambd), (S.Zero, True))

    def _derivative(self, index: int) -> sympy.Expr:
        x, lambd = self.args
        return Piecewise((S.One, x > lambd), (S.Zero, x >= -lambd), (S.One, True))


class hardshrink(TorchFunction):  # noqa: N801
    """x where |x| > lambd, else 0, torch.nn.functional.hardshrink."""

    nargs = 2
    parameters = 1

    def definition(self) -> sympy.Expr:
        x, lambd = self.args
        return Piecewise((x, x > lambd), (S.Zero, x >= -lambd), (x, True))

    def _derivative(self, index: int) -> sympy.Expr:
        x, lambd = self.args
        return Piecewise((S.One, x > lambd), (S.Zero, x >= -lambd), (S.One, True))


# Binary functions: two tensor arguments.


class _Binary(TorchFunction):
    nargs = 2


class sub(_Binary):  # noqa: N801
    """a - b, torch.sub."""

    def definition(self) -> sympy.Expr:
        a, b = self.args
        return a - b

    def _derivative(self, index: int) -> sympy.Expr:
        return S.One if index == 1 else S.NegativeOne


class rsub(_Binary):  # noqa: N801
    """b - a, torch.rsub."""

    def definition(self) -> sympy.Expr:
        a, b = self.args
        return b - a

    def _derivative(self, index: int) -> sympy.Expr:
        return S.NegativeOne if index == 1 else S.One


class div(_Binary):  # noqa: N801
    """a/b, torch.div (true division)."""

    def definition(self) -> sympy.Expr:
        a, b = self.args
        return a / b

    def _derivative(self, index: int) -> sympy.Expr:
        a, b = self.args
        return 1 / b if index == 1 else -a / b**2


class prelu(_Binary):  # noqa: N801
    """x if x > 0 else a*x, torch.prelu with a per-point weight a."""

    def definition(self) -> sympy.Expr:
        x, a = self.args
        return Piecewise((x, x > 0), (a * x, True))

    def _derivative(self, index: int) -> sympy.Expr:
        x, a = self.args
        if index == 1:
            return Piecewise((S.One, x > 0), (a, True))
        return Piecewise((S.Zero, x > 0), (x, True))


class copysign(_Binary):  # noqa: N801
    """|a| with the sign of b, torch.copysign (b = +0 counts as positive)."""

    def definition(self) -> sympy.Expr:
        a, b = self.args
        return Abs(a) * Piecewise((S.NegativeOne, b < 0), (S.One, True))

    def _derivative(self, index: int) -> sympy.Expr:
        a, b = self.args
        if index == 2:
            return S.Zero
        return sympy.sign(a) * Piecewise((S.NegativeOne, b < 0), (S.One, True))


class fmax(_Binary):  # noqa: N801
    """max(a, b) ignoring NaN, torch.fmax."""

    def definition(self) -> sympy.Expr:
        return sympy.Max(*self.args)

    def _derivative(self, index: int) -> sympy.Expr:
        a, b = self.args
        return Heaviside(a - b) if index == 1 else Heaviside(b - a)


class fmin(_Binary):  # noqa: N801
    """min(a, b) ignoring NaN, torch.fmin."""

    def definition(self) -> sympy.Expr:
        return sympy.Min(*self.args)

    def _derivative(self, index: int) -> sympy.Expr:
        a, b = self.args
        return Heaviside(b - a) if index == 1 else Heaviside(a - b)


class clamp_min(_Binary):  # noqa: N801
    """max(x, m), torch.clamp_min with a tensor bound."""

    def definition(self) -> sympy.Expr:
        return sympy.Max(*self.args)

    def _derivative(self, index: int) -> sympy.Expr:
        x, m = self.args
        return Heaviside(x - m) if index == 1 else Heaviside(m - x)


class clamp_max(_Binary):  # noqa: N801
    """min(x, m), torch.clamp_max with a tensor bound."""

    def definition(self) -> sympy.Expr:
        return sympy.Min(*self.args)

    def _derivative(self, index: int) -> sympy.Expr:
        x, m = self.args
        return Heaviside(m - x) if index == 1 else Heaviside(x - m)


class fmod(_Binary):  # noqa: N801
    """a - b*trunc(a/b), torch.fmod (the sign of a)."""

    def definition(self) -> sympy.Expr:
        a, b = self.args
        return a - b * trunc(a / b)

    def _derivative(self, index: int) -> sympy.Expr:
        a, b = self.args
        return S.One if index == 1 else -trunc(a / b)


class remainder(_Binary):  # noqa: N801
    """a - b*floor(a/b), torch.remainder (the sign of b)."""

    def definition(self) -> sympy.Expr:
        a, b = self.args
        return a - b * sympy.floor(a / b)

    def _derivative(self, index: int) -> sympy.Expr:
        a, b = self.args
        return S.One if index == 1 else -sympy.floor(a / b)


class ldexp(_Binary):  # noqa: N801
    """x*2**e, torch.ldexp."""

    def definition(self) -> sympy.Expr:
        x, e = self.args
        return x * exp2(e)

    def _derivative(self, index: int) -> sympy.Expr:
        x, e = self.args
        return exp2(e) if index == 1 else x * exp2(e) * log(2)


class logaddexp(_Binary):  # noqa: N801
    """log(exp(a) + exp(b)), torch.logaddexp."""

    def definition(self) -> sympy.Expr:
        a, b = self.args
        return sympy.Max(a, b) + log1p(exp(-Abs(a - b)))

    def _derivative(self, index: int) -> sympy.Expr:
        a, b = self.args
        return sigmoid(a - b) if index == 1 else sigmoid(b - a)


class hypot(_Binary):  # noqa: N801
    """sqrt(a**2 + b**2), torch.hypot."""

    def definition(self) -> sympy.Expr:
        a, b = self.args
        return sqrt(a**2 + b**2)

    def _derivative(self, index: int) -> sympy.Expr:
        return self.args[index - 1] / hypot(*self.args)


class xlogy(_Binary):  # noqa: N801
    """x*log(y), and 0 where x = 0, torch.xlogy."""

    def definition(self) -> sympy.Expr:
        x, y = self.args
        return x * log(y)

    def _derivative(self, index: int) -> sympy.Expr:
        x, y = self.args
        return log(y) if index == 1 else x / y


class xlog1py(_Binary):  # noqa: N801
    """x*log1p(y), and 0 where x = 0, torch.special.xlog1py."""

    def definition(self) -> sympy.Expr:
        x, y = self.args
        return x * log1p(y)

    def _derivative(self, index: int) -> sympy.Expr:
        x, y = self.args
        return log1p(y) if index == 1 else x / (1 + y)
