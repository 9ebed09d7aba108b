"""An entry: one compared number of a check, and the one table of its fields.

:data:`ENTRY_FIELDS` lists an entry's fields in the report format's order, each with its form
(a label, the point's index, a number, or text) and whether it belongs to a check compared
across devices only. The report's entries (:class:`Entry`), the columns of a check
(:mod:`verifier.core.judge.columns`) and the stored blocks (``verifier/store/blocks.py``) derive
their field lists from it; ``docs/report-format.md`` describes each field.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import StrEnum
from typing import Any


class Form(StrEnum):
    """How a field of an entry is held and shown."""

    LABEL = "label"
    """which derivative: ``kind`` (text), ``wrt`` (a list of variable names or null),
    ``node`` (text or null)"""
    INDEX = "index"
    """the point's index, an integer"""
    NUMBER = "number"
    """a float or null; shown as the text "nan", "inf" or "-inf" when not finite"""
    TEXT = "text"
    """a string or null"""


@dataclass(frozen=True)
class EntryField:
    """One field of an entry: its name, form, and whether only a compared check has it."""

    name: str
    form: Form
    compared: bool = False

    def shown(self, value: Any) -> Any:
        """``value`` as the report format shows it."""
        if self.form is Form.NUMBER:
            return json_number(value)
        if self.name == "wrt" and value is not None:
            return list(value)
        return value


ENTRY_FIELDS: tuple[EntryField, ...] = (
    EntryField("kind", Form.LABEL),
    EntryField("wrt", Form.LABEL),
    EntryField("node", Form.LABEL),
    EntryField("point", Form.INDEX),
    EntryField("autograd", Form.NUMBER),
    EntryField("reference", Form.NUMBER),
    EntryField("reference_radius", Form.NUMBER),
    EntryField("abs_error", Form.NUMBER),
    EntryField("rel_error", Form.NUMBER),
    EntryField("ulp_error", Form.NUMBER),
    EntryField("tolerance", Form.NUMBER),
    EntryField("ratio", Form.NUMBER),
    EntryField("condition", Form.NUMBER),
    EntryField("correct_bits", Form.NUMBER),
    EntryField("verdict", Form.TEXT),
    EntryField("detail", Form.TEXT),
    EntryField("blame", Form.TEXT),
    EntryField("phase", Form.TEXT),
    EntryField("compared_autograd", Form.NUMBER, compared=True),
    EntryField("compared_verdict", Form.TEXT, compared=True),
    EntryField("compared_detail", Form.TEXT, compared=True),
    EntryField("device_difference", Form.NUMBER, compared=True),
)
"""Every field of an entry, in the report format's order."""
LOCAL_FIELDS = tuple(field for field in ENTRY_FIELDS if not field.compared)
"""The fields of every entry."""
ENTRY_KEYS = tuple(field.name for field in LOCAL_FIELDS)
"""The keys of every entry in the report format, in order."""
NUMBER_FIELDS = tuple(field.name for field in LOCAL_FIELDS if field.form is Form.NUMBER)
"""The number fields of every entry, in order."""
TEXT_FIELDS = tuple(
    field.name
    for field in LOCAL_FIELDS
    if field.form is Form.TEXT or field.name in {"kind", "node"}
)
"""The text fields of every entry (``kind`` and ``node`` included), in order."""
COMPARED_KEYS = tuple(field.name for field in ENTRY_FIELDS if field.compared)
"""The keys a check compared across devices adds to each entry, in order."""
COMPARED_NUMBER_FIELDS = tuple(
    field.name for field in ENTRY_FIELDS if field.compared and field.form is Form.NUMBER
)
"""The number fields a check compared across devices adds, in order."""
COMPARED_TEXT_FIELDS = tuple(
    field.name for field in ENTRY_FIELDS if field.compared and field.form is Form.TEXT
)
"""The text fields a check compared across devices adds, in order."""


def json_number(value: float | None) -> float | str | None:
    """A float as the report stores it: non-finite values become "nan", "inf", "-inf"."""
    if value is None:
        return None
    if math.isnan(value):
        return "nan"
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    return value


@dataclass(frozen=True)
class Entry:
    """One compared number: a gradient component, a Hessian element or a node gradient.

    ``ratio`` is abs_error / tolerance (a pass is at most 1); ``condition`` the condition
    factor of the computation as written (how much the rounding of its operations is
    amplified, relative to the exact value); ``blame`` the node a non-passing verdict points
    at (the operation that is inaccurate, overflowed, or where the digits are lost) and
    ``phase`` where (``forward``, ``first backward`` or ``second backward``). In a check
    compared across devices (:mod:`verifier.core.judge.devices`) the ``compared_*`` fields are what
    the second device computed and ``device_difference`` is ``autograd - compared_autograd``.
    """

    kind: str
    wrt: tuple[str, ...] | None
    node: str | None
    point: int
    autograd: float
    reference: float | None
    reference_radius: float | None
    abs_error: float | None
    rel_error: float | None
    ulp_error: float | None
    tolerance: float | None
    verdict: str
    detail: str | None = None
    ratio: float | None = None
    condition: float | None = None
    correct_bits: float | None = None
    blame: str | None = None
    phase: str | None = None
    compared_autograd: float | None = None
    compared_verdict: str | None = None
    compared_detail: str | None = None
    device_difference: float | None = None

    def to_dict(self) -> dict[str, Any]:
        """The entry in the report format, keys in :data:`ENTRY_FIELDS` order (the compared
        fields only in a check compared across devices)."""
        fields = ENTRY_FIELDS if self.compared_verdict is not None else LOCAL_FIELDS
        return {field.name: field.shown(getattr(self, field.name)) for field in fields}
