"""The local audit: every operation, at exactly the dtype inputs autograd fed it.

For each node of the torch program, at the points being diagnosed, torch's own value of the
operation and its local derivatives (first, and second when a Hessian is asked: what its
backward and double-backward formulas compute, with an incoming gradient of 1) are compared
with the exact local values at the same inputs, certified in arb. An operation is locally
inaccurate when it is further from its exact local value than the check's tolerance: its own
conditioning does not excuse it, since its inputs are exact for it. The audit also finds range
events (an exact local value beyond the dtype's range, or below its normal range and rounded
away), kinks (a local derivative that does not exist at the input: torch applied a rule such as
sign(0) = 0) and inputs outside an operation's domain. Additions and multiplications are
correctly rounded in IEEE arithmetic and are only checked for range events. Adjoints (the
gradients flowing back through each node, in each backward pass) are checked for overflow and
underflow against a float64 shadow.

Besides its findings, the audit measures every operation's own error at each point, inside the
tolerance too (:class:`Audit`): the conditioning bound grants each operation what it measured
to be off, not the check's whole tolerance (:mod:`verifier.core.judge.conditioning`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import mpmath
import numpy as np
import sympy
import torch

from verifier.core.exact.reference import (
    DOMAIN,
    OK,
    UNDEFINED,
    ReferenceValue,
    reference_values,
)
from verifier.core.expression.custom import CustomFunction
from verifier.core.expression.functions import PARAMETER_POSITIONS
from verifier.core.expression.symbolic import GRADIENT, HESSIAN, Key, Target
from verifier.core.expression.syntax import make_symbol
from verifier.core.floats.dtypes import DTYPES, DType
from verifier.core.judge.magnitudes import grad_or_none
from verifier.core.judge.reads import read_by
from verifier.core.judge.tolerance import Tolerance
from verifier.core.program.modes import DEFAULT_MODES, MODES, Mode
from verifier.core.program.paths import PathResult, run_path
from verifier.core.program.translate import (
    Translation,
    apply,
    children,
    differentiable_children,
    program_order,
)

FORWARD = "forward"
FIRST_BACKWARD = "first backward"
SECOND_BACKWARD = "second backward"

INACCURATE = "inaccurate"
NONFINITE = "nonfinite"
OVERFLOW = "overflow"
UNDERFLOW = "underflow"
KINK = "kink"
OUTSIDE_DOMAIN = "domain"

SCALE_BITS = 1100
"""Powers of two an out-of-range exact value is scaled by to be seen (float64 spans 2**-1074
to 2**1024: 2**1100 takes every subnormal-underflowing value back above it)."""

_SKIPPED = (sympy.Piecewise, sympy.core.relational.Relational)


@dataclass(frozen=True)
class Finding:
    """Something one operation did at one point: ``kind`` in ``phase``, ``ratio`` its local
    error over the allowed error (inaccuracies), ``detail`` in words.

    ``wrt`` names the children a local derivative is taken by (one in the first backward, two
    in the second; empty for a value and for a gradient flowing back), so a finding stays with
    its own derivative. ``read_by``, for a forward value, is the set of variables whose
    gradient reads it (:func:`verifier.core.judge.reads.read_by`); None where not known.
    """

    node: sympy.Basic
    phase: str
    kind: str
    ratio: float
    detail: str
    wrt: tuple[sympy.Basic, ...] = ()
    read_by: frozenset[str] | None = None


@dataclass(frozen=True)
class Audit:
    """What the audit found and measured at each of its rows.

    Attributes:
        findings: per row, every finding in program order.
        forward_error: per row, each operation's (not a sum's or a product's) absolute error
            in its value at the inputs it received; an operation whose exact value is not
            certified is absent.
        derivative_error: per row, the largest relative error of any operation's local
            derivative (first, and second where asked) at the inputs it received; inf where
            one is not known (not certified, or an exact 0 that torch missed).
    """

    findings: list[list[Finding]]
    forward_error: list[dict[sympy.Basic, float]]
    derivative_error: list[float]


def audit(
    expr: sympy.Expr,
    variables: Sequence[str],
    points: Sequence[Mapping[str, float]],
    dtype: DType,
    tolerance: Tolerance,
    *,
    hessian: bool,
    rows: Sequence[int] | None = None,
    forward: Mapping[sympy.Basic, torch.Tensor] | None = None,
    mode: Mode | None = None,
    known: ExactCache | None = None,
    batched: bool = True,
) -> Audit:
    """Every finding and measured error at each of ``rows`` (indices into ``points``; all
    of them by default).

    ``points`` are all the dtype-rounded points autograd ran on together, and ``forward`` the
    node values it computed (:attr:`AutogradResult.forward
    <verifier.core.program.autograd.AutogradResult>`): torch's vectorised and scalar kernels
    give different bits, so each operation is judged on the values the run actually fed it,
    and torch's local derivatives are taken on the same whole batch, never a sub-batch.

    ``mode`` is the derivative path whose formulas are judged (:mod:`verifier.core.program.modes`):
    each operation's local derivatives are taken along it, and its phases are named for it
    (:func:`phase_name`); None is the default, reverse and reverse-over-reverse. The gradients
    flowing back are checked for range events on reverse paths only. ``known`` keeps exact
    local values between audits of one check's paths, which share them. Not ``batched``,
    torch's local derivatives are taken one point at a time, as a path run point by point
    took them.
    """
    count = len(points)
    chosen = list(range(count)) if rows is None else list(rows)
    inputs = {
        name: torch.tensor([p[name] for p in points], dtype=dtype.torch) for name in variables
    }
    for tensor in inputs.values():
        tensor.requires_grad_(True)
    translation = Translation(expr, inputs, dtype, torch.device("cpu"))
    captured = forward or {}
    values = {
        node: _captured(captured.get(node), t).detach().expand(count)
        for node, t in translation.tensors.items()
    }
    findings: list[list[Finding]] = [[] for _ in chosen]
    forward_error: list[dict[sympy.Basic, float]] = [{} for _ in chosen]
    derivative_error = [0.0] * len(chosen)
    order = [node for node in program_order(expr) if node in translation.tensors]
    reached = read_by(order, translation.tensors)
    for node in order:
        if node.is_Atom or isinstance(node, _SKIPPED) or not children(node):
            continue
        readers = reached.get(node, frozenset())
        local = _local(node, values, dtype, tolerance, hessian, count, chosen, mode, known, batched)
        for row, (found, measured) in enumerate(local):
            findings[row].extend(_readers(f, readers, node == expr) for f in found)
            if measured.value is not None:
                forward_error[row][node] = measured.value
            derivative_error[row] = max(derivative_error[row], measured.derivative)
    if mode is None or mode.path in _REVERSE_PATHS:
        events = _adjoint_events(translation, expr, inputs, dtype, hessian)
        for row, point in enumerate(chosen):
            findings[row].extend(events[point])
    return Audit(findings, forward_error, derivative_error)


@dataclass(frozen=True)
class _Measured:
    """One operation's own error at one point: its value's absolute error (None where not
    known or where the operation is a sum or product), its local derivatives' largest relative
    error (inf where one is not known)."""

    value: float | None
    derivative: float


def _captured(value: torch.Tensor | None, own: torch.Tensor) -> torch.Tensor:
    """The value the autograd run computed for a node, on the CPU in the audit's dtype;
    the audit's own where the run's is not known."""
    if value is None or value.shape != own.shape:
        return own
    return value.detach().to(device="cpu", dtype=own.dtype)


def _readers(finding: Finding, readers: frozenset[str], root: bool) -> Finding:
    """``finding`` with the variables whose derivatives read it, where they are known: for a
    forward value, those whose gradient reads it; for the output's own derivative by a
    variable, none (its incoming gradient is the constant seed, and a variable has no double
    backward to read it)."""
    if finding.phase == FORWARD:
        return replace(finding, read_by=readers)
    if finding.phase == FIRST_BACKWARD and root and all(c.is_Atom for c in finding.wrt):
        return replace(finding, read_by=frozenset())
    return finding


def _local(
    node: sympy.Basic,
    values: Mapping[sympy.Basic, torch.Tensor],
    dtype: DType,
    tolerance: Tolerance,
    hessian: bool,
    count: int,
    rows: Sequence[int],
    mode: Mode | None = None,
    known: ExactCache | None = None,
    batched: bool = True,
) -> list[tuple[list[Finding], _Measured]]:
    """The findings and measured errors of ``node`` at each of ``rows``; torch's local
    derivatives are taken on all ``count`` points at once, as the autograd run took them."""
    # A literal parameter (softplus's beta) stays the number torch was handed, not an input.
    parameters = PARAMETER_POSITIONS.get(type(node), ())
    args = list(dict.fromkeys(c for i, c in enumerate(node.args) if i not in parameters))
    names = {child: f"_a{i}" for i, child in enumerate(args)}
    symbols = {child: make_symbol(name) for child, name in names.items()}
    local = node.func(
        *[_parameter(values[c]) if i in parameters else symbols[c] for i, c in enumerate(node.args)]
    )
    if isinstance(node, sympy.Pow) and isinstance(node.exp, sympy.Integer):
        local = symbols[node.base] ** node.exp
    basic = isinstance(node, sympy.Add | sympy.Mul)
    kids = [] if basic else [c for c in differentiable_children(node) if c in symbols]
    targets = [Target("value", (), None, local, ())]
    torch_values = [values[node]]
    phases = [FORWARD]
    wrts: list[tuple[sympy.Basic, ...]] = [()]
    if batched and (mode is None or mode.path in _REVERSE_PATHS):
        firsts, seconds = _torch_derivatives(node, values, kids, hessian, count)
    else:
        firsts, seconds = _path_derivatives(
            node, values, kids, hessian, count, rows, mode or MODES[DEFAULT_MODES[-1]], batched
        )
    for a, kid in enumerate(kids):
        first = sympy.diff(local, symbols[kid])
        targets.append(Target("gradient", (names[kid],), None, first, (local,)))
        torch_values.append(firsts[a])
        phases.append(FIRST_BACKWARD)
        wrts.append((kid,))
        if hessian:
            for b, other in enumerate(kids):
                second = sympy.diff(first, symbols[other])
                chain = (local, first)
                targets.append(Target("hessian", (names[kid], names[other]), None, second, chain))
                torch_values.append(seconds[a][b])
                phases.append(SECOND_BACKWARD)
                wrts.append((kid, other))
    if any(t.expr.atoms(sympy.Derivative) for t in targets):
        targets = targets[:1]
    local_points = [{names[c]: float(values[c][p]) for c in args} for p in rows]
    exact = _exact(node, local, targets, list(names.values()), local_points, dtype, known)
    beyond = _beyond_float64(targets, exact, list(names.values()), local_points)
    result: list[tuple[list[Finding], _Measured]] = []
    for row, p in enumerate(rows):
        found = []
        value_error: float | None = None
        derivative_error = 0.0
        for target_index, target in enumerate(targets):
            reference = exact[row][target_index]
            observed = float(torch_values[target_index][p].detach())
            error = _error(observed, reference)
            if target.kind == "value":
                value_error = None if basic else error
            else:
                derivative_error = max(derivative_error, _relative(error, reference))
            finding = _judge_local(
                node,
                phases[target_index],
                phase_name(phases[target_index], mode),
                observed,
                reference,
                dtype,
                tolerance,
                basic,
                beyond.get((row, target_index)),
            )
            if finding is not None:
                found.append(replace(finding, wrt=wrts[target_index]))
            if target.kind == "value" and finding is not None and finding.kind == OUTSIDE_DOMAIN:
                break
        result.append((found, _Measured(value_error, derivative_error)))
    return result


def _error(observed: float, reference: ReferenceValue) -> float | None:
    """|observed - exact| against high + low, or None where the exact value is not a
    certified number or torch's is not finite."""
    if reference.status != OK or reference.high is None or not reference.certified:
        return None
    if not math.isfinite(observed) or not math.isfinite(reference.high):
        return None
    return abs((observed - reference.high) - reference.low)


