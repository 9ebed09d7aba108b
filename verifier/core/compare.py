"""Judging one entry: autograd's value against the certified reference.

Errors are measured against the reference carried as a sum of two floats, so its float64
rounding does not blur an ulp count, and every entry keeps abs, rel and ulp error so a report
can be re-judged under another tolerance without rerunning anything.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from verifier.core.dtypes import DType
from verifier.core.reference import DOMAIN, UNDEFINED, ReferenceValue
from verifier.core.report import DOMAIN as DOMAIN_VERDICT
from verifier.core.report import FAIL, NONFINITE, PASS
from verifier.core.report import UNDEFINED as UNDEFINED_VERDICT
from verifier.core.tolerance import Tolerance


@dataclass(frozen=True)
class Judgement:
    """The verdict on one entry, with the errors it rests on."""

    verdict: str
    reference: float | None
    abs_error: float | None
    rel_error: float | None
    ulp_error: float | None
    allowed: float | None
    detail: str | None


def judge(
    autograd: float,
    reference: ReferenceValue,
    magnitude: float,
    tolerance: Tolerance,
    dtype: DType,
    *,
    strict: bool,
) -> Judgement:
    """Compare ``autograd`` with ``reference`` under ``tolerance``.

    >>> from verifier.core.dtypes import DTYPES
    >>> from verifier.core.tolerance import make_tolerance
    >>> fp64 = DTYPES["float64"]
    >>> judge(6.0, ReferenceValue("ok", 6.0), 6.0, make_tolerance(fp64), fp64, strict=False).verdict
    'pass'
    """
    if reference.status == DOMAIN:
        return Judgement(DOMAIN_VERDICT, None, None, None, None, None, reference.detail)
    if reference.status == UNDEFINED:
        verdict = FAIL if strict else UNDEFINED_VERDICT
        detail = reference.detail
        if strict:
            detail = f"strict: the derivative does not exist here ({detail})"
        return Judgement(verdict, None, None, None, None, None, detail)
    assert reference.high is not None
    if not math.isfinite(reference.high):
        detail = "the exact value is finite but beyond the range of float64"
        verdict = FAIL if math.isfinite(autograd) else NONFINITE
        return Judgement(verdict, reference.high, math.inf, math.inf, math.inf, None, detail)
    allowed = tolerance.allowed(reference.high, magnitude)
    detail = None
    if not reference.certified:
        detail = f"reference radius {reference.radius:.3g} is above the precision target"
    if not math.isfinite(autograd):
        detail = f"autograd gave {autograd} where the exact value is {reference.high:.17g}"
        return Judgement(NONFINITE, reference.high, math.inf, math.inf, math.inf, allowed, detail)
    # The reference is high + low (beyond float64). When autograd and high are within a
    # factor of two their difference is exact (Sterbenz); otherwise it is far larger than
    # one ulp of either, and its own rounding is negligible.
    abs_error = abs((autograd - reference.high) - reference.low)
    exact = reference.high + reference.low
    if exact == 0:
        rel_error = 0.0 if abs_error == 0 else math.inf
    else:
        rel_error = abs_error / abs(exact)
    ulp_error = abs_error / dtype.ulp(reference.high)
    verdict = PASS if abs_error <= allowed else FAIL
    return Judgement(verdict, reference.high, abs_error, rel_error, ulp_error, allowed, detail)
