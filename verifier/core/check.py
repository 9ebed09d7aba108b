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
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from functools import cache
from importlib import metadata
from typing import Any, Unpack

import flint
import numpy as np
import sympy
import torch

from verifier.core.exact.evaluator import UnsupportedError
from verifier.core.exact.reference import (
    METHOD_ARB,
    METHODS,
    OK,
    STATUSES,
    ReferenceTable,
    ReferenceValue,
    compute_table,
)
from verifier.core.exact.sandbox import (
    SandboxCrash,
    SandboxTimeout,
    thread_sandbox,
)
from verifier.core.expression import registry
from verifier.core.expression.cost import estimate
from verifier.core.expression.custom import CustomFunction
from verifier.core.expression.literals import Literals, bind_literals
from verifier.core.expression.parse import parse_expression, require_variables
from verifier.core.expression.symbolic import (
    GRADIENT,
    HESSIAN,
    VALUE,
    Key,
    distinct_nodes,
    entry_keys,
    node_key,
)
from verifier.core.expression.syntax import ParsedExpression
from verifier.core.floats.dtypes import DType
from verifier.core.floats.points import Floats, PointInput, round_points, sample_points
from verifier.core.judge.audit import (
    FORWARD,
    OVERFLOW,
    SECOND_BACKWARD,
    ExactCache,
    Finding,
    audit,
    phase_name,
)
from verifier.core.judge.columns import EntryColumns, point_major
from verifier.core.judge.compare import Judged, Judgement, judge, judge_table
from verifier.core.judge.conditioning import Conditioning, conditioning
from verifier.core.judge.devices import summary as device_summary
from verifier.core.judge.diagnosis import diagnose
from verifier.core.judge.paths import path_summary, refused_path
from verifier.core.judge.report import Entry, Report
from verifier.core.judge.tolerance import Tolerance
from verifier.core.judge.verdict import Verdict, worst
from verifier.core.options import CheckOptions, OptionFields
from verifier.core.program.autograd import (
    SEED_IDIOM_NOTE,
    AutogradResult,
    resolve_device,
    run_autograd,
)
from verifier.core.program.modes import DEFAULT_MODES, MODES, Mode, parse_modes
from verifier.core.program.paths import expression_function, run_path
from verifier.core.program.translate import CustomFunctionError
from verifier.errors import OptionError, PointError

REFERENCE_BUDGET_FACTOR = 3.0
"""The certified references of a check may take this many times its estimated cost
(verifier/core/expression/cost.py), measured from the end of its symbolic stage; the cost
model's benchmark (benchmarks/cost_model.py) keeps every class of check within its estimate
on the development machine, so the factor is the margin for a slower or busier one."""
MIN_REFERENCE_BUDGET_S = 5.0
"""The references' budget of a check however small its estimate: a fixed part of the work
(starting arb, the first precision) is in no estimate."""
CHECK_INTRA_OP_THREADS = 1
"""torch's intra-op threads while a check runs: the tensors of a check are small enough that
one thread is as fast on a quiet machine, and several stall when the cores are busy
(docs/performance.md has the measurements)."""


def check(
    expression: str,
    at: PointInput | Sequence[PointInput] | None = None,
    *,
    options: CheckOptions | None = None,
    **given: Unpack[OptionFields],
) -> Report:
    """Check autograd's derivatives of ``expression`` against the exact ones.

    Args:
        expression: SymPy syntax (``^`` also means power), e.g. ``"sin(x)*exp(y)"``.
        at: one point (variable to number or decimal text) or a list of points.
        options: the options, resolved (:class:`~verifier.core.options.CheckOptions`); or
        **given: the options by name, as :meth:`CheckOptions.of
            <verifier.core.options.CheckOptions.of>` takes them: ``dtype`` (``float64``,
            ``float32``, ``float16``, ``bfloat16``), ``device`` (``auto``, ``cpu``,
            ``cuda``), ``nodes``, ``hessian``, ``samples`` with ``domain`` and ``seed``,
            ``rtol``/``atol``, ``strict``, ``fail_on``, ``compare_devices``,
            ``symbolic_timeout_s``, ``reference_timeout_s``.

    Returns:
        The report; ``report.verdict`` is the worst entry verdict.

    Raises:
        InputError: the expression, a point or an option is invalid (nothing ran); options
            and options by name together are an OptionError.
    """
    started = time.perf_counter()
    plan = plan_check(expression, at, resolve_options(options, given))
    return run_plan(plan, started)