def _relative(error: float | None, reference: ReferenceValue) -> float:
    """``error`` relative to the exact value: 0 for an exact 0 met exactly, inf where not
    known."""
    if error is None:
        return math.inf
    assert reference.high is not None
    exact = abs(reference.high + reference.low)
    if exact == 0:
        return 0.0 if error == 0 else math.inf
    return error / exact


ExactCache = dict[tuple[sympy.Basic, int, tuple[float, ...]], list[ReferenceValue]]
"""Exact local values by node, number of targets and the point's inputs (:func:`audit`)."""


def _exact(
    node: sympy.Basic,
    local: sympy.Expr,
    targets: Sequence[Target],
    names: list[str],
    points: Sequence[Mapping[str, float]],
    dtype: DType,
    known: ExactCache | None,
) -> list[list[ReferenceValue]]:
    """The exact local values of ``targets`` at ``points``, those ``known`` taken from it and
    the others computed (at once) and kept there."""
    if known is None:
        return reference_values(local, targets, names, points, dtype)
    keys = [(node, len(targets), tuple(point[name] for name in names)) for point in points]
    missing = sorted({i for i, key in enumerate(keys) if key not in known})
    if missing:
        found = reference_values(local, targets, names, [points[i] for i in missing], dtype)
        for i, row in zip(missing, found, strict=True):
            known[keys[i]] = list(row)
    return [known[key] for key in keys]


