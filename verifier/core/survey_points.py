"""The survey's points: uniform, log-uniform and special regions, each a number of the dtype.

For one operation in one dtype the survey checks its special points, ``count`` sampled points
(half uniform in its domain, half log-uniform in magnitude between the dtype's smallest
subnormal and its largest finite number, so that none rounds to 0 and both tiny and huge
arguments are reached) and ``per_region`` points in each of its special regions
(:class:`verifier.core.ops.Region`, declared in the operation table):

- ``near``: the special value, the numbers next to it on both sides, then offsets log-uniform
  from one ulp out to half the value's magnitude (1/2 for 0), alternately below and above;
- ``tail``: magnitudes log-uniform over the tail, clipped to the dtype's range;
- ``grid``: exact multiples of the step (integers, half-integers) and the numbers next to
  them;
- ``multiples``: the variable at an integer multiple of the other, and the numbers next to it.

The variables a region is not about are sampled as the sampled points are. Every coordinate
is rounded to the dtype, so the published point is the value the check ran at.

>>> from verifier.core.floats.dtypes import DTYPES
>>> points = sample_points({"x": (0.0, 1.0)}, 4, seed=0, dtype=DTYPES["float16"])
>>> len(points), all(0.0 <= p["x"] <= 1.0 for p in points)
(4, True)
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping

from verifier.core.floats.dtypes import DTYPES, DType, round_float
from verifier.core.floats.ordinals import neighbour
from verifier.core.ops import Domain, Operation, Region, Shape

DEFAULT_REGION_POINTS = 100
"""Points per special region, per operation and dtype."""
NEAR_REACH = 0.5
"""How far a ``near`` region reaches, relative to its value's magnitude (absolute for 0)."""

Point = dict[str, float]
FLOAT64 = DTYPES["float64"]


def smallest_subnormal(dtype: DType) -> float:
    """The smallest positive number of ``dtype``."""
    return math.ldexp(1.0, dtype.min_exponent - dtype.mantissa_bits + 1)


def dtype_domains(domains: Mapping[str, Domain], dtype: DType) -> dict[str, Domain]:
    """``domains`` cut to ``dtype``'s finite range (float16 ends at 65504)."""
    largest = dtype.max_finite
    return {name: (max(low, -largest), min(high, largest)) for name, (low, high) in domains.items()}


def sample_points(
    domains: Mapping[str, Domain], count: int, *, seed: int, dtype: DType = FLOAT64
) -> list[Point]:
    """``count`` points of ``dtype``: half uniform in each domain, half log-uniform in
    magnitude (from ``dtype``'s smallest subnormal to its largest finite number)."""
    rng = random.Random(seed)
    cut = dtype_domains(domains, dtype)
    return [
        {name: _draw(rng, low, high, dtype, index % 2 == 1) for name, (low, high) in cut.items()}
        for index in range(count)
    ]


def _draw(rng: random.Random, low: float, high: float, dtype: DType, logarithmic: bool) -> float:
    """A number of ``dtype`` in [low, high], uniform or log-uniform in magnitude."""
    value = _log_uniform(rng, low, high, dtype) if logarithmic else rng.uniform(low, high)
    return _inside(round_float(value, dtype), low, high, dtype)


def _log_uniform(rng: random.Random, low: float, high: float, dtype: DType) -> float:
    """A value of [low, high] whose magnitude is log-uniform within ``dtype``'s range (signs
    as the domain allows)."""
    signs = [s for s in (1, -1) if (high > 0 if s > 0 else low < 0)]
    if not signs:
        return 0.0
    sign = rng.choice(signs)
    top = high if sign > 0 else -low
    bottom = smallest_subnormal(dtype)
    if sign > 0 and low > 0:
        bottom = max(bottom, low)
    if sign < 0 and high < 0:
        bottom = max(bottom, -high)
    return sign * _log_between(rng, bottom, max(top, bottom))


