"""Points: reading them from users, sampling them from domains, rounding them to a dtype.

A point is given as decimal text or a number. It is rounded once, exactly, to the check's
dtype; autograd runs at that value and the reference is evaluated at that same value.

The number syntax lives here, once: :data:`DECIMAL_NUMBER` and :data:`MAX_DECIMAL_EXPONENT`
govern a point given as text and a literal written in an expression alike
(:mod:`verifier.core.expression.parse` reads literals with :func:`parse_decimal`), and the service
validates submissions with these same functions, so what a worker would refuse is refused
at the door.

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
from typing import Any

import numpy as np

from verifier.core.floats.dtypes import DType, round_float, round_to_dtype
from verifier.errors import OptionError, PointError

MAX_POINTS_PER_CHECK = 100_000
"""Points of one check, the given and the sampled together: the core's bound (a check of
100,000 points of three variables, Hessian and node gradients, stays well under 1 GB;
docs/performance.md)."""
SERVICE_POINTS_PER_CHECK = 10_000
"""Points the service accepts in one check by default (``max_points_per_check``,
``max_samples_per_check``); an operator may raise them up to :data:`MAX_POINTS_PER_CHECK`."""
DEFAULT_DOMAIN = (-1.0, 1.0)
MAX_LISTED_NAMES = 20
"""Unknown names of a point that an error lists; the rest are counted, not listed."""
MAX_LISTED_NAME_CHARS = 40
"""Characters of each listed unknown name, the rest cut off."""

DECIMAL_NUMBER = re.compile(r"[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?")
"""The one syntax of a number written as text, in a point or in an expression: a plain
decimal (ASCII digits, an optional point, an optional exponent), without spaces inside,
underscores, hex, octal, binary, ``inf`` or ``nan``. Use it with ``fullmatch``."""
MAX_NUMBER_CHARS = 100
"""Longest point given as text, in characters (surrounding spaces not counted)."""
MAX_DECIMAL_EXPONENT = 400
"""Largest decimal exponent, in absolute value, of a number written as text (the exponent of
its leading digit: 2.5e3 has 3, 0.01 has -2). Every dtype's range lies well inside it
(float64 spans about 4.9e-324 to 1.8e308), so no value that a dtype can hold is refused, and
reading the exact value never builds an integer above about 10**430."""

PointInput = Mapping[str, float | int | str]
Floats = np.ndarray[Any, np.dtype[np.float64]]
"""A numpy array of float64 (a variable's values at the points, a column of entries)."""


def parse_decimal(text: str) -> Decimal | None:
    """The exact value of ``text`` if it has the number syntax :data:`DECIMAL_NUMBER`, else None.

    A Decimal keeps its exponent apart from its digits, so ``1e-9999999999`` costs no more to
    read than ``1e-9``; an exponent beyond even Decimal's own range reads as an infinity. Nothing
    here checks :data:`MAX_DECIMAL_EXPONENT`: see :func:`decimal_in_range`.

    >>> parse_decimal("2.5e3"), parse_decimal("0x10")
    (Decimal('2.5E+3'), None)
    """
    if DECIMAL_NUMBER.fullmatch(text) is None:
        return None
    try:
        return Decimal(text)
    except InvalidOperation:  # the syntax matched, so only the exponent can be beyond Decimal
        return Decimal("-Infinity" if text.startswith("-") else "Infinity")


def decimal_in_range(value: Decimal) -> bool:
    """Whether ``value`` is zero or its decimal exponent is within :data:`MAX_DECIMAL_EXPONENT`.

    >>> decimal_in_range(Decimal("1e-400")), decimal_in_range(Decimal("1e-401"))
    (True, False)
    """
    return value.is_finite() and (not value or abs(value.adjusted()) <= MAX_DECIMAL_EXPONENT)


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
        exact = parse_decimal(text) if len(text) <= MAX_NUMBER_CHARS else None
        if exact is None:
            raise PointError(f"{where}: {value[:MAX_NUMBER_CHARS]!r} is not a decimal number")
        if not decimal_in_range(exact):
            raise PointError(
                f"{where}: {text!r} is out of range (a decimal exponent beyond "
                f"±{MAX_DECIMAL_EXPONENT})"
            )
        return Fraction(exact)
    raise PointError(f"{where}: expected a number, got {type(value).__name__}")


def check_point_count(count: int, limit: int = MAX_POINTS_PER_CHECK) -> None:
    """Refuse more than ``limit`` points (at most :data:`MAX_POINTS_PER_CHECK`), given and
    sampled together."""
    limit = min(limit, MAX_POINTS_PER_CHECK)
    if count > limit:
        raise PointError(f"{count} points, more than {limit} per check")


def round_points(
    points: Sequence[PointInput], variables: Sequence[str], dtype: DType
) -> list[dict[str, float]]:
    """Round every value to ``dtype``, checking that each point names exactly ``variables``."""
    check_point_count(len(points))
    names = set(variables)
    plain = True
    for index, point in enumerate(points):
        if not (isinstance(point, dict) and point.keys() == names):
            check_point_names(point, variables, index=index)
            plain = False
    if plain and dtype.name in _NUMPY_ROUNDED and points:
        rounded = _rounded_floats(points, variables, dtype)
        if rounded is not None:
            return rounded
    return [round_point(point, variables, dtype, index=i) for i, point in enumerate(points)]


_NUMPY_ROUNDED = {"float64": np.float64, "float32": np.float32}


def _rounded_floats(
    points: Sequence[PointInput], variables: Sequence[str], dtype: DType
) -> list[dict[str, float]] | None:
    """All points at once where every value is a finite float that stays finite in ``dtype``
    (numpy converts float64 to float32 with IEEE round-to-nearest-even, as ``round_float``);
    None otherwise, for the one-value-at-a-time path and its errors."""
    raw = [point[name] for point in points for name in variables]
    if set(map(type, raw)) != {float}:
        return None
    with np.errstate(over="ignore", invalid="ignore"):
        values = np.array(raw, dtype=np.float64)
        rounded = values.astype(_NUMPY_ROUNDED[dtype.name]).astype(np.float64)
    if not np.isfinite(rounded).all():
        return None
    rows = rounded.reshape(len(points), len(variables)).tolist()
    # Each row has one value per variable by its shape; a strict zip costs a third more.
    return [dict(zip(variables, row, strict=False)) for row in rows]


def variable_columns(
    points: Sequence[Mapping[str, float]], variables: Sequence[str]
) -> dict[str, np.ndarray[Any, np.dtype[np.float64]]]:
    """Each variable's values at rounded ``points``, as one float64 array per variable.

    >>> variable_columns([{"x": 1.0, "y": 2.0}, {"x": 3.0, "y": 4.0}], ["x", "y"])["y"]
    array([2., 4.])
    """
    return {
        name: np.array([point[name] for point in points], dtype=np.float64) for name in variables
    }


def round_point(
    point: PointInput, variables: Sequence[str], dtype: DType, *, index: int
) -> dict[str, float]:
    """One point rounded to ``dtype``; errors name it as point ``index``."""
    check_point_names(point, variables, index=index)
    return {
        name: round_value(point[name], dtype, where=f"point {index}, {name}") for name in variables
    }


def check_point_names(point: object, variables: Sequence[str], *, index: int) -> None:
    """Refuse a point that is not a mapping naming exactly ``variables``."""
    if not isinstance(point, Mapping):
        raise PointError(f"point {index}: expected a mapping of variable to number")
    missing = [name for name in variables if name not in point]
    unknown = [name for name in point if name not in variables]
    if missing:
        raise PointError(f"point {index}: no value for variable(s) {', '.join(missing)}")
    if unknown:
        known = ", ".join(variables) or "none"
        raise PointError(
            f"point {index}: {len(unknown)} unknown variable(s) {_listed(unknown)}"
            f" (the expression's variables: {known})"
        )


def _listed(names: Sequence[object]) -> str:
    """The first :data:`MAX_LISTED_NAMES` of ``names``, each cut to :data:`MAX_LISTED_NAME_CHARS`,
    then how many are left out: a point of 60,000 unknown names draws a short message."""
    shown = []
    for name in names[:MAX_LISTED_NAMES]:
        text = str(name)
        cut = len(text) > MAX_LISTED_NAME_CHARS
        shown.append(f"{text[:MAX_LISTED_NAME_CHARS]}..." if cut else text)
    rest = len(names) - len(shown)
    return ", ".join(shown) + (f" and {rest} more, not listed" if rest > 0 else "")


def round_value(raw: object, dtype: DType, *, where: str) -> float:
    """A number or decimal text rounded once, exactly, to ``dtype``; refuses an overflow."""
    if isinstance(raw, float) and math.isfinite(raw):
        value = round_float(raw, dtype)
    else:
        value = round_to_dtype(to_fraction(raw, where=where), dtype)
    if not math.isfinite(value):
        raise PointError(f"{where}: {raw} overflows {dtype.name}")
    return value


def sample_points(
    variables: Sequence[str],
    samples: int,
    domain: Mapping[str, tuple[float, float]] | None,
    seed: int,
    dtype: DType | None = None,
) -> list[dict[str, float]]:
    """Draw ``samples`` points uniformly from ``domain`` (default -1:1 per variable), whose
    bounds are finite in ``dtype`` when given."""
    check_samples(samples)
    domain = dict(domain or {})
    for name, bounds in domain.items():
        domain_range(name, bounds, variables, dtype)
    ranges = [(name, *domain.get(name, DEFAULT_DOMAIN)) for name in variables]
    generator = random.Random(seed)
    return [
        {name: generator.uniform(low, high) for name, low, high in ranges} for _ in range(samples)
    ]


def check_samples(samples: object) -> None:
    """Refuse a number of samples that is not a positive integer within the points limit."""
    if isinstance(samples, bool) or not isinstance(samples, int) or samples < 1:
        raise OptionError(f"samples must be a positive integer, got {samples!r}")
    if samples > MAX_POINTS_PER_CHECK:
        raise OptionError(f"samples={samples} is more than {MAX_POINTS_PER_CHECK} per check")


def domain_range(
    name: str,
    bounds: tuple[float, float],
    variables: Sequence[str],
    dtype: DType | None = None,
) -> tuple[float, float]:
    """The sampling range of variable ``name``: finite (in ``dtype`` too, when given), with
    low <= high."""
    if name not in variables:
        raise OptionError(f"domain names {name!r}, not a variable of the expression")
    low, high = bounds
    if not (math.isfinite(low) and math.isfinite(high) and low <= high):
        raise OptionError(
            f"domain of {name!r} must be finite with low <= high, got [{low}, {high}]"
        )
    if dtype is not None and max(abs(low), abs(high)) > dtype.max_finite:
        raise OptionError(
            f"domain of {name!r} reaches beyond {dtype.name}'s largest finite number "
            f"({dtype.max_finite:g}): [{low:g}, {high:g}]"
        )
    return low, high