def _beyond_float64(
    targets: Sequence[Target],
    exact: Sequence[Sequence[ReferenceValue]],
    names: list[str],
    points: Sequence[Mapping[str, float]],
) -> dict[tuple[int, int], mpmath.mpf]:
    """The exact local values that float64 holds as 0 or inf, with their true exponent.

    Each such target is evaluated again times ``2**SCALE_BITS`` (below float64's smallest
    subnormal) or ``2**-SCALE_BITS`` (beyond its largest number), which brings a value within
    that many powers of two back into float64's range; the result is the scaled value as an
    mpmath number, whose exponent is unbounded. A value still 0 after scaling up is left 0.
    """
    found: dict[tuple[int, int], mpmath.mpf] = {}
    for direction in (1, -1):
        asked = [
            (p, t)
            for p, row in enumerate(exact)
            for t, value in enumerate(row)
            if value.status == OK
            and value.certified
            and value.high is not None
            and (value.high == 0 if direction == 1 else math.isinf(value.high))
        ]
        for t in sorted({t for _, t in asked}):
            rows = [p for p, target in asked if target == t]
            target = targets[t]
            scaled = replace(
                target, expr=target.expr * sympy.Integer(2) ** (direction * SCALE_BITS)
            )
            # In arb at float64's precision target: the scale is no float32 or float16 literal.
            again = reference_values(
                scaled.expr, [scaled], names, [points[p] for p in rows], DTYPES["float64"]
            )
            for p, (value,) in zip(rows, again, strict=True):
                if value.high is None or not value.certified or value.high == 0:
                    continue
                if math.isfinite(value.high):
                    high = mpmath.mpf(value.high) + mpmath.mpf(value.low)
                    found[p, t] = mpmath.ldexp(high, -direction * SCALE_BITS)
    return found


