"""Rounding of points and constants into each dtype."""

from __future__ import annotations

import random
import struct
from fractions import Fraction

import numpy as np
import pytest

from verifier import check
from verifier.core.floats.dtypes import DTYPES, get_dtype, round_float, round_to_dtype
from verifier.errors import OptionError


def test_rounding_to_float32_and_float16_matches_ieee_conversions() -> None:
    # struct's "f" and "e" formats convert a double with IEEE round-to-nearest-even.
    generator = random.Random(5)
    for _ in range(5000):
        value = generator.uniform(-1, 1) * 10 ** generator.randint(-6, 4)
        single = struct.unpack("f", struct.pack("f", value))[0]
        half = float(np.float16(value)) if abs(value) < 65504 else None
        assert round_to_dtype(Fraction(value), DTYPES["float32"]) == single
        if half is not None:
            assert round_to_dtype(Fraction(value), DTYPES["float16"]) == half


def test_rounding_to_bfloat16_keeps_eight_significant_bits() -> None:
    # bfloat16 has 8 significant bits: 1 + 2**-8 is a tie between 1 and 1 + 2**-7 and
    # rounds to even (1); 1 + 3 * 2**-8 rounds up to 1 + 2**-6 (hand derivation).
    bf16 = DTYPES["bfloat16"]
    assert round_to_dtype(Fraction(1) + Fraction(1, 256), bf16) == 1.0
    assert round_to_dtype(Fraction(1) + Fraction(3, 256), bf16) == 1.0 + 2**-6
    assert round_to_dtype(Fraction(1, 10), bf16) == 0.10009765625


def test_decimal_text_is_rounded_once_from_the_exact_decimal() -> None:
    # 0.1 in float32 is 13421773 * 2**-27 = 0.100000001490116119384765625 (IEEE 754).
    assert round_to_dtype(Fraction("0.1"), DTYPES["float32"]) == 13421773 * 2.0**-27


def test_overflow_rounds_to_infinity_and_tiny_values_to_subnormals() -> None:
    assert round_to_dtype(Fraction(70000), DTYPES["float16"]) == float("inf")
    assert round_to_dtype(Fraction(1, 2**24), DTYPES["float16"]) == 2.0**-24  # smallest subnormal


@pytest.mark.parametrize("dtype", ["float64", "float32", "float16", "bfloat16"])
def test_every_dtype_runs_and_reports_its_rounded_points(dtype: str) -> None:
    report = check("x**2 + x", at={"x": "0.3"}, dtype=dtype)
    rounded = round_to_dtype(Fraction("0.3"), DTYPES[dtype])
    assert report.points == [{"x": rounded}]
    assert report.dtype == dtype
    assert report.verdict == "pass"
    # d/dx = 2x + 1 at the rounded input (hand derivation)
    assert report.entries[0].reference == 2 * rounded + 1


def test_unknown_dtype_names_the_choices() -> None:
    with pytest.raises(OptionError, match="float64, float32, float16, bfloat16"):
        get_dtype("float8")


@pytest.mark.parametrize("dtype", ["float64", "float32", "float16", "bfloat16"])
def test_fast_float_rounding_agrees_with_exact_rounding(dtype: str) -> None:
    generator = random.Random(11)
    fmt = DTYPES[dtype]
    for _ in range(3000):
        value = generator.uniform(-1, 1) * 2.0 ** generator.randint(-30, 30)
        assert round_float(value, fmt) == round_to_dtype(Fraction(value), fmt)
    assert round_float(1e6, DTYPES["float16"]) == float("inf")
