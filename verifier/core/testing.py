"""derivcheck in a user's own test suite: an assertion, a fixture, options and a strategy.

Installed as a pytest plugin (entry point ``pytest11``), so a project that has derivcheck
installed gets, with nothing to configure:

- :func:`assert_derivatives` (also importable without pytest): fails with a short table of the
  worst entries (point, entry, autograd, exact, error in ulps, verdict) and, for sampled
  points, the seed that reproduces them;
- the ``derivcheck`` fixture, whose ``assert_derivatives`` runs once per dtype chosen with
  ``--derivcheck-dtype`` (repeatable) or ``@pytest.mark.derivcheck(dtypes=[...],
  device=...)``, on ``--derivcheck-device``;
- :func:`points`, a Hypothesis strategy of points in a domain, each value exactly
  representable in the dtype under test.

Importing this module loads neither torch nor Hypothesis (pytest imports every plugin at
start); they are loaded where a check runs or a strategy is built. README.md has a complete
example test.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, Unpack

from verifier.core.judge.verdict import Verdict

if TYPE_CHECKING:
    import pytest
    from hypothesis.strategies import SearchStrategy

    from verifier.core.judge.report import Entry, Report
    from verifier.core.options import CheckOptions, OptionFields

WORST_ROWS = 5
"""Entries shown in a failure's table, worst first."""
MARK = "derivcheck"
DEFAULT_DTYPES = ("float64",)


class DerivativeMismatch(AssertionError):
    """``assert_derivatives`` failed: the message holds the table of the worst entries."""


def assert_derivatives(
    fn: Callable[..., Any],
    spec: str,
    at: Mapping[str, Any] | Sequence[Mapping[str, Any]] | None = None,
    *,
    variables: Sequence[str] | None = None,
    options: CheckOptions | None = None,
    **given: Unpack[OptionFields],
) -> Report:
    """Check ``fn`` against ``spec`` (:func:`verifier.check_function`); raise if it fails.

    The options are :func:`verifier.check_function`'s, the device ``cpu`` unless given.
    Returns the report when it passed. Raises :class:`DerivativeMismatch` (an
    AssertionError) with the worst entries, and the seed where points were sampled, when an
    entry has a failing verdict or the check could not run.
    """
    from verifier.core.check import resolve_options
    from verifier.core.function_check import check_function

    if options is None:
        given = {"device": "cpu", **given}
    options = resolve_options(options, given)
    report = check_function(fn, spec, at, variables=variables, options=options)
    if report.verdict == Verdict.ERROR.value or not report.passed:
        raise DerivativeMismatch(failure_text(report, options.seed if options.samples else None))
    return report