def resolve_options(options: CheckOptions | None, given: OptionFields) -> CheckOptions:
    """``options`` as given, or built from the options ``given`` by name (not both)."""
    if options is None:
        return CheckOptions.of(**given)
    if given:
        raise OptionError(
            f"give options or options by name, not both (also given: {', '.join(given)})"
        )
    return options


def run_plan(plan: _Plan, started: float, *, values: bool = False) -> Report:
    """Phases two to four of a check: both sides, then the comparison."""
    options = plan.options
    hessian, nodes = options.hessian, options.nodes
    plan.keys = entry_keys(plan.parsed, hessian=hessian, nodes=nodes, values=values)
    plan.node_list = distinct_nodes(plan.parsed.expr) if nodes else []
    parsed_at = time.perf_counter()
    report = _empty_report(plan)
    timings: dict[str, float] = {}
    missing = registry.missing_implementations(plan.parsed.functions)
    if missing:
        report.reason = next(iter(missing.values()))
        return _finish(report, started, parsed_at, timings)
    budgets = [
        ("symbolic", options.symbolic_timeout_s),
        ("reference", _reference_budget(plan, options.reference_timeout_s)),
    ]
    try:
        with _intra_op_threads(CHECK_INTRA_OP_THREADS):
            sides = _run_sides(plan, values, budgets, timings)
    except SandboxTimeout as timeout:
        report.reason = f"{timeout.stage} timeout"
        report.notes.append(_timeout_note(timeout.stage, dict(budgets)[timeout.stage]))
        return _finish(report, started, parsed_at, timings)
    except SandboxCrash as crash:
        report.reason = str(crash)
        return _finish(report, started, parsed_at, timings)
    except CustomFunctionError as error:
        report.reason = str(error)
        return _finish(report, started, parsed_at, timings)
    except torch.OutOfMemoryError as error:
        # What this check held is released, so the next check on this device starts clean.
        if any(device.type == "cuda" for device in plan.devices):
            torch.cuda.empty_cache()
        report.reason = (
            f"resource limit: out of memory on {' or '.join(map(str, plan.devices))}: "
            f"{str(error).splitlines()[0]}"
        )
        return _finish(report, started, parsed_at, timings)
    except (RuntimeError, NotImplementedError) as error:
        report.reason = f"torch could not run this check: {str(error).splitlines()[0]}"
        if plan.black_box:
            report.reason += " (in the backward of a custom function or of the function checked)"
        if hessian and "derivative for" in str(error) and "not implemented" in str(error):
            report.reason += (
                "; torch has no second derivative of this operation, so no Hessian: "
                "check with hessian=False (--no-hessian) to verify the gradient"
            )
        return _finish(report, started, parsed_at, timings)
    with _intra_op_threads(CHECK_INTRA_OP_THREADS):
        _compare(report, plan, sides, hessian=hessian)
        begin = time.perf_counter()
        _judge_paths(report, plan, sides)
        if report.paths is not None:
            timings["paths"] = time.perf_counter() - begin
    return _finish(report, started, parsed_at, timings)


@contextmanager
def _intra_op_threads(count: int) -> Iterator[None]:
    """torch runs with ``count`` intra-op threads inside, as many as before afterwards."""
    before = torch.get_num_threads()
    if before != count:
        torch.set_num_threads(count)
    try:
        yield
    finally:
        if before != count:
            torch.set_num_threads(before)


@dataclass
class _Plan:
    """What a check is about, validated: phase one of :func:`check`."""

    expression: str
    parsed: ParsedExpression
    options: CheckOptions
    device: torch.device
    points: list[dict[str, float]]
    literals: Literals
    compared_device: torch.device | None = None
    keys: list[Key] = field(default_factory=list)
    node_list: list[sympy.Expr] = field(default_factory=list)

    @property
    def fmt(self) -> DType:
        """The check's dtype."""
        return self.options.dtype

    @property
    def tolerance(self) -> Tolerance:
        """The check's tolerance."""
        return self.options.tolerance

    @property
    def devices(self) -> list[torch.device]:
        """The devices autograd runs on: the report's, then the compared one if any."""
        if self.compared_device is None:
            return [self.device]
        return [self.device, self.compared_device]

    @property
    def black_box(self) -> bool:
        """Whether the expression calls a user's function (registered, plugin, or checked)."""
        return bool(self.parsed.expr.atoms(CustomFunction))


