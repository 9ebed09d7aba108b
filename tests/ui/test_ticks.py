"""The charts' axis ticks: nice values (1, 2 or 5 times a power of ten), 0 among them when
the axis spans it, labels without a float's noise."""

from __future__ import annotations

import pytest

from verifier.api.ui.ticks import linear_axis


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
