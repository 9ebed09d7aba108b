"""Judging one entry (verifier/core/judge/compare.py): the errors against a reference carried
as high + low, the tolerance test, correct bits, uncertified bounds, and the whole-table judge
that must settle entries exactly as the one-at-a-time judge does.

Inputs are plain floats and hand-built references, so torch's bits never enter. Tolerances are
built here from their definition, |autograd - exact| <= atol + rtol*|exact| (docs/report-format.md,
"tolerance"), with rtol = 64 ulps at 1.0 and atol the smallest normal number. The IEEE 754 facts
used: float64 has a 53-bit significand (the ulp in [1, 2) is 2**-52, in [0.5, 1) 2**-53) and
smallest normal 2**-1022; float32 has 24 bits (ulp in [0.25, 0.5) is 2**-25); float16's largest
finite number is 65504.
"""

from __future__ import annotations

import math

import mpmath
import numpy as np
import pytest

from verifier.core.exact.reference import (
    DOMAIN,
    OK,
    UNDEFINED,
    ReferenceTable,
    ReferenceValue,
)
from verifier.core.floats.dtypes import DTYPES, DType
from verifier.core.judge.compare import correct_bits, judge, judge_table
from verifier.core.judge.tolerance import Tolerance, make_tolerance
from verifier.core.judge.verdict import Verdict

FP64 = DTYPES["float64"]
FP32 = DTYPES["float32"]
FP16 = DTYPES["float16"]
# 64 ulps at 1.0 relative, the smallest normal number absolute.
TOL64 = Tolerance(rtol=64 * 2.0**-52, atol=2.0**-1022, ulps=64)
TOL32 = Tolerance(rtol=64 * 2.0**-23, atol=2.0**-126, ulps=64)
TOL16 = Tolerance(rtol=16 * 2.0**-10, atol=2.0**-14, ulps=16)
TOLERANCES = {"float64": TOL64, "float32": TOL32, "float16": TOL16}


def exactly(value: float) -> ReferenceValue:
    """A certified reference that is exactly ``value``."""
    return ReferenceValue(OK, value, 0.0, 0.0)


def test_a_value_one_ulp_off_passes_in_float64() -> None:
    # d/dx sin(x) = cos(x); take the float64 0.8775825618903728 (cos 0.5 rounded) as the exact
    # value. It lies in [0.5, 1), where the float64 ulp is 2**-53.
    exact = 0.8775825618903728
    judged = judge(math.nextafter(exact, 1.0), exactly(exact), TOL64, FP64)
    assert judged.verdict is Verdict.PASS
    assert judged.abs_error == 2.0**-53
    assert judged.ulp_error == 1.0
    assert judged.rel_error == 2.0**-53 / exact
    # allowed = 64 * 2**-52 * exact (+ 2**-1022, far below its ulp): ratio = 1 / (128 * exact).
    assert judged.ratio == pytest.approx(1 / (128 * exact), rel=1e-15)
    # -log2(2**-53 / exact) = 53 + log2(exact) = 52.81 bits.
    assert judged.correct_bits == pytest.approx(53 + math.log2(exact), rel=1e-15)


def test_64_ulps_off_at_one_is_the_last_pass_and_65_ulps_fail() -> None:
    # At 1.0 the ulp above is 2**-52; 64 of them are 2**-46, exactly the allowed error (atol =
    # 2**-1022 vanishes in the sum: it is far below half an ulp of 2**-46).
    last = judge(1.0 + 64 * 2.0**-52, exactly(1.0), TOL64, FP64)
    assert last.verdict is Verdict.PASS and last.ratio == 1.0 and last.ulp_error == 64
    beyond = judge(1.0 + 65 * 2.0**-52, exactly(1.0), TOL64, FP64)
    assert beyond.verdict is None  # outside the tolerance: for the diagnosis
    assert beyond.ratio == 65 / 64 and beyond.ulp_error == 65


