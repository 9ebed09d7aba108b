"""Bounded float64 evaluation: every point at once, each value with a rigorous error bound.

A :class:`~verifier.core.exact.evaluator.Program` made only of the operations in :data:`BOUNDED_OPS`
(arithmetic, integer and real powers, square roots and a few elementary functions; no jump)
is run in numpy float64 over all points together. With each value goes a bound on its
distance from the exact value at the same inputs: the inputs' own bounds carried through by
the operation's Lipschitz constant on the input's interval, plus the operation's rounding
(half an ulp for ``+``, ``*``, ``/`` and ``sqrt``, which IEEE 754 rounds correctly;
:data:`LIBM_RELATIVE_ERROR` of the result for the elementary functions, an assumption on the
math library documented in ``docs/performance.md``). The bounds themselves are computed in
float64 and then enlarged by :data:`BOUND_INFLATION` and :data:`BOUND_FLOOR`, which cover their
own rounding and underflow.

Where an input interval reaches outside an operation's domain (a logarithm of an interval that
touches 0), or a value or bound is not finite, the point is marked unsettled and the caller
evaluates it in arb instead (:mod:`verifier.core.exact.reference`).

>>> import numpy as np, sympy
>>> from verifier.core.exact.evaluator import Program
>>> x = sympy.Symbol("x", real=True)
>>> program = Program([sympy.exp(x) * 3], ["x"])
>>> values = bounded_run(program, {"x": np.array([0.5])})
>>> value, bound = values.value[program.outputs[0]], values.bound[program.outputs[0]]
>>> bool(abs(value[0] - 4.946163812100385) <= bound[0] < 1e-12)
True
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from fractions import Fraction
from typing import Any, cast

import numpy as np
import sympy

from verifier.core.exact.evaluator import Program

Array = np.ndarray[Any, np.dtype[np.float64]]

UNIT_ROUNDOFF = 2.0**-53
"""Relative rounding of one correctly rounded float64 operation (round to nearest)."""
LIBM_RELATIVE_ERROR = 2.0**-44
"""Assumed bound on numpy's float64 exp, log, sin, cos, tanh, atan, sinh, cosh and pow,
relative to the result: 256 ulps, 64 times what glibc and numpy's SIMD loops document."""
BOUND_INFLATION = 1.0 + 2.0**-40
"""Each bound, computed in float64 in at most a dozen operations, is multiplied by this."""
BOUND_FLOOR = 2.0**-1000
"""And this is added, for the subnormal rounding (absolute, below 2**-1074) of its terms."""


@dataclass
class BoundedValues:
    """Per instruction: its float64 value at every point and a bound on its error.

    ``unsettled`` marks the points where some instruction left its domain or its bound is not
    finite; their values mean nothing.
    """

    value: list[Array]
    bound: list[Array]
    unsettled: np.ndarray[Any, np.dtype[np.bool_]]


def _up(bound: Array) -> Array:
    return cast(Array, bound * BOUND_INFLATION + BOUND_FLOOR)


def _libm(result: Array) -> Array:
    return cast(Array, np.abs(result) * LIBM_RELATIVE_ERROR)


def _positive_low(a: Array, e: Array) -> Array:
    """A lower bound on the interval [a - e, a + e], not above the exact one."""
    return cast(Array, (a - e) * (1 - 2.0**-50))


# Unary elementary functions: (numpy function, Lipschitz constant on [a - e, a + e] or None
# where the interval leaves the domain, via the result r).
_Unary = tuple[Callable[[Array], Array], Callable[[Array, Array, Array], Array]]


def _exp_slope(a: Array, e: Array, r: Array) -> Array:
    return cast(Array, np.abs(r) * (1 + 4 * LIBM_RELATIVE_ERROR) * np.exp(e) * (1 + 2.0**-40))


def _log_slope(a: Array, e: Array, r: Array) -> Array:
    low = _positive_low(a, e)
    return cast(Array, np.where(low > 0, 1 / np.where(low > 0, low, 1.0), np.inf))


def _one(a: Array, e: Array, r: Array) -> Array:
    return np.ones_like(a)


def _cosh_slope(a: Array, e: Array, r: Array) -> Array:
    with np.errstate(over="ignore"):
        return cast(Array, np.cosh(np.abs(a) + e * (1 + 2.0**-50)) * (1 + 2.0**-40))


_UNARY: dict[type, _Unary] = {
    sympy.exp: (np.exp, _exp_slope),
    sympy.log: (np.log, _log_slope),
    sympy.sin: (np.sin, _one),
    sympy.cos: (np.cos, _one),
    sympy.tanh: (np.tanh, _one),
    sympy.atan: (np.arctan, _one),
    sympy.sinh: (np.sinh, _cosh_slope),
    sympy.cosh: (np.cosh, _cosh_slope),
}

BOUNDED_OPS = frozenset({"var", "rational", "pi", "e", "add", "mul", "ipow", "sqrt", "pow"})
"""Opcodes the bounded evaluation runs; a ``call`` also needs its function in ``_UNARY``."""


def supports(program: Program) -> bool:
    """Whether every instruction of ``program`` has a bounded float64 evaluation."""
    for (opcode, _, _), label in zip(program.instructions, program.labels, strict=True):
        if opcode == "call":
            if type(label) not in _UNARY:
                return False
        elif opcode not in BOUNDED_OPS:
            return False
    return True


