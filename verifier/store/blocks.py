"""Report entries as the database keeps them: blocks of columns, typed and compressed.

A report's entries (docs/report-format.md) are stored in blocks of at most ``BLOCK_ENTRIES``,
one row each (``report_blocks``), so no stored value grows with the size of a check: a block's
numbers take 8 bytes each before compression, and its text is at most the report's own strings.
Within a block every field is a column: the numbers as float64 with a state byte (a number,
null, or the text "nan"/"inf"/"-inf" of the report format), the text fields as indices into the
block's table of distinct strings; a key an entry lacks, or a value of another type than the
format's, is kept aside as JSON. The columns are byte-shuffled (the k-th byte of every value
together, so exponents and signs line up) and compressed (LZMA2 since format 2, zlib in
format 1). Decoding gives back the entries exactly as they were written, key for key.

Most numbers of an entry follow from others: ``reference`` agrees with ``autograd`` in its
leading bits, ``tolerance`` is atol + rtol × |reference| (rtol, atol and the dtype are the
report's, kept in the block's header), ``abs_error`` is |autograd - reference|, ``rel_error``
abs_error / |reference|, ``ulp_error`` abs_error over the dtype's ulp at the reference and
``ratio`` abs_error / tolerance. Since format 2 those columns hold the XOR of each value's bits
with the bits of that prediction, computed from the values already decoded with the same
IEEE 754 operations: where the prediction is right (nearly always) the residual is zero, and
the leading bits of the reference cancel against autograd's; either way every value comes
back exactly.

A block of a check compared across devices (docs/report-format.md) has four more typed
columns, ``COMPARED_KEYS`` (its layout is named in the header); ``compared_autograd`` is
predicted by ``autograd`` and ``device_difference`` by their difference.

The format of a block is its first byte, ``FORMAT``; a reader keeps decoding every format
it ever wrote (format 1 has no predictions and no tolerance in its header).
"""

from __future__ import annotations

import json
import lzma
import math
import struct
import zlib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from verifier.core.floats.dtypes import DTYPES
from verifier.core.judge.columns import EntryColumns, EntryDicts
from verifier.core.judge.compare import correct_bits
from verifier.core.judge.entry import (
    COMPARED_KEYS,
    COMPARED_NUMBER_FIELDS,
    COMPARED_TEXT_FIELDS,
    ENTRY_KEYS,
    NUMBER_FIELDS,
    TEXT_FIELDS,
)
from verifier.core.judge.verdict import Verdict

FORMAT = 2
BLOCK_ENTRIES = 4096
"""Entries per block: a block of the largest legal strings stays a few megabytes."""
LZMA_FILTERS = [{"id": lzma.FILTER_LZMA2, "preset": 1, "dict_size": 2**18}]
"""The compressor of format 2 on: raw LZMA2 at preset 1 stores a block in about 15 % fewer
bytes than zlib (a float32 report: 16.9 bytes per entry instead of 19.7), at about twice
zlib's time to compress and 1.3 us per entry to decompress. Its dictionary of 256 KiB
compresses a full block as well as preset 1's 1 MiB, and a one-point report's block in 0.17
ms instead of 1 ms (the time to set up the larger dictionary)."""

_NUMBER, _NULL, _TEXT = 0, 1, 2
_NO_TEXT = -1
_NON_FINITE = frozenset({"nan", "inf", "-inf"})
_HEADER = struct.Struct("<BII")  # format, entries, length of the JSON string table
_HINTS = struct.Struct("<ddbB")  # format 2 on: rtol, atol, dtype (index, -1: none), layout
PREDICTED = (
    "reference",
    "tolerance",
    "abs_error",
    "rel_error",
    "ulp_error",
    "ratio",
    "compared_autograd",
    "device_difference",
)
"""The number fields stored as residuals of a prediction, in the order they are decoded (a
layout without a field skips it)."""


@dataclass(frozen=True)
class Block:
    """One stored block: its number, first entry index, size, failing entries and bytes."""

    number: int
    first: int
    entries: int
    failing: int
    data: bytes


def blocks_of(
    entries: Sequence[Mapping[str, Any]],
    tolerance: Mapping[str, Any] | None = None,
    dtype: str | None = None,
) -> list[Block]:
    """``entries`` cut into encoded blocks of at most ``BLOCK_ENTRIES``; the report's
    ``tolerance`` (``rtol``, ``atol``) and ``dtype`` make the blocks smaller, never different.

    Entries a report still holds as columns (:class:`~verifier.core.judge.columns.EntryDicts`) are
    encoded from the columns, with no dictionary per entry; they decode to the same entries.
    """
    columns = entries.columns if isinstance(entries, EntryDicts) else None
    blocks: list[Block] = []
    for number, first in enumerate(range(0, len(entries), BLOCK_ENTRIES)):
        last = min(first + BLOCK_ENTRIES, len(entries))
        if columns is not None:
            block = _from_columns(columns, first, last)
            failing = sum(1 for verdict in block.texts["verdict"] if verdict != Verdict.PASS)
        else:
            part = entries[first:last]
            block = _from_dicts(part)
            failing = sum(1 for entry in part if entry.get("verdict") != Verdict.PASS)
        data = _pack(block, tolerance, dtype)
        blocks.append(Block(number, first, last - first, failing, data))
    return blocks