@dataclass(frozen=True)
class _Sides:
    """What the two sides computed: references (sandbox) and autograd with its analysis."""

    references: ReferenceTable
    autograd: AutogradResult
    analysis: Conditioning
    compared: AutogradResult | None = None


def plan_check(
    expression: str, at: PointInput | Sequence[PointInput] | None, options: CheckOptions
) -> _Plan:
    """Parse the expression, draw and round the points, resolve the devices: InputError
    before anything runs."""
    parsed = require_variables(parse_expression(expression))
    torch_device, compared_device = _device_pair(options)
    raw: list[PointInput] = []
    if at is not None:
        raw.extend([at] if isinstance(at, Mapping) else list(at))
    if options.samples is not None:
        raw.extend(
            sample_points(
                parsed.variables, options.samples, options.domain, options.seed, options.dtype
            )
        )
    if not raw:
        raise PointError("no points: give at least one point, or samples")
    points = round_points(raw, parsed.variables, options.dtype)
    return _Plan(
        expression=expression,
        parsed=parsed,
        options=options,
        device=torch_device,
        points=points,
        literals=bind_literals(parsed.expr, options.dtype),
        compared_device=compared_device,
    )


def _device_pair(options: CheckOptions) -> tuple[torch.device, torch.device | None]:
    """The report's device and the compared one (None without a comparison), resolved here:
    a CUDA device on a machine without CUDA raises OptionError."""
    names = options.compare_devices
    if names is None:
        return resolve_device(options.device), None
    try:
        return resolve_device(names[0]), resolve_device(names[1])
    except OptionError as error:
        raise OptionError(f"compare_devices: {error}", option="compare_devices") from None


def _empty_report(plan: _Plan) -> Report:
    """The report before any entry: verdict ``error`` until the comparison replaces it."""
    return Report(
        expression=plan.expression,
        variables=list(plan.parsed.variables),
        dtype=plan.fmt.name,
        device=str(plan.device),
        verdict=Verdict.ERROR.value,
        points=plan.points,
        fail_on=plan.options.failing_names,
        tolerance=plan.tolerance.to_dict(),
        functions=sorted(plan.parsed.functions),
        literals=plan.literals.shown,
        versions=_versions(),
    )


def _reference_budget(plan: _Plan, limit_s: float | None) -> float:
    """Seconds the certified references may take: ``REFERENCE_BUDGET_FACTOR`` times the
    check's estimate (at least ``MIN_REFERENCE_BUDGET_S``), within ``limit_s``."""
    options = plan.options
    cost = estimate(plan.parsed, len(plan.points), hessian=options.hessian, nodes=options.nodes)
    budget = max(MIN_REFERENCE_BUDGET_S, REFERENCE_BUDGET_FACTOR * cost.seconds)
    return budget if limit_s is None else min(budget, limit_s)


def _timeout_note(stage: str, budget_s: float) -> str:
    """Why a check ran out of time in ``stage``, and what to do about it."""
    if stage == "symbolic":
        return (
            f"SymPy's derivatives took longer than their budget of {budget_s:.3g} s "
            "(symbolic_timeout_s): a smaller expression, fewer variables or no Hessian"
        )
    return (
        f"the certified references took longer than their budget of {budget_s:.3g} s "
        f"({REFERENCE_BUDGET_FACTOR:g} times this check's estimated cost, at least "
        f"{MIN_REFERENCE_BUDGET_S:g} s; docs/admission.md): a point where a derivative is "
        "0/0 needs a symbolic limit, about 0.15 s, so check fewer such points at once"
    )


