"""Reports: every compared number of a check, and the check's verdict.

The dictionary form (:meth:`Report.to_dict`) is the one report format of derivcheck: the CLI's
``--json``, the Python API and the service all use it (``docs/report-format.md``).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, overload

from verifier.core.judge.columns import EntryColumns, EntryDicts
from verifier.core.judge.entry import Entry, json_number
from verifier.core.judge.verdict import DEFAULT_FAIL_ON, Verdict, ordered_counts, passes, rank


class _Entries:
    """The ``entries`` field of a :class:`Report`: a list of entries, which a report made by
    ``check()`` builds from its columns (:mod:`verifier.core.judge.columns`) on first use."""

    @overload
    def __get__(self, report: None, owner: type | None = None) -> tuple[()]: ...

    @overload
    def __get__(self, report: Report, owner: type | None = None) -> list[Entry]: ...

    def __get__(self, report: Report | None, owner: type | None = None) -> Any:
        if report is None:
            return ()  # the field's default, as dataclasses ask a descriptor for it
        columns = report.__dict__.get("_columns")
        if columns is not None:
            report.__dict__["_entries"] = columns.entries()
            report.__dict__["_columns"] = None
        return report.__dict__["_entries"]

    def __set__(self, report: Report, entries: Sequence[Entry]) -> None:
        report.__dict__["_entries"] = list(entries)
        report.__dict__["_columns"] = None


@dataclass
class Report:
    """The result of one check.

    ``gradient`` and ``hessian`` give autograd's values per point: ``gradient[p][i]`` is
    df/dv_i and ``hessian[p][i][j]`` is d2f/dv_i dv_j at point ``p``.
    """

    expression: str
    variables: list[str]
    dtype: str
    device: str
    verdict: str
    points: list[dict[str, float]] = field(default_factory=list)
    entries: _Entries = _Entries()
    reason: str | None = None
    fail_on: list[str] = field(default_factory=lambda: sorted(DEFAULT_FAIL_ON))
    reference_method: str | None = None
    tolerance: dict[str, float] = field(default_factory=dict)
    functions: list[str] = field(default_factory=list)
    literals: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    versions: dict[str, str] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    compared: dict[str, Any] | None = None
    paths: list[dict[str, Any]] | None = None

    def set_columns(self, columns: EntryColumns) -> None:
        """Hold the entries as ``columns``; ``entries`` builds the list when first read."""
        self.__dict__["_entries"] = []
        self.__dict__["_columns"] = columns

    def held_columns(self) -> EntryColumns | None:
        """The entries as columns, where the report holds them so."""
        columns: EntryColumns | None = self.__dict__.get("_columns")
        return columns

    _held = held_columns

    def _not_passing(self) -> list[Entry]:
        columns = self._held()
        if columns is not None:
            return columns.not_passing()
        return [e for e in self.entries if e.verdict != Verdict.PASS]

    @property
    def passed(self) -> bool:
        """Whether no entry has a verdict of ``fail_on`` (and the check ran), on the compared
        device too when there is one."""
        if self.compared is not None and not self.compared["passed"]:
            return False
        if any(not path["passed"] for path in self.paths or ()):
            return False
        return passes(self.verdict, self.counts, self.fail_on)

    @property
    def counts(self) -> dict[str, int]:
        """Entries per verdict, in verdict order (verdicts with no entry left out)."""
        columns = self._held()
        if columns is not None:
            return ordered_counts(columns.counts())
        return ordered_counts(Counter(entry.verdict for entry in self.entries))

    @property
    def blamed(self) -> list[dict[str, Any]]:
        """The nodes non-passing entries point at, with verdict, phase and entry count."""
        found = Counter(
            (entry.verdict, entry.blame, entry.phase)
            for entry in self._not_passing()
            if entry.blame is not None
        )
        ordered = sorted(found.items(), key=lambda item: (-rank(item[0][0]), -item[1]))
        return [
            {"verdict": verdict, "node": node, "phase": phase, "entries": count}
            for (verdict, node, phase), count in ordered
        ]

    @property
    def gradient(self) -> list[list[float]]:
        """Autograd's gradient at each point, in variable order."""
        return [[e.autograd for e in self._at(p, "gradient")] for p in range(len(self.points))]

    @property
    def hessian(self) -> list[list[list[float]]]:
        """Autograd's Hessian at each point, rows and columns in variable order."""
        n = len(self.variables)
        result = []
        for p in range(len(self.points)):
            flat = [e.autograd for e in self._at(p, "hessian")]
            result.append([flat[i * n : (i + 1) * n] for i in range(n)] if flat else [])
        return result

    def _at(self, point: int, kind: str) -> list[Entry]:
        return [e for e in self.entries if e.point == point and e.kind == kind]

    @property
    def worst_errors(self) -> dict[str, float | None]:
        """The largest ratio, abs, rel and ulp error over the entries that did not pass."""
        result: dict[str, float | None] = {}
        failing = self._not_passing()
        for name in ("ratio", "abs_error", "rel_error", "ulp_error"):
            values = [getattr(e, name) for e in failing if getattr(e, name) is not None]
            result[name] = max(values) if values else None
        return result

    def to_dict(self) -> dict[str, Any]:
        """The report format (``docs/report-format.md``); ``compared`` only in a check compared
        across devices."""
        return self._with_entries(self._entry_dicts())

    def _with_entries(self, entries: Sequence[dict[str, Any]]) -> dict[str, Any]:
        shown = {
            "expression": self.expression,
            "variables": list(self.variables),
            "dtype": self.dtype,
            "device": self.device,
            "verdict": self.verdict,
            "reason": self.reason,
            "fail_on": list(self.fail_on),
            "passed": self.passed,
            "counts": self.counts,
            "blamed": self.blamed,
            "reference_method": self.reference_method,
            "tolerance": dict(self.tolerance),
            "points": [dict(point) for point in self.points],
            "literals": [
                {**literal, "rounded": json_number(literal["rounded"])} for literal in self.literals
            ],
            "entries": entries,
            "functions": list(self.functions),
            "notes": list(self.notes),
            "worst": {k: json_number(v) for k, v in self.worst_errors.items()},
            "versions": dict(self.versions),
            "timings": dict(self.timings),
        }
        if self.compared is not None:
            shown["compared"] = dict(self.compared)
        if self.paths is not None:
            shown["paths"] = [dict(path) for path in self.paths]
        return shown

    def document(self) -> dict[str, Any]:
        """The report format, with the entries of a report that holds them as columns left as
        a sequence made on reading (:class:`~verifier.core.judge.columns.EntryDicts`): for a writer
        that stores them column by column instead of as one dictionary each."""
        columns = self._held()
        return self.to_dict() if columns is None else self._with_entries(EntryDicts(columns))

    def _entry_dicts(self) -> list[dict[str, Any]]:
        columns = self._held()
        if columns is not None:
            return list(columns.dicts())
        return [entry.to_dict() for entry in self.entries]
