"""Autograd on two devices against one truth: ``check(..., compare_devices=...)``.

CUDA kernels have their own derivative code and their own accuracy. A check compared across
devices runs autograd on both devices at the same dtype-rounded inputs and judges both against
the same certified references. The report is the first device's (its entries, verdict and
counts); every entry adds the second device's value, verdict and detail and the difference
between the two values, and the report's ``compared`` section sums the second device up
(``docs/report-format.md``).

The option is validated with the others (:mod:`verifier.core.options`); the devices are
resolved where the check runs (``verifier.core.check``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from verifier.core.judge.columns import EntryColumns
from verifier.core.judge.entry import json_number
from verifier.core.judge.verdict import ordered_counts, passes, worst


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
