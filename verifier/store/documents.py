"""A report's stored form, both ways: the row written from the core's report document, and one
typed view of what is read back.

A report is stored as a ``reports`` row: queryable columns (verdict, dtype, device, the worst
errors, versions, timings), the document without its entries (a JSON column), and the entries
in blocks (:mod:`verifier.store.blocks`). :func:`report_values` makes all three from the core's
document (docs/report-format.md), once, as the values a worker inserts; :func:`report_row` is
the same as ORM objects. :class:`ReportView` reads the stored document back, typed,
for every reader (the outcome under a check's policy, the report lists, the check page);
documents stored by earlier versions lack some keys (``counts``, ``blamed``, ``passed``,
``fail_on``, ``compared``), and the view says None or empty for them instead of failing.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from verifier.core.judge.verdict import Verdict
from verifier.store.blocks import blocks_of
from verifier.store.models import Check, ReportBlock, StoredReport

WORST_KEYS = ("ratio", "abs_error", "rel_error", "ulp_error")
"""The errors a report's ``worst`` section names (the largest over its non-passing entries)."""


@dataclass(frozen=True)
class ComparedView:
    """The second device of a check compared across devices: its name, verdict and counts."""

    device: str | None
    verdict: str
    counts: dict[str, int] | None
    passed: bool | None
    differing: int | None = None
    max_abs_difference: float | None = None
    verdicts_differ: int | None = None

    @classmethod
    def read(cls, section: Mapping[str, Any]) -> ComparedView:
        """The ``compared`` section of a stored document."""
        differing = section.get("differing")
        verdicts_differ = section.get("verdicts_differ")
        return cls(
            device=_text(section.get("device")),
            verdict=str(section.get("verdict")),
            counts=_counts(section.get("counts")),
            passed=section.get("passed") if isinstance(section.get("passed"), bool) else None,
            differing=differing if isinstance(differing, int) else None,
            max_abs_difference=report_number(section.get("max_abs_difference")),
            verdicts_differ=verdicts_differ if isinstance(verdicts_differ, int) else None,
        )


@dataclass(frozen=True)
class ReportView:
    """A stored report's document, typed: every field the readers use, with None (or empty)
    where a document stored by an earlier version lacks it."""

    verdict: str
    reason: str | None = None
    dtype: str | None = None
    device: str | None = None
    variables: list[str] = field(default_factory=list)
    points: list[dict[str, Any]] = field(default_factory=list)
    tolerance: dict[str, float] = field(default_factory=dict)
    reference_method: str | None = None
    fail_on: list[str] | None = None
    passed: bool | None = None
    counts: dict[str, int] | None = None
    blamed: list[dict[str, Any]] = field(default_factory=list)
    worst: dict[str, float | None] = field(default_factory=dict)
    compared: ComparedView | None = None
    paths: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    versions: dict[str, str] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)

    @classmethod
    def read(cls, document: Mapping[str, Any] | None, verdict: str | None = None) -> ReportView:
        """The view of ``document`` (a stored one, or the core's); ``verdict`` is the row's,
        which wins over the document's."""
        found = document or {}
        compared = found.get("compared")
        tolerance = found.get("tolerance")
        fail_on = found.get("fail_on")
        worst = found.get("worst")
        return cls(
            verdict=str(verdict or found.get("verdict") or Verdict.ERROR),
            reason=_text(found.get("reason")),
            dtype=_text(found.get("dtype")),
            device=_text(found.get("device")),
            variables=[str(name) for name in found.get("variables") or []],
            points=[
                dict(point) for point in found.get("points") or [] if isinstance(point, Mapping)
            ],
            tolerance={
                str(name): float(value)
                for name, value in (tolerance.items() if isinstance(tolerance, Mapping) else ())
                if isinstance(value, int | float)
            },
            reference_method=_text(found.get("reference_method")),
            fail_on=[str(name) for name in fail_on] if isinstance(fail_on, list) else None,
            passed=found.get("passed") if isinstance(found.get("passed"), bool) else None,
            counts=_counts(found.get("counts")),
            blamed=[dict(row) for row in found.get("blamed") or [] if isinstance(row, Mapping)],
            worst={
                key: report_number(worst.get(key)) if isinstance(worst, Mapping) else None
                for key in WORST_KEYS
            },
            compared=ComparedView.read(compared) if isinstance(compared, Mapping) else None,
            paths=[dict(path) for path in found.get("paths") or [] if isinstance(path, Mapping)],
            notes=[str(note) for note in found.get("notes") or []],
            versions={str(k): str(v) for k, v in dict(found.get("versions") or {}).items()},
            timings={
                str(k): float(v)
                for k, v in dict(found.get("timings") or {}).items()
                if isinstance(v, int | float)
            },
        )