def _parameter(tensor: torch.Tensor) -> sympy.Rational:
    """The exact value of a literal parameter as its tensor holds it."""
    return sympy.Rational(float(tensor.reshape(-1)[0].item()))


def _torch_derivatives(
    node: sympy.Basic,
    values: Mapping[sympy.Basic, torch.Tensor],
    kids: Sequence[sympy.Basic],
    hessian: bool,
    count: int,
) -> tuple[list[torch.Tensor], list[list[torch.Tensor]]]:
    """torch's local first and second derivatives of ``node`` by ``kids`` (gradient 1 in)."""
    if not kids:
        return [], []
    leaves = {c: values[c].detach().clone().requires_grad_(True) for c in kids}
    out = apply(node, [leaves.get(c, values[c]) for c in children(node)])
    leaf_list = [leaves[c] for c in kids]
    zero = torch.zeros(count, dtype=out.dtype)
    firsts = _grads(out, leaf_list, create_graph=hessian)
    seconds = [_seconds(g, leaf_list) if hessian else [zero] * len(kids) for g in firsts]
    return [g.expand(count) for g in firsts], [[g.expand(count) for g in r] for r in seconds]


_REVERSE_PATHS = ("reverse", "reverse-over-reverse")
"""The paths whose local derivatives are the backward and double backward formulas."""

