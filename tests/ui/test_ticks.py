"""The charts' axis ticks: nice values (1, 2 or 5 times a power of ten), 0 among them when
the axis spans it, labels without a float's noise."""

from __future__ import annotations

import math

import pytest

from verifier.api.ui.ticks import linear_axis, log_axis


def test_a_small_range_across_zero_gets_steps_of_a_thousandth_with_zero_among_them() -> None:
    # d3-array: ticks(-1e-3, 4e-3, 5) is [-0.001, 0, 0.001, 0.002, 0.003, 0.004].
    axis = linear_axis(-1e-3, 4e-3)
    assert axis.ticks == (-0.001, 0.0, 0.001, 0.002, 0.003, 0.004)
    assert [axis.label(tick) for tick in axis.ticks] == [
        "-0.001",
        "0",
        "0.001",
        "0.002",
        "0.003",
        "0.004",
    ]


def test_the_axis_is_widened_to_its_steps_so_its_ends_are_ticks() -> None:
    # d3-scale: scaleLinear().domain([-0.00089, 0.0039]).nice(5) is [-0.001, 0.004]; the raw
    # -0.00089 was the first label before.
    axis = linear_axis(-0.00089, 0.0039)
    assert (axis.low, axis.high) == (-0.001, 0.004)
    assert 0.0 in axis.ticks


@pytest.mark.parametrize(
    ("low", "high", "expected"),
    [
        # d3-array ticks(-10, 10, 5): step 5.
        (-9.93, 9.97, (-10.0, -5.0, 0.0, 5.0, 10.0)),
        # ticks(0.1, 0.7, 5): 0.6 / 5 = 0.12, rounded to 0.1.
        (0.1, 0.7, (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7)),
        # ticks(0, 1, 5): step 0.2, every tick exact in decimal.
        (0.0, 1.0, (0.0, 0.2, 0.4, 0.6, 0.8, 1.0)),
    ],
)
def test_ticks_are_multiples_of_one_two_or_five_times_a_power_of_ten(
    low: float, high: float, expected: tuple[float, ...]
) -> None:
    assert linear_axis(low, high).ticks == expected


def test_a_count_axis_has_no_fractional_ticks() -> None:
    # matplotlib's MaxNLocator(integer=True): 3 entries are ticked 0, 1, 2, 3, not 0.5 apart.
    assert linear_axis(0, 3, integer=True).ticks == (0.0, 1.0, 2.0, 3.0)


def test_a_single_value_gets_an_axis_around_it() -> None:
    axis = linear_axis(5.0, 5.0)
    assert axis.low < 5.0 < axis.high
    assert 5.0 in axis.ticks


def test_very_small_and_very_large_steps_are_labelled_in_scientific_notation() -> None:
    small = linear_axis(1e-9, 3e-9)
    assert small.label(small.ticks[-1]) == "3.0e-09"
    large = linear_axis(0, 5e8)
    assert large.label(large.ticks[-1]) == "5e+08"


# matplotlib's LogLocator.tick_values (subs=(1.0,), numticks 9, as without an axis): with
# numdec decades between the axis ends, stride = (numdec + 1) // 9 + 1, cut to numdec - 1 (at
# least 1) when it would reach numdec; ticks every stride-th decade from the bottom one.
@pytest.mark.parametrize(
    ("low", "high", "decades"),
    [
        # [0.5, 2] widened to the decades around it, [1e-1, 1e1]: 2 decades, stride 1.
        (0.5, 2.0, (-1, 0, 1)),
        # [3e-5, 2e3] widened to [1e-5, 1e4]: 9 decades, stride 10 // 9 + 1 = 2.
        (3e-5, 2e3, (-5, -3, -1, 1, 3)),
        # [2, 3] inside one decade: [1, 10], both ends ticked.
        (2.0, 3.0, (0, 1)),
        # a single power of ten: a decade on either side (matplotlib's nonsingular).
        (10.0, 10.0, (0, 1, 2)),
        # [1, 1e7]: 7 decades, stride 8 // 9 + 1 = 1, every decade.
        (1.0, 1e7, (0, 1, 2, 3, 4, 5, 6, 7)),
    ],
)
def test_a_log_axis_is_ticked_at_powers_of_ten_by_matplotlibs_rule(
    low: float, high: float, decades: tuple[int, ...]
) -> None:
    axis = log_axis(low, high)
    assert axis.decades == decades
    assert axis.ticks == tuple(10.0**k for k in decades)
    assert [axis.label(k) for k in axis.decades] == [f"1e{k}" for k in decades]
    assert axis.fraction(10.0**axis.bottom) == 0.0
    assert axis.fraction(10.0**axis.top) == 1.0


def test_a_log_axis_over_every_positive_double_keeps_at_most_nine_ticks() -> None:
    # 5e-324 (the least subnormal) to 1.7e308: decades -324 to 309, whose powers of ten
    # underflow and overflow as floats; the positions come from the exponents.
    axis = log_axis(5e-324, 1.7e308)
    assert (axis.bottom, axis.top) == (-324, 309)
    assert len(axis.decades) <= 9
    assert 0.0 < axis.fraction(5e-324) < axis.fraction(1.7e308) < 1.0


@pytest.mark.parametrize(("low", "high"), [(0.0, 1.0), (-1.0, 1.0), (1.0, math.inf)])
def test_a_log_axis_refuses_ends_that_are_not_above_zero_and_finite(
    low: float, high: float
) -> None:
    with pytest.raises(ValueError, match="above 0"):
        log_axis(low, high)
