"""How a stored report reads under its check's policy: entries per verdict, the blamed nodes,
the verdicts that fail the check, and whether it passed.

Every rule here comes from the verdict table (verifier/core/judge/verdict.py) and is the one of
``Report.passed`` in verifier/core/judge/report.py: a check passes when it ran and none of its
entries has a verdict of its ``fail_on``. Reports stored before that table have no ``counts``,
``blamed``, ``fail_on`` or ``passed``; their entries are counted instead, and their policy is
the one their check's ``strict`` flag names.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from verifier.core.judge.verdict import Verdict, fail_on_set, ordered_counts, passes
from verifier.store.documents import ReportView


@dataclass(frozen=True)
class Outcome:
    """A stored report as its check's policy judges it."""

    fail_on: list[str]
    passed: bool
    counts: dict[str, int]
    blamed: list[dict[str, Any]]


def check_fail_on(fail_on: Iterable[str] | None, *, strict: bool) -> list[str]:
    """The verdict names that fail a check, sorted (None: the set ``strict`` names)."""
    return sorted(str(verdict) for verdict in fail_on_set(fail_on, strict=strict))


def entry_counts(
    verdict: str, stored: Mapping[str, int] | None, entries: Sequence[Any] | None = None
) -> dict[str, int]:
    """Entries per verdict, in table order: the report's ``counts``, else its entries counted.

    A report with neither (an old report read without its entries) counts as one entry of its
    own verdict; an ``error`` report has no entries.
    """
    if stored is not None:
        found = Counter({str(name): int(count) for name, count in stored.items()})
    else:
        found = Counter(str(entry.get("verdict")) for entry in entries or [])
        if not found and verdict != Verdict.ERROR:
            found[verdict] = 1
    return ordered_counts(found)


def check_passed(verdict: str, counts: Iterable[str], fail_on: Iterable[str]) -> bool:
    """Whether a check with this verdict and these entry verdicts passed ``fail_on``."""
    return passes(verdict, counts, fail_on)


def read_outcome(
    view: ReportView,
    entries: Sequence[Any] | None,
    *,
    fail_on: Iterable[str] | None,
    strict: bool,
) -> Outcome:
    """The outcome of a stored report under its check's ``fail_on`` and ``strict``."""
    policy = check_fail_on(fail_on, strict=strict)
    counts = entry_counts(view.verdict, view.counts, entries)
    passed = check_passed(view.verdict, counts, policy)
    compared = view.compared
    if compared is not None:  # a check compared across devices: both must pass
        other = compared.verdict
        passed = passed and check_passed(other, entry_counts(other, compared.counts), policy)
    return Outcome(fail_on=policy, passed=passed, counts=counts, blamed=view.blamed)