_SECOND_PHASES = {
    "reverse-over-reverse": SECOND_BACKWARD,
    "forward-over-reverse": "tangent of the first backward",
    "reverse-over-forward": "backward of the first tangent",
    "forward-over-forward": "second tangent",
}


def phase_name(phase: str, mode: Mode | None) -> str:
    """How ``phase`` (:data:`FIRST_BACKWARD`, :data:`SECOND_BACKWARD` or :data:`FORWARD`) is
    named on ``mode``: the first derivatives of a path whose (inner) mode is forward are its
    ``first tangent``, the second derivatives are named for the path."""
    if mode is None or phase == FORWARD:
        return phase
    outer, _, inner = mode.path.rpartition("-over-")
    if phase == FIRST_BACKWARD:
        return "first tangent" if (inner or mode.path) == "forward" else FIRST_BACKWARD
    return _SECOND_PHASES.get(mode.path, phase) if outer else phase


def _path_derivatives(
    node: sympy.Basic,
    values: Mapping[sympy.Basic, torch.Tensor],
    kids: Sequence[sympy.Basic],
    hessian: bool,
    count: int,
    rows: Sequence[int],
    mode: Mode,
    batched: bool = True,
) -> tuple[list[torch.Tensor], list[list[torch.Tensor]]]:
    """torch's local first and second derivatives of ``node`` by ``kids`` along ``mode`` at
    ``rows`` (nan at the other points): the first ones along its (inner) first-order path, the
    second ones along the mode itself; nan where torch refuses the path for this operation
    (its entries say so themselves). Taken on the rows alone, not the whole batch: a further
    path is audited at its few points outside the tolerance, where a whole batch per node
    and path would cost more than the check. Not ``batched``, one point at a time."""
    if not kids:
        return [], []
    chosen = torch.tensor(list(rows), dtype=torch.long)
    position = {child: i for i, child in enumerate(kids)}

    def program(*tensors: torch.Tensor) -> torch.Tensor:
        return apply(
            node, [tensors[position[c]] if c in position else values[c] for c in children(node)]
        )

    inputs = {f"_a{i}": values[c].detach().expand(count)[chosen] for i, c in enumerate(kids)}
    names = list(inputs)
    inner = mode.path.rpartition("-over-")[2]
    first_mode = mode if mode.order == 1 else MODES[f"{mode.api}:{inner}"]
    unknown = torch.full((count,), math.nan, dtype=torch.float64)

    def spread(result: PathResult, key: Key) -> torch.Tensor:
        if result.error is not None:
            return unknown
        full = unknown.clone()
        full[chosen] = torch.from_numpy(result.values[key])
        return full

    found = run_path(program, inputs, first_mode, batched=batched)
    firsts = [spread(found, (GRADIENT, (name,), None)) for name in names]
    if not hessian or mode.order == 1:
        return firsts, [[unknown] * len(kids) for _ in kids]
    second = run_path(program, inputs, mode, batched=batched)
    return firsts, [[spread(second, (HESSIAN, (a, b), None)) for b in names] for a in names]


def _seconds(first: torch.Tensor, leaves: list[torch.Tensor]) -> list[torch.Tensor]:
    """The derivatives of one first derivative; nan where its double backward raises (a
    user's backward marked once-differentiable: the entries say so themselves)."""
    try:
        return _grads(first, leaves, create_graph=False)
    except RuntimeError:
        return [torch.full_like(leaf, math.nan) for leaf in leaves]


def _grads(
    output: torch.Tensor, leaves: list[torch.Tensor], *, create_graph: bool
) -> list[torch.Tensor]:
    """d sum(output) / d each leaf, zeros where it does not depend on it."""
    grads = grad_or_none(output.sum(), leaves, create_graph=create_graph)
    return [
        torch.zeros_like(leaf) if g is None or g._is_zerotensor() else g
        for g, leaf in zip(grads, leaves, strict=True)
    ]


