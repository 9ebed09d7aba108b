"""Reports: every compared number of a check, and the check's verdict.

The dictionary form (:meth:`Report.to_dict`) is the one report format of derivcheck: the CLI's
``--json``, the Python API and the service all use it (``docs/report-format.md``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

PASS = "pass"
UNDEFINED = "undefined"
DOMAIN = "domain"
NONFINITE = "nonfinite"
FAIL = "fail"
ERROR = "error"

VERDICT_ORDER = (PASS, UNDEFINED, DOMAIN, NONFINITE, FAIL, ERROR)
"""Verdicts from best to worst; a check's verdict is the worst of its entries."""


def worst(verdicts: list[str] | tuple[str, ...] | set[str]) -> str:
    """The worst of ``verdicts`` (``pass`` for none)."""
    return max(verdicts, key=VERDICT_ORDER.index, default=PASS)


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
    """One compared number: a gradient component, a Hessian element or a node gradient."""

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

    def to_dict(self) -> dict[str, Any]:
        """The entry in the report format."""
        return {
            "kind": self.kind,
            "wrt": list(self.wrt) if self.wrt is not None else None,
            "node": self.node,
            "point": self.point,
            "autograd": json_number(self.autograd),
            "reference": json_number(self.reference),
            "reference_radius": json_number(self.reference_radius),
            "abs_error": json_number(self.abs_error),
            "rel_error": json_number(self.rel_error),
            "ulp_error": json_number(self.ulp_error),
            "tolerance": json_number(self.tolerance),
            "verdict": self.verdict,
            "detail": self.detail,
        }


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
    entries: list[Entry] = field(default_factory=list)
    reason: str | None = None
    strict: bool = False
    reference_method: str | None = None
    tolerance: dict[str, float] = field(default_factory=dict)
    functions: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    versions: dict[str, str] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        """Whether no entry failed (``undefined`` fails only under strict)."""
        return self.verdict in (PASS, DOMAIN) or (self.verdict == UNDEFINED and not self.strict)

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
        """The largest absolute, relative and ulp error over the entries."""
        result: dict[str, float | None] = {}
        for name in ("abs_error", "rel_error", "ulp_error"):
            values = [getattr(e, name) for e in self.entries if getattr(e, name) is not None]
            result[name] = max(values) if values else None
        return result

    def to_dict(self) -> dict[str, Any]:
        """The report format (``docs/report-format.md``)."""
        return {
            "expression": self.expression,
            "variables": list(self.variables),
            "dtype": self.dtype,
            "device": self.device,
            "verdict": self.verdict,
            "reason": self.reason,
            "strict": self.strict,
            "reference_method": self.reference_method,
            "tolerance": dict(self.tolerance),
            "points": [dict(point) for point in self.points],
            "entries": [entry.to_dict() for entry in self.entries],
            "functions": list(self.functions),
            "notes": list(self.notes),
            "worst": {k: json_number(v) for k, v in self.worst_errors.items()},
            "versions": dict(self.versions),
            "timings": dict(self.timings),
        }
