"""The survey: every covered torch operation checked over sampled points, per dtype.

For each operation of :data:`verifier.core.ops.OPERATIONS`, each dtype and each device (the CPU
by default), points are drawn
from the operation's domain (half uniform, half log-uniform in magnitude so that tiny and huge
arguments are reached, plus its special points) and checked with :func:`verifier.core.check`
(gradient and Hessian). Each (operation, dtype, device) gives one :class:`Finding`: the verdict
counts, the worst error/allowed with its point and entry, and the operations blamed for
failures.
``docs/survey-torch-2.13-cpu.md`` is a table written by :func:`markdown`.

>>> points = sample_points({"x": (0.0, 1.0)}, 4, seed=0)
>>> len(points), all(0.0 <= p["x"] <= 1.0 for p in points)
(4, True)
"""

from __future__ import annotations

import math
import multiprocessing
import random
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from typing import Any

from verifier.core.floats.dtypes import DTYPES
from verifier.core.judge.report import Entry
from verifier.core.ops import OPERATIONS, Operation

SURVEY_DTYPES = ("float64", "float32", "float16", "bfloat16")
DEFAULT_SURVEY_POINTS = 1000
TINY_MAGNITUDE = 1e-300
"""Smallest magnitude the log-uniform half draws (subnormal or 0 in the narrower dtypes)."""