def test_the_low_part_of_the_reference_is_measured_beyond_float64() -> None:
    # The exact value 1 + 2**-60 rounds to 1.0 in float64; carried as high + low it is not
    # lost: autograd's 1.0 is 2**-60 off, 2**-8 of the ulp 2**-52 at 1.
    judged = judge(1.0, ReferenceValue(OK, 1.0, 2.0**-60, 0.0), TOL64, FP64)
    assert judged.abs_error == 2.0**-60
    assert judged.ulp_error == 2.0**-8
    assert judged.verdict is Verdict.PASS
    # Control: against a reference that is exactly 1.0 there is no error at all.
    same = judge(1.0, exactly(1.0), TOL64, FP64)
    assert (same.abs_error, same.rel_error, same.ratio, same.correct_bits) == (0, 0, 0, 53)


def test_float32_one_third_is_a_third_of_an_ulp_from_the_exact_third() -> None:
    # float32(1/3) = 11184811 / 2**25 (24-bit significand in [0.25, 0.5), ulp 2**-25), and
    # 11184811 / 2**25 - 1/3 = (3 * 11184811 - 2**25) / (3 * 2**25) = 1 / (3 * 2**25): a third
    # of an ulp. The reference 1/3 is carried as high + low from mpmath at 50 digits.
    with mpmath.workdps(50):
        third = mpmath.mpf(1) / 3
        high = float(third)
        reference = ReferenceValue(OK, high, float(third - high), 0.0)
    judged = judge(11184811 / 2**25, reference, TOL32, FP32)
    assert judged.verdict is Verdict.PASS
    assert judged.ulp_error == pytest.approx(1 / 3, rel=1e-12)
    assert judged.abs_error == pytest.approx(1 / (3 * 2**25), rel=1e-12)


def test_an_exact_zero_has_no_ulp_count_and_is_held_to_atol() -> None:
    # The exact value 0: a relative error is infinite for any non-zero autograd, so only atol
    # (2**-1022) decides. 2**-1030 is below it; 1e-300 is far above.
    tiny = judge(2.0**-1030, exactly(0.0), TOL64, FP64)
    assert tiny.verdict is Verdict.PASS and tiny.ulp_error is None
    assert tiny.rel_error == math.inf and tiny.correct_bits == 0.0
    assert tiny.ratio == 2.0**-8
    large = judge(1e-300, exactly(0.0), TOL64, FP64)
    assert large.verdict is None and large.ulp_error is None
    zero = judge(0.0, exactly(0.0), TOL64, FP64)
    assert zero.verdict is Verdict.PASS and zero.rel_error == 0.0 and zero.correct_bits == 53


def test_an_exact_value_beyond_float16s_range_is_range_whatever_autograd_gave() -> None:
    # exp(11.1015625) = 66274.63 (mpmath), above float16's largest finite number 65504.
    with mpmath.workdps(30):
        exact = float(mpmath.exp(mpmath.mpf("11.1015625")))
    for autograd in (math.inf, 65504.0):
        judged = judge(autograd, exactly(exact), TOL16, FP16)
        assert judged.verdict is Verdict.RANGE
        assert judged.reference == exact
        assert judged.detail is not None and "65504" in judged.detail
    # Control: 65504 itself is in range and passes when autograd gives it.
    assert judge(65504.0, exactly(65504.0), TOL16, FP16).verdict is Verdict.PASS


@pytest.mark.parametrize("autograd", [math.nan, math.inf, -math.inf])
def test_a_non_finite_autograd_value_is_left_to_the_diagnosis_with_infinite_errors(
    autograd: float,
) -> None:
    judged = judge(autograd, exactly(2.5), TOL64, FP64)
    assert judged.verdict is None
    assert judged.reference == 2.5
    assert judged.abs_error == judged.rel_error == judged.ratio == math.inf
    assert judged.correct_bits == 0.0
    assert judged.allowed == 2.0**-1022 + 64 * 2.0**-52 * 2.5


