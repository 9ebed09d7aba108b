"""The survey: every covered torch operation checked over sampled points, per dtype.

For each operation of :data:`verifier.core.ops.OPERATIONS`, each dtype and each device (the CPU
by default), the points of :mod:`verifier.core.survey_points` (uniform and log-uniform points
within the dtype's range, the operation's special points and its special regions) are checked
with :func:`verifier.core.check` (gradient and Hessian). Each (operation, dtype, device) gives
one :class:`Finding`: the verdict counts, the worst entry with its point, how many ulps it is
from the exact value (:func:`verifier.core.floats.ordinals.ulps_apart`, a number that does not
saturate, unlike error/allowed), its correct bits and error/allowed, the operations blamed for
failures, and an example of its non-finite entries.
``docs/survey-torch-2.13-cpu.md`` is written by :func:`markdown`: the failures ranked by their
worst error in ulps, the rows with non-finite results, then every row.

>>> points = sample_points({"x": (0.0, 1.0)}, 4, seed=0)
>>> len(points), all(0.0 <= p["x"] <= 1.0 for p in points)
(4, True)
"""

from __future__ import annotations

import math
import multiprocessing
import os
import platform
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from verifier.core.floats.dtypes import DTYPES, DType
from verifier.core.floats.ordinals import ulps_apart
from verifier.core.judge.entry import ENTRY_KEYS, NUMBER_FIELDS
from verifier.core.judge.report import Entry
from verifier.core.ops import OPERATIONS, Operation
from verifier.core.program.modes import MODES
from verifier.core.survey_points import DEFAULT_REGION_POINTS, sample_points, survey_points

__all__ = ["DEFAULT_REGION_POINTS", "sample_points"]

SURVEY_DTYPES = ("float64", "float32", "float16", "bfloat16")
DEFAULT_SURVEY_POINTS = 1000
DEFAULT_ROW = "default"
"""The ``mode`` of a row of the default paths (autograd's reverse and reverse-over-reverse);
the rows of further paths (``modes``) name theirs."""
CPUINFO = Path("/proc/cpuinfo")
"""Where Linux names the CPU model (``model name``); elsewhere :mod:`platform` is asked."""
BITS_CAVEAT = (
    "torch's last bits depend on the kernels it picks for the CPU (the capability above) and "
    "on the CPU itself: on another machine some counts, worst points and worst values differ."
)


@dataclass
class Finding:
    """One operation in one dtype on one device.

    Attributes:
        operation, expression, dtype, device: what was checked, and where.
        points: how many points.
        counts: verdict name to number of entries.
        worst_ulps: how many of the dtype's ulps the worst entry's autograd value is from the
            exact value, counted along the dtype's numbers (uncapped; infinite for a
            non-finite value). The worst entry is the failure with the most, else the entry
            of largest error/allowed.
        worst_bits: that entry's correct bits.
        worst_ratio: that entry's error/allowed (capped where autograd is 0: then it is
            1/relative tolerance whatever the exact value).
        worst_point, worst_entry: where (the point, ``gradient x`` or ``hessian x,y``).
        worst_verdict: that entry's verdict.
        worst_autograd, worst_reference: its autograd and exact values.
        blamed: operation and phase named by failures, with their counts.
        nonfinite_point, nonfinite_entry, nonfinite_autograd, nonfinite_reference,
            nonfinite_detail: the first non-finite entry, as an example.
        nonfinite_blamed: operation and phase named by non-finite entries, with their counts.
        mode: the derivative path of the row (:data:`DEFAULT_ROW` for the default paths').
        baseline: for a further path's row, the default paths' counts of the same entries
            (gradient or Hessian).
        cpu_capability: the CPU kernel path torch ran the row's check on
            (``torch.backends.cpu.get_cpu_capability()`` in that process).
        seconds: wall time of the check.
        error: why the check could not run, if it could not.
    """

    operation: str
    expression: str
    dtype: str
    points: int
    counts: dict[str, int] = field(default_factory=dict)
    worst_ratio: float | None = None
    worst_point: dict[str, float] | None = None
    worst_entry: str | None = None
    worst_verdict: str | None = None
    worst_autograd: float | None = None
    worst_reference: float | None = None
    blamed: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    error: str | None = None
    device: str = "cpu"
    worst_ulps: float | None = None
    worst_bits: float | None = None
    nonfinite_point: dict[str, float] | None = None
    nonfinite_entry: str | None = None
    nonfinite_autograd: float | None = None
    nonfinite_reference: float | None = None
    nonfinite_detail: str | None = None
    nonfinite_blamed: dict[str, int] = field(default_factory=dict)
    mode: str = DEFAULT_ROW
    baseline: dict[str, int] = field(default_factory=dict)
    cpu_capability: str | None = None