def bounded_run(program: Program, inputs: Mapping[str, Array]) -> BoundedValues:
    """Run ``program`` (see :func:`supports`) at every point of ``inputs`` (exact floats)."""
    count = len(next(iter(inputs.values()))) if inputs else 1
    values: list[Array] = []
    bounds: list[Array] = []
    unsettled = np.zeros(count, dtype=bool)
    with np.errstate(all="ignore"):
        for (opcode, payload, args), label in zip(
            program.instructions, program.labels, strict=True
        ):
            a = [values[i] for i in args]
            e = [bounds[i] for i in args]
            value, bound = _step(opcode, payload, label, a, e, inputs)
            value = np.broadcast_to(value, (count,))
            bound = np.broadcast_to(bound, (count,))
            unsettled |= ~np.isfinite(value) | ~np.isfinite(bound)
            values.append(value)
            bounds.append(bound)
    return BoundedValues(values, bounds, unsettled)


def _step(
    opcode: str,
    payload: object,
    label: sympy.Basic,
    a: list[Array],
    e: list[Array],
    inputs: Mapping[str, Array],
) -> tuple[Array, Array]:
    zero = np.zeros(1)
    if opcode == "var":
        return np.asarray(inputs[str(payload)], dtype=np.float64), zero
    if opcode == "rational":
        p, q = cast(tuple[int, int], payload)
        number = p / q  # Python rounds int / int correctly
        exact = Fraction(number) == Fraction(p, q)
        rounding = 0.0 if exact else abs(number) * UNIT_ROUNDOFF + 2.0**-1074
        return np.array([number]), np.array([rounding])
    if opcode in ("pi", "e"):
        number = math.pi if opcode == "pi" else math.e
        return np.array([number]), np.array([number * 2.0**-52])
    if opcode == "add":
        total: Array = a[0]
        spread: Array = np.abs(a[0])
        carried: Array = e[0]
        for value, error in zip(a[1:], e[1:], strict=True):
            total = total + value
            spread = spread + np.abs(value)
            carried = carried + error
        return total, _up(carried + spread * (UNIT_ROUNDOFF * (len(a) - 1)))
    if opcode == "mul":
        product, error = a[0], e[0]
        for value, other in zip(a[1:], e[1:], strict=True):
            new = product * value
            error = _up(
                np.abs(product) * other
                + np.abs(value) * error
                + error * other
                + np.abs(new) * UNIT_ROUNDOFF
                + 2.0**-1074
            )
            product = new
        return product, error
    if opcode == "ipow":
        return _ipow(int(cast(int, payload)), a[0], e[0])
    if opcode == "sqrt":
        low = _positive_low(a[0], e[0])
        exact_zero = (a[0] == 0) & (e[0] == 0)
        result = np.sqrt(a[0])
        slope = np.where(low > 0, 0.5 / np.sqrt(np.where(low > 0, low, 1.0)), np.inf)
        bound = _up(slope * e[0] * (1 + 2.0**-50) + np.abs(result) * UNIT_ROUNDOFF)
        return result, np.where(exact_zero, 0.0, bound)
    if opcode == "pow":
        return _pow(a[0], e[0], a[1], e[1])
    function, slope_of = _UNARY[type(label)]
    result = function(a[0])
    slope = slope_of(a[0], e[0], result)
    return result, _up(slope * e[0] + _libm(result) + 2.0**-1074)


def _ipow(n: int, a: Array, e: Array) -> tuple[Array, Array]:
    """a**n for an integer n: |(a + d)**n - a**n| <= |n| max|t|**(n-1) |d| on the interval."""
    if n == 2:
        result, rounding = a * a, np.abs(a * a) * UNIT_ROUNDOFF
    elif n == -1:
        result, rounding = 1 / a, np.abs(1 / a) * UNIT_ROUNDOFF
    else:
        result = a**n
        rounding = np.abs(result) * LIBM_RELATIVE_ERROR
    if n > 0:
        reach = (np.abs(a) + e) * (1 + 2.0**-50)
        slope = n * reach ** (n - 1) * (1 + 2.0**-40)
    else:
        low = _positive_low(np.abs(a), e)
        slope = np.where(low > 0, -n * np.where(low > 0, low, 1.0) ** (n - 1), np.inf)
        slope = slope * (1 + 2.0**-40)
    return result, _up(slope * e + rounding + 2.0**-1074)


def _pow(a: Array, ea: Array, b: Array, eb: Array) -> tuple[Array, Array]:
    """a**b = exp(b log a) for a > 0 (elsewhere unsettled: arb decides)."""
    low = _positive_low(a, ea)
    inside = low > 0
    result = np.where(inside, a**b, np.nan)
    log_reach = (ea / np.where(inside, low, 1.0)) * (1 + 2.0**-50)  # |log a' - log a|
    log_size = np.abs(np.log(np.where(inside, a, 1.0))) * (1 + 2 * LIBM_RELATIVE_ERROR)
    exponent_error = _up(np.abs(b) * log_reach + eb * (log_size + log_reach))
    growth = exponent_error * np.exp(exponent_error) * (1 + 2.0**-40)
    magnitude = np.abs(result) * (1 + 2 * LIBM_RELATIVE_ERROR)
    return result, _up(magnitude * growth + _libm(result) + 2.0**-1074)