def _judge_local(
    node: sympy.Basic,
    phase: str,
    shown_phase: str,
    observed: float,
    reference: ReferenceValue,
    dtype: DType,
    tolerance: Tolerance,
    basic: bool,
    beyond: mpmath.mpf | None = None,
) -> Finding | None:
    """What ``node`` did against its exact local value, or None; ``beyond`` is that value
    where float64 holds it as 0 or inf (:func:`_beyond_float64`)."""
    what = "its value" if phase == FORWARD else f"its {shown_phase}"
    if reference.status == DOMAIN:
        if phase != FORWARD:
            return None
        detail = f"{node} received inputs outside its domain"
        return Finding(node, phase, OUTSIDE_DOMAIN, math.inf, detail)
    if reference.status == UNDEFINED:
        detail = f"{node} has no derivative at the input it received; torch applied its rule"
        return Finding(node, phase, KINK, math.inf, detail)
    if reference.high is None or not reference.certified:
        return None
    exact = reference.high + reference.low
    shown = f"{reference.high:.6g}" if beyond is None else mpmath.nstr(beyond, 6)
    if abs(exact) > dtype.max_finite:
        detail = f"{what} {shown} is beyond {dtype.name}'s range"
        return Finding(node, phase, OVERFLOW, math.inf, detail)
    # Against high + low, as the entries are judged (compare.py): rounding the exact value to
    # float64 first moves the error by up to half an ulp, which decides at the threshold.
    error = (
        abs((observed - reference.high) - reference.low) if math.isfinite(observed) else math.inf
    )
    allowed = tolerance.allowed(exact)
    tiny = exact if beyond is None else beyond
    if tiny != 0 and abs(tiny) < dtype.smallest_normal:
        # Tiny against the dtype's atol, but it may multiply something huge later: a subnormal
        # keeps fewer bits, so a value off by more than rtol relative has lost its digits.
        gap = abs(mpmath.mpf(observed) - tiny) if math.isfinite(observed) else mpmath.inf
        if gap > abs(tiny) * tolerance.rtol:
            detail = f"{what} {shown} is below {dtype.name}'s normal range"
            return Finding(node, phase, UNDERFLOW, float(gap / allowed), detail)
    if error <= allowed:
        return None
    if basic:
        return None
    kind = INACCURATE if math.isfinite(observed) else NONFINITE
    if isinstance(node, CustomFunction):  # a user's function: enough digits to see a bias
        detail = (
            f"the custom function {node} gave {observed:.17g} for {what}, exactly "
            f"{reference.high:.17g} at the {dtype.name} input it received"
        )
    else:
        digits = 9 if f"{observed:.9g}" != f"{reference.high:.9g}" else 17  # tell them apart
        detail = (
            f"torch's {node} gave {observed:.{digits}g} for {what}, exactly "
            f"{reference.high:.{digits}g} at the {dtype.name} input it received"
        )
    return Finding(node, phase, kind, error / allowed, detail)


def _adjoint_events(
    translation: Translation,
    expr: sympy.Expr,
    inputs: Mapping[str, torch.Tensor],
    dtype: DType,
    hessian: bool,
) -> list[list[Finding]]:
    """Overflow and underflow of the gradients flowing back through each node."""
    nodes = [n for n in program_order(expr) if not n.is_Atom and n.free_symbols]
    count = next(iter(inputs.values())).shape[0]
    found: list[list[Finding]] = [[] for _ in range(count)]
    if not nodes or not translation.output.requires_grad:
        return found
    shadow_inputs = {
        name: t.detach().to(torch.float64).requires_grad_(True) for name, t in inputs.items()
    }
    shadow = Translation(
        expr, shadow_inputs, DTYPES["float64"], torch.device("cpu"), literal_dtype=dtype
    )
    runs = [(translation, inputs), (shadow, shadow_inputs)]
    passes: list[list[tuple[str, list[torch.Tensor]]]] = []
    for program, leaves in runs:
        tensors = [program.tensors[n] for n in nodes]
        first = _grads(program.output, tensors, create_graph=hessian)
        phases = [(FIRST_BACKWARD, first)]
        if hessian:
            gradient = _grads(program.output, list(leaves.values()), create_graph=True)
            for g in gradient:
                phases.append((SECOND_BACKWARD, _grads(g, tensors, create_graph=False)))
        passes.append(phases)
    for (phase, observed), (_, reference) in zip(passes[0], passes[1], strict=True):
        for node, seen, wide in zip(nodes, observed, reference, strict=True):
            seen_values = seen.detach().expand(count).to(torch.float64).numpy()
            wide_values = wide.detach().expand(count).numpy()
            # Only the points where _adjoint_event can find something are asked.
            for p in np.flatnonzero(_adjoint_candidates(seen_values, wide_values, dtype)):
                event = _adjoint_event(
                    node, phase, float(seen_values[p]), float(wide_values[p]), dtype
                )
                if event is not None:
                    found[p].append(event)
    _below_float64(found, nodes, shadow, passes[0][0][1], passes[1][0][1], dtype, count)
    return found


