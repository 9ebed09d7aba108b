"""Derivative paths judged against one truth: the report's ``paths`` section.

A check with ``modes`` beyond the default (:mod:`verifier.core.program.modes`) computes its
gradient or Hessian along each further path (:mod:`verifier.core.program.paths`) and judges
those values against the same certified references, with the same tolerance, conditioning,
local audit (of that path's formulas) and blame as the default path's entries. Each path is
one item of the report's ``paths`` section: its verdict and counts, how many entries it
computes differently from the default path of its order and the largest difference (a free
differential, shown even where every path is within the tolerance), and its entries that do not
pass, each with its ``mode`` (``docs/report-format.md``, "Derivative paths").
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from verifier.core.judge.columns import EntryColumns
from verifier.core.judge.entry import json_number
from verifier.core.judge.verdict import Verdict, ordered_counts, passes, worst
from verifier.core.program.modes import Mode

MAX_PATH_ENTRIES = 1000
"""The most non-passing entries a path lists in the report (its counts hold them all)."""


def path_summary(
    mode: Mode,
    columns: EntryColumns,
    default: np.ndarray[Any, Any],
    fail_on: Sequence[str],
    *,
    batched: bool = True,
) -> dict[str, Any]:
    """One judged path: ``columns`` its entries, ``default`` the default path's values of the
    same entries (``[point, key]``); not ``batched``: the path run one point at a time."""
    counts = ordered_counts(columns.counts())
    verdict = worst(counts).value
    with np.errstate(invalid="ignore"):
        difference = columns.autograd - default
    difference[columns.autograd == default] = 0.0
    both_nan = np.isnan(columns.autograd) & np.isnan(default)
    difference[both_nan] = 0.0
    # A value where the default path has nan (or the other way round) differs by nan.
    largest = float(np.abs(difference).max()) if difference.size else 0.0
    failing = columns.not_passing()
    return {
        "mode": mode.name,
        "batched": batched,
        "calls": mode.calls,
        "verdict": verdict,
        "counts": counts,
        "passed": passes(verdict, counts, fail_on),
        "error": None,
        "differing": int(np.count_nonzero(difference)),
        "max_abs_difference": json_number(largest),
        "entries": [{"mode": mode.name, **entry.to_dict()} for entry in failing[:MAX_PATH_ENTRIES]],
        "entries_not_listed": max(0, len(failing) - MAX_PATH_ENTRIES),
    }


def refused_path(
    mode: Mode, message: str, entries: int, fail_on: Sequence[str], *, batched: bool = True
) -> dict[str, Any]:
    """A path torch refused: every one of its ``entries`` is ``error`` with torch's message;
    the check's other paths are judged as usual, and the refusal fails the check only where
    ``fail_on`` names ``error`` (torch 2.13 refuses nested forward levels everywhere)."""
    return {
        "mode": mode.name,
        "batched": batched,
        "calls": mode.calls,
        "verdict": Verdict.ERROR.value,
        "counts": {Verdict.ERROR.value: entries},
        "passed": Verdict.ERROR.value not in {str(v) for v in fail_on},
        "error": message,
        "differing": None,
        "max_abs_difference": None,
        "entries": [],
        "entries_not_listed": 0,
    }
