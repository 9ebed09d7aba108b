"""Tolerances: how far autograd may be from the exact value before an entry leaves ``pass``.

An entry passes when ``|autograd - exact| <= atol + rtol * |exact|``. ``rtol`` defaults to a
number of units in the last place of the dtype (``DEFAULT_ULPS``), and ``atol`` to the dtype's
smallest normal number. There is no slack for exact inputs: the points and literals are exactly
the numbers autograd saw, so an error outside this is either the rounding of the computation
as written (``ill-conditioned``), a range event (``range``) or a defect (``fail``); see
:mod:`verifier.core.judge.diagnosis`. A tolerance that overflows is unbounded, never 0.
"""

from __future__ import annotations

from dataclasses import dataclass

from verifier.core.floats.dtypes import DType
from verifier.errors import OptionError

DEFAULT_ULPS = {"float64": 64, "float32": 64, "float16": 16, "bfloat16": 8}
"""Default relative tolerance per dtype, in units in the last place (ulps) at 1.0."""
MAX_TOLERANCE = 1e300
"""Given tolerances are below this: one near the float64 maximum would overflow the bound."""


@dataclass(frozen=True)
class Tolerance:
    """The tolerance of a check: relative (also in ulps) and absolute."""

    rtol: float
    atol: float
    ulps: float

    def allowed(self, exact: float) -> float:
        """The absolute error allowed for an entry whose exact value is ``exact``."""
        return self.atol + self.rtol * abs(exact)

    def to_dict(self) -> dict[str, float]:
        """The tolerance as the report shows it."""
        return {"rtol": self.rtol, "atol": self.atol, "ulps": self.ulps}


def make_tolerance(dtype: DType, rtol: float | None = None, atol: float | None = None) -> Tolerance:
    """The default tolerance for ``dtype``, with any given ``rtol``/``atol`` overriding it."""
    for name, value in (("rtol", rtol), ("atol", atol)):
        if value is None:
            continue
        if not (isinstance(value, int | float) and 0 <= value < MAX_TOLERANCE):
            raise OptionError(
                f"{name} must be a non-negative number below {MAX_TOLERANCE:g}, got {value!r}"
            )
    if rtol is None:
        ulps = float(DEFAULT_ULPS[dtype.name])
        rtol = ulps * dtype.epsilon
    else:
        ulps = rtol / dtype.epsilon
    if atol is None:
        atol = dtype.smallest_normal
    return Tolerance(rtol=float(rtol), atol=float(atol), ulps=ulps)