def failure_text(report: Report, seed: int | None) -> str:
    """Why ``report`` failed, with a table of its worst entries."""
    head = f"derivcheck: {report.expression} against its spec, {report.dtype} on {report.device}"
    if report.verdict == Verdict.ERROR.value:
        return f"{head}: could not run: {report.reason}"
    failing = set(report.fail_on)
    bad = [e for e in report.entries if e.verdict in failing]
    counts = ", ".join(f"{count} {verdict}" for verdict, count in report.counts.items())
    lines = [f"{head}: {len(bad)} of {len(report.entries)} entries fail ({counts})"]
    if seed is not None:
        lines.append(f"sampled points: seed={seed} reproduces them")
    rows = [("point", "entry", "autograd", "exact", "ulps", "verdict")]
    worst = sorted(bad, key=_badness, reverse=True)[:WORST_ROWS]
    for entry in worst:
        rows.append(
            (
                _point(report.points[entry.point]),
                _label(entry),
                _number(entry.autograd),
                _number(entry.reference),
                "-" if entry.ulp_error is None else f"{entry.ulp_error:.3g}",
                str(entry.verdict),
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        lines.append("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)))
    if len(bad) > len(worst):
        lines.append(f"... and {len(bad) - len(worst)} more")
    for entry in worst[:1]:
        if entry.detail:
            lines.append(f"worst: {entry.detail}")
    return "\n".join(lines)


def _badness(entry: Entry) -> float:
    ratio = entry.ratio
    return math.inf if ratio is None or math.isnan(ratio) else ratio


def _label(entry: Entry) -> str:
    if entry.kind == "node":
        return f"node {entry.node}"
    wrt = ",".join(entry.wrt or ())
    return f"{entry.kind} {wrt}".strip()


def _point(point: Mapping[str, float]) -> str:
    return ", ".join(f"{name}={value!r}" for name, value in point.items())


def _number(value: float | None) -> str:
    return "-" if value is None else repr(value)


def points(
    domain: Mapping[str, tuple[float, float]], dtype: str = "float64"
) -> SearchStrategy[dict[str, float]]:
    """A Hypothesis strategy of points: each variable a finite number in its closed interval,
    exactly representable in ``dtype`` (so the check runs at the very value drawn).

    >>> strategy = points({"x": (-1.0, 1.0)}, "float32")
    """
    from hypothesis import strategies as st

    from verifier.core.floats.dtypes import get_dtype

    fmt = get_dtype(dtype)
    widths: dict[str, Literal[16, 32, 64]] = {"float64": 64, "float32": 32, "float16": 16}
    fields: dict[str, SearchStrategy[float]] = {}
    for name, (low, high) in domain.items():
        if not low <= high:
            raise ValueError(f"points: the interval of {name} is empty ({low} > {high})")
        if fmt.name in widths:
            # Hypothesis wants bounds the width holds: the interval's own, rounded inward.
            lo, hi = _inward(low, high, fmt.name)
            values = st.floats(
                lo, hi, allow_nan=False, allow_infinity=False, width=widths[fmt.name]
            )
        else:  # bfloat16: float32 values rounded to it, kept where still inside the interval
            values = (
                st.floats(low, high, allow_nan=False, allow_infinity=False, width=32)
                .map(_to_bfloat16)
                .filter(_within(low, high))
            )
        fields[name] = values
    return st.fixed_dictionaries(fields)


def _within(low: float, high: float) -> Callable[[float], bool]:
    return lambda value: low <= value <= high


def _inward(low: float, high: float, dtype: str) -> tuple[float, float]:
    import numpy as np

    kind: Any = {"float64": np.float64, "float32": np.float32, "float16": np.float16}[dtype]
    lo: Any = kind(low)
    hi: Any = kind(high)
    if float(lo) < low:
        lo = np.nextafter(lo, kind(np.inf))
    if float(hi) > high:
        hi = np.nextafter(hi, kind(-np.inf))
    if float(lo) > float(hi):
        raise ValueError(f"points: no {dtype} number lies in [{low}, {high}]")
    return float(lo), float(hi)


def _to_bfloat16(value: float) -> float:
    import torch

    return float(torch.tensor(value, dtype=torch.bfloat16).item())


@dataclass(frozen=True)
class Derivcheck:
    """The ``derivcheck`` fixture: :func:`assert_derivatives` in every chosen dtype."""

    dtypes: tuple[str, ...]
    device: str

    def assert_derivatives(
        self, fn: Callable[..., Any], spec: str, at: Any = None, **given: Any
    ) -> list[Report]:
        """:func:`assert_derivatives` once per dtype; the reports, in dtype order."""
        return [
            assert_derivatives(fn, spec, at, **{"dtype": dtype, "device": self.device, **given})
            for dtype in self.dtypes
        ]


# pytest hooks (this module is the plugin named by the ``pytest11`` entry point).


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("derivcheck", "derivcheck: exact derivative checks")
    group.addoption(
        "--derivcheck-dtype",
        action="append",
        default=None,
        help="dtype for the derivcheck fixture (repeat for several); default float64",
    )
    group.addoption(
        "--derivcheck-device",
        default="cpu",
        help="device for the derivcheck fixture: cpu, cuda or auto; default cpu",
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        f"{MARK}(dtypes=None, device=None): dtypes and device of the derivcheck fixture",
    )


def _fixture(request: pytest.FixtureRequest) -> Derivcheck:
    """derivcheck: ``derivcheck.assert_derivatives(fn, spec, ...)`` in the chosen dtypes."""
    config = request.config
    dtypes = tuple(config.getoption("--derivcheck-dtype") or DEFAULT_DTYPES)
    device = str(config.getoption("--derivcheck-device"))
    marker = request.node.get_closest_marker(MARK)
    if marker is not None:
        dtypes = tuple(marker.kwargs.get("dtypes") or dtypes)
        device = str(marker.kwargs.get("device") or device)
    return Derivcheck(dtypes, device)


def _register_fixture() -> Any:
    try:
        import pytest
    except ImportError:  # used without pytest: the helpers above still work
        return None
    return pytest.fixture(name="derivcheck")(_fixture)


derivcheck_fixture = _register_fixture()