def _run_sides(
    plan: _Plan,
    values: bool,
    budgets: list[tuple[str, float]],
    timings: dict[str, float],
) -> _Sides:
    """The references in the sandbox process while autograd runs here, at the same time."""

    def on(device: torch.device) -> AutogradResult:
        return run_autograd(
            plan.parsed.expr,
            plan.parsed.variables,
            plan.points,
            plan.fmt,
            device,
            hessian=plan.options.hessian,
            nodes=plan.node_list,
            values=values,
            black_box=plan.black_box,
        )

    def autograd_side() -> tuple[AutogradResult, AutogradResult | None, Conditioning]:
        begin = time.perf_counter()
        result = on(plan.device)
        compared = None if plan.compared_device is None else on(plan.compared_device)
        timings["autograd"] = time.perf_counter() - begin
        analysis = conditioning(
            plan.parsed.expr,
            plan.parsed.variables,
            plan.points,
            plan.keys,
            plan.fmt,
            plan.tolerance.rtol,
        )
        return result, compared, analysis

    (truth_keys, references, truth_timings), (autograd, compared, analysis) = thread_sandbox().call(
        compute_table,
        (
            plan.expression,
            plan.options.hessian,
            plan.options.nodes,
            plan.points,
            plan.fmt,
            values,
            registry.registered_here(),
        ),
        budgets,
        autograd_side,
    )
    assert truth_keys == plan.keys, "the symbolic and autograd sides disagree on the entries"
    timings.update(truth_timings)
    return _Sides(references, autograd, analysis, compared)


def _compare(report: Report, plan: _Plan, sides: _Sides, *, hessian: bool) -> None:
    """Judge every entry, diagnose those outside the tolerance, and fill ``report``; with a
    compared device, judge its values against the same references too."""
    columns = _device_judged(plan, sides, sides.autograd, report.notes, hessian=hessian)
    if sides.compared is not None and plan.compared_device is not None:
        compared = _device_judged(plan, sides, sides.compared, [], hessian=hessian)
        columns.compared = compared
        report.compared = device_summary(
            columns, compared, str(plan.compared_device), plan.options.failing_names
        )
    report.set_columns(columns)
    report.verdict = worst(columns.counts()).value
    table = sides.references
    ok = table.status == STATUSES.index(OK)
    methods = sorted({METHODS[m] for m in np.unique(table.method[ok]).tolist()})
    report.reference_method = "; ".join(methods) if methods else METHOD_ARB
    if sides.autograd.seed_idiom is not None:
        report.notes.append(SEED_IDIOM_NOTE.format(result=sides.autograd.seed_idiom))


def _judge_paths(report: Report, plan: _Plan, sides: _Sides) -> None:
    """Judge the check's further derivative paths (``modes`` beyond those the default run
    computes) against the same references, into the report's ``paths`` section
    (:mod:`verifier.core.judge.paths`)."""
    runs = [(m, True) for m in parse_modes(plan.options.modes) if m.name not in DEFAULT_MODES]
    if plan.options.compare_batch:
        runs += [(MODES[name], False) for name in DEFAULT_MODES]
    if not runs:
        return
    fail_on = plan.options.failing_names
    inputs = {
        name: torch.tensor([p[name] for p in plan.points], dtype=plan.fmt.torch, device=plan.device)
        for name in plan.parsed.variables
    }
    program = expression_function(plan.parsed.expr, plan.parsed.variables, plan.fmt, plan.device)
    main = report.held_columns()
    assert main is not None
    shared = _Shared()
    judged_paths: dict[str, EntryColumns] = {}
    sections = []
    for mode, batched in runs:
        kind = GRADIENT if mode.order == 1 else HESSIAN
        columns = [i for i, key in enumerate(plan.keys) if key[0] == kind]
        if not columns:
            report.notes.append(f"{mode.name} computes Hessians, and this check asks for none")
            continue
        keys = [plan.keys[i] for i in columns]
        computed = run_path(program, inputs, mode, batched=batched)
        if computed.error is not None:
            count = len(plan.points) * len(keys)
            sections.append(refused_path(mode, computed.error, count, fail_on, batched=batched))
            continue
        same_path = judged_paths.get(mode.path)
        # Point by point, a default path runs the same formulas as in the batch.
        defaults = [_Computed(main, columns, formulas=not batched)]
        if same_path is not None and batched:
            defaults.insert(0, _Computed(same_path, list(range(len(keys))), formulas=True))
        judged = _judged(
            plan,
            sides,
            computed.values,
            [],
            hessian=mode.order == 2,
            forward=sides.autograd.forward,
            keys=keys,
            table=sides.references.columns(columns),
            mode=mode,
            defaults=defaults,
            shared=shared,
            batched=batched,
        )
        if batched:
            judged_paths.setdefault(mode.path, judged)
        differences = main.autograd[:, columns]
        sections.append(path_summary(mode, judged, differences, fail_on, batched=batched))
    report.paths = sections
    judged_verdicts = [s["verdict"] for s in sections if s["error"] is None]
    report.verdict = worst([report.verdict, *judged_verdicts]).value


