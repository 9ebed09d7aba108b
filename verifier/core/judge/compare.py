"""Judging one entry: autograd's value against the certified reference.

Errors are measured against the reference carried as a sum of two floats, so its float64
rounding does not blur an ulp count, and every entry keeps its errors (absolute, relative, ulps
against a non-zero value, error/allowed) and correct bits, so a report can be re-judged under
another tolerance without rerunning anything. An entry outside the tolerance gets no verdict
here: whose fault it is, is :mod:`verifier.core.judge.diagnosis`'s question.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from verifier.core.exact.reference import (
    DOMAIN,
    OK,
    STATUSES,
    UNDEFINED,
    ReferenceTable,
    ReferenceValue,
)
from verifier.core.floats.dtypes import DType
from verifier.core.judge.tolerance import Tolerance
from verifier.core.judge.verdict import Verdict


@dataclass(frozen=True)
class Judgement:
    """The verdict on one entry (None: outside the tolerance, to be diagnosed), with the
    errors it rests on."""

    verdict: Verdict | None
    reference: float | None = None
    abs_error: float | None = None
    rel_error: float | None = None
    ulp_error: float | None = None
    allowed: float | None = None
    ratio: float | None = None
    correct_bits: float | None = None
    detail: str | None = None


def judge(
    autograd: float, reference: ReferenceValue, tolerance: Tolerance, dtype: DType
) -> Judgement:
    """Compare ``autograd`` with ``reference`` under ``tolerance``.

    >>> from verifier.core.floats.dtypes import DTYPES
    >>> from verifier.core.judge.tolerance import make_tolerance
    >>> fp64 = DTYPES["float64"]
    >>> judge(6.0, ReferenceValue("ok", 6.0), make_tolerance(fp64), fp64).verdict
    <Verdict.PASS: 'pass'>
    """
    if reference.status == DOMAIN:
        return Judgement(Verdict.DOMAIN, detail=reference.detail)
    if reference.status == UNDEFINED:
        return Judgement(Verdict.UNDEFINED, detail=reference.detail)
    assert reference.high is not None
    exact = reference.high + reference.low
    if not reference.certified:
        return _uncertified(autograd, reference, tolerance)
    if abs(exact) > dtype.max_finite:
        detail = (
            f"the exact value {reference.high:.6g} is beyond {dtype.name}'s largest finite "
            f"number {dtype.max_finite:.6g}"
        )
        return Judgement(Verdict.RANGE, reference.high, detail=detail)
    allowed = tolerance.allowed(exact)
    if not math.isfinite(autograd):
        return Judgement(
            None, reference.high, math.inf, math.inf, None, allowed, math.inf, 0.0, None
        )
    # The reference is high + low (beyond float64). When autograd and high are within a
    # factor of two their difference is exact (Sterbenz); otherwise it is far larger than
    # one ulp of either, and its own rounding is negligible.
    abs_error = abs((autograd - reference.high) - reference.low)
    if exact == 0:
        rel_error = 0.0 if abs_error == 0 else math.inf
        ulp_error = None
    else:
        rel_error = abs_error / abs(exact)
        ulp_error = abs_error / dtype.ulp(exact)
    ratio = _ratio(abs_error, allowed)
    verdict = Verdict.PASS if ratio <= 1 else None
    bits = correct_bits(rel_error, dtype)
    return Judgement(verdict, reference.high, abs_error, rel_error, ulp_error, allowed, ratio, bits)


def correct_bits(rel_error: float, dtype: DType) -> float:
    """How many leading bits of the significand are right, from 0 to the dtype's precision."""
    if rel_error == 0:
        return float(dtype.mantissa_bits)
    if not math.isfinite(rel_error) or rel_error >= 1:
        return 0.0
    return min(float(dtype.mantissa_bits), -math.log2(rel_error))


def _ratio(abs_error: float, allowed: float) -> float:
    if allowed > 0:
        return abs_error / allowed
    return 0.0 if abs_error == 0 else math.inf


def _uncertified(autograd: float, reference: ReferenceValue, tolerance: Tolerance) -> Judgement:
    """A reference that is only a bound: a pass when every value in it would pass, outside
    the tolerance (to be diagnosed) when autograd's nan or inf is wrong for every value in it,
    else ``unverified``."""
    assert reference.high is not None and reference.radius is not None
    radius = reference.radius
    low, high = reference.high - radius, reference.high + radius
    if math.isfinite(radius) and math.isfinite(autograd):
        farthest = max(abs(autograd - low), abs(autograd - high))
        nearest_magnitude = 0.0 if low <= 0 <= high else min(abs(low), abs(high))
        allowed = tolerance.allowed(nearest_magnitude)
        if farthest <= allowed:
            return Judgement(Verdict.PASS, None, farthest, None, None, allowed, farthest / allowed)
    if math.isfinite(radius):
        detail = f"the exact value lies in [{low:.6g}, {high:.6g}] and could not be narrowed"
        if not math.isfinite(autograd):
            # nan or inf is wrong for every value of a finite ball: judged as non-finite.
            nearest = 0.0 if low <= 0 <= high else min(abs(low), abs(high))
            allowed = tolerance.allowed(nearest)
            return Judgement(None, None, math.inf, math.inf, None, allowed, math.inf, 0.0, detail)
    else:
        detail = "the exact value could not be bounded (the certified ball is unbounded)"
    return Judgement(Verdict.UNVERIFIED, None, detail=detail)


Floats = np.ndarray[Any, np.dtype[np.float64]]
Mask = np.ndarray[Any, np.dtype[np.bool_]]


@dataclass(frozen=True)
class Judged:
    """:func:`judge` over a whole ``[point, key]`` table at once, for the entries it settles.

    ``passed`` marks the entries that pass with a certified reference in range and a finite
    autograd value: their numbers below are exactly what :func:`judge` gives (the same IEEE
    operations, element by element). Every other entry is for :func:`judge`, one at a time.
    """

    passed: Mask
    abs_error: Floats
    rel_error: Floats
    ulp_error: Floats
    exact_zero: Mask
    allowed: Floats
    ratio: Floats


def judge_table(
    autograd: Floats, references: ReferenceTable, tolerance: Tolerance, dtype: DType
) -> Judged:
    """Judge every entry of ``autograd`` (``[point, key]``) against ``references`` at once."""
    high, low = references.high, references.low
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        exact = high + low
        magnitude = np.abs(exact)
        settled = (
            (references.status == STATUSES.index(OK))
            & references.certified
            & ~(magnitude > dtype.max_finite)
            & np.isfinite(autograd)
        )
        allowed = tolerance.atol + tolerance.rtol * magnitude
        abs_error = np.abs((autograd - high) - low)
        exact_zero = exact == 0
        rel_error = np.where(
            exact_zero, np.where(abs_error == 0, 0.0, np.inf), abs_error / magnitude
        )
        normal = (magnitude >= dtype.smallest_normal) & np.isfinite(magnitude)
        exponent = np.where(normal, np.frexp(magnitude)[1] - 1, dtype.min_exponent)
        ulp_error = abs_error / np.ldexp(1.0, exponent - dtype.mantissa_bits + 1)
        ratio = np.where(allowed > 0, abs_error / allowed, np.where(abs_error == 0, 0.0, np.inf))
        passed = settled & (ratio <= 1)
    return Judged(passed, abs_error, rel_error, ulp_error, exact_zero, allowed, ratio)