@pytest.mark.parametrize(
    ("status", "verdict"), [(DOMAIN, Verdict.DOMAIN), (UNDEFINED, Verdict.UNDEFINED)]
)
def test_a_reference_that_does_not_exist_gives_its_verdict_and_its_words(
    status: str, verdict: Verdict
) -> None:
    reason = "sqrt(x) is not real at x = -1"
    judged = judge(math.nan, ReferenceValue(status, detail=reason), TOL64, FP64)
    assert judged.verdict is verdict
    assert judged.detail == reason
    assert judged.reference is None and judged.abs_error is None


def test_an_uncertified_ball_passes_only_when_every_value_in_it_would() -> None:
    # Ball 1 +- 2**-50: autograd 1.0 is at most 2**-50 from any value in it, within 64 ulps
    # (2**-46) of the smallest of them. The midpoint is never shown as the exact value.
    narrow = ReferenceValue(OK, 1.0, 0.0, 2.0**-50, certified=False)
    judged = judge(1.0, narrow, TOL64, FP64)
    assert judged.verdict is Verdict.PASS
    assert judged.reference is None
    assert judged.abs_error == 2.0**-50
    # Control: 1 +- 2**-40 holds values 2**-40 away, beyond 2**-46: unverified, not fail.
    wide = ReferenceValue(OK, 1.0, 0.0, 2.0**-40, certified=False)
    unverified = judge(1.0, wide, TOL64, FP64)
    assert unverified.verdict is Verdict.UNVERIFIED
    assert unverified.reference is None
    assert unverified.detail is not None and "could not be narrowed" in unverified.detail


def test_an_uncertified_ball_around_zero_is_held_to_atol_alone() -> None:
    # A ball [-r, r] holds 0, where only atol (2**-1022) is allowed.
    inside = ReferenceValue(OK, 0.0, 0.0, 2.0**-1023, certified=False)
    assert judge(0.0, inside, TOL64, FP64).verdict is Verdict.PASS
    outside = ReferenceValue(OK, 0.0, 0.0, 2.0**-1000, certified=False)
    assert judge(0.0, outside, TOL64, FP64).verdict is Verdict.UNVERIFIED


def test_an_unbounded_ball_is_unverified_and_says_so() -> None:
    unbounded = ReferenceValue(OK, 1.0, 0.0, math.inf, certified=False)
    judged = judge(1.0, unbounded, TOL64, FP64)
    assert judged.verdict is Verdict.UNVERIFIED
    assert judged.detail is not None and "could not be bounded" in judged.detail


def test_a_tolerance_that_overflows_is_unbounded_and_never_zero() -> None:
    # rtol 1e299 times |exact| 1e300 overflows float64 to inf: every finite error is allowed.
    huge = Tolerance(rtol=1e299, atol=0.0, ulps=math.inf)
    judged = judge(-1e300, exactly(1e300), huge, FP64)
    assert judged.allowed == math.inf
    assert judged.verdict is Verdict.PASS and judged.ratio == 0.0


@pytest.mark.parametrize(
    ("rel_error", "dtype", "bits"),
    [
        (0.0, FP64, 53.0),  # exact: every bit of the significand
        (0.0, FP32, 24.0),
        (2.0**-20, FP64, 20.0),  # -log2(2**-20)
        (2.0**-30, FP32, 24.0),  # capped at float32's 24 bits
        (2.0**-80, FP64, 53.0),  # capped at float64's 53 bits
        (0.5, FP64, 1.0),
        (1.0, FP64, 0.0),  # off by the whole value: nothing right
        (3.0, FP64, 0.0),
        (math.inf, FP64, 0.0),
        (math.nan, FP64, 0.0),
    ],
)
def test_correct_bits_are_minus_log2_of_the_relative_error_within_the_precision(
    rel_error: float, dtype: DType, bits: float
) -> None:
    assert correct_bits(rel_error, dtype) == bits


def table_of(rows: list[list[ReferenceValue]]) -> ReferenceTable:
    table = ReferenceTable.empty(len(rows), len(rows[0]))
    for point, row in enumerate(rows):
        table.put(point, row)
    return table