def survey_operation(
    operation: Operation,
    dtype: str,
    count: int,
    *,
    seed: int = 0,
    device: str = "cpu",
    region_points: int = DEFAULT_REGION_POINTS,
    modes: str | Sequence[str] | None = None,
) -> list[Finding]:
    """Check one operation in one dtype on ``device`` at ``count`` sampled points, its
    special points and ``region_points`` points of each special region (the same points on
    every device): the row of the default paths, then one row per further path of
    ``modes``."""
    from verifier.core.check import check  # torch is loaded only where a survey runs

    points = survey_points(operation, DTYPES[dtype], count, region_points, seed=seed)
    finding = Finding(operation.name, operation.expression, dtype, len(points), device=device)
    started = time.perf_counter()
    report = check(
        operation.expression,
        at=points,
        dtype=dtype,
        hessian=operation.hessian,
        device=device,
        modes=modes,
    )
    finding.seconds = time.perf_counter() - started
    finding.cpu_capability = _capability()
    if report.verdict == "error":
        finding.error = report.reason
        return [finding]
    _fill(finding, report.entries, report.points, DTYPES[dtype])
    rows = [finding]
    by_kind: dict[str, Counter[str]] = {"gradient": Counter(), "hessian": Counter()}
    for entry in report.entries:
        by_kind.setdefault(entry.kind, Counter())[_verdict(entry)] += 1
    for path in report.paths or ():
        row = Finding(
            operation.name,
            operation.expression,
            dtype,
            len(points),
            device=device,
            mode=path["mode"],
            error=path["error"],
            baseline=dict(by_kind["gradient" if MODES[path["mode"]].order == 1 else "hessian"]),
            cpu_capability=finding.cpu_capability,
        )
        if path["error"] is None:
            entries = [_entry_of(found) for found in path["entries"]]
            _fill(row, entries, report.points, DTYPES[dtype])
            row.counts = dict(path["counts"])
        rows.append(row)
    return rows


def _capability() -> str:
    import torch

    return str(torch.backends.cpu.get_cpu_capability())


def _entry_of(found: Mapping[str, Any]) -> Entry:
    """An entry of a path's section (the report format, with its ``mode``) as an Entry."""
    given: dict[str, Any] = {name: found.get(name) for name in ENTRY_KEYS}
    for name in NUMBER_FIELDS:
        value = given[name]
        given[name] = float(value) if isinstance(value, int | float | str) else None
    given["wrt"] = None if given["wrt"] is None else tuple(given["wrt"])
    return Entry(**given)


