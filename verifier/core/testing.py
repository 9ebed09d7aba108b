"""derivcheck in a user's own test suite: an assertion, a fixture, options and a strategy.

Installed as a pytest plugin (entry point ``pytest11``), so a project that has derivcheck
installed gets, with nothing to configure:

- :func:`assert_derivatives` (also importable without pytest): fails with a short table of the
  worst entries, worst error/allowed first (point, entry, autograd, exact, absolute error,
  error/allowed, error in ulps, verdict) and, for sampled points, the seed that reproduces
  them; pytest hides its frames (``__tracebackhide__``), so a failure shows the test's own
  line and the table;
- the ``derivcheck`` fixture: a test that takes it runs once per dtype chosen with
  ``--derivcheck-dtype`` (repeatable) or ``@pytest.mark.derivcheck(dtypes=[...],
  device=...)``, each dtype its own test id (``test_x[float32]``), on
  ``--derivcheck-device``; its ``assert_derivatives`` checks in that dtype;
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
from verifier.errors import InputError

if TYPE_CHECKING:
    import pytest
    from hypothesis.strategies import SearchStrategy

    from verifier.core.judge.report import Entry, Report
    from verifier.core.options import CheckOptions, OptionFields

WORST_ROWS = 5
"""Entries shown in a failure's table, worst first (the largest error/allowed)."""
MARK = "derivcheck"
FIXTURE = "derivcheck"
DEFAULT_DTYPES = ("float64",)
TABLE_COLUMNS = (
    "point",
    "entry",
    "autograd",
    "exact",
    "abs_error",
    "err/allowed",
    "ulps",
    "verdict",
)
"""The columns of a failure's table; rows are sorted by ``err/allowed``, largest first."""


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
    entry has a failing verdict or the check could not run; an InputError (a bad option,
    spec or point, e.g. ``rtol=64``: rtol is relative, ``rtol_ulps`` is in ulps) with only
    its message, as pytest shows it from the caller's line.
    """
    __tracebackhide__ = True  # pytest shows the caller's line and the message, not this frame
    from verifier.core.check import resolve_options
    from verifier.core.function_check import check_function

    if options is None:
        given = {"device": "cpu", **given}
    try:
        options = resolve_options(options, given)
        report = check_function(fn, spec, at, variables=variables, options=options)
    except InputError as error:
        # The message says what is wrong and where; the frames that found it are the core's.
        raise error.with_traceback(None) from None
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
    rows = [TABLE_COLUMNS] if bad else []
    worst = sorted(bad, key=_badness, reverse=True)[:WORST_ROWS]
    for entry in worst:
        rows.append(
            (
                _point(report.points[entry.point]),
                _label(entry),
                _number(entry.autograd),
                _number(entry.reference),
                _short(entry.abs_error),
                _short(entry.ratio),
                _short(entry.ulp_error),
                str(entry.verdict),
            )
        )
    widths = [max((len(row[i]) for row in rows), default=0) for i in range(len(TABLE_COLUMNS))]
    for row in rows:
        cells = (cell.ljust(width) for cell, width in zip(row, widths, strict=True))
        lines.append("  ".join(cells).rstrip())
    if len(bad) > len(worst):
        lines.append(f"... and {len(bad) - len(worst)} more")
    for entry in worst[:1]:
        if entry.detail:
            lines.append(f"worst: {entry.detail}")
    for path in report.paths or ():
        if not path["passed"]:
            shown = ", ".join(f"{count} {verdict}" for verdict, count in path["counts"].items())
            why = path["error"] or next((e["detail"] for e in path["entries"] if e["detail"]), "")
            lines.append(f"along {path['mode']}: {shown}; {why}".rstrip("; "))
    return "\n".join(lines)


def _badness(entry: Entry) -> float:
    """The sort key of the table: error/allowed, an entry without one (no exact value to
    measure against) first."""
    ratio = entry.ratio
    return math.inf if ratio is None or math.isnan(ratio) else ratio


def _label(entry: Entry) -> str:
    if entry.kind == "node":
        return f"node {entry.node}"
    wrt = ",".join(entry.wrt or ())
    return f"{entry.kind} {wrt}".strip()


def _short(value: float | None) -> str:
    """An error to three digits, ``-`` where there is none."""
    return "-" if value is None else f"{value:.3g}"


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
    """The ``derivcheck`` fixture of one test id: :func:`assert_derivatives` in its dtype."""

    dtype: str
    device: str

    def assert_derivatives(
        self, fn: Callable[..., Any], spec: str, at: Any = None, **given: Any
    ) -> Report:
        """:func:`assert_derivatives` in this test's dtype, on its device; the report."""
        __tracebackhide__ = True  # pytest shows the caller's line and the message
        return assert_derivatives(
            fn, spec, at, **{"dtype": self.dtype, "device": self.device, **given}
        )


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


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """One test id per chosen dtype for every test that takes the ``derivcheck`` fixture."""
    if FIXTURE not in metafunc.fixturenames:
        return
    import pytest

    from verifier.core.floats.dtypes import get_dtype
    from verifier.errors import OptionError

    dtypes = _chosen_dtypes(metafunc.config, metafunc.definition.get_closest_marker(MARK))
    for dtype in dtypes:
        try:
            get_dtype(dtype)
        except OptionError as error:
            pytest.fail(
                f"{metafunc.definition.nodeid}: the derivcheck mark or --derivcheck-dtype: {error}",
                pytrace=False,
            )
    metafunc.parametrize(FIXTURE, dtypes, indirect=True, ids=dtypes)


def _chosen_dtypes(config: pytest.Config, marker: pytest.Mark | None) -> list[str]:
    """The dtypes of the mark, else of ``--derivcheck-dtype``, else the default; each once."""
    dtypes = config.getoption("--derivcheck-dtype") or DEFAULT_DTYPES
    if marker is not None:
        dtypes = marker.kwargs.get("dtypes") or dtypes
    return list(dict.fromkeys(str(dtype) for dtype in dtypes))


def _fixture(request: pytest.FixtureRequest) -> Derivcheck:
    """derivcheck: ``derivcheck.assert_derivatives(fn, spec, ...)`` in this test id's dtype."""
    import pytest

    config = request.config
    device = str(config.getoption("--derivcheck-device"))
    marker = request.node.get_closest_marker(MARK)
    if marker is not None:
        device = str(marker.kwargs.get("device") or device)
    dtype = getattr(request, "param", None)
    if dtype is None:  # taken with request.getfixturevalue: pytest_generate_tests never saw it
        dtypes = _chosen_dtypes(config, marker)
        if len(dtypes) != 1:
            pytest.fail(
                f"{request.node.nodeid}: the derivcheck fixture runs a test once per dtype "
                f"({', '.join(dtypes)}): take it as an argument of the test or of one of its "
                "fixtures, not with request.getfixturevalue",
                pytrace=False,
            )
        dtype = dtypes[0]
    return Derivcheck(str(dtype), device)


def _register_fixture() -> Any:
    try:
        import pytest
    except ImportError:  # used without pytest: the helpers above still work
        return None
    return pytest.fixture(name="derivcheck")(_fixture)


derivcheck_fixture = _register_fixture()
