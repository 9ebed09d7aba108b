"""A check's entries as columns (verifier/core/judge/columns.py): the passing entries kept as
numbers must read back as the very entries the one-at-a-time path builds, with the same
counts and the same report-format dictionaries.

The columns are filled as verifier/core/check.py fills them: the whole-table judge's numbers,
the condition factor weight / |reference|, and the other entries built one at a time. The
one-at-a-time entry is built here from :func:`judge` (as check.py's ``_entry`` does for an
entry that passes), so the two paths meet only in what they must agree on. Float facts: the
float64 ulp in [4, 8) is 2**-50 and in [1, 2) 2**-52; 64 ulps at 1.0 are 2**-46.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest

from verifier.core.exact.reference import OK, ReferenceTable, ReferenceValue
from verifier.core.floats.dtypes import DTYPES
from verifier.core.judge.columns import EntryColumns, EntryDicts, point_major
from verifier.core.judge.compare import judge, judge_table
from verifier.core.judge.entry import Entry
from verifier.core.judge.tolerance import Tolerance
from verifier.core.judge.verdict import Verdict

FP64 = DTYPES["float64"]
TOL64 = Tolerance(rtol=64 * 2.0**-52, atol=2.0**-1022, ulps=64)
LABELS: list[tuple[str, tuple[str, ...] | None, str | None]] = [
    ("gradient", ("x",), None),
    ("hessian", ("x", "x"), None),
    ("node", None, "sin(x)"),
]
FAILING = 4  # point 1, the Hessian element: 2**-40 off, beyond 64 ulps of 2 (2**-45)
BOUND_ONLY = 5  # point 1, the node gradient: judged against an uncertified ball


def exactly(value: float) -> ReferenceValue:
    return ReferenceValue(OK, value, 0.0, 0.0)


# Two points x three keys, flat index point * 3 + key.
REFERENCES = [
    [exactly(6.0), exactly(6.0), exactly(1.0)],
    [exactly(0.0), exactly(2.0), ReferenceValue(OK, 0.5, 0.0, 2.0**-60, certified=False)],
]
AUTOGRAD = np.array(
    [
        [6.0, math.nextafter(6.0, 7.0), 1.0],  # exact, one ulp off, exact
        [2.0**-1030, 2.0 + 2.0**-40, 0.5],  # within atol of 0, outside, within the ball
    ]
)
# Weights of the conditioning (forward weights + sum of |terms|), per point and key.
WEIGHT = np.array([[6.0, 12.0, 0.5], [1.0, 2.0, 0.5]])


def condition_of(point: int, key: int) -> float:
    """weight / |exact| (inf where the exact value is 0 and something weighs on it)."""
    high = REFERENCES[point][key].high
    assert high is not None
    weight = float(WEIGHT[point, key])
    return weight / abs(high) if high != 0 else (math.inf if weight > 0 else 0.0)


def one_at_a_time(point: int, key: int, value: float | None = None) -> Entry:
    """The entry at ``point``, ``key`` judged on its own, as check.py builds one."""
    value = float(AUTOGRAD[point, key]) if value is None else value
    reference = REFERENCES[point][key]
    judged = judge(value, reference, TOL64, FP64)
    kind, wrt, node = LABELS[key]
    verdict = judged.verdict.value if judged.verdict is not None else Verdict.FAIL.value
    return Entry(
        kind=kind,
        wrt=wrt,
        node=node,
        point=point,
        autograd=value,
        reference=judged.reference,
        reference_radius=reference.radius,
        abs_error=judged.abs_error,
        rel_error=judged.rel_error,
        ulp_error=judged.ulp_error,
        tolerance=judged.allowed,
        verdict=verdict,
        detail=judged.detail if judged.verdict is not None else "the error is above the bound",
        ratio=judged.ratio,
        condition=condition_of(point, key) if judged.reference is not None else None,
        correct_bits=judged.correct_bits,
    )


def columns_of(autograd: np.ndarray[Any, Any] = AUTOGRAD) -> EntryColumns:
    table = ReferenceTable.empty(2, 3)
    for point, row in enumerate(REFERENCES):
        table.put(point, row)
    judged = judge_table(autograd, table, TOL64, FP64)
    with np.errstate(divide="ignore"):
        condition = np.where(
            table.high != 0, WEIGHT / np.abs(table.high), np.where(WEIGHT > 0, np.inf, 0.0)
        )
    explicit = {
        flat: one_at_a_time(*divmod(flat, 3), value=float(autograd.flat[flat]))
        for flat in np.flatnonzero(~judged.passed.ravel()).tolist()
    }
    return EntryColumns(
        labels=LABELS,
        dtype=FP64,
        autograd=autograd,
        columnar=judged.passed,
        reference=table.high,
        radius=table.radius,
        abs_error=judged.abs_error,
        rel_error=judged.rel_error,
        ulp_error=judged.ulp_error,
        exact_zero=judged.exact_zero,
        tolerance=judged.allowed,
        ratio=judged.ratio,
        condition=condition,
        explicit=explicit,
    )


def test_only_the_failing_and_the_bound_only_entries_are_kept_as_objects() -> None:
    assert sorted(columns_of().explicit) == [FAILING, BOUND_ONLY]


def test_every_entry_from_the_columns_equals_the_entry_built_one_at_a_time() -> None:
    columns = columns_of()
    assert len(columns) == 6
    for index in range(len(columns)):
        assert columns.entry(index) == one_at_a_time(*divmod(index, 3)), index


def test_a_columnar_entry_carries_the_hand_derived_errors() -> None:
    # Point 0, the Hessian element: 6 + 2**-50 against 6 (2**-50 is the ulp in [4, 8)): one
    # ulp, 2**-50/6 relative, 50 + log2(6) = 52.58 correct bits, condition 12 / 6 = 2.
    shown = columns_of().entry(1)
    assert (shown.kind, shown.wrt, shown.node, shown.point) == ("hessian", ("x", "x"), None, 0)
    assert shown.abs_error == 2.0**-50 and shown.ulp_error == 1.0
    assert shown.rel_error == 2.0**-50 / 6
    assert shown.correct_bits == pytest.approx(50 + math.log2(6), rel=1e-15)
    assert shown.condition == 2.0
    assert shown.verdict == "pass" and shown.detail is None and shown.blame is None


def test_an_exact_zero_shows_no_ulp_count_and_an_infinite_condition() -> None:
    # Point 1, the gradient: exact 0, autograd 2**-1030 (below atol 2**-1022): a pass with an
    # infinite relative error, no ulp count, and weight 1 over |0|.
    shown = columns_of().entry(3)
    assert shown.verdict == "pass" and shown.ulp_error is None
    assert shown.rel_error == math.inf and shown.condition == math.inf
    assert shown.to_dict()["condition"] == "inf"


def test_counts_add_the_columnar_passes_to_the_explicit_verdicts() -> None:
    # Four columnar passes, one explicit pass (against a bound), one fail.
    columns = columns_of()
    assert dict(columns.counts()) == {"pass": 5, "fail": 1}
    assert [columns.verdict_at(i) for i in range(6)] == ["pass"] * 4 + ["fail", "pass"]
    assert columns.not_passing() == [columns.explicit[FAILING]]


def test_the_dicts_are_the_entries_to_dict_in_point_major_order() -> None:
    columns = columns_of()
    dicts = list(columns.dicts())
    assert dicts == [entry.to_dict() for entry in columns.entries()]
    assert [(d["point"], d["kind"]) for d in dicts] == [
        (p, kind) for p in (0, 1) for kind in ("gradient", "hessian", "node")
    ]


def test_entry_dicts_read_as_a_sequence_of_the_same_dicts() -> None:
    columns = columns_of()
    expected = [entry.to_dict() for entry in columns.entries()]
    entries = EntryDicts(columns)
    assert len(entries) == 6
    assert list(entries) == expected
    assert entries[0] == expected[0] and entries[-1] == expected[-1]
    assert entries[1:4] == expected[1:4]
    for beyond in (6, -7):
        with pytest.raises(IndexError):
            entries[beyond]


def test_a_compared_device_adds_its_value_verdict_and_the_difference() -> None:
    # The second device gives 6 + 2**-50 for the gradient at point 0 (still a pass) and the
    # same values elsewhere. 6 - (6 + 2**-50) = -2**-50 exactly (Sterbenz: the two are within
    # a factor of 2); equal values differ by 0.
    theirs = AUTOGRAD.copy()
    theirs[0, 0] = 6.0 + 2.0**-50
    columns = columns_of()
    columns.compared = columns_of(theirs)
    first = columns.entry(0)
    assert (first.compared_autograd, first.compared_verdict, first.compared_detail) == (
        6.0 + 2.0**-50,
        "pass",
        None,
    )
    assert first.device_difference == -(2.0**-50)
    failing = columns.entry(FAILING)
    assert (failing.compared_verdict, failing.device_difference) == ("fail", 0.0)
    assert failing.compared_detail == "the error is above the bound"
    dicts = list(columns.dicts())
    assert dicts == [entry.to_dict() for entry in columns.entries()]
    assert all("device_difference" in shown for shown in dicts)
    # Control: without a compared device no entry has the compared keys.
    assert not any("device_difference" in shown for shown in columns_of().dicts())


def test_point_major_turns_per_key_columns_into_a_point_by_key_array() -> None:
    # Two keys over three points: key columns [1, 2, 3] and [4, 5, 6] become rows (1, 4),
    # (2, 5), (3, 6), whether given as lists or as arrays.
    expected = [[1.0, 4.0], [2.0, 5.0], [3.0, 6.0]]
    from_lists = point_major([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
    assert from_lists.tolist() == expected and from_lists.dtype == np.float64
    arrays = [np.array([1.0, 2.0, 3.0]), np.array([4.0, 5.0, 6.0])]
    from_arrays = point_major(arrays)
    assert from_arrays.tolist() == expected and from_arrays.dtype == np.float64
    # Control: one key at one point stays one value, not a row of points.
    assert point_major([[7.0]]).shape == (1, 1)
    assert point_major([[7.0, 8.0]]).tolist() == [[7.0], [8.0]]