@dataclass
class Finding:
    """One operation in one dtype on one device.

    Attributes:
        operation, expression, dtype, device: what was checked, and where.
        points: how many points.
        counts: verdict name to number of entries.
        worst_ratio: the largest error/allowed over the entries that have one.
        worst_point, worst_entry: where (the point, ``gradient x`` or ``hessian x,y``).
        worst_verdict: that entry's verdict.
        worst_autograd, worst_reference: its autograd and exact values.
        blamed: operation and phase named by failures, with their counts.
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


def sample_points(
    domains: Mapping[str, tuple[float, float]], count: int, *, seed: int
) -> list[dict[str, float]]:
    """``count`` points: half uniform in each domain, half log-uniform in magnitude."""
    rng = random.Random(seed)
    points = []
    for index in range(count):
        point = {}
        for name, (low, high) in domains.items():
            point[name] = rng.uniform(low, high) if index % 2 == 0 else _log_uniform(rng, low, high)
        points.append(point)
    return points


def _log_uniform(rng: random.Random, low: float, high: float) -> float:
    """A value of [low, high] whose magnitude is log-uniform (signs as the domain allows)."""
    signs = [s for s in (1, -1) if (high > 0 if s > 0 else low < 0)]
    sign = rng.choice(signs)
    top = high if sign > 0 else -low
    bottom = max(TINY_MAGNITUDE, low if sign > 0 and low > 0 else TINY_MAGNITUDE)
    value = sign * 10 ** rng.uniform(math.log10(bottom), math.log10(top))
    return min(max(value, low), high)


def survey_operation(
    operation: Operation, dtype: str, count: int, *, seed: int = 0, device: str = "cpu"
) -> Finding:
    """Check one operation in one dtype on ``device`` at ``count`` sampled points and its
    special points (the same points on every device)."""
    from verifier.core.check import check  # torch is loaded only where a survey runs

    # A domain wider than the dtype's range is cut to it (float16 ends at 65504).
    largest = DTYPES[dtype].max_finite
    domains = {
        name: (max(low, -largest), min(high, largest))
        for name, (low, high) in operation.domains.items()
    }
    points = list(operation.specials) + sample_points(domains, count, seed=seed)
    finding = Finding(operation.name, operation.expression, dtype, len(points), device=device)
    started = time.perf_counter()
    report = check(
        operation.expression, at=points, dtype=dtype, hessian=operation.hessian, device=device
    )
    finding.seconds = time.perf_counter() - started
    if report.verdict == "error":
        finding.error = report.reason
        return finding
    counts: Counter[str] = Counter()
    blamed: Counter[str] = Counter()
    worst: Entry | None = None
    worst_ratio = -math.inf
    for entry in report.entries:
        verdict = _verdict(entry)
        counts[verdict] += 1
        if verdict == "fail" and entry.blame:
            blamed[f"{entry.blame} ({entry.phase})" if entry.phase else entry.blame] += 1
    # The worst failure where there is one, else the worst entry of all.
    failing = [e for e in report.entries if _verdict(e) == "fail"]
    for entry in failing or report.entries:
        if entry.ratio is not None and math.isfinite(entry.ratio) and entry.ratio > worst_ratio:
            worst, worst_ratio = entry, entry.ratio
    finding.counts = dict(counts)
    finding.blamed = dict(blamed.most_common())
    if worst is not None:
        finding.worst_ratio = worst.ratio
        finding.worst_point = report.points[worst.point]
        finding.worst_entry = f"{worst.kind} {','.join(worst.wrt or ())}".strip()
        finding.worst_verdict = _verdict(worst)
        finding.worst_autograd = worst.autograd
        finding.worst_reference = worst.reference
    return finding


def _verdict(entry: Entry) -> str:
    return str(getattr(entry.verdict, "value", entry.verdict))


def _run(task: tuple[Operation, str, int, int, str]) -> Finding:
    operation, dtype, count, seed, device = task
    try:
        return survey_operation(operation, dtype, count, seed=seed, device=device)
    except Exception as error:  # noqa: BLE001  (one operation's crash is its row, not the survey's end)
        return Finding(
            operation.name, operation.expression, dtype, count, error=repr(error), device=device
        )


def run_survey(
    operations: Sequence[Operation] = OPERATIONS,
    dtypes: Iterable[str] = SURVEY_DTYPES,
    *,
    points: int = DEFAULT_SURVEY_POINTS,
    seed: int = 0,
    workers: int = 1,
    progress: Callable[[Finding], None] | None = None,
    devices: Sequence[str] = ("cpu",),
) -> list[Finding]:
    """Survey ``operations`` in ``dtypes`` on ``devices``; ``workers`` processes share the
    work (started fresh, not forked, when a device is CUDA: CUDA does not survive a fork)."""
    tasks = [
        (op, dtype, points, seed, device)
        for op in operations
        for dtype in dtypes
        for device in devices
    ]
    findings: list[Finding] = []
    if workers <= 1:
        results: Iterable[Finding] = map(_run, tasks)
        for finding in results:
            findings.append(finding)
            if progress is not None:
                progress(finding)
        return findings
    cuda = any(device.startswith("cuda") for device in devices)
    context = multiprocessing.get_context("spawn") if cuda else None
    with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
        for finding in pool.map(_run, tasks):
            findings.append(finding)
            if progress is not None:
                progress(finding)
    return findings


def to_json(findings: Sequence[Finding], meta: Mapping[str, Any]) -> dict[str, Any]:
    """The survey as a JSON-ready dict: ``meta`` (versions, command) and one row per finding."""
    return {"meta": dict(meta), "findings": [asdict(f) for f in findings]}


_VERDICT_COLUMNS = ("pass", "ill-conditioned", "fail", "range", "nonfinite", "undefined", "domain")


def markdown(findings: Sequence[Finding], meta: Mapping[str, Any]) -> str:
    """The findings table in Markdown, failures first, then every row."""
    lines = [f"# Survey: {meta.get('title', 'derivative accuracy of torch operations')}", ""]
    for key in ("command", "torch", "device", "points", "seconds"):
        if key in meta:
            lines.append(f"- {key}: `{meta[key]}`")
    lines += ["", "Counts are entries (gradient and Hessian elements at each point).", ""]
    failing = [f for f in findings if f.counts.get("fail")]
    lines += ["## Failures", ""]
    if not failing:
        lines.append("No operation failed.")
    for f in failing:
        lines.append(
            f"- `{f.expression}` in {f.dtype} on {f.device}: {f.counts['fail']} failing "
            f"entries; worst {_ratio(f.worst_ratio)} x allowed at {_point(f.worst_point)} "
            f"({f.worst_entry}: autograd {_number(f.worst_autograd)}, exact "
            f"{_number(f.worst_reference)}); blamed: {_blamed(f.blamed)}"
        )
    header = [
        "operation",
        "dtype",
        "device",
        *_VERDICT_COLUMNS,
        "worst err/allowed",
        "at",
        "entry",
        "blamed",
    ]
    lines += ["", "## All operations", "", "| " + " | ".join(header) + " |"]
    lines.append("|" + " --- |" * len(header))
    for f in findings:
        if f.error is not None:
            cells = [f"`{f.expression}`", f.dtype, f.device, f"error: {f.error}"]
            cells += [""] * (len(header) - len(cells))
        else:
            cells = [
                f"`{f.expression}`",
                f.dtype,
                f.device,
                *(str(f.counts.get(v, 0)) for v in _VERDICT_COLUMNS),
                _ratio(f.worst_ratio),
                _point(f.worst_point),
                f.worst_entry or "",
                _blamed(f.blamed),
            ]
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return "\n".join(lines) + "\n"


def _ratio(value: float | None) -> str:
    return "" if value is None else f"{value:.3g}"


def _number(value: float | None) -> str:
    return "" if value is None else f"{value:.17g}"


def _point(point: Mapping[str, float] | None) -> str:
    if not point:
        return ""
    return ", ".join(f"{k}={v!r}" for k, v in point.items())


def _blamed(blamed: Mapping[str, int]) -> str:
    return "; ".join(f"{name} x{count}" for name, count in blamed.items())