@pytest.mark.parametrize("name", ["float64", "float32", "float16"])
def test_the_table_judge_settles_what_the_one_at_a_time_judge_passes_with_its_numbers(
    name: str,
) -> None:
    dtype, tolerance = DTYPES[name], TOLERANCES[name]
    ulp_at_one = 2.0 ** (1 - dtype.mantissa_bits)
    third = ReferenceValue(OK, 1 / 3, 1.850371707708594e-17, 0.0)  # mpmath: 1/3 - float(1/3)
    cells = [
        (1.0, exactly(1.0)),  # exact
        (1.0 + ulp_at_one, exactly(1.0)),  # one ulp off
        (1.0 + 80 * ulp_at_one, exactly(1.0)),  # beyond 64 (float16: 16) ulps
        (0.3333333432674408, third),  # float32(1/3)
        (0.0, exactly(0.0)),  # exact zero
        (2.0**-1030, exactly(0.0)),  # below every dtype's atol
        (2.0**-1074, exactly(2.0**-1074)),  # a float64 subnormal exact value
        (math.nan, exactly(2.0)),  # non-finite autograd
        (-math.inf, exactly(-2.0)),
        (1.0, ReferenceValue(OK, 1.0, 0.0, 2.0**-60, certified=False)),  # a bound only
        (1.0, ReferenceValue(DOMAIN, detail="outside")),
        (1.0, ReferenceValue(UNDEFINED, detail="a kink")),
        (70000.0, exactly(70000.0)),  # beyond float16's 65504 only
    ]
    autograd = np.array([[value for value, _ in cells]])
    judged = judge_table(autograd, table_of([[ref for _, ref in cells]]), tolerance, dtype)
    # Hand: the exact, near and zero cells pass; 80 ulps, non-finite, uncertified, domain and
    # undefined do not; float32(1/3) is 1e-8 relative off, far beyond 64 float64 ulps
    # (1.4e-14) but within 64 float32 ulps; 70000 is beyond float16's 65504 only.
    expected = [True, True, False, name != "float64", True, True, True]
    expected += [False] * 5 + [name != "float16"]
    assert judged.passed[0].tolist() == expected
    for key, (value, reference) in enumerate(cells):
        one = judge(value, reference, tolerance, dtype)
        settled = reference.certified and reference.status == OK and one.verdict is Verdict.PASS
        assert bool(judged.passed[0, key]) == settled, (name, key)
        if not settled:
            continue
        assert judged.abs_error[0, key] == one.abs_error
        assert judged.rel_error[0, key] == one.rel_error
        assert judged.allowed[0, key] == one.allowed
        assert judged.ratio[0, key] == one.ratio
        assert bool(judged.exact_zero[0, key]) == (one.ulp_error is None)
        if one.ulp_error is not None:
            assert judged.ulp_error[0, key] == one.ulp_error


def test_the_table_judge_leaves_out_what_fails_and_what_is_out_of_range() -> None:
    # Hand: 65 ulps at 1.0 fail in float64; 70000 is beyond float16's 65504 but not float32's.
    rows = [[exactly(1.0), exactly(70000.0)]]
    autograd = np.array([[1.0 + 65 * 2.0**-52, 70000.0]])
    in64 = judge_table(autograd, table_of(rows), TOL64, FP64)
    assert in64.passed.tolist() == [[False, True]]
    in16 = judge_table(np.array([[1.0, 70000.0]]), table_of(rows), TOL16, FP16)
    assert in16.passed.tolist() == [[True, False]]


def test_nan_against_a_finite_uncertified_ball_is_left_to_the_diagnosis() -> None:
    # A ball [-1, 1] that could not be narrowed: nan is wrong for every value in it, so it is
    # outside the tolerance (verdict None), not unverified; a finite value stays unverified.
    fp64 = DTYPES["float64"]
    ball = ReferenceValue(OK, 0.0, 0.0, 1.0, False)
    tolerance = make_tolerance(fp64)
    assert judge(math.nan, ball, tolerance, fp64).verdict is None
    assert judge(0.5, ball, tolerance, fp64).verdict is Verdict.UNVERIFIED
