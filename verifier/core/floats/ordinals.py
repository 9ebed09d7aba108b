"""A dtype's numbers counted in order: distances in ulps that do not saturate, neighbours.

The ordinal of a number is its position among the dtype's non-negative numbers (0 is 0, the
smallest subnormal is 1, each number after it one more), with the sign of the number; between
two numbers it runs linearly, so an exact value that the dtype cannot hold has a fractional
ordinal. The distance of two ordinals is how many ulps apart two values are, counted along
the dtype's numbers: within one binade it is the usual error in ulps, and it keeps growing
where the relative error no longer can (0 against 1.7e-17 in float64 is about 4.36e18 ulps, 0
against 1e-300 about 1.19e17), so it ranks errors that the error/allowed ratio caps.

>>> from verifier.core.floats.dtypes import DTYPES
>>> ulps_apart(1.0, 1.0 + 2.0**-52, DTYPES["float64"])
1.0
>>> neighbour(1.0, -1, DTYPES["bfloat16"])
0.99609375
"""

from __future__ import annotations

import math
from fractions import Fraction

from verifier.core.floats.dtypes import DType


def ordinal(value: float, dtype: DType) -> Fraction:
    """The position of ``value`` among ``dtype``'s numbers (exact; fractional between two)."""
    magnitude = Fraction(abs(value))
    half = 2 ** (dtype.mantissa_bits - 1)
    if magnitude < Fraction(2) ** dtype.min_exponent:
        position = magnitude / Fraction(2) ** (dtype.min_exponent - dtype.mantissa_bits + 1)
    else:
        exponent = math.frexp(abs(value))[1] - 1
        binade = Fraction(2) ** exponent
        spacing = Fraction(2) ** (exponent - dtype.mantissa_bits + 1)
        position = half * (exponent - dtype.min_exponent + 1) + (magnitude - binade) / spacing
    return -position if value < 0 else position


def from_ordinal(position: int, dtype: DType) -> float:
    """The number of ``dtype`` at ordinal ``position`` (infinity beyond the largest)."""
    half = 2 ** (dtype.mantissa_bits - 1)
    magnitude = abs(position)
    if magnitude < half:
        value = math.ldexp(magnitude, dtype.min_exponent - dtype.mantissa_bits + 1)
    else:
        exponent = dtype.min_exponent + magnitude // half - 1
        if exponent > dtype.max_exponent:
            value = math.inf
        else:
            steps = magnitude - half * (exponent - dtype.min_exponent + 1)
            value = math.ldexp(half + steps, exponent - dtype.mantissa_bits + 1)
    return -value if position < 0 else value


def neighbour(value: float, direction: int, dtype: DType) -> float:
    """The number of ``dtype`` next to ``value`` (a number of ``dtype``) toward the sign of
    ``direction``."""
    if dtype.name == "float64":
        return math.nextafter(value, math.copysign(math.inf, direction))
    return from_ordinal(int(ordinal(value, dtype)) + (1 if direction > 0 else -1), dtype)


def ulps_apart(first: float, second: float, dtype: DType) -> float:
    """How many of ``dtype``'s ulps lie between two values, counted along its numbers
    (infinite when either is not finite)."""
    if not (math.isfinite(first) and math.isfinite(second)):
        return 0.0 if first == second else math.inf
    return float(abs(ordinal(first, dtype) - ordinal(second, dtype)))
