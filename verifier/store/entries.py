"""Report entries as the database keeps them: blocks of columns, typed and compressed.

A report's entries (docs/report-format.md) are stored in blocks of at most ``BLOCK_ENTRIES``,
one row each (``report_blocks``), so no stored value grows with the size of a check: a block's
numbers take 8 bytes each before compression, and its text is at most the report's own strings.
Within a block every field is a column: the numbers as float64 with a state byte (a number,
null, or the text "nan"/"inf"/"-inf" of the report format), the text fields as indices into the
block's table of distinct strings; a key an entry lacks, or a value of another type than the
format's, is kept aside as JSON. The columns are byte-shuffled (the k-th byte of every value
together, so exponents and signs line up) and compressed with zlib. Decoding gives back the
entries exactly as they were written, key for key.

The format of a block is its first byte, ``FORMAT``; a reader keeps decoding every format
it ever wrote.
"""

from __future__ import annotations

import json
import math
import struct
import zlib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from verifier.core.verdict import Verdict

FORMAT = 1
BLOCK_ENTRIES = 4096
"""Entries per block: a block of the largest legal strings stays a few megabytes."""
COMPRESSION_LEVEL = 6

NUMBER_FIELDS = (
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
TEXT_FIELDS = ("kind", "node", "verdict", "detail", "blame", "phase")

_NUMBER, _NULL, _TEXT = 0, 1, 2
_NO_TEXT = -1
_NON_FINITE = frozenset({"nan", "inf", "-inf"})
_HEADER = struct.Struct("<BII")  # format, entries, length of the JSON string table


@dataclass(frozen=True)
class Block:
    """One stored block: its number, first entry index, size, failing entries and bytes."""

    number: int
    first: int
    entries: int
    failing: int
    data: bytes


def blocks_of(entries: Sequence[Mapping[str, Any]]) -> list[Block]:
    """``entries`` cut into encoded blocks of at most ``BLOCK_ENTRIES``."""
    blocks: list[Block] = []
    for number, first in enumerate(range(0, len(entries), BLOCK_ENTRIES)):
        part = entries[first : first + BLOCK_ENTRIES]
        failing = sum(1 for entry in part if entry.get("verdict") != Verdict.PASS)
        blocks.append(Block(number, first, len(part), failing, encode(part)))
    return blocks


def encode(entries: Sequence[Mapping[str, Any]]) -> bytes:
    """One block's bytes for ``entries``."""
    count = len(entries)
    strings: dict[str, int] = {}
    aside: list[dict[str, Any]] = [{} for _ in range(count)]
    absent = np.zeros(count, dtype="<u4")  # bit i: _ENTRY_KEYS[i] is not in its column
    columns: dict[str, list[Any]] = {}
    for bit, key in enumerate(_ENTRY_KEYS):
        values = [entry.get(key, _MISSING) for entry in entries]
        if _all_fit(key, values):
            columns[key] = values
            continue
        for column, value in enumerate(values):
            if value is _MISSING or not _fits(key, value):
                absent[column] |= 1 << bit
                if value is not _MISSING:
                    aside[column][key] = value
                values[column] = None
        columns[key] = values
    for column, entry in enumerate(entries):
        if len(entry) > len(_ENTRY_KEYS) or not _KNOWN.issuperset(entry):
            aside[column].update((k, v) for k, v in entry.items() if k not in _KNOWN)

    def text(value: str | None) -> int:
        return _NO_TEXT if value is None else strings.setdefault(value, len(strings))

    numbers = np.zeros((len(NUMBER_FIELDS), count), dtype="<f8")
    states = np.zeros((len(NUMBER_FIELDS), count), dtype=np.uint8)
    for row, name in enumerate(NUMBER_FIELDS):
        values = columns[name]
        states[row] = [_STATE[type(value)] for value in values]
        numbers[row] = [0.0 if value is None else float(value) for value in values]
    texts = np.zeros((len(TEXT_FIELDS) + 2, count), dtype="<i4")  # + wrt, + kept aside
    for row, name in enumerate(TEXT_FIELDS):
        texts[row] = [text(value) for value in columns[name]]
    listed: dict[tuple[str, ...], int] = {}  # each distinct wrt list encoded once

    def wrt(value: list[str] | None) -> int:
        if value is None:
            return _NO_TEXT
        key = tuple(value)
        found = listed.get(key)
        if found is None:
            found = listed[key] = text(json.dumps(value))
        return found

    texts[len(TEXT_FIELDS)] = [wrt(value) for value in columns["wrt"]]
    texts[len(TEXT_FIELDS) + 1] = [text(json.dumps(kept)) if kept else _NO_TEXT for kept in aside]
    points = np.array([value or 0 for value in columns["point"]], dtype="<i8")
    table = json.dumps(list(strings)).encode()
    payload = b"".join(
        [
            table,
            _shuffled(numbers),
            states.tobytes(),
            _shuffled(texts),
            _shuffled(points),
            _shuffled(absent),
        ]
    )
    return _HEADER.pack(FORMAT, count, len(table)) + zlib.compress(payload, COMPRESSION_LEVEL)


def decode(data: bytes) -> list[dict[str, Any]]:
    """The entries of one block, as they were encoded."""
    version, count, table_bytes = _HEADER.unpack_from(data)
    if version != FORMAT:
        raise ValueError(f"unknown report block format {version}")
    payload = zlib.decompress(data[_HEADER.size :])
    strings: list[str | None] = [*json.loads(payload[:table_bytes]), None]  # [-1]: none
    at = table_bytes
    numbers, at = _unshuffled(payload, at, "<f8", (len(NUMBER_FIELDS), count))
    states = np.frombuffer(payload, np.uint8, len(NUMBER_FIELDS) * count, at).reshape(
        len(NUMBER_FIELDS), count
    )
    at += states.size
    texts, at = _unshuffled(payload, at, "<i4", (len(TEXT_FIELDS) + 2, count))
    points, at = _unshuffled(payload, at, "<i8", (count,))
    missing, at = _unshuffled(payload, at, "<u4", (count,))
    columns: dict[str, list[Any]] = {}
    for row, name in enumerate(NUMBER_FIELDS):
        values = numbers[row].tolist()
        if states[row].any():
            values = [
                _value(value, state)
                for value, state in zip(values, states[row].tolist(), strict=True)
            ]
        columns[name] = values
    for row, name in enumerate(TEXT_FIELDS):
        columns[name] = [strings[index] for index in texts[row].tolist()]
    columns["wrt"] = [
        None if index == _NO_TEXT else json.loads(strings[index] or "null")
        for index in texts[len(TEXT_FIELDS)].tolist()
    ]
    columns["point"] = points.tolist()
    rows = zip(*(columns[key] for key in _ENTRY_KEYS), strict=True)
    entries = [dict(zip(_ENTRY_KEYS, row, strict=True)) for row in rows]
    aside = texts[len(TEXT_FIELDS) + 1]
    for column in np.flatnonzero(missing).tolist():
        lacks = int(missing[column])
        entries[column] = {
            key: value
            for bit, (key, value) in enumerate(entries[column].items())
            if not lacks & (1 << bit)
        }
    for column in np.flatnonzero(aside != _NO_TEXT).tolist():
        entries[column].update(json.loads(strings[int(aside[column])] or "{}"))
    return entries


def verdicts(data: bytes) -> Iterator[str]:
    """The verdict of each entry of one block."""
    for entry in decode(data):
        yield str(entry.get("verdict"))


_ENTRY_KEYS = (
    "kind",
    "wrt",
    "node",
    "point",
    *NUMBER_FIELDS,
    "verdict",
    "detail",
    "blame",
    "phase",
)
"""The keys of an entry, in the report format's order (``Entry.to_dict``)."""
_KNOWN = frozenset(_ENTRY_KEYS)


_MISSING = object()


def _fits(key: str, value: Any) -> bool:
    """Whether ``value`` of ``key`` has the type its column stores."""
    if key in NUMBER_FIELDS:
        return (
            value is None
            or isinstance(value, float)
            or (isinstance(value, str) and value in _NON_FINITE)
        )
    if key == "point":
        return isinstance(value, int) and not isinstance(value, bool) and -(2**63) <= value < 2**63
    if key == "wrt":
        return value is None or (
            isinstance(value, list) and all(isinstance(item, str) for item in value)
        )
    return value is None or isinstance(value, str)


def _all_fit(key: str, values: list[Any]) -> bool:
    """Whether every value of a column fits it (the common case, checked by type sets)."""
    kinds = set(map(type, values))
    if key in NUMBER_FIELDS:
        return kinds <= {float, type(None)} or (
            kinds <= {float, type(None), str}
            and all(value in _NON_FINITE for value in values if type(value) is str)
        )
    if key == "point":
        return kinds == {int} and all(-(2**63) <= value < 2**63 for value in values)
    if key == "wrt":
        return kinds <= {list, type(None)} and all(
            type(item) is str for value in values if value for item in value
        )
    return kinds <= {str, type(None)}


_STATE = {float: _NUMBER, type(None): _NULL, str: _TEXT}
"""The state byte of a number column's value by its type (the text is "nan", "inf", "-inf")."""


def _value(number: float, state: int) -> float | str | None:
    if state == _NULL:
        return None
    if state == _TEXT:
        if math.isnan(number):
            return "nan"
        return "inf" if number > 0 else "-inf"
    return number


def _shuffled(array: np.ndarray[Any, Any]) -> bytes:
    """The bytes of ``array`` grouped by position within each value."""
    width = array.dtype.itemsize
    return np.ascontiguousarray(array).view(np.uint8).reshape(-1, width).T.tobytes()


def _unshuffled(
    payload: bytes, at: int, dtype: str, shape: tuple[int, ...]
) -> tuple[np.ndarray[Any, Any], int]:
    kind = np.dtype(dtype)
    size = int(np.prod(shape)) * kind.itemsize
    planes = np.frombuffer(payload, np.uint8, size, at).reshape(kind.itemsize, -1)
    array = np.ascontiguousarray(planes.T).view(kind).reshape(shape)
    return array, at + size