def _judged(
    plan: _Plan,
    sides: _Sides,
    computed: Mapping[Key, Floats],
    notes: list[str],
    *,
    hessian: bool,
    forward: Mapping[sympy.Basic, torch.Tensor],
    keys: Sequence[Key] | None = None,
    table: ReferenceTable | None = None,
    mode: Mode | None = None,
    defaults: Sequence[_Computed] = (),
    shared: _Shared | None = None,
    batched: bool = True,
) -> EntryColumns:
    """One device's (or path's) values judged entry by entry: the entries that pass all at
    once and kept as columns, the others judged and diagnosed one at a time
    (:mod:`verifier.core.judge.columns`). ``keys`` and ``table`` default to the check's;
    ``mode`` is a further path, whose formulas the audit judges; an entry with the very value
    one of ``defaults`` computed takes that entry instead of a diagnosis of its own
    (:func:`_as_computed`). ``shared`` keeps what the audits of one check's paths have in
    common."""
    fmt = plan.fmt
    keys = plan.keys if keys is None else keys
    table = sides.references if table is None else table
    labels = {node_key(node): str(node) for node in plan.node_list}
    values = point_major([computed[key] for key in keys])
    judged = judge_table(values, table, plan.tolerance, fmt)
    width = len(keys)
    judgements: dict[int, Judgement] = {}
    for flat in np.flatnonzero(~judged.passed.ravel()).tolist():
        point, column = divmod(flat, width)
        reference = table.value(point, column)
        judgements[flat] = judge(float(values[point, column]), reference, plan.tolerance, fmt)
    explicit: dict[int, Entry] = {}
    for earlier in defaults:
        copied = _as_computed(values, judgements, earlier)
        explicit.update((flat, entry) for flat, entry in copied.items() if flat not in explicit)
    outside = sorted(
        {
            flat // width
            for flat, j in judgements.items()
            if j.verdict is None and flat not in explicit
        }
    )
    findings, bounds = _audit(
        plan, sides.analysis, outside, notes, forward, hessian, mode, shared or _Shared(), batched
    )
    for overflowed in plan.literals.overflowed:
        detail = f"the literal {overflowed} is beyond {fmt.name}'s range: its tensor is infinite"
        event = Finding(overflowed, FORWARD, OVERFLOW, math.inf, detail)
        for found in findings.values():
            found.insert(0, event)
    for flat, judgement in judgements.items():
        if flat in explicit:
            continue
        point, column = divmod(flat, width)
        explicit[flat] = _entry(
            keys[column],
            point,
            float(values[point, column]),
            table.value(point, column),
            judgement,
            findings.get(point, []),
            bounds,
            fmt,
            labels,
            mode,
        )
    return _columns(keys, labels, values, table, judged, sides.analysis, fmt, explicit)


_FORMULA_VERDICTS = {Verdict.FAIL.value, Verdict.NONFINITE.value}
"""Verdicts that can blame a derivative formula, which differs from path to path."""


@dataclass(frozen=True)
class _Computed:
    """Entries judged before, for a path that computes the same values (:func:`_as_computed`):
    ``columns[k]`` is the column of the path's key ``k`` in ``entries``; ``formulas`` whether
    their ``fail`` and ``nonfinite`` blame holds for the path too (the same path by another
    api, whose phases are the same) or not (another path, with formulas of its own)."""

    entries: EntryColumns
    columns: list[int]
    formulas: bool


def _as_computed(
    values: Floats, judgements: Mapping[int, Judgement], earlier: _Computed
) -> dict[int, Entry]:
    """The entries of ``judgements`` whose value is ``earlier``'s, bit for bit (nan for nan),
    as ``earlier``'s entries, except those that blame a formula (``fail``, ``nonfinite``)
    where ``earlier`` is another path."""
    width, earlier_width = values.shape[1], len(earlier.entries.labels)
    found: dict[int, Entry] = {}
    for flat in judgements:
        point, column = divmod(flat, width)
        theirs = earlier.entries.autograd[point, earlier.columns[column]]
        mine = values[point, column]
        if mine == theirs or (math.isnan(mine) and math.isnan(theirs)):
            entry = earlier.entries.explicit.get(point * earlier_width + earlier.columns[column])
            if entry is not None and (earlier.formulas or entry.verdict not in _FORMULA_VERDICTS):
                found[flat] = entry
    return found


