"""Points: reading them from users, sampling them from domains, rounding them to a dtype.

A point is given as decimal text or a number. It is rounded once, exactly, to the check's
dtype; autograd runs at that value and the reference is evaluated at that same value.

>>> parse_assignments("x=2,y=0.5")
{'x': '2', 'y': '0.5'}
"""

from __future__ import annotations

import math
import random
import re
from collections.abc import Mapping, Sequence
from decimal import Decimal, InvalidOperation
from fractions import Fraction

from verifier.core.dtypes import DType, round_float, round_to_dtype
from verifier.errors import OptionError, PointError

MAX_POINTS_PER_CHECK = 10_000
DEFAULT_DOMAIN = (-1.0, 1.0)

_NUMBER_RE = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?\Z")
MAX_NUMBER_CHARS = 100

PointInput = Mapping[str, float | int | str]


def parse_assignments(text: str) -> dict[str, str]:
    """Split ``x=2,y=1`` into ``{"x": "2", "y": "1"}``; values stay text until rounding."""
    result: dict[str, str] = {}
    for part in text.split(","):
        name, equals, value = part.partition("=")
        name, value = name.strip(), value.strip()
        if not equals or not name or not value:
            raise PointError(f"expected name=value in {part.strip()!r} (in {text!r})")
        if name in result:
            raise PointError(f"variable {name!r} given twice in {text!r}")
        result[name] = value
    return result


def parse_domain(text: str) -> dict[str, tuple[float, float]]:
    """Split ``x=-1:1,y=0:2`` into ``{"x": (-1.0, 1.0), "y": (0.0, 2.0)}``."""
    result: dict[str, tuple[float, float]] = {}
    for name, value in parse_assignments(text).items():
        low, colon, high = value.partition(":")
        if not colon:
            raise OptionError(f"domain of {name!r} must be low:high, got {value!r}")
        result[name] = (
            float(to_fraction(low, where=f"domain of {name}")),
            float(to_fraction(high, where=f"domain of {name}")),
        )
    return result


def to_fraction(value: object, *, where: str) -> Fraction:
    """The exact value of a number or decimal text; ``where`` names it in errors."""
    if isinstance(value, bool):
        raise PointError(f"{where}: expected a number, got a boolean")
    if isinstance(value, int):
        return Fraction(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise PointError(f"{where}: {value} is not a finite number")
        return Fraction(value)
    if isinstance(value, str):
        text = value.strip()
        if len(text) > MAX_NUMBER_CHARS or not _NUMBER_RE.match(text):
            raise PointError(f"{where}: {value[:MAX_NUMBER_CHARS]!r} is not a decimal number")
        try:
            exact = Decimal(text)
        except InvalidOperation:
            raise PointError(f"{where}: {value!r} is not a decimal number") from None
        if abs(exact.adjusted()) > 400:
            raise PointError(f"{where}: {value!r} is out of range")
        return Fraction(exact)
    raise PointError(f"{where}: expected a number, got {type(value).__name__}")


def round_points(
    points: Sequence[PointInput], variables: Sequence[str], dtype: DType
) -> list[dict[str, float]]:
    """Round every value to ``dtype``, checking that each point names exactly ``variables``."""
    if len(points) > MAX_POINTS_PER_CHECK:
        raise PointError(f"{len(points)} points, more than {MAX_POINTS_PER_CHECK} per check")
    rounded = []
    for index, point in enumerate(points):
        if not isinstance(point, Mapping):
            raise PointError(f"point {index}: expected a mapping of variable to number")
        missing = [name for name in variables if name not in point]
        unknown = [name for name in point if name not in variables]
        if missing:
            raise PointError(f"point {index}: no value for variable(s) {', '.join(missing)}")
        if unknown:
            known = ", ".join(variables) or "none"
            raise PointError(
                f"point {index}: unknown variable(s) {', '.join(map(str, unknown))}"
                f" (the expression's variables: {known})"
            )
        values = {}
        for name in variables:
            raw = point[name]
            if isinstance(raw, float) and math.isfinite(raw):
                value = round_float(raw, dtype)
            else:
                value = round_to_dtype(to_fraction(raw, where=f"point {index}, {name}"), dtype)
            if not math.isfinite(value):
                raise PointError(f"point {index}, {name}: {point[name]} overflows {dtype.name}")
            values[name] = value
        rounded.append(values)
    return rounded


def sample_points(
    variables: Sequence[str],
    samples: int,
    domain: Mapping[str, tuple[float, float]] | None,
    seed: int,
) -> list[dict[str, float]]:
    """Draw ``samples`` points uniformly from ``domain`` (default -1:1 per variable)."""
    if isinstance(samples, bool) or not isinstance(samples, int) or samples < 1:
        raise OptionError(f"samples must be a positive integer, got {samples!r}")
    if samples > MAX_POINTS_PER_CHECK:
        raise OptionError(f"samples={samples} is more than {MAX_POINTS_PER_CHECK} per check")
    domain = dict(domain or {})
    unknown = [name for name in domain if name not in variables]
    if unknown:
        raise OptionError(f"domain names unknown variable(s) {', '.join(unknown)}")
    ranges = []
    for name in variables:
        low, high = domain.get(name, DEFAULT_DOMAIN)
        if not (math.isfinite(low) and math.isfinite(high) and low <= high):
            raise OptionError(f"domain of {name!r} must be finite with low <= high")
        ranges.append((name, low, high))
    generator = random.Random(seed)
    return [
        {name: generator.uniform(low, high) for name, low, high in ranges} for _ in range(samples)
    ]
