"""The one table of an entry's fields (verifier/core/judge/entry.py): the Entry dataclass, the
report format's key order, the non-finite texts, and the stored blocks' frozen field order.

The expected orders come from docs/report-format.md (its "Entries" and "Checks compared across
devices" tables, read here) and from the order stored report blocks were written in
(verifier/store/blocks.py: changing it would make stored reports unreadable).
"""

from __future__ import annotations

import dataclasses
import math
import re
from pathlib import Path
from typing import Any

import pytest

from verifier.core.judge import entry as entry_module
from verifier.core.judge.entry import (
    COMPARED_KEYS,
    ENTRY_FIELDS,
    ENTRY_KEYS,
    NUMBER_FIELDS,
    TEXT_FIELDS,
    Entry,
    Form,
    json_number,
)
from verifier.store import blocks

REPORT_FORMAT = Path(__file__).parents[3] / "docs" / "report-format.md"

# The order of the columns of a stored block, as every stored report was written.
STORED_NUMBER_FIELDS = (
    "autograd",
    "reference",
    "reference_radius",
    "abs_error",
    "rel_error",
    "ulp_error",
    "tolerance",
    "ratio",
    "condition",
    "correct_bits",
)
STORED_TEXT_FIELDS = ("kind", "node", "verdict", "detail", "blame", "phase")
STORED_COMPARED_KEYS = (
    "compared_autograd",
    "compared_verdict",
    "compared_detail",
    "device_difference",
)


def documented_keys(section: str) -> list[str]:
    """The backquoted keys in the first column of the table under ``## section`` in
    docs/report-format.md, in the document's order."""
    text = REPORT_FORMAT.read_text(encoding="utf-8")
    body = text.split(f"## {section}\n", 1)[1].split("\n## ", 1)[0]
    keys: list[str] = []
    for line in body.splitlines():
        if line.startswith("| `"):
            first_cell = line.split("|")[1]
            keys.extend(re.findall(r"`([a-z_.]+)`", first_cell))
    return keys


def an_entry(**changes: Any) -> Entry:
    """A passing gradient entry: d/dx 3*x**2 = 6*x = 6 at x = 1 (hand), computed exactly."""
    fields: dict[str, Any] = {
        "kind": "gradient",
        "wrt": ("x",),
        "node": None,
        "point": 0,
        "autograd": 6.0,
        "reference": 6.0,
        "reference_radius": 0.0,
        "abs_error": 0.0,
        "rel_error": 0.0,
        "ulp_error": 0.0,
        "tolerance": 1e-13,
        "verdict": "pass",
        "ratio": 0.0,
        "condition": 1.0,
        "correct_bits": 53.0,
    }
    fields.update(changes)
    return Entry(**fields)


def test_the_entry_dataclass_has_exactly_the_tables_fields() -> None:
    declared = {field.name for field in dataclasses.fields(Entry)}
    assert declared == {field.name for field in ENTRY_FIELDS}
    assert len(ENTRY_FIELDS) == len(declared)  # no field listed twice


def test_the_tables_local_keys_are_the_documented_entry_keys_in_order() -> None:
    assert list(ENTRY_KEYS) == documented_keys("Entries")


def test_the_compared_keys_are_the_documented_per_entry_keys_in_order() -> None:
    # The section's table also lists top-level keys (compared.device, ...); the per-entry
    # ones are those without a dot.
    per_entry = [key for key in documented_keys("Checks compared across devices") if "." not in key]
    assert list(COMPARED_KEYS) == per_entry


def test_to_dict_keys_follow_the_table_and_leave_out_the_compared_fields() -> None:
    shown = an_entry().to_dict()
    assert list(shown) == [field.name for field in ENTRY_FIELDS if not field.compared]
    assert not set(COMPARED_KEYS) & set(shown)