def _fill(
    finding: Finding, entries: Sequence[Entry], points: Sequence[Mapping[str, float]], dtype: DType
) -> None:
    """A row's counts, blame, non-finite example and worst entry from its ``entries``."""
    report_points = [dict(point) for point in points]
    counts: Counter[str] = Counter()
    blamed: dict[str, Counter[str]] = {"fail": Counter(), "nonfinite": Counter()}
    nonfinite: Entry | None = None
    for entry in entries:
        verdict = _verdict(entry)
        counts[verdict] += 1
        if verdict in blamed and entry.blame:
            blamed[verdict][_blame(entry)] += 1
        if verdict == "nonfinite" and nonfinite is None:
            nonfinite = entry
    finding.counts = dict(counts)
    finding.blamed = dict(blamed["fail"].most_common())
    finding.nonfinite_blamed = dict(blamed["nonfinite"].most_common())
    if nonfinite is not None:
        finding.nonfinite_point = report_points[nonfinite.point]
        finding.nonfinite_entry = _label(nonfinite)
        finding.nonfinite_autograd = nonfinite.autograd
        finding.nonfinite_reference = nonfinite.reference
        finding.nonfinite_detail = nonfinite.detail
    worst = _worst(entries, dtype)
    if worst is not None:
        entry, finding.worst_ulps = worst
        finding.worst_ratio = entry.ratio
        finding.worst_bits = entry.correct_bits
        finding.worst_point = report_points[entry.point]
        finding.worst_entry = _label(entry)
        finding.worst_verdict = _verdict(entry)
        finding.worst_autograd = entry.autograd
        finding.worst_reference = entry.reference


def _worst(entries: Sequence[Entry], dtype: DType) -> tuple[Entry, float] | None:
    """The failure furthest in ulps from its exact value (ties: the larger error/allowed),
    else the entry of largest finite error/allowed; with its distance in ulps."""
    failing = [e for e in entries if _verdict(e) == "fail" and e.reference is not None]
    if failing:
        ulps, _, entry = max(
            ((_ulps_of(e, dtype), _finite(e.ratio), e) for e in failing),
            key=lambda item: (item[0], item[1]),
        )
        return entry, ulps
    rated = [e for e in entries if e.ratio is not None and math.isfinite(e.ratio)]
    if not rated:
        return None
    entry = max(rated, key=lambda e: e.ratio or 0.0)
    return entry, _ulps_of(entry, dtype)


def _ulps_of(entry: Entry, dtype: DType) -> float:
    """How many ulps ``entry``'s autograd value is from its exact value (NaN without one)."""
    if entry.reference is None:
        return math.nan
    return ulps_apart(entry.autograd, entry.reference, dtype)


def _finite(value: float | None) -> float:
    return value if value is not None and math.isfinite(value) else -math.inf


def _blame(entry: Entry) -> str:
    return f"{entry.blame} ({entry.phase})" if entry.phase else str(entry.blame)


def _label(entry: Entry) -> str:
    return f"{entry.kind} {','.join(entry.wrt or ())}".strip()


def _verdict(entry: Entry) -> str:
    return str(getattr(entry.verdict, "value", entry.verdict))


Task = tuple[Operation, str, int, int, str, int, "str | tuple[str, ...] | None"]


def _run(task: Task) -> list[Finding]:
    operation, dtype, count, seed, device, per_region, modes = task
    try:
        return survey_operation(
            operation,
            dtype,
            count,
            seed=seed,
            device=device,
            region_points=per_region,
            modes=modes,
        )
    except Exception as error:  # noqa: BLE001  (one operation's crash is its row, not the survey's end)
        return [
            Finding(
                operation.name, operation.expression, dtype, count, error=repr(error), device=device
            )
        ]