def _device_judged(
    plan: _Plan, sides: _Sides, autograd: AutogradResult, notes: list[str], *, hessian: bool
) -> EntryColumns:
    """One device's default-path values judged (:func:`_judged`), with what a user's
    function did wrong where it explains an entry."""
    columns = _judged(
        plan, sides, autograd.values, notes, hessian=hessian, forward=autograd.forward
    )
    if plan.black_box:
        _black_box_details(
            plan, plan.keys, len(plan.keys), columns.explicit, autograd.second_backward
        )
    return columns


_OVERRIDDEN = {Verdict.FAIL.value, Verdict.NONFINITE.value, Verdict.ILL_CONDITIONED.value}
"""Verdicts a known defect of a user's backward replaces: what it explains is its fault."""


def _black_box_details(
    plan: _Plan,
    keys: Sequence[Key],
    width: int,
    explicit: dict[int, Entry],
    second_backward: Mapping[str, str],
) -> None:
    """Say what a user's function did wrong where it explains a non-passing entry.

    A Hessian row whose gradient had no graph (compared as zeros) or whose double backward
    raised (compared as nan) fails with that reason; derivatives at a point where the
    function's own value is wrong say so.
    """
    custom = sorted(map(str, plan.parsed.expr.atoms(CustomFunction)))
    blame = custom[0] if len(custom) == 1 else None
    wrong_value = {
        flat // width
        for flat, entry in explicit.items()
        if entry.kind == VALUE and entry.verdict in _OVERRIDDEN
    }
    for flat, entry in list(explicit.items()):
        if entry.verdict not in _OVERRIDDEN:
            continue
        _, wrt, _ = keys[flat % width]
        problem = second_backward.get(wrt[0]) if entry.kind == HESSIAN else None
        if problem is not None:
            exact = (
                "" if entry.reference is None else f"; the exact value is {entry.reference:.17g}"
            )
            explicit[flat] = replace(
                entry,
                verdict=Verdict.FAIL.value,
                detail=f"{problem}{exact}",
                blame=blame if blame is not None else entry.blame,
                phase=SECOND_BACKWARD,
            )
        elif entry.kind != VALUE and flat // width in wrong_value:
            explicit[flat] = replace(
                entry,
                detail=f"{entry.detail}; the function's own value is wrong at this point too "
                "(its value entry), so its derivatives are of another function",
            )


def _columns(
    keys: Sequence[Key],
    labels: dict[str, str],
    values: np.ndarray,
    table: ReferenceTable,
    judged: Judged,
    analysis: Conditioning,
    fmt: DType,
    explicit: dict[int, Entry],
) -> EntryColumns:
    """The entries as columns: the passing ones as numbers, the others as ``explicit``."""
    weight = point_major([analysis.weight[key] for key in keys])
    high = table.high
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        condition = np.where(high != 0, weight / np.abs(high), np.where(weight > 0, np.inf, 0.0))
    return EntryColumns(
        labels=[_shown(key, labels) for key in keys],
        dtype=fmt,
        autograd=values,
        columnar=judged.passed,
        reference=high,
        radius=table.radius,
        abs_error=judged.abs_error,
        rel_error=judged.rel_error,
        ulp_error=judged.ulp_error,
        exact_zero=judged.exact_zero,
        tolerance=judged.allowed,
        ratio=judged.ratio,
        condition=condition,
        explicit=explicit,
    )


@dataclass
class _Shared:
    """What the audits of one check's paths share: exact local values, and the conditioning
    of a set of points with the same measured errors (two paths often compute the same)."""

    exact: ExactCache = field(default_factory=dict)
    bounds: dict[Any, Conditioning] = field(default_factory=dict)


