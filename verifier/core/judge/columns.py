"""A check's entries as columns: numpy arrays indexed ``[point, key]``, one object per entry
only when asked for.

Most entries of a large check pass. Those are kept only as numbers in arrays; every other
entry (any verdict but ``pass``, or a pass that was judged one value at a time, such as a
pass against an uncertified bound) is kept as its :class:`~verifier.core.judge.entry.Entry`.
:meth:`EntryColumns.entry` builds the same ``Entry`` the one-at-a-time path builds, and
:meth:`EntryColumns.dicts` the same dictionaries as ``Entry.to_dict``, in point-major order.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from typing import Any, overload

import numpy as np

from verifier.core.floats.dtypes import DType
from verifier.core.floats.points import Floats
from verifier.core.judge.compare import correct_bits
from verifier.core.judge.entry import ENTRY_KEYS, Entry, json_number
from verifier.core.judge.verdict import Verdict

Mask = np.ndarray[Any, np.dtype[np.bool_]]

_PASS = Verdict.PASS.value


@dataclass
class EntryColumns:
    """Entries of one check, ``points`` x ``len(labels)``, flat index ``point * keys + key``.

    Attributes:
        labels: per key, ``(kind, wrt or None, node label or None)`` as entries show them.
        dtype: the check's dtype (for the correct bits of a passing entry).
        autograd: autograd's values.
        columnar: which entries are kept only as the numbers below (all passed).
        reference, radius, abs_error, rel_error, ulp_error, tolerance, ratio, condition: the
            numbers of the columnar entries (``ulp_error`` is NaN where the exact value is 0,
            for which the entry shows null).
        explicit: the other entries, by flat index.
        compared: the same entries judged on a second device (``compare_devices``): each
            entry then shows that device's value, verdict and detail and the difference
            (:mod:`verifier.core.judge.devices`).
    """

    labels: list[tuple[str, tuple[str, ...] | None, str | None]]
    dtype: DType
    autograd: Floats
    columnar: Mask
    reference: Floats
    radius: Floats
    abs_error: Floats
    rel_error: Floats
    ulp_error: Floats
    exact_zero: Mask
    tolerance: Floats
    ratio: Floats
    condition: Floats
    explicit: dict[int, Entry]
    compared: EntryColumns | None = None

    def __len__(self) -> int:
        return int(self.autograd.size)

    def counts(self) -> Counter[str]:
        """Entries per verdict."""
        found = Counter(entry.verdict for entry in self.explicit.values())
        columnar = int(self.columnar.sum())
        if columnar:
            found[_PASS] += columnar
        return found

    def verdict_at(self, index: int) -> str:
        """The verdict of the entry at flat ``index``."""
        found = self.explicit.get(index)
        return _PASS if found is None else found.verdict

    def not_passing(self) -> list[Entry]:
        """The entries whose verdict is not ``pass``, in order."""
        return [
            self.explicit[i] for i in sorted(self.explicit) if self.explicit[i].verdict != _PASS
        ]

    def entry(self, index: int) -> Entry:
        """The entry at flat ``index``."""
        found = self.explicit.get(index)
        if found is None:
            found = self._columnar_entry(index)
        if self.compared is None:
            return found
        return replace(found, **self._compared_fields(index))

    def _columnar_entry(self, index: int) -> Entry:
        keys = len(self.labels)
        point, key = divmod(index, keys)
        kind, wrt, node = self.labels[key]
        rel = float(self.rel_error[point, key])
        return Entry(
            kind=kind,
            wrt=wrt,
            node=node,
            point=point,
            autograd=float(self.autograd[point, key]),
            reference=float(self.reference[point, key]),
            reference_radius=float(self.radius[point, key]),
            abs_error=float(self.abs_error[point, key]),
            rel_error=rel,
            ulp_error=None if self.exact_zero[point, key] else float(self.ulp_error[point, key]),
            tolerance=float(self.tolerance[point, key]),
            verdict=_PASS,
            ratio=float(self.ratio[point, key]),
            condition=float(self.condition[point, key]),
            correct_bits=correct_bits(rel, self.dtype),
        )

    def _compared_fields(self, index: int) -> dict[str, Any]:
        """What the second device computed for the entry at flat ``index``."""
        assert self.compared is not None
        point, key = divmod(index, len(self.labels))
        other = self.compared.explicit.get(index)
        mine = float(self.autograd[point, key])
        theirs = float(self.compared.autograd[point, key])
        return {
            "compared_autograd": theirs,
            "compared_verdict": _PASS if other is None else other.verdict,
            "compared_detail": None if other is None else other.detail,
            "device_difference": 0.0 if mine == theirs else mine - theirs,
        }

    def entries(self) -> list[Entry]:
        """Every entry, in order."""
        return [self.entry(index) for index in range(len(self))]

    def dicts(self) -> Iterator[dict[str, Any]]:
        """Every entry in the report format (as ``Entry.to_dict``), in order."""
        keys = len(self.labels)
        shown = [
            (kind, None if wrt is None else list(wrt), node) for kind, wrt, node in self.labels
        ]
        flat = self.columnar.ravel()
        columns = [
            column.ravel().tolist()
            for column in (
                self.autograd,
                self.reference,
                self.radius,
                self.abs_error,
                self.rel_error,
                self.ulp_error,
                self.tolerance,
                self.ratio,
                self.condition,
            )
        ]
        zero = self.exact_zero.ravel().tolist()
        mantissa = self.dtype
        for index, row in enumerate(zip(*columns, strict=True)):
            if not flat[index] or self.compared is not None:
                yield self.entry(index).to_dict()
                continue
            value, reference, radius, abs_error, rel, ulp, allowed, ratio, condition = row
            kind, wrt, node = shown[index % keys]
            # A passing columnar entry, field by field in ENTRY_KEYS order.
            yield dict(
                zip(
                    ENTRY_KEYS,
                    (
                        kind,
                        None if wrt is None else list(wrt),
                        node,
                        index // keys,
                        json_number(value),
                        json_number(reference),
                        json_number(radius),
                        json_number(abs_error),
                        json_number(rel),
                        None if zero[index] else json_number(ulp),
                        json_number(allowed),
                        json_number(ratio),
                        json_number(condition),
                        json_number(correct_bits(rel, mantissa)),
                        _PASS,
                        None,
                        None,
                        None,
                    ),
                    strict=True,
                )
            )


class EntryDicts(Sequence[dict[str, Any]]):
    """A report's entries in the report format, made from its columns as they are read; a
    writer that stores entries reads :attr:`columns` instead (verifier/store/blocks.py)."""

    def __init__(self, columns: EntryColumns):
        self.columns = columns

    def __len__(self) -> int:
        return len(self.columns)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return self.columns.dicts()

    @overload
    def __getitem__(self, index: int) -> dict[str, Any]: ...

    @overload
    def __getitem__(self, index: slice) -> list[dict[str, Any]]: ...

    def __getitem__(self, index: int | slice) -> dict[str, Any] | list[dict[str, Any]]:
        if isinstance(index, slice):
            return [self.columns.entry(i).to_dict() for i in range(*index.indices(len(self)))]
        if not -len(self) <= index < len(self):
            raise IndexError(index)
        return self.columns.entry(index % len(self)).to_dict()


def point_major(values: Sequence[Sequence[float]] | Sequence[Floats]) -> Floats:
    """Per-key lists (or arrays) of per-point values as one ``[point, key]`` array."""
    if values and all(isinstance(column, np.ndarray) for column in values):
        return np.stack(values, axis=1).astype(np.float64, copy=False)
    return np.array(values, dtype=np.float64).reshape(len(values), -1).T.copy()