def run_survey(
    operations: Sequence[Operation] = OPERATIONS,
    dtypes: Iterable[str] = SURVEY_DTYPES,
    *,
    points: int = DEFAULT_SURVEY_POINTS,
    seed: int = 0,
    workers: int = 1,
    progress: Callable[[Finding], None] | None = None,
    devices: Sequence[str] = ("cpu",),
    region_points: int = DEFAULT_REGION_POINTS,
    modes: str | Sequence[str] | None = None,
    capabilities: Sequence[str] = (),
) -> list[Finding]:
    """Survey ``operations`` in ``dtypes`` on ``devices``, along the default paths and the
    further ``modes`` (a row each); ``workers`` processes share the work (started fresh, not
    forked, when a device is CUDA: CUDA does not survive a fork). Each of ``capabilities``
    (``ATEN_CPU_CAPABILITY`` values: ``default``, ``avx2``, ``avx512``) runs every task again
    in fresh processes that torch starts on that CPU kernel path; none: this process's.
    ``progress`` is told of each operation's rows, the default one."""
    chosen = modes if modes is None or isinstance(modes, str) else tuple(modes)
    tasks: list[Task] = [
        (op, dtype, points, seed, device, region_points, chosen)
        for op in operations
        for dtype in dtypes
        for device in devices
    ]
    findings: list[Finding] = []
    cuda = any(device.startswith("cuda") for device in devices)
    runs: list[str | None] = [*capabilities] or [None]
    for capability in runs:
        if capability is None and workers <= 1:
            results: Iterable[list[Finding]] = map(_run, tasks)
            findings.extend(_gathered(results, progress))
            continue
        fresh = cuda or capability is not None
        context = multiprocessing.get_context("spawn") if fresh else None
        with (
            _capability_env(capability),
            ProcessPoolExecutor(max_workers=max(1, workers), mp_context=context) as pool,
        ):
            findings.extend(_gathered(pool.map(_run, tasks), progress))
    return findings


def _gathered(
    results: Iterable[list[Finding]], progress: Callable[[Finding], None] | None
) -> Iterator[Finding]:
    for rows in results:
        if progress is not None:
            progress(rows[0])
        yield from rows


CAPABILITY_VARIABLE = "ATEN_CPU_CAPABILITY"
"""The variable torch reads once, when it loads, to pick its CPU kernels."""


@contextmanager
def _capability_env(capability: str | None) -> Iterator[None]:
    """``ATEN_CPU_CAPABILITY`` set to ``capability`` for the processes started inside (they
    inherit the environment when spawned), as before afterwards."""
    if capability is None:
        yield
        return
    before = os.environ.get(CAPABILITY_VARIABLE)
    os.environ[CAPABILITY_VARIABLE] = capability
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(CAPABILITY_VARIABLE, None)
        else:
            os.environ[CAPABILITY_VARIABLE] = before


