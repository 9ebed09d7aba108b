"""``check()``: one expression, its points and options, in; a report out.

The symbolic side (SymPy derivatives, certified references) runs in the sandbox process while
autograd runs here, and the two meet entry by entry.

>>> report = check("3*x**2 + 2*x*y + y**2", at={"x": 2, "y": 1})
>>> report.verdict, report.gradient, report.hessian
('pass', [[14.0, 6.0]], [[[6.0, 2.0], [2.0, 2.0]]])
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable, Mapping, Sequence
from importlib import metadata

import flint
import sympy
import torch

from verifier.core.audit import FORWARD, OVERFLOW, Finding, audit
from verifier.core.autograd import (
    SEED_IDIOM_NOTE,
    AutogradResult,
    resolve_device,
    run_autograd,
)
from verifier.core.compare import Judgement, judge
from verifier.core.conditioning import Conditioning, conditioning
from verifier.core.diagnosis import diagnose
from verifier.core.dtypes import DType, get_dtype
from verifier.core.evaluator import UnsupportedError
from verifier.core.literals import bind_literals
from verifier.core.parse import ParsedExpression, parse_expression, require_variables
from verifier.core.points import PointInput, round_points, sample_points
from verifier.core.reference import METHOD_ARB, OK, ReferenceValue, compute_truth
from verifier.core.report import Entry, Report
from verifier.core.sandbox import SandboxCrash, SandboxTimeout, thread_sandbox
from verifier.core.symbolic import Key, distinct_nodes, entry_keys, node_key
from verifier.core.tolerance import Tolerance, make_tolerance
from verifier.core.verdict import Verdict, fail_on_set, worst
from verifier.errors import OptionError, PointError

DEFAULT_SYMBOLIC_TIMEOUT_S = 30.0
DEFAULT_REFERENCE_TIMEOUT_S = 60.0
REFERENCE_SECONDS_PER_VALUE = 0.005


def check(
    expression: str,
    at: PointInput | Sequence[PointInput] | None = None,
    *,
    dtype: str = "float64",
    device: str = "auto",
    nodes: bool = False,
    hessian: bool = True,
    samples: int | None = None,
    domain: Mapping[str, tuple[float, float]] | None = None,
    seed: int = 0,
    rtol: float | None = None,
    atol: float | None = None,
    strict: bool = False,
    fail_on: Iterable[str] | None = None,
    symbolic_timeout_s: float = DEFAULT_SYMBOLIC_TIMEOUT_S,
    reference_timeout_s: float | None = None,
) -> Report:
    """Check autograd's derivatives of ``expression`` against the exact ones.

    Args:
        expression: SymPy syntax (``^`` also means power), e.g. ``"sin(x)*exp(y)"``.
        at: one point (variable to number or decimal text) or a list of points.
        dtype: ``float64``, ``float32``, ``float16`` or ``bfloat16``.
        device: ``auto`` (CUDA when available), ``cpu`` or ``cuda``.
        nodes: also compare the gradient of every non-leaf node.
        hessian: also compare all second derivatives.
        samples: also draw this many points uniformly from ``domain``.
        domain: variable to (low, high) for sampling; default -1..1.
        seed: seed of the sampler.
        rtol, atol: override the dtype's default tolerance.
        strict: fail on every verdict but ``pass`` and ``domain`` (see ``report.passed``).
        fail_on: the verdicts that make ``report.passed`` false (default ``fail``,
            ``nonfinite``); an unknown name raises OptionError.
        symbolic_timeout_s: budget for SymPy's derivatives; past it the verdict is ``error``.
        reference_timeout_s: the most the certified references may take (a worker passes what
            its hard time limit leaves, so a check ends as ``error: reference timeout``
            before the limit ends its process); by default it grows with the values.

    Returns:
        The report; ``report.verdict`` is the worst entry verdict.

    Raises:
        InputError: the expression, a point or an option is invalid (nothing ran).
    """
    started = time.perf_counter()
    parsed = require_variables(parse_expression(expression))
    fmt = get_dtype(dtype)
    tolerance = make_tolerance(fmt, rtol, atol)
    try:
        failing = fail_on_set(fail_on, strict=strict)
    except ValueError as error:
        raise OptionError(f"fail_on: {error}") from None
    torch_device = resolve_device(device)
    raw: list[PointInput] = []
    if at is not None:
        raw.extend([at] if isinstance(at, Mapping) else list(at))
    if samples is not None:
        raw.extend(sample_points(parsed.variables, samples, domain, seed))
    elif domain is not None:
        raise OptionError("domain is given without samples")
    if not raw:
        raise PointError("no points: give at least one point, or samples")
    points = round_points(raw, parsed.variables, fmt)
    literals = bind_literals(parsed.expr, fmt)
    parsed_at = time.perf_counter()

    report = Report(
        expression=expression,
        variables=list(parsed.variables),
        dtype=fmt.name,
        device=str(torch_device),
        verdict=Verdict.ERROR.value,
        points=points,
        fail_on=sorted(failing),
        tolerance=tolerance.to_dict(),
        functions=sorted(parsed.functions),
        literals=literals.shown,
        versions=_versions(),
    )
    node_list = distinct_nodes(parsed.expr) if nodes else []
    keys = entry_keys(parsed, hessian=hessian, nodes=nodes)
    reference_budget = DEFAULT_REFERENCE_TIMEOUT_S + REFERENCE_SECONDS_PER_VALUE * len(
        points
    ) * len(keys)
    if reference_timeout_s is not None:
        reference_budget = min(reference_budget, reference_timeout_s)
    timings: dict[str, float] = {}

    def autograd_side() -> tuple[AutogradResult, Conditioning]:
        begin = time.perf_counter()
        result = run_autograd(
            parsed.expr,
            parsed.variables,
            points,
            fmt.name,
            torch_device,
            hessian=hessian,
            nodes=node_list,
        )
        timings["autograd"] = time.perf_counter() - begin
        analysis = conditioning(parsed.expr, parsed.variables, points, keys, fmt, tolerance.rtol)
        return result, analysis

    try:
        (truth_keys, references, truth_timings), (autograd, analysis) = thread_sandbox().call(
            compute_truth,
            (expression, hessian, nodes, points, fmt.name),
            [("symbolic", symbolic_timeout_s), ("reference", reference_budget)],
            autograd_side,
        )
    except SandboxTimeout as timeout:
        report.reason = f"{timeout.stage} timeout"
        return _finish(report, started, parsed_at, timings)
    except SandboxCrash as crash:
        report.reason = str(crash)
        return _finish(report, started, parsed_at, timings)
    except (RuntimeError, NotImplementedError) as error:
        report.reason = f"torch could not run this check: {str(error).splitlines()[0]}"
        return _finish(report, started, parsed_at, timings)
    assert truth_keys == keys, "the symbolic and autograd sides disagree on the entries"
    timings.update(truth_timings)

    labels = {node_key(node): str(node) for node in node_list}
    judgements = [
        [
            judge(autograd.values[key][index], reference, tolerance, fmt)
            for key, reference in zip(keys, row, strict=True)
        ]
        for index, row in enumerate(references)
    ]
    findings = _audit(parsed, points, judgements, fmt, tolerance, report.notes, hessian=hessian)
    for overflowed in literals.overflowed:
        detail = f"the literal {overflowed} is beyond {fmt.name}'s range: its tensor is infinite"
        event = Finding(overflowed, FORWARD, OVERFLOW, math.inf, detail)
        for found in findings.values():
            found.insert(0, event)
    for index, row in enumerate(references):
        for key, reference, judgement in zip(keys, row, judgements[index], strict=True):
            report.entries.append(
                _entry(
                    key,
                    index,
                    autograd.values[key][index],
                    reference,
                    judgement,
                    findings.get(index, []),
                    analysis,
                    fmt,
                    labels,
                )
            )
    report.verdict = worst(entry.verdict for entry in report.entries).value
    report.reference_method = _method(row for rows in references for row in rows)
    if autograd.seed_idiom is not None:
        report.notes.append(SEED_IDIOM_NOTE.format(result=autograd.seed_idiom))
    return _finish(report, started, parsed_at, timings)


def _audit(
    parsed: ParsedExpression,
    points: list[dict[str, float]],
    judgements: list[list[Judgement]],
    fmt: DType,
    tolerance: Tolerance,
    notes: list[str],
    *,
    hessian: bool,
) -> dict[int, list[Finding]]:
    """The local audit at the points where some entry is outside the tolerance."""
    outside = [i for i, row in enumerate(judgements) if any(j.verdict is None for j in row)]
    if not outside:
        return {}
    try:
        found = audit(
            parsed.expr,
            parsed.variables,
            [points[i] for i in outside],
            fmt,
            tolerance,
            hessian=hessian,
        )
    except (RuntimeError, NotImplementedError, ValueError, UnsupportedError) as error:
        # Without the audit no operation is blamed; the bound alone decides (see diagnosis).
        notes.append(f"the local audit could not run: {str(error).splitlines()[0]}")
        return {}
    return dict(zip(outside, found, strict=True))


def _entry(
    key: Key,
    index: int,
    value: float,
    reference: ReferenceValue,
    judgement: Judgement,
    findings: list[Finding],
    analysis: Conditioning,
    fmt: DType,
    labels: dict[str, str],
) -> Entry:
    kind, wrt, node = key
    verdict, detail, blame, phase = judgement.verdict, judgement.detail, None, None
    if verdict is None:
        diagnosis = diagnose(key, index, value, judgement, findings, analysis, fmt)
        verdict, detail, phase = diagnosis.verdict, diagnosis.detail, diagnosis.phase
        blame = None if diagnosis.blame is None else str(diagnosis.blame)
    condition = None
    if judgement.reference is not None and reference.status == OK:
        condition = analysis.factor(key, index, judgement.reference)
    return Entry(
        kind=kind,
        wrt=None if node is not None else wrt,
        node=None if node is None else labels[node],
        point=index,
        autograd=value,
        reference=judgement.reference,
        reference_radius=reference.radius,
        abs_error=judgement.abs_error,
        rel_error=judgement.rel_error,
        ulp_error=judgement.ulp_error,
        tolerance=judgement.allowed,
        verdict=verdict,
        detail=detail,
        ratio=judgement.ratio,
        condition=condition,
        correct_bits=judgement.correct_bits,
        blame=blame,
        phase=phase,
    )


def _method(values: Iterable[ReferenceValue]) -> str:
    methods = sorted({value.method for value in values if value.status == OK})
    return "; ".join(methods) if methods else METHOD_ARB


def _finish(report: Report, started: float, parsed_at: float, timings: dict[str, float]) -> Report:
    total = time.perf_counter() - started
    report.timings = {"parse": parsed_at - started}
    report.timings.update(
        (stage, timings.get(stage, 0.0)) for stage in ("symbolic", "autograd", "reference")
    )
    report.timings["total"] = total
    return report


def _versions() -> dict[str, str]:
    try:
        own = metadata.version("derivcheck")
    except metadata.PackageNotFoundError:
        own = "unknown"
    return {
        "derivcheck": own,
        "torch": torch.__version__,
        "sympy": sympy.__version__,
        "python_flint": flint.__version__,
    }
