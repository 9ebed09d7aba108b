"""Axis ticks of the charts: "nice" values, steps of 1, 2 or 5 times a power of ten on a
linear axis, powers of ten on a logarithmic one.

The linear algorithm is d3-array's ``ticks`` / ``tickIncrement`` (and d3-scale's ``nice``): a
step near ``span / count`` is rounded to 1, 2, 5 or 10 times a power of ten, the axis is
widened to the multiples of that step around its data, and the ticks are every multiple in
between, so 0 is a tick whenever the axis spans it. Labels are written with just the digits
the step needs (``-0.001``, ``0``, ``0.001``), never a float's noise.

A logarithmic axis (:func:`log_axis`) is widened to whole decades around its data (d3-scale's
``scaleLog().nice()``, matplotlib's round-number limits) and ticked at powers of ten by
matplotlib's ``LogLocator`` rule: every decade while they are few, every ``stride``-th one
when they are many. Its labels are ``1e<k>``, as the error axes'.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

DEFAULT_TICK_COUNT = 5
"""About how many intervals an axis is cut into (d3's default is 10; the charts are small)."""
_STEP_THRESHOLDS = ((math.sqrt(50), 10), (math.sqrt(10), 5), (math.sqrt(2), 2))
"""d3-array's thresholds: a raw step of at least sqrt(50), sqrt(10) or sqrt(2) times its
power of ten is rounded to 10, 5 or 2 times it."""
MAX_FIXED_DECIMALS = 6
"""Steps finer than 10**-6 are labelled in scientific notation."""
MAX_FIXED_POWER = 6
"""Steps of 10**7 and more are labelled in scientific notation."""
MIN_AXIS_SPAN = 1e-300
"""The narrowest axis, widened around its middle: a step of a narrower span (subnormal
points, 5e-324 apart) would be a power of ten that underflows to 0."""


@dataclass(frozen=True)
class Axis:
    """A linear axis: its ends (multiples of ``step``), the ticks between them inclusive, and
    the power of ten of the step (which sets the labels' digits)."""

    low: float
    high: float
    step: float
    power: int
    ticks: tuple[float, ...]

    def label(self, value: float) -> str:
        """``value`` written with the digits this axis's step needs."""
        return tick_label(value, self.power)


def _step(low: float, high: float, count: int, integer: bool) -> tuple[float, int]:
    """The nice step (1, 2 or 5 times 10**power) near ``(high - low) / count``, and power;
    at least 1 when ``integer``."""
    raw = (high - low) / max(1, count)
    power = math.floor(math.log10(raw))
    error = raw / 10.0**power
    factor = next((f for threshold, f in _STEP_THRESHOLDS if error >= threshold), 1)
    if factor == 10:
        factor, power = 1, power + 1
    if integer and power < 0:
        factor, power = 1, 0
    return factor * 10.0**power, power


def _multiple(number: int, factor: float, power: int) -> float:
    """``number`` steps of ``factor`` * 10**power, without a float product's noise."""
    return round(number * factor * 10.0**power, max(0, -power) + 1)


def linear_axis(
    low: float, high: float, count: int = DEFAULT_TICK_COUNT, *, integer: bool = False
) -> Axis:
    """An axis over [low, high] widened to nice ends, with about ``count`` intervals; with
    ``integer`` (counts), no step below 1 (matplotlib's ``MaxNLocator(integer=True)``).

    >>> linear_axis(-0.00089, 0.0039).ticks
    (-0.001, 0.0, 0.001, 0.002, 0.003, 0.004)
    """
    if not (math.isfinite(low) and math.isfinite(high)):
        raise ValueError(f"an axis needs finite ends, not [{low!r}, {high!r}]")
    if high < low:
        low, high = high, low
    if high == low:
        pad = abs(low) * 0.1 or 1.0
        low, high = low - pad, high + pad
    if high - low < MIN_AXIS_SPAN:
        middle = low / 2 + high / 2
        low, high = middle - MIN_AXIS_SPAN / 2, middle + MIN_AXIS_SPAN / 2
    step, power = _step(low, high, count, integer)
    # Widen to the step's multiples once; the wider span may want the next step (d3's nice).
    for _ in range(2):
        first, last = math.floor(low / step), math.ceil(high / step)
        low, high = first * step, last * step
        wider, wider_power = _step(low, high, count, integer)
        if wider == step:
            break
        step, power = wider, wider_power
    first, last = math.floor(low / step + 1e-9), math.ceil(high / step - 1e-9)
    factor = round(step / 10.0**power)
    ticks = tuple(_multiple(n, factor, power) + 0.0 for n in range(first, last + 1))
    return Axis(low=ticks[0], high=ticks[-1], step=step, power=power, ticks=ticks)


def tick_label(value: float, power: int) -> str:
    """``value`` with as many decimals as a step of 10**power needs; 0 as ``0``."""
    if value == 0:
        return "0"
    if -MAX_FIXED_DECIMALS <= power <= MAX_FIXED_POWER:
        return f"{value:.{max(0, -power)}f}"
    digits = max(0, math.floor(math.log10(abs(value))) - power)
    return f"{value:.{min(digits, 3)}e}"


MAX_LOG_TICKS = 9
"""Ticks of a logarithmic axis at most, about: matplotlib's ``LogLocator(numticks="auto")``
clips the room of its axis to 9."""


@dataclass(frozen=True)
class LogAxis:
    """A logarithmic axis from 10**bottom to 10**top, ticked at the powers of ten
    10**k for k in ``decades``."""

    bottom: int
    top: int
    decades: tuple[int, ...]

    @property
    def ticks(self) -> tuple[float, ...]:
        """The ticks' values (10**k, read from the decimal text so that each is the float
        nearest to it)."""
        return tuple(float(f"1e{k}") for k in self.decades)

    def fraction(self, value: float) -> float:
        """Where ``value`` (above 0) lies along the axis, 0 at its bottom and 1 at its top."""
        return self.decade_fraction(math.log10(value))

    def decade_fraction(self, decade: float) -> float:
        """Where 10**``decade`` lies along the axis (without computing 10**decade, which
        underflows below 1e-323 and overflows above 1e308)."""
        return (decade - self.bottom) / (self.top - self.bottom)

    def label(self, decade: int) -> str:
        """The label of the tick 10**``decade``: ``1e<decade>``."""
        return f"1e{decade}"


def log_axis(low: float, high: float, count: int = MAX_LOG_TICKS) -> LogAxis:
    """A logarithmic axis over [low, high] (both above 0) widened to whole decades, with its
    ticks at powers of ten: matplotlib's ``LogLocator.tick_values`` with ``subs=(1.0,)``.

    A single power of ten gets a decade on either side (matplotlib's ``nonsingular``).

    >>> log_axis(0.5, 2).decades
    (-1, 0, 1)
    >>> log_axis(3e-5, 2e3).decades
    (-5, -3, -1, 1, 3)
    """
    if not (math.isfinite(low) and math.isfinite(high) and low > 0 and high > 0):
        raise ValueError(f"a log axis needs finite ends above 0, not [{low!r}, {high!r}]")
    if high < low:
        low, high = high, low
    bottom = math.floor(math.log10(low))
    top = math.ceil(math.log10(high))
    if top == bottom:
        bottom, top = bottom - 1, top + 1
    decades = top - bottom
    stride = (decades + 1) // count + 1
    if stride >= decades:
        stride = max(1, decades - 1)
    return LogAxis(bottom=bottom, top=top, decades=tuple(range(bottom, top + 1, stride)))