def machine() -> dict[str, str]:
    """What produced the bits: torch's version, the CPU kernel path torch picked
    (``torch.backends.cpu.get_cpu_capability()``), the CPU model and the architecture."""
    import torch

    return {
        "torch": torch.__version__,
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "cpu": cpu_model(),
        "machine": platform.machine(),
    }


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo, else what :mod:`platform` says."""
    try:
        for line in CPUINFO.read_text(encoding="utf-8", errors="replace").splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name" and value.strip():
                return value.strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def to_json(findings: Sequence[Finding], meta: Mapping[str, Any]) -> dict[str, Any]:
    """The survey as a JSON-ready dict: ``meta`` (versions, machine, command) and one row per
    finding."""
    return {"meta": dict(meta), "findings": [asdict(f) for f in findings]}


_VERDICT_COLUMNS = ("pass", "ill-conditioned", "fail", "range", "nonfinite", "undefined", "domain")
_META_KEYS = (
    "command",
    "torch",
    "cpu_capability",
    "cpu",
    "machine",
    "device",
    "points",
    "region_points",
    "modes",
    "cpu_capabilities",
    "seconds",
)


def ranked_failures(findings: Sequence[Finding]) -> list[Finding]:
    """The rows with failures, worst first: by their worst error in ulps (which does not
    saturate), then by error/allowed."""
    failing = [f for f in findings if f.counts.get("fail")]
    return sorted(failing, key=lambda f: (-_key(f.worst_ulps), -_key(f.worst_ratio)))


def nonfinite_rows(findings: Sequence[Finding]) -> list[Finding]:
    """The rows with non-finite entries, those without failures first, most entries first."""
    rows = [f for f in findings if f.counts.get("nonfinite")]
    return sorted(rows, key=lambda f: (bool(f.counts.get("fail")), -f.counts["nonfinite"]))


def _key(value: float | None) -> float:
    return -math.inf if value is None or math.isnan(value) else value


def markdown(findings: Sequence[Finding], meta: Mapping[str, Any]) -> str:
    """The findings in Markdown: the failures ranked, the non-finite results, every row."""
    lines = [f"# Survey: {meta.get('title', 'derivative accuracy of torch operations')}", ""]
    for key in _META_KEYS:
        if key in meta:
            lines.append(f"- {key}: `{meta[key]}`")
    if "note" in meta:
        lines += ["", str(meta["note"])]
    lines += ["", BITS_CAVEAT, ""]
    lines += [
        "Counts are entries (gradient and Hessian elements at each point). The points are "
        "uniform and log-uniform within each dtype's range plus each operation's special "
        "regions (verifier/core/ops.py). The worst entry of a row is its failure furthest "
        "from the exact value in ulps counted along the dtype's numbers (a number that keeps "
        "growing where error/allowed stops: an autograd 0 gives error/allowed 1/tolerance "
        "whatever the exact value).",
        "",
    ]
    failing = ranked_failures(findings)
    kernels = len({f.cpu_capability for f in findings}) > 1
    lines += ["## Failures, worst first", ""]
    if not failing:
        lines.append("No operation failed.")
    for f in failing:
        lines.append(
            f"- `{f.expression}` in {f.dtype} on {f.device}{_along(f, kernels)}: "
            f"{f.counts['fail']} failing entries; worst {_ulps(f.worst_ulps)} ulps "
            f"({_bits(f.worst_bits)} correct bits, "
            f"{_ratio(f.worst_ratio)} x allowed) at {_point(f.worst_point)} "
            f"({f.worst_entry}: autograd {_number(f.worst_autograd)}, exact "
            f"{_number(f.worst_reference)}); blamed: {_blamed(f.blamed)}"
        )
    moded = any(f.mode != DEFAULT_ROW for f in findings)
    if moded:
        lines += ["", "## Paths that disagree with the default", ""]
        lines += _disagreements(findings) or ["Every path gives the default paths' verdicts."]
    lines += ["", "## Non-finite results", ""]
    rows = nonfinite_rows(findings)
    if not rows:
        lines.append("No operation gave a non-finite derivative where the exact one is finite.")
    else:
        lines += [
            "Rows with `nonfinite` entries (autograd NaN or infinite where the exact value is "
            "finite), those without any `fail` first.",
            "",
        ]
    for f in rows:
        also = f"; also {f.counts['fail']} failing" if f.counts.get("fail") else ""
        lines.append(
            f"- `{f.expression}` in {f.dtype} on {f.device}{_along(f, kernels)}: "
            f"{f.counts['nonfinite']} non-finite entries{also}; e.g. at "
            f"{_point(f.nonfinite_point)} "
            f"({f.nonfinite_entry}: autograd {_number(f.nonfinite_autograd)}, exact "
            f"{_number(f.nonfinite_reference)}): {f.nonfinite_detail or ''}; blamed: "
            f"{_blamed(f.nonfinite_blamed)}"
        )
    header = [
        "operation",
        "dtype",
        "device",
        *(["kernels"] if kernels else []),
        *(["mode"] if moded else []),
        *_VERDICT_COLUMNS,
        "worst ulps",
        "bits",
        "err/allowed",
        "at",
        "entry",
        "blamed",
    ]
    lines += ["", "## All operations", "", "| " + " | ".join(header) + " |"]
    lines.append("|" + " --- |" * len(header))
    for f in findings:
        where = [
            f"`{f.expression}`",
            f.dtype,
            f.device,
            *([f.cpu_capability or ""] if kernels else []),
            *([f.mode] if moded else []),
        ]
        if f.error is not None:
            cells = [*where, f"error: {f.error}"]
            cells += [""] * (len(header) - len(cells))
        else:
            cells = [
                *where,
                *(str(f.counts.get(v, 0)) for v in _VERDICT_COLUMNS),
                _ulps(f.worst_ulps),
                _bits(f.worst_bits),
                _ratio(f.worst_ratio),
                _point(f.worst_point),
                f.worst_entry or "",
                _blamed(f.blamed),
            ]
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return "\n".join(lines) + "\n"


def _along(finding: Finding, kernels: bool = False) -> str:
    """`` (<kernel path>) along <mode>``: the kernel path where rows ran on several, the mode
    for a row of a further path."""
    where = f" ({finding.cpu_capability})" if kernels else ""
    return where + ("" if finding.mode == DEFAULT_ROW else f" along {finding.mode}")


_WRONG = ("fail", "nonfinite")


def _disagreements(findings: Sequence[Finding]) -> list[str]:
    """Per operation, dtype and device, the further paths whose wrong entries (``fail``,
    ``nonfinite``) differ in number from the default paths' of the same entries; then the
    paths torch refused, each refusal once with the rows it refused."""
    default = {(f.operation, f.dtype, f.device): f for f in findings if f.mode == DEFAULT_ROW}
    lines = []
    refused: dict[tuple[str, str], list[str]] = {}
    for f in findings:
        base = default.get((f.operation, f.dtype, f.device))
        if f.mode == DEFAULT_ROW or base is None or base.error is not None:
            continue
        if f.error is not None:
            refused.setdefault((f.mode, f.error), []).append(f"`{f.expression}` {f.dtype}")
            continue
        mine = [f.counts.get(v, 0) for v in _WRONG]
        theirs = [f.baseline.get(v, 0) for v in _WRONG]
        if mine != theirs:
            lines.append(
                f"- `{f.expression}` in {f.dtype} along {f.mode}: {mine[0]} fail, {mine[1]} "
                f"nonfinite (the default paths: {theirs[0]} fail, {theirs[1]} nonfinite)"
                f"{_example(f)}"
            )
    for (mode, error), rows in refused.items():
        shown = "every row" if len(rows) == len(default) else ", ".join(rows)
        lines.append(f"- refused along {mode} ({len(rows)} rows: {shown}): {error}")
    return lines


def _example(finding: Finding) -> str:
    """The row's worst failure, else its first non-finite entry, else nothing."""
    if finding.worst_point is not None and finding.counts.get("fail"):
        return (
            f"; worst at {_point(finding.worst_point)} ({finding.worst_entry}: autograd "
            f"{_number(finding.worst_autograd)}, exact {_number(finding.worst_reference)}); "
            f"blamed: {_blamed(finding.blamed)}"
        )
    if finding.nonfinite_point is not None:
        return (
            f"; e.g. at {_point(finding.nonfinite_point)} ({finding.nonfinite_entry}: autograd "
            f"{_number(finding.nonfinite_autograd)}, exact "
            f"{_number(finding.nonfinite_reference)}); blamed: "
            f"{_blamed(finding.nonfinite_blamed)}"
        )
    return ""


def _ratio(value: float | None) -> str:
    return "" if value is None else f"{value:.3g}"


def _ulps(value: float | None) -> str:
    return "" if value is None or math.isnan(value) else f"{value:.3g}"


def _bits(value: float | None) -> str:
    return "" if value is None else f"{value:.1f}"


def _number(value: float | None) -> str:
    return "" if value is None else f"{value:.17g}"


def _point(point: Mapping[str, float] | None) -> str:
    if not point:
        return ""
    return ", ".join(f"{k}={v!r}" for k, v in point.items())


def _blamed(blamed: Mapping[str, int]) -> str:
    return "; ".join(f"{name} x{count}" for name, count in blamed.items())