def _log_between(rng: random.Random, bottom: float, top: float) -> float:
    """A magnitude log-uniform in [bottom, top] (both positive)."""
    return math.exp(rng.uniform(math.log(bottom), math.log(top)))


def _inside(value: float, low: float, high: float, dtype: DType) -> float:
    """``value`` (a number of ``dtype``) moved inside [low, high] by whole numbers of it."""
    if value < low:
        value = round_float(low, dtype)
        if value < low:
            value = neighbour(value, 1, dtype)
    if value > high:
        value = round_float(high, dtype)
        if value > high:
            value = neighbour(value, -1, dtype)
    return value


def region_points(
    region: Region,
    domains: Mapping[str, Domain],
    dtype: DType,
    count: int,
    rng: random.Random,
) -> list[Point]:
    """``count`` points of ``dtype`` in ``region``; the other variables drawn from
    ``domains``."""
    cut = dtype_domains(domains, dtype)
    points = []
    for index in range(count):
        point = {
            name: _draw(rng, low, high, dtype, rng.random() < 0.5)
            for name, (low, high) in cut.items()
        }
        value = _place(region, index, point, dtype, rng)
        if math.isfinite(value):
            point[region.variable] = value
            points.append(point)
    return points


def _place(region: Region, index: int, point: Point, dtype: DType, rng: random.Random) -> float:
    """The region's variable at its ``index``-th point (the others are in ``point``)."""
    if region.shape is Shape.NEAR:
        return _near(region.at, index, dtype, rng)
    if region.shape is Shape.TAIL:
        top = dtype.max_finite if region.end is None else min(region.end, dtype.max_finite)
        start = min(region.start, top)
        return round_float(region.sign * _log_between(rng, start, top), dtype)
    if region.shape is Shape.GRID:
        steps = math.floor((region.high - region.low) / region.step)
        centre = round_float(region.low + region.step * rng.randint(0, steps), dtype)
        return _beside(centre, index, dtype)
    assert region.of is not None  # Shape.MULTIPLES
    factor = rng.randint(int(region.low), int(region.high))
    centre = round_float(factor * point[region.of], dtype)
    return _beside(centre, index, dtype) if math.isfinite(centre) else centre


def _beside(centre: float, index: int, dtype: DType) -> float:
    """A third of the points on ``centre``, a third just below it, a third just above."""
    side = index % 3
    return centre if side == 0 else neighbour(centre, 1 if side == 1 else -1, dtype)


def _near(at: float, index: int, dtype: DType, rng: random.Random) -> float:
    """The ``index``-th point near ``at``: ``at`` itself, then alternately below and above,
    first the neighbouring numbers, then log-uniform offsets."""
    centre = round_float(at, dtype)
    if index == 0:
        return centre
    direction = -1 if index % 2 == 1 else 1
    if index <= 2:
        return neighbour(centre, direction, dtype)
    spacing = dtype.ulp(centre) if centre != 0 else smallest_subnormal(dtype)
    reach = NEAR_REACH * (abs(centre) if centre != 0 else 1.0)
    offset = _log_between(rng, spacing, max(reach, spacing))
    return round_float(centre + direction * offset, dtype)


def survey_points(
    operation: Operation, dtype: DType, count: int, per_region: int, *, seed: int
) -> list[Point]:
    """Every point the survey checks for ``operation`` in ``dtype``: its special points, the
    sampled points and its regions' points, each coordinate a number of ``dtype``, without
    repeats."""
    rng = random.Random(f"{seed}:{operation.name}:{dtype.name}")
    specials = [{k: round_float(v, dtype) for k, v in p.items()} for p in operation.specials]
    points = specials + sample_points(operation.domains, count, seed=seed, dtype=dtype)
    for region in operation.regions:
        points += region_points(region, operation.domains, dtype, per_region, rng)
    unique = {tuple(point.items()): point for point in points}
    return list(unique.values())