def encode(
    entries: Sequence[Mapping[str, Any]],
    tolerance: Mapping[str, Any] | None = None,
    dtype: str | None = None,
) -> bytes:
    """One block's bytes for ``entries`` (``tolerance``, ``dtype``: see :func:`blocks_of`)."""
    return _pack(_from_dicts(entries), tolerance, dtype)


@dataclass
class _Block:
    """One block's entries as columns, before they are packed."""

    layout: _Layout
    numbers: np.ndarray[Any, Any]  # [number field, entry], float64
    states: np.ndarray[Any, Any]  # [number field, entry]: _NUMBER, _NULL or _TEXT
    texts: dict[str, list[str | None]]
    wrt: list[list[str] | None]
    points: np.ndarray[Any, Any]
    absent: np.ndarray[Any, Any]  # bit i: layout.keys[i] is not in the entry
    aside: list[dict[str, Any]]  # what does not fit the columns, as JSON


def _from_dicts(entries: Sequence[Mapping[str, Any]]) -> _Block:
    """Entries in the report format as a block's columns."""
    count = len(entries)
    compared = any("compared_verdict" in entry for entry in entries)
    layout = _COMPARED if compared else _BASE
    aside: list[dict[str, Any]] = [{} for _ in range(count)]
    absent = np.zeros(count, dtype="<u4")
    columns: dict[str, list[Any]] = {}
    for bit, key in enumerate(layout.keys):
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
    known = frozenset(layout.keys)
    for column, entry in enumerate(entries):
        if len(entry) > len(layout.keys) or not known.issuperset(entry):
            aside[column].update((k, v) for k, v in entry.items() if k not in known)
    numbers = np.zeros((len(layout.numbers), count), dtype="<f8")
    states = np.zeros((len(layout.numbers), count), dtype=np.uint8)
    for row, name in enumerate(layout.numbers):
        values = columns[name]
        states[row] = [_STATE[type(value)] for value in values]
        numbers[row] = [0.0 if value is None else float(value) for value in values]
    return _Block(
        layout=layout,
        numbers=numbers,
        states=states,
        texts={name: columns[name] for name in layout.texts},
        wrt=columns["wrt"],
        points=np.array([value or 0 for value in columns["point"]], dtype="<i8"),
        absent=absent,
        aside=aside,
    )


