"""The floating-point formats a check can run in, and exact rounding into them.

>>> round_to_dtype(Fraction(1, 10), DTYPES["float32"])
0.10000000149011612
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass
from fractions import Fraction
from functools import cached_property
from typing import Any

from verifier.errors import OptionError


@dataclass(frozen=True)
class DType:
    """A binary floating-point format.

    Attributes:
        name: the name used in options and reports (also the torch attribute name).
        mantissa_bits: significand precision, the implicit bit included.
        min_exponent: exponent of the smallest normal number (2**min_exponent).
        max_exponent: the largest finite number is below 2**(max_exponent + 1).
    """

    name: str
    mantissa_bits: int
    min_exponent: int
    max_exponent: int

    @property
    def torch(self) -> Any:
        """The torch dtype of this format (torch is imported here, where a check runs: the
        service never asks)."""
        import torch

        return getattr(torch, self.name)

    @property
    def epsilon(self) -> float:
        """Distance from 1.0 to the next larger number."""
        return 2.0 ** (1 - self.mantissa_bits)

    @property
    def smallest_normal(self) -> float:
        """The smallest positive normal number."""
        return 2.0**self.min_exponent

    @cached_property
    def max_finite(self) -> float:
        """The largest finite number."""
        return (2.0 - self.epsilon) * 2.0**self.max_exponent

    def ulp(self, value: float) -> float:
        """Spacing of this format at ``value`` (the subnormal spacing near zero)."""
        magnitude = abs(value)
        exponent = self.min_exponent
        if magnitude >= self.smallest_normal and math.isfinite(magnitude):
            exponent = math.frexp(magnitude)[1] - 1
        return 2.0 ** (exponent - self.mantissa_bits + 1)


DEVICES = ("auto", "cpu", "cuda")
CONCRETE = tuple(name for name in DEVICES if name != "auto")
"""The devices a check can name for itself (``auto`` picks one of them)."""


MAX_CUDA_INDEX = 127
"""The largest CUDA device index torch holds (an 8-bit signed integer: ``cuda:128`` wraps to
``cuda:-128``)."""


def is_device(name: str) -> bool:
    """Whether ``name`` is one device: ``cpu``, ``cuda`` or ``cuda:N`` (N in ASCII digits, at
    most :data:`MAX_CUDA_INDEX`)."""
    if name in CONCRETE:
        return True
    index = name[5:] if name[:5] == "cuda:" else ""
    return index.isascii() and index.isdigit() and len(index) <= 3 and int(index) <= MAX_CUDA_INDEX


"""Devices a check may ask for: ``auto`` is CUDA when available, else CPU."""

DTYPES: dict[str, DType] = {
    "float64": DType("float64", 53, -1022, 1023),
    "float32": DType("float32", 24, -126, 127),
    "float16": DType("float16", 11, -14, 15),
    "bfloat16": DType("bfloat16", 8, -126, 127),
}


def get_dtype(name: str) -> DType:
    """The format called ``name``; raises OptionError naming the choices."""
    try:
        return DTYPES[name]
    except (KeyError, TypeError):
        choices = ", ".join(DTYPES)
        raise OptionError(f"unknown dtype {name!r}: choose one of {choices}") from None


def round_float(value: float, dtype: DType) -> float:
    """Round a finite float64 to ``dtype``; the same result as :func:`round_to_dtype`."""
    if dtype.name == "float64":
        return value
    packing = _STRUCT_FORMATS.get(dtype.name)
    if packing is not None:
        try:
            # struct converts a double with IEEE round-to-nearest-even (PyFloat_Pack4/2).
            return float(struct.unpack(packing, struct.pack(packing, value))[0])
        except OverflowError:
            return math.copysign(math.inf, value)
    return round_to_dtype(Fraction(value), dtype)


_STRUCT_FORMATS = {"float32": "<f", "float16": "<e"}


def round_to_dtype(value: Fraction, dtype: DType) -> float:
    """Round an exact rational to the nearest number of ``dtype`` (ties to even).

    The result is a Python float holding that number exactly; values beyond the largest
    finite number round to infinity, as IEEE 754 does.
    """
    if value == 0:
        return 0.0
    sign = -1.0 if value < 0 else 1.0
    magnitude = abs(value)
    exponent = _floor_log2(magnitude)
    exponent = max(exponent, dtype.min_exponent)
    quantum = Fraction(2) ** (exponent - dtype.mantissa_bits + 1)
    units = magnitude / quantum
    rounded = round(units)  # Fraction rounds half to even
    result = rounded * quantum
    if result >= Fraction(2) ** (dtype.max_exponent + 1):
        return sign * math.inf
    return sign * float(result)


def _floor_log2(value: Fraction) -> int:
    exponent = value.numerator.bit_length() - value.denominator.bit_length()
    if Fraction(2) ** exponent > value:
        exponent -= 1
    elif Fraction(2) ** (exponent + 1) <= value:
        exponent += 1
    return exponent