ADJOINT_SCALE_BITS = 1000
"""Powers of two the shadow's seed is raised by to see a gradient flowing back below float64's
subnormals (2**1000 is the largest power of two float64 holds with room to spare)."""


def _below_float64(
    found: list[list[Finding]],
    nodes: Sequence[sympy.Basic],
    shadow: Translation,
    observed: Sequence[torch.Tensor],
    wide: Sequence[torch.Tensor],
    dtype: DType,
    count: int,
) -> None:
    """Underflows of the gradients flowing back that the float64 shadow holds as 0: the first
    backward again from a seed of ``2**ADJOINT_SCALE_BITS``, which brings a gradient down to
    2**-2074 back into float64's range (``y*log(z*exp(x))`` at x = 690, y = z = 1e-200:
    the gradient flowing back through z*exp(x) is y e**-x = 1e-500)."""
    zero = [(i, np.flatnonzero(w.detach().expand(count).numpy() == 0)) for i, w in enumerate(wide)]
    if not any(len(points) for _, points in zero):
        return
    seed = torch.full_like(shadow.output, 2.0**ADJOINT_SCALE_BITS)
    tensors = [shadow.tensors[n] for n in nodes]
    scaled = torch.autograd.grad(
        shadow.output, tensors, grad_outputs=seed, retain_graph=True, allow_unused=True
    )
    for i, points in zero:
        if scaled[i] is None or not len(points):
            continue
        raised = scaled[i].detach().expand(count).numpy()
        seen = observed[i].detach().expand(count).to(torch.float64).numpy()
        for p in points.tolist():
            if raised[p] == 0 or not math.isfinite(raised[p]):
                continue
            true = mpmath.ldexp(mpmath.mpf(float(raised[p])), -ADJOINT_SCALE_BITS)
            if abs(mpmath.mpf(float(seen[p])) - true) > abs(true) / 2:
                detail = (
                    f"the gradient flowing back through {nodes[i]} ({mpmath.nstr(true, 6)}) is "
                    f"below {dtype.name}'s normal range"
                )
                found[p].append(Finding(nodes[i], FIRST_BACKWARD, UNDERFLOW, math.inf, detail))


def _adjoint_candidates(
    seen: np.ndarray[Any, Any], wide: np.ndarray[Any, Any], dtype: DType
) -> np.ndarray[Any, Any]:
    """The points where :func:`_adjoint_event` may report an overflow or an underflow (its
    conditions, for all points at once)."""
    magnitude = np.abs(wide)
    with np.errstate(invalid="ignore"):
        overflow = (magnitude > dtype.max_finite) | (np.isinf(seen) & np.isfinite(wide))
        underflow = (wide != 0) & (magnitude < dtype.smallest_normal)
    return np.asarray(overflow | underflow)


def _adjoint_event(
    node: sympy.Basic, phase: str, seen: float, wide: float, dtype: DType
) -> Finding | None:
    if abs(wide) > dtype.max_finite or (math.isinf(seen) and math.isfinite(wide)):
        detail = f"the gradient flowing back through {node} ({wide:.6g}) overflows {dtype.name}"
        return Finding(node, phase, OVERFLOW, math.inf, detail)
    if wide != 0 and abs(wide) < dtype.smallest_normal and abs(seen - wide) > abs(wide) / 2:
        detail = (
            f"the gradient flowing back through {node} ({wide:.6g}) is below {dtype.name}'s "
            f"normal range"
        )
        return Finding(node, phase, UNDERFLOW, math.inf, detail)
    return None