def _from_columns(columns: EntryColumns, first: int, last: int) -> _Block:
    """Entries ``first`` to ``last`` of a report's columns as a block, the same entries as
    :meth:`EntryColumns.dicts` gives, built without them."""
    layout = _BASE if columns.compared is None else _COMPARED
    count = last - first
    width = len(columns.labels)
    keys = (np.arange(first, last) % width).tolist()

    def flat(array: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
        return np.asarray(array, dtype=np.float64).ravel()[first:last]

    rel = flat(columns.rel_error)
    found = {
        "autograd": flat(columns.autograd),
        "reference": flat(columns.reference),
        "reference_radius": flat(columns.radius),
        "abs_error": flat(columns.abs_error),
        "rel_error": rel,
        "ulp_error": flat(columns.ulp_error),
        "tolerance": flat(columns.tolerance),
        "ratio": flat(columns.ratio),
        "condition": flat(columns.condition),
        "correct_bits": np.array([correct_bits(r, columns.dtype) for r in rel.tolist()]),
    }
    texts: dict[str, list[str | None]] = {
        "kind": [columns.labels[key][0] for key in keys],
        "node": [columns.labels[key][2] for key in keys],
        "verdict": [Verdict.PASS.value] * count,
        "detail": [None] * count,
        "blame": [None] * count,
        "phase": [None] * count,
    }
    if columns.compared is not None:
        other = flat(columns.compared.autograd)
        mine = found["autograd"]
        with np.errstate(invalid="ignore"):
            found["compared_autograd"] = other
            found["device_difference"] = np.where(mine == other, 0.0, mine - other)
        texts["compared_verdict"] = [Verdict.PASS.value] * count
        texts["compared_detail"] = [None] * count
        for index in _within(columns.compared.explicit, first, last):
            entry = columns.compared.explicit[index]
            texts["compared_verdict"][index - first] = entry.verdict
            texts["compared_detail"][index - first] = entry.detail
    numbers = np.stack([found[name] for name in layout.numbers])
    with np.errstate(invalid="ignore"):
        states = np.where(np.isfinite(numbers), _NUMBER, _TEXT).astype(np.uint8)
    zero = np.asarray(columns.exact_zero).ravel()[first:last]
    row = layout.numbers.index("ulp_error")
    states[row][zero] = _NULL
    numbers[row][zero] = 0.0
    shown = [None if wrt is None else list(wrt) for _, wrt, _ in columns.labels]
    block = _Block(
        layout=layout,
        numbers=numbers,
        states=states,
        texts=texts,
        wrt=[shown[key] for key in keys],
        points=(np.arange(first, last, dtype="<i8") // width),
        absent=np.zeros(count, dtype="<u4"),
        aside=[{} for _ in range(count)],
    )
    for index in _within(columns.explicit, first, last):
        _put(block, index - first, columns.entry(index).to_dict())
    return block


def _within(indices: Mapping[int, Any], first: int, last: int) -> list[int]:
    return sorted(index for index in indices if first <= index < last)


def _put(block: _Block, column: int, entry: Mapping[str, Any]) -> None:
    """Write one entry of the report format over column ``column`` of ``block``."""
    for row, name in enumerate(block.layout.numbers):
        value = entry.get(name)
        block.states[row, column] = _STATE[type(value)]
        block.numbers[row, column] = 0.0 if value is None else float(value)
    for name in block.layout.texts:
        block.texts[name][column] = entry.get(name)
    block.wrt[column] = entry.get("wrt")


def _pack(block: _Block, tolerance: Mapping[str, Any] | None, dtype: str | None) -> bytes:
    """A block's bytes: its string table, hints, and columns, shuffled and compressed."""
    layout, count = block.layout, len(block.points)
    strings: dict[str, int] = {}

    def text(value: str | None) -> int:
        return _NO_TEXT if value is None else strings.setdefault(value, len(strings))

    texts = np.zeros((len(layout.texts) + 2, count), dtype="<i4")  # + wrt, + kept aside
    for row, name in enumerate(layout.texts):
        texts[row] = [text(value) for value in block.texts[name]]
    listed: dict[tuple[str, ...], int] = {}  # each distinct wrt list encoded once

    def wrt(value: list[str] | None) -> int:
        if value is None:
            return _NO_TEXT
        key = tuple(value)
        found = listed.get(key)
        if found is None:
            found = listed[key] = text(json.dumps(value))
        return found

    texts[len(layout.texts)] = [wrt(value) for value in block.wrt]
    texts[len(layout.texts) + 1] = [
        text(json.dumps(kept)) if kept else _NO_TEXT for kept in block.aside
    ]
    table = json.dumps(list(strings)).encode()
    hints = (
        _hint(tolerance, "rtol"),
        _hint(tolerance, "atol"),
        _DTYPE_CODES.get(dtype or "", -1),
        _LAYOUTS.index(layout),
    )
    numbers = block.numbers
    stored = numbers.view("<u8").copy()
    for name in layout.predicted:
        row = layout.numbers.index(name)
        stored[row] ^= _prediction(name, layout, numbers, *hints[:3]).view("<u8")
    payload = b"".join(
        [
            table,
            _HINTS.pack(*hints),
            _shuffled(stored),
            block.states.tobytes(),
            _shuffled(texts),
            _shuffled(block.points),
            _shuffled(block.absent),
        ]
    )
    packed = lzma.compress(payload, format=lzma.FORMAT_RAW, filters=LZMA_FILTERS)
    return _HEADER.pack(FORMAT, count, len(table)) + packed


def decode(data: bytes) -> list[dict[str, Any]]:
    """The entries of one block, as they were encoded."""
    version, count, table_bytes = _HEADER.unpack_from(data)
    if version not in (1, 2):
        raise ValueError(f"unknown report block format {version}")
    packed = data[_HEADER.size :]
    if version == 1:
        payload = zlib.decompress(packed)
    else:
        payload = lzma.decompress(packed, format=lzma.FORMAT_RAW, filters=LZMA_FILTERS)
    strings: list[str | None] = [*json.loads(payload[:table_bytes]), None]  # [-1]: none
    at = table_bytes
    layout = _BASE
    if version == 1:
        numbers, at = _unshuffled(payload, at, "<f8", (len(layout.numbers), count))
    else:
        rtol, atol, code, shape = _HINTS.unpack_from(payload, at)
        layout = _LAYOUTS[shape]
        rows = len(layout.numbers)
        stored, at = _unshuffled(payload, at + _HINTS.size, "<u8", (rows, count))
        numbers = stored.copy().view("<f8")
        for name in layout.predicted:
            row = layout.numbers.index(name)
            predicted = _prediction(name, layout, numbers, rtol, atol, code).view("<u8")
            numbers[row] = (stored[row] ^ predicted).view("<f8")
    states = np.frombuffer(payload, np.uint8, len(layout.numbers) * count, at).reshape(
        len(layout.numbers), count
    )
    at += states.size
    texts, at = _unshuffled(payload, at, "<i4", (len(layout.texts) + 2, count))
    points, at = _unshuffled(payload, at, "<i8", (count,))
    missing, at = _unshuffled(payload, at, "<u4", (count,))
    columns: dict[str, list[Any]] = {}
    for row, name in enumerate(layout.numbers):
        values = numbers[row].tolist()
        if states[row].any():
            values = [
                _value(value, state)
                for value, state in zip(values, states[row].tolist(), strict=True)
            ]
        columns[name] = values
    for row, name in enumerate(layout.texts):
        columns[name] = [strings[index] for index in texts[row].tolist()]
    columns["wrt"] = [
        None if index == _NO_TEXT else json.loads(strings[index] or "null")
        for index in texts[len(layout.texts)].tolist()
    ]
    columns["point"] = points.tolist()
    keys = layout.keys
    entries = [
        dict(zip(keys, row, strict=True))
        for row in zip(*(columns[key] for key in keys), strict=True)
    ]
    aside = texts[len(layout.texts) + 1]
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


@dataclass(frozen=True)
class _Layout:
    """The columns of a block: its number and text fields and the entry keys, in order."""

    numbers: tuple[str, ...]
    texts: tuple[str, ...]
    keys: tuple[str, ...]

    @property
    def predicted(self) -> tuple[str, ...]:
        return tuple(name for name in PREDICTED if name in self.numbers)


_BASE = _Layout(NUMBER_FIELDS, TEXT_FIELDS, ENTRY_KEYS)
_COMPARED = _Layout(
    (*NUMBER_FIELDS, *COMPARED_NUMBER_FIELDS),
    (*TEXT_FIELDS, *COMPARED_TEXT_FIELDS),
    (*ENTRY_KEYS, *COMPARED_KEYS),
)
"""The entries of a check compared across devices: four more typed columns."""
_LAYOUTS = (_BASE, _COMPARED)
_NUMBER_KEYS = frozenset(_COMPARED.numbers)


_MISSING = object()


def _fits(key: str, value: Any) -> bool:
    """Whether ``value`` of ``key`` has the type its column stores."""
    if key in _NUMBER_KEYS:
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
    if key in _NUMBER_KEYS:
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


def _hint(tolerance: Mapping[str, Any] | None, name: str) -> float:
    """The report's ``rtol`` or ``atol`` as a float (0 where it has none)."""
    value = (tolerance or {}).get(name)
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else 0.0


def _prediction(
    name: str, layout: _Layout, numbers: np.ndarray[Any, Any], rtol: float, atol: float, dtype: int
) -> np.ndarray[Any, Any]:
    """What ``name`` would be, from the number columns it follows from (format 2 on).

    Only correctly rounded IEEE 754 operations, one at a time, so that the encoder and any
    decoder compute the same bits; a NaN prediction is 0 (NaN payloads differ by machine).
    """

    def column(field: str) -> np.ndarray[Any, Any]:
        return numbers[layout.numbers.index(field)]

    with np.errstate(all="ignore"):
        if name in ("reference", "compared_autograd"):
            found = column("autograd")
        elif name == "device_difference":
            found = column("autograd") - column("compared_autograd")
        elif name == "ulp_error":
            found = column("abs_error") / _ulps(column("reference"), dtype)
        elif name == "tolerance":
            found = np.abs(column("reference")) * rtol + atol
        elif name == "abs_error":
            found = np.abs(column("autograd") - column("reference"))
        elif name == "rel_error":
            found = column("abs_error") / np.abs(column("reference"))
        else:
            found = column("abs_error") / column("tolerance")
    found = np.array(found, dtype="<f8")  # a copy: "reference" is the autograd column itself
    found[np.isnan(found)] = 0.0
    return found


_DTYPE_CODES = {name: code for code, name in enumerate(DTYPES)}


def _ulps(values: np.ndarray[Any, Any], code: int) -> np.ndarray[Any, Any]:
    """The ulp of dtype ``DTYPES[code]`` at each value (float64's without a dtype)."""
    fmt = DTYPES[list(DTYPES)[code]] if 0 <= code < len(DTYPES) else DTYPES["float64"]
    magnitude = np.abs(values)
    normal = (magnitude >= fmt.smallest_normal) & np.isfinite(magnitude)
    exponent = np.where(normal, np.frexp(magnitude)[1] - 1, fmt.min_exponent)
    return np.ldexp(1.0, exponent - fmt.mantissa_bits + 1)


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