def test_the_compared_fields_appear_when_and_only_when_a_compared_verdict_is_set() -> None:
    compared = an_entry(
        compared_autograd=6.0, compared_verdict="pass", device_difference=0.0
    ).to_dict()
    assert list(compared) == [field.name for field in ENTRY_FIELDS]
    assert compared["compared_detail"] is None
    # Control: the other compared numbers alone do not make an entry a compared one.
    without_verdict = an_entry(compared_autograd=6.0, device_difference=0.0).to_dict()
    assert "compared_autograd" not in without_verdict
    assert "device_difference" not in without_verdict


@pytest.mark.parametrize(
    ("value", "shown"),
    [(math.nan, "nan"), (math.inf, "inf"), (-math.inf, "-inf"), (None, None), (1.5, 1.5)],
)
def test_json_number_writes_non_finite_numbers_as_the_documented_texts(
    value: float | None, shown: float | str | None
) -> None:
    # docs/report-format.md: non-finite numbers are the strings "nan", "inf" and "-inf".
    assert json_number(value) == shown


def test_json_number_keeps_a_negative_zero_as_a_number() -> None:
    # IEEE 754: -0.0 is a finite number (its sign bit set); it is not one of the texts.
    shown = json_number(-0.0)
    assert isinstance(shown, float) and shown == 0.0 and math.copysign(1.0, shown) == -1.0


def test_every_number_field_of_an_entry_is_shown_through_json_number() -> None:
    numbers = [field.name for field in ENTRY_FIELDS if field.form is Form.NUMBER]
    compared = {"compared_verdict": "nonfinite"}
    shown = an_entry(**dict.fromkeys(numbers, math.inf), **compared).to_dict()
    assert {name: shown[name] for name in numbers} == dict.fromkeys(numbers, "inf")
    # Control: a finite number is kept as the float it is.
    assert an_entry(ratio=0.25).to_dict()["ratio"] == 0.25


def test_wrt_is_shown_as_a_list_and_a_missing_wrt_as_null() -> None:
    assert an_entry(wrt=("x", "y"), kind="hessian").to_dict()["wrt"] == ["x", "y"]
    assert an_entry(wrt=None, kind="node", node="sin(x)").to_dict()["wrt"] is None


def test_the_stored_blocks_use_the_tables_field_lists() -> None:
    assert blocks.NUMBER_FIELDS is entry_module.NUMBER_FIELDS
    assert blocks.TEXT_FIELDS is entry_module.TEXT_FIELDS
    assert blocks.COMPARED_KEYS is entry_module.COMPARED_KEYS
    local = [field for field in ENTRY_FIELDS if not field.compared]
    assert NUMBER_FIELDS == tuple(f.name for f in local if f.form is Form.NUMBER)
    assert COMPARED_KEYS == tuple(field.name for field in ENTRY_FIELDS if field.compared)


def test_the_stored_field_order_is_frozen() -> None:
    assert NUMBER_FIELDS == STORED_NUMBER_FIELDS
    assert TEXT_FIELDS == STORED_TEXT_FIELDS
    assert COMPARED_KEYS == STORED_COMPARED_KEYS


def test_the_text_fields_are_the_labels_kind_and_node_and_every_text_field() -> None:
    # wrt is a list and point an integer: neither is stored as text.
    assert "wrt" not in TEXT_FIELDS and "point" not in TEXT_FIELDS
    texts = {field.name for field in ENTRY_FIELDS if field.form is Form.TEXT}
    assert set(TEXT_FIELDS) == {"kind", "node"} | (texts - set(COMPARED_KEYS))


def test_the_compared_columns_keep_their_stored_order() -> None:
    # Stored blocks of a compared check name this layout in their header: reordering the
    # table would read old blocks' columns under the wrong names.
    from verifier.core.judge.entry import COMPARED_NUMBER_FIELDS, COMPARED_TEXT_FIELDS

    assert COMPARED_NUMBER_FIELDS == ("compared_autograd", "device_difference")
    assert COMPARED_TEXT_FIELDS == ("compared_verdict", "compared_detail")