@dataclass(frozen=True)
class _Bounds:
    """The conditioning the diagnosis reads: ``measured`` at the points outside the tolerance
    (``rows`` maps a point to its row there), ``everywhere`` at every point."""

    everywhere: Conditioning
    measured: Conditioning | None = None
    rows: dict[int, int] = field(default_factory=dict)

    def at(self, point: int) -> tuple[Conditioning, int]:
        """The conditioning that holds ``point``, and its row there."""
        row = self.rows.get(point)
        if self.measured is None or row is None:
            return self.everywhere, point
        return self.measured, row


def _audit(
    plan: _Plan,
    analysis: Conditioning,
    outside: list[int],
    notes: list[str],
    forward: Mapping[sympy.Basic, torch.Tensor],
    hessian: bool,
    mode: Mode | None,
    shared: _Shared,
    batched: bool = True,
) -> tuple[dict[int, list[Finding]], _Bounds]:
    """The local audit at the points ``outside`` (where some entry is outside the tolerance),
    on the node values ``forward`` the autograd run computed for all points together, and the
    conditioning at those points with each operation granted the error the audit measured
    (``analysis``, every operation granted the tolerance, where the audit could not run)."""
    everywhere = _Bounds(analysis)
    if not outside:
        return {}, everywhere
    parsed, fmt = plan.parsed, plan.fmt
    try:
        audited = audit(
            parsed.expr,
            parsed.variables,
            plan.points,
            fmt,
            plan.tolerance,
            hessian=hessian,
            rows=outside,
            forward=forward,
            mode=mode,
            known=shared.exact,
            batched=batched,
        )
    except (RuntimeError, NotImplementedError, ValueError, UnsupportedError) as error:
        # Without the audit no operation is blamed; the bound alone decides (see diagnosis).
        notes.append(f"the local audit could not run: {str(error).splitlines()[0]}")
        return {}, everywhere
    same = (
        tuple(outside),
        tuple(audited.derivative_error),
        tuple(tuple(sorted((str(n), e) for n, e in row.items())) for row in audited.forward_error),
    )
    measured = shared.bounds.get(same)
    if measured is None:
        measured = shared.bounds[same] = conditioning(
            parsed.expr,
            parsed.variables,
            [plan.points[p] for p in outside],
            plan.keys,
            fmt,
            plan.tolerance.rtol,
            audited,
        )
    findings = dict(zip(outside, audited.findings, strict=True))
    return findings, _Bounds(analysis, measured, {p: row for row, p in enumerate(outside)})


def _shown(key: Key, labels: dict[str, str]) -> tuple[str, tuple[str, ...] | None, str | None]:
    """An entry's kind, ``wrt`` and node as a report shows them: ``wrt`` only for gradient
    and Hessian entries, the node by its label."""
    kind, wrt, node = key
    return (
        kind,
        None if node is not None or kind == VALUE else wrt,
        None if node is None else labels[node],
    )


def _entry(
    key: Key,
    index: int,
    value: float,
    reference: ReferenceValue,
    judgement: Judgement,
    findings: list[Finding],
    bounds: _Bounds,
    fmt: DType,
    labels: dict[str, str],
    mode: Mode | None = None,
) -> Entry:
    kind, wrt, node = _shown(key, labels)
    verdict, detail, blame, phase = judgement.verdict, judgement.detail, None, None
    analysis, row = bounds.at(index)
    if verdict is None:
        diagnosis = diagnose(key, row, value, judgement, findings, analysis, fmt)
        verdict, detail = diagnosis.verdict, diagnosis.detail
        phase = None if diagnosis.phase is None else phase_name(diagnosis.phase, mode)
        blame = None if diagnosis.blame is None else str(diagnosis.blame)
    condition = None
    if judgement.reference is not None and reference.status == OK:
        condition = analysis.factor(key, row, judgement.reference)
    return Entry(
        kind=kind,
        wrt=wrt,
        node=node,
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


def _finish(report: Report, started: float, parsed_at: float, timings: dict[str, float]) -> Report:
    total = time.perf_counter() - started
    report.timings = {"parse": parsed_at - started}
    report.timings.update(
        (stage, timings.get(stage, 0.0)) for stage in ("symbolic", "autograd", "reference")
    )
    report.timings["total"] = total
    return report


def _versions() -> dict[str, str]:
    """The versions a report names (a copy: reading the package metadata takes a millisecond,
    so it is read once per process)."""
    return dict(_installed_versions())


@cache
def _installed_versions() -> dict[str, str]:
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
