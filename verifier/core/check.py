"""``check()``: one expression, its points and options, in; a report out.

The symbolic side (SymPy derivatives, certified references) runs in the sandbox process while
autograd runs here, and the two meet entry by entry.

>>> report = check("3*x**2 + 2*x*y + y**2", at={"x": 2, "y": 1})
>>> report.verdict, report.gradient, report.hessian
('pass', [[14.0, 6.0]], [[[6.0, 2.0], [2.0, 2.0]]])
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping, Sequence
from importlib import metadata

import flint
import sympy
import torch

from verifier.core.autograd import (
    SEED_IDIOM_NOTE,
    AutogradResult,
    resolve_device,
    run_autograd,
)
from verifier.core.compare import judge
from verifier.core.dtypes import get_dtype
from verifier.core.parse import parse_expression
from verifier.core.points import PointInput, round_points, sample_points
from verifier.core.reference import METHOD_ARB, OK, ReferenceValue, compute_truth
from verifier.core.report import ERROR, Entry, Report, worst
from verifier.core.sandbox import SandboxCrash, SandboxTimeout, thread_sandbox
from verifier.core.symbolic import Key, distinct_nodes, entry_keys, node_key
from verifier.core.tolerance import magnitudes, make_tolerance
from verifier.errors import ExpressionError, OptionError, PointError

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
    symbolic_timeout_s: float = DEFAULT_SYMBOLIC_TIMEOUT_S,
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
        strict: count ``undefined`` (no derivative at the point) as a failure.
        symbolic_timeout_s: budget for SymPy's derivatives; past it the verdict is ``error``.

    Returns:
        The report; ``report.verdict`` is the worst entry verdict.

    Raises:
        InputError: the expression, a point or an option is invalid (nothing ran).
    """
    started = time.perf_counter()
    parsed = parse_expression(expression)
    if not parsed.variables:
        raise ExpressionError("the expression has no variables to differentiate by")
    fmt = get_dtype(dtype)
    tolerance = make_tolerance(fmt, rtol, atol)
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
    parsed_at = time.perf_counter()

    report = Report(
        expression=expression,
        variables=list(parsed.variables),
        dtype=fmt.name,
        device=str(torch_device),
        verdict=ERROR,
        points=points,
        strict=strict,
        tolerance=tolerance.to_dict(),
        functions=sorted(parsed.functions),
        versions=_versions(),
    )
    node_list = distinct_nodes(parsed.expr) if nodes else []
    keys = entry_keys(parsed, hessian=hessian, nodes=nodes)
    reference_budget = DEFAULT_REFERENCE_TIMEOUT_S + REFERENCE_SECONDS_PER_VALUE * len(
        points
    ) * len(keys)
    timings: dict[str, float] = {}

    def autograd_side() -> tuple[AutogradResult, dict[Key, list[float]]]:
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
        return result, magnitudes(parsed.expr, parsed.variables, points, keys)

    try:
        (truth_keys, references, truth_timings), (autograd, scale) = thread_sandbox().call(
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
    for index, row in enumerate(references):
        for key, reference in zip(keys, row, strict=True):
            kind, wrt, node = key
            judgement = judge(
                autograd.values[key][index],
                reference,
                scale[key][index],
                tolerance,
                fmt,
                strict=strict,
            )
            report.entries.append(
                Entry(
                    kind=kind,
                    wrt=None if node is not None else wrt,
                    node=None if node is None else labels[node],
                    point=index,
                    autograd=autograd.values[key][index],
                    reference=judgement.reference,
                    reference_radius=reference.radius,
                    abs_error=judgement.abs_error,
                    rel_error=judgement.rel_error,
                    ulp_error=judgement.ulp_error,
                    tolerance=judgement.allowed,
                    verdict=judgement.verdict,
                    detail=judgement.detail,
                )
            )
    report.verdict = worst({entry.verdict for entry in report.entries})
    report.reference_method = _method(row for rows in references for row in rows)
    if autograd.seed_idiom is not None:
        report.notes.append(SEED_IDIOM_NOTE.format(result=autograd.seed_idiom))
    return _finish(report, started, parsed_at, timings)


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