@dataclass(frozen=True)
class ReportValues:
    """A report ready to insert: the columns of its ``reports`` row, its blocks' rows (without
    their report's id), the view of its document it was made from, and whether it passes its
    check's policy (None until judged)."""

    columns: dict[str, Any]
    blocks: list[dict[str, Any]]
    view: ReportView
    passed: bool | None = None

    @property
    def check_id(self) -> Any:
        """The report's check."""
        return self.columns["check_id"]

    @property
    def job_id(self) -> Any:
        """The job of the report's check."""
        return self.columns["job_id"]

    @property
    def verdict(self) -> str:
        """The report's verdict."""
        return str(self.columns["verdict"])


def report_values(
    check_id: Any, job_id: Any, dtype: str, device: str, document: Mapping[str, Any]
) -> ReportValues:
    """The values of the core's report ``document`` of a check (``dtype`` and ``device`` are the
    check's, for a document that names none): queryable columns, the document without its
    entries, and the entries in blocks, each encoded once (from the report's columns where it
    still holds them)."""
    view = ReportView.read(document)
    rest = {key: value for key, value in document.items() if key != "entries"}
    compared = view.compared
    columns = {
        "check_id": check_id,
        "job_id": job_id,
        "verdict": view.verdict,
        "reason": view.reason,
        "dtype": view.dtype or dtype,
        "device": view.device or device,
        "compared_device": None if compared is None else compared.device,
        "compared_verdict": None if compared is None else compared.verdict,
        "worst_abs_error": view.worst["abs_error"],
        "worst_rel_error": view.worst["rel_error"],
        "worst_ulp_error": view.worst["ulp_error"],
        "torch_version": view.versions.get("torch"),
        "sympy_version": view.versions.get("sympy"),
        "total_seconds": report_number(view.timings.get("total")),
        "versions": dict(document.get("versions") or {}),
        "timings": dict(document.get("timings") or {}),
        "document": rest,
    }
    blocks = [
        {
            "number": block.number,
            "first_entry": block.first,
            "entries": block.entries,
            "failing": block.failing,
            "data": block.data,
        }
        for block in blocks_of(document.get("entries") or [], view.tolerance, view.dtype)
    ]
    return ReportValues(columns, blocks, view)


def report_row(check: Check, document: Mapping[str, Any]) -> StoredReport:
    """The database row of the core's report ``document`` for ``check``: queryable columns,
    the document without its entries, and the entries in blocks."""
    values = report_values(check.id, check.job_id, check.dtype, check.device, document)
    return StoredReport(**values.columns, blocks=[ReportBlock(**block) for block in values.blocks])


def _text(value: Any) -> str | None:
    return None if value is None else str(value)


def _counts(value: Any) -> dict[str, int] | None:
    if not isinstance(value, Mapping):
        return None
    return {str(name): int(count) for name, count in value.items()}


def report_number(value: Any) -> float | None:
    """A number of a stored report ("nan", "inf" and "-inf" are text there) as a float; None
    for nan or anything that is not a number."""
    if value is None:
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(number) else number
