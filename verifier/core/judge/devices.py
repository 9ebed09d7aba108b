"""Autograd on two devices against one truth: ``check(..., compare_devices=...)``.

CUDA kernels have their own derivative code and their own accuracy. A check compared across
devices runs autograd on both devices at the same dtype-rounded inputs and judges both against
the same certified references. The report is the first device's (its entries, verdict and
counts); every entry adds the second device's value, verdict and detail and the difference
between the two values, and the report's ``compared`` section sums the second device up
(``docs/report-format.md``).

No torch here: the API validates ``compare_devices`` with :func:`compared_names`; the
devices are resolved where the check runs (``verifier.core.check``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from verifier.core.floats.dtypes import DEVICES
from verifier.core.judge.columns import EntryColumns
from verifier.core.judge.entry import json_number
from verifier.core.judge.verdict import ordered_counts, passes, worst
from verifier.errors import OptionError

DEFAULT_PAIR = ("cuda", "cpu")
"""What ``compare_devices=True`` compares: the GPU under test, then the CPU."""

CompareDevices = bool | Sequence[str] | None
CONCRETE = tuple(name for name in DEVICES if name != "auto")
"""The devices a check can name for itself (``auto`` picks one of them)."""


def is_device(name: str) -> bool:
    """Whether ``name`` is one device: ``cpu``, ``cuda`` or ``cuda:N``."""
    return name in CONCRETE or (name[:5] == "cuda:" and name[5:].isdigit())


def compared_names(compare_devices: CompareDevices, device: str = "auto") -> list[str] | None:
    """The two device names a check compares (the report's device first), or None.

    ``True`` is :data:`DEFAULT_PAIR` (with ``device`` first when it names one CUDA device);
    a pair of names is taken as given. The names are validated, not resolved: the API stores
    them and only a worker learns whether it has CUDA.
    """
    if compare_devices is None or compare_devices is False:
        return None
    if compare_devices is True:
        first = device if device.startswith("cuda") else DEFAULT_PAIR[0]
        names = [first, DEFAULT_PAIR[1]]
    elif isinstance(compare_devices, str):
        raise OptionError(
            f"compare_devices: give true or a list of two devices, not the text {compare_devices!r}"
        )
    else:
        names = [str(name) for name in compare_devices]
    if len(names) != 2:
        raise OptionError(f"compare_devices: give two devices (e.g. cuda, cpu), not {names}")
    for name in names:
        if not is_device(name):
            raise OptionError(
                f"compare_devices: unknown device {name!r}: choose two of {', '.join(CONCRETE)}"
            )
    if device not in ("auto", names[0]):
        raise OptionError(
            f"device {device!r} and compare_devices {names} disagree: the report's device is "
            "the first of compare_devices (or give device auto)"
        )
    return names


def differences(first: EntryColumns, second: EntryColumns) -> np.ndarray[Any, Any]:
    """``first``'s autograd values minus ``second``'s, entry by entry (0 where both are the
    same infinity, NaN where either is NaN)."""
    with np.errstate(invalid="ignore"):
        found = first.autograd - second.autograd
    found[first.autograd == second.autograd] = 0.0
    return found


def summary(
    first: EntryColumns, second: EntryColumns, device: str, fail_on: Sequence[str]
) -> dict[str, Any]:
    """The report's ``compared`` section: the second device's verdict, counts and whether it
    passed ``fail_on``, how many entries the devices compute differently, the largest
    difference, and how many entries the two devices' verdicts disagree on."""
    counts = ordered_counts(second.counts())
    verdict = worst(counts).value
    found = differences(first, second)
    differing = found != 0
    known = found[~np.isnan(found)]
    disagree = sum(
        first.verdict_at(index) != second.verdict_at(index)
        for index in set(first.explicit) | set(second.explicit)
    )
    return {
        "device": device,
        "verdict": verdict,
        "counts": counts,
        "passed": passes(verdict, counts, fail_on),
        "differing": int(np.count_nonzero(differing)),
        "max_abs_difference": json_number(float(np.abs(known).max()) if known.size else 0.0),
        "verdicts_differ": int(disagree),
    }
