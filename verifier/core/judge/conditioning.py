"""Conditioning: how far the rounding of the computation as written can move each entry.

A float64 shadow of the torch program (the same tree, literals rounded to the check's dtype,
points exactly as autograd saw them) gives, per entry and point, a first-order bound on the
error that rounding alone explains when every operation is accurate:

- forward rounding: every operation's result carries an error of up to ``u`` times its size
  (``u`` is half an ulp for ``+``, ``*`` and integer powers, which are correctly rounded, and
  the check's tolerance for other functions, which the local audit holds them to; where the
  audit has measured an operation's own error at the point, that error and no more). An additive
  perturbation ``d_n`` on each node's result, differentiated through the whole derivative
  computation, gives each rounding's weight in the entry; the one with the largest weight is
  where the error comes from;
- backward rounding: each term of the chain rule is rounded on its way, so the sum of the
  absolute values of the terms (forward-mode accumulation of |local derivatives|), times the
  depth of the expression, bounds what the backward passes add
  (:mod:`verifier.core.judge.magnitudes`); each term's relative error is the check's tolerance,
  or where the audit measured them, the largest error of any local derivative plus two
  roundings.

The condition factor of an entry is (forward weights + sum of |terms|) / |exact value|: the
error relative to the exact value is at most about the condition factor times ``u``.

The forward weights are derivatives of the shadow's own backward passes, whose products can
leave float64's range where the values are huge or tiny (``x/exp(y**4)`` at y = -4.8: the
division's backward squares exp(534)); a weight computed as 0 there weighs nothing. At such
points (a node value or local derivative beyond ``2**±FRAGILE_BITS``) the bound is at least
the chain of local condition numbers: each node's relative error is its own rounding plus its
local condition number times its children's, and a derivative entry reads the values of the
nodes that hold its variables, each amplified by that node's condition number (plus 2, what a
local derivative adds: d(1/v)/dv = -1/v**2). Where that chain weighs most, the entry's ``site``
is :data:`AMPLIFIED`: the digits are lost where an operation amplifies its inputs' errors.
``docs/report-format.md`` explains how the diagnosis uses it.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import mpmath
import numpy as np
import sympy
import torch

from verifier.core.expression.symbolic import GRADIENT, HESSIAN, NODE, VALUE, Key
from verifier.core.floats.dtypes import DTYPES, DType
from verifier.core.floats.points import variable_columns
from verifier.core.judge.audit import Audit
from verifier.core.judge.magnitudes import (
    Floats,
    grad_or_none,
    local_conditions,
    local_derivatives,
    nodes_by_key,
    path_sums,
)
from verifier.core.program.translate import (
    Translation,
    children,
    differentiable_children,
    program_order,
)

BOUND_SAFETY = 4.0
"""The first-order bound is multiplied by this, for second-order terms and the ulps of |x|;
not the operations' errors the audit measured, which are what they are."""

FRAGILE_BITS = 400
"""Beyond 2**400 (or below 2**-400) a product of two shadow values may leave float64's range."""

AMPLIFIED = -2
"""``site`` where the chain of local condition numbers bounds the entry (see the module)."""

Indices = np.ndarray[Any, np.dtype[np.int64]]


@dataclass(frozen=True)
class Conditioning:
    """Per entry key, per point: the bound, the condition factor and the dominant rounding.

    Attributes:
        bound: absolute error that rounding of the computation as written explains.
        weight: the same without the unit roundoff: forward weights plus the sum of |terms|.
        site: per key, the index into ``sites`` of the node whose forward rounding weighs
            most at each point, -1 where the backward terms weigh more, :data:`AMPLIFIED`
            where the chain of local condition numbers does.
        sites: the nodes whose results are rounded.
        order: the nodes children-first, for :meth:`lost_at`.
        local: each node's local condition number per point (how it amplifies its inputs'
            relative errors).
    """

    bound: dict[Key, Floats]
    weight: dict[Key, Floats]
    site: dict[Key, Indices]
    sites: list[sympy.Basic]
    order: list[sympy.Basic]
    local: dict[sympy.Basic, Floats]

    def factor(self, key: Key, point: int, exact: float) -> float:
        """The condition factor of entry ``key`` at ``point``: weight over |exact value|."""
        weight = float(self.weight[key][point])
        if exact != 0:
            return weight / abs(exact)
        return math.inf if weight > 0 else 0.0

    def lost_at(self, key: Key, point: int) -> sympy.Basic | None:
        """The node where the digits of entry ``key`` are lost at ``point``: among the
        dominant rounding site and the nodes above it, the one that amplifies most."""
        index = int(self.site[key][point])
        if index < 0:
            return None
        site = self.sites[index]
        above = [node for node in self.order if node == site or node.has(site)]
        return max(above, key=lambda node: self._local_at(node, point))

    def _local_at(self, node: sympy.Basic, point: int) -> float:
        return float(self.local[node][point]) if node in self.local else 0.0


def conditioning(
    expr: sympy.Expr,
    variables: Sequence[str],
    points: Sequence[Mapping[str, float]],
    keys: Sequence[Key],
    dtype: DType,
    unit: float,
    audited: Audit | None = None,
) -> Conditioning:
    """The conditioning of every entry of ``keys`` at ``points``.

    Args:
        expr: the expression as parsed.
        variables: variable names, in order.
        points: dtype-rounded points.
        keys: the entries.
        dtype: the check's dtype (literals are rounded to it; ``+`` and ``*`` round to half
            an ulp of it).
        unit: the relative error allowed to an accurate function (the check's rtol).
        audited: the local audit at the same points, row for row: where it measured an
            operation's own error, the bound grants it that error instead of ``unit``. The
            condition factor (``weight``) is defined with ``unit`` whatever is measured.
    """
    order = program_order(expr)
    count = len(points)
    inputs = {
        name: torch.from_numpy(column).requires_grad_(True)
        for name, column in variable_columns(points, variables).items()
    }
    perturbations: dict[sympy.Basic, torch.Tensor] = {}

    def perturb(node: sympy.Basic, result: torch.Tensor) -> torch.Tensor:
        if not result.is_floating_point():  # a condition: nothing is rounded
            return result
        extra = torch.zeros(count, dtype=torch.float64, requires_grad=True)
        perturbations[node] = extra
        return result + extra

    translation = Translation(
        expr, inputs, DTYPES["float64"], torch.device("cpu"), literal_dtype=dtype, perturb=perturb
    )
    values = {node: tensor.detach() for node, tensor in translation.tensors.items()}
    sites = list(perturbations)
    scale = _stack([_rounding(node, values, dtype, unit, count) for node in sites], count)
    # The bound's part that is estimated (multiplied by BOUND_SAFETY) and the part measured.
    estimated, measured = scale, torch.zeros_like(scale)
    half_ulp = dtype.epsilon / 2
    backward_unit = np.full(count, unit)
    magnitude = None  # each site's |value|, where the audit measured (its fallback reads it)
    if audited is not None:
        own = [_measured(node, values, audited, count) for node in sites]
        known = _stack([~torch.isnan(error) for error in own], count).to(torch.bool)
        magnitude = _stack([values[node].abs().expand(count) for node in sites], count)
        estimated = torch.where(known, magnitude * half_ulp, scale)
        measured = torch.where(known, _stack(own, count).nan_to_num(0.0), 0.0)
        backward_unit = np.minimum(unit, np.array(audited.derivative_error) + 2 * half_ulp)
    locals_ = {
        node: local_derivatives(node, values, kids, second=any(k[0] == HESSIAN for k in keys))
        for node in order
        if (kids := differentiable_children(node)) and not isinstance(node, sympy.Symbol)
    }
    paths = path_sums(expr, order, locals_, variables, count, keys)
    depth = float(_depth(expr))
    bound: dict[Key, Floats] = {}
    weight: dict[Key, Floats] = {}
    site: dict[Key, Indices] = {}
    # One key's weights (sites x points) at a time: all of them at once held 160 MB at 100,000
    # points with node gradients.
    forward = _forward_weights(
        translation, inputs, variables, [perturbations[n] for n in sites], keys, count
    )
    for key, sensitivity in forward:
        unit_granted = _scaled(sensitivity, scale)
        if audited is None:  # every operation granted the tolerance: one product serves both
            granted = unit_granted * BOUND_SAFETY
        else:
            granted = _scaled(sensitivity, estimated) * BOUND_SAFETY
            granted += _scaled(sensitivity, measured)
        forward_total = granted.sum(0).numpy()
        with np.errstate(over="ignore", invalid="ignore"):  # an infinite bound is no bound
            backward = paths[key] * 2 * depth * backward_unit * BOUND_SAFETY
            bound[key] = forward_total + backward
            weight[key] = unit_granted.sum(0).numpy() / unit + paths[key]
        site[key] = np.where(forward_total >= backward, _first_argmax(granted.numpy()), -1)
    local = local_conditions(locals_, values, count)
    fragile = _fragile(values, locals_, count) if audited is not None else np.zeros(count, bool)
    if fragile.any():
        reads = _exact_conditions(local, values, np.flatnonzero(fragile))
        assert magnitude is not None  # fragile points are looked for only where audited
        rounding = (estimated * BOUND_SAFETY + measured) / magnitude
        granted_rel = _forward_relative(order, sites, local, rounding, count)
        unit_rel = _forward_relative(order, sites, local, scale / magnitude, count)
        for key in keys:
            if key[0] not in (GRADIENT, HESSIAN):
                continue
            with np.errstate(over="ignore", invalid="ignore"):
                chain = paths[key] * _read_errors(key, reads, granted_rel, count)
                chain_weight = paths[key] * _read_errors(key, reads, unit_rel, count) / unit
            stronger = fragile & np.isfinite(chain) & (chain > bound[key])
            bound[key] = np.where(stronger, chain, bound[key])
            site[key] = np.where(stronger, AMPLIFIED, site[key])
            weight[key] = np.where(stronger, np.fmax(weight[key], chain_weight), weight[key])
    return Conditioning(bound, weight, site, sites, order, local)


Reads = dict[tuple[sympy.Basic, sympy.Basic, sympy.Basic], Floats]
"""Per (node, child, other child): how the local derivative d node/d child amplifies the
other child's relative error, |d2 node/d child d other| |other| / |d node/d child|."""


def _exact_conditions(
    local: dict[sympy.Basic, Floats],
    values: Mapping[sympy.Basic, torch.Tensor],
    points: np.ndarray[Any, np.dtype[np.int64]],
) -> Reads:
    """At ``points``, in mpmath (whose exponents do not overflow): each node's local
    condition number (replacing float64's in ``local``) and how its local derivatives amplify
    its children's errors (:data:`Reads`; 0 at the other points). A node SymPy or mpmath
    cannot evaluate keeps float64's condition and reads its children with it plus 2 (what
    d(1/v)/dv = -1/v**2 adds)."""
    count = len(next(iter(local.values()))) if local else 0
    reads: Reads = {}
    for node, condition in local.items():
        kids = differentiable_children(node)
        symbols = [sympy.Dummy() for _ in kids]
        at = [values[c].detach().expand(count).numpy()[points] for c in kids]
        try:
            exact = _mpmath_conditions(node, kids, symbols, at)
        except (TypeError, ValueError, ZeroDivisionError, NameError, AttributeError):
            for child in kids:
                for other in kids:
                    reads[node, child, other] = np.where(
                        np.isin(np.arange(count), points), condition + 2, 0.0
                    )
            continue
        updated = np.array(condition, dtype=np.float64)
        updated[points] = exact[None]
        local[node] = updated
        for pair, row in exact.items():
            if pair is None:
                continue
            full = np.zeros(count)
            full[points] = row
            reads[(node, *pair)] = full
    return reads


def _mpmath_conditions(
    node: sympy.Basic,
    kids: Sequence[sympy.Basic],
    symbols: Sequence[sympy.Dummy],
    at: Sequence[Floats],
) -> dict[Any, Floats]:
    """``node``'s local condition (key None) and each (child, other) read condition at the
    children's values ``at``, evaluated in mpmath at 30 digits."""
    local_expr = node.xreplace(dict(zip(kids, symbols, strict=True)))
    firsts = [sympy.diff(local_expr, s) for s in symbols]
    formulas: dict[Any, sympy.Expr] = {
        None: sum(
            (sympy.Abs(d * s / local_expr) for d, s in zip(firsts, symbols, strict=True)),
            sympy.Integer(0),
        )
    }
    for child, first in zip(kids, firsts, strict=True):
        for other, s in zip(kids, symbols, strict=True):
            formulas[child, other] = sympy.Abs(sympy.diff(first, s) * s / first)
    result: dict[Any, Floats] = {}
    with mpmath.workdps(30):
        for name, formula in formulas.items():
            evaluate = sympy.lambdify(symbols, formula, modules="mpmath")
            result[name] = np.array(
                [
                    float(evaluate(*[mpmath.mpf(float(column[i])) for column in at]))
                    for i in range(len(at[0]) if at else 0)
                ]
            )
    return result


def _fragile(
    values: Mapping[sympy.Basic, torch.Tensor], locals_: Mapping[sympy.Basic, Any], count: int
) -> np.ndarray[Any, np.dtype[np.bool_]]:
    """The points where a node value or a local derivative lies beyond ``2**±FRAGILE_BITS``
    (or is not finite): where products in the shadow's backward passes may leave float64."""
    fragile = np.zeros(count, dtype=bool)
    arrays = [values[node].detach().abs().expand(count).numpy() for node in values]
    arrays += [b.values for first, _ in locals_.values() for b in first if b.values is not None]
    with np.errstate(invalid="ignore"):
        for magnitude in arrays:
            fragile |= (magnitude > 2.0**FRAGILE_BITS) | (
                (magnitude > 0) & (magnitude < 2.0**-FRAGILE_BITS)
            )
            fragile |= ~np.isfinite(magnitude)
    return fragile


def _forward_relative(
    order: Sequence[sympy.Basic],
    sites: Sequence[sympy.Basic],
    local: Mapping[sympy.Basic, Floats],
    own: torch.Tensor,
    count: int,
) -> dict[sympy.Basic, Floats]:
    """Each node's relative error: its own rounding (``own``, sites x points) plus its local
    condition number times its children's largest; leaves and conditions have none."""
    rounding = {node: torch.nan_to_num(own[i], nan=0.0).numpy() for i, node in enumerate(sites)}
    zero = np.zeros(count)
    relative: dict[sympy.Basic, Floats] = {}
    with np.errstate(over="ignore", invalid="ignore"):
        for node in order:
            inherited = _inherited(node, relative, zero)
            relative[node] = rounding.get(node, zero) + local.get(node, zero) * inherited
    return relative


def _inherited(node: sympy.Basic, relative: Mapping[sympy.Basic, Floats], zero: Floats) -> Floats:
    """The largest relative error among ``node``'s differentiable children."""
    inherited = zero
    for child in differentiable_children(node):
        inherited = np.fmax(inherited, relative.get(child, zero))
    return inherited


def _read_errors(
    key: Key, reads: Reads, relative: Mapping[sympy.Basic, Floats], count: int
) -> Floats:
    """The relative error of a derivative entry from the values it reads: each local
    derivative by a child that holds one of its variables reads the node's children, each
    amplified by its read condition (:data:`Reads`)."""
    wrt = set(key[1])
    zero = np.zeros(count)
    total = zero
    for (_, child, other), amplification in reads.items():
        if wrt & {s.name for s in child.free_symbols}:
            total = total + np.nan_to_num(amplification * relative.get(other, zero), nan=np.inf)
    return total


def _stack(rows: list[torch.Tensor], count: int) -> torch.Tensor:
    """``rows`` (one per rounding site) as a sites x points tensor, (0, count) for none."""
    if not rows:
        return torch.zeros(0, count, dtype=torch.float64)
    return torch.stack([row.expand(count) for row in rows])


def _scaled(sensitivity: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """|d entry / d perturbation| times each site's rounding; an infinite sensitivity (no
    bound) stays infinite where the rounding is 0 too."""
    return torch.nan_to_num(sensitivity * scale, nan=torch.inf)


def _measured(
    node: sympy.Basic, values: Mapping[sympy.Basic, torch.Tensor], audited: Audit, count: int
) -> torch.Tensor:
    """The audit's measured error of ``node``'s value at each point, nan where it measured
    none (sums, products and integer powers keep their roundings; see :func:`_rounding`)."""
    if isinstance(node, sympy.Add | sympy.Mul) or (
        isinstance(node, sympy.Pow) and isinstance(node.exp, sympy.Integer)
    ):
        return torch.full((count,), math.nan, dtype=torch.float64)
    errors = [row.get(node, math.nan) for row in audited.forward_error]
    return torch.tensor(errors, dtype=torch.float64)


def _first_argmax(weights: Floats) -> Indices:
    """Per column of ``weights`` (sites x points), the first row holding its largest value,
    as ``argmax`` along the rows gives it (row by row: a strided reduction is slow); -1 for
    every point when there are no rows."""
    if len(weights) == 0:
        return np.full(weights.shape[1], -1, dtype=np.int64)
    best = np.zeros(weights.shape[1], dtype=np.int64)
    largest = weights[0]
    for row in range(1, len(weights)):
        larger = weights[row] > largest
        best[larger] = row
        largest = np.where(larger, weights[row], largest)
    return best


def _rounding(
    node: sympy.Basic,
    values: Mapping[sympy.Basic, torch.Tensor],
    dtype: DType,
    unit: float,
    count: int,
) -> torch.Tensor:
    """How large the rounding error of ``node``'s result may be (absolute, per point)."""
    half_ulp = dtype.epsilon / 2
    if isinstance(node, sympy.Add):
        # An n-ary sum rounds n-1 partial sums, each at most the sum of |terms|.
        terms = sum((values[c].abs() for c in node.args), torch.zeros(count, dtype=torch.float64))
        return terms * half_ulp * (len(node.args) - 1)
    magnitude = values[node].abs().expand(count).to(torch.float64)
    if isinstance(node, sympy.Mul):
        return magnitude * half_ulp * (len(node.args) - 1)
    if isinstance(node, sympy.Pow) and isinstance(node.exp, sympy.Integer):
        return magnitude * half_ulp * max(1, abs(int(node.exp)).bit_length())
    return magnitude * unit


def _forward_weights(
    translation: Translation,
    inputs: Mapping[str, torch.Tensor],
    variables: Sequence[str],
    perturbation_leaves: list[torch.Tensor],
    keys: Sequence[Key],
    count: int,
) -> Iterator[tuple[Key, torch.Tensor]]:
    """Per key in order, |d entry / d perturbation| of each site (sites x points; inf where
    nothing bounds the entry), made as it is asked for."""
    leaves = [inputs[name] for name in variables]
    total = translation.output.sum()
    empty = torch.zeros(len(perturbation_leaves), count, dtype=torch.float64)
    if not total.requires_grad or not perturbation_leaves:
        for key in keys:
            yield key, empty
        return
    first = grad_or_none(total, leaves, create_graph=True)
    rows: dict[str, list[torch.Tensor | None]] = {}
    by_key = nodes_by_key(translation.tensors, keys)
    names = {name: i for i, name in enumerate(variables)}
    for key in keys:
        kind, wrt, node = key
        entry: torch.Tensor | None
        if kind == VALUE:
            entry = translation.output
        elif kind == GRADIENT:
            entry = first[names[wrt[0]]]
        elif kind == HESSIAN:
            if wrt[0] not in rows:
                g = first[names[wrt[0]]]
                rows[wrt[0]] = [None] * len(leaves)
                if g is not None and g.requires_grad:
                    try:
                        rows[wrt[0]] = grad_or_none(g.sum(), leaves, create_graph=True)
                    except RuntimeError:
                        # A user's backward marked once-differentiable: nothing bounds it.
                        yield key, torch.full_like(empty, torch.inf)
                        continue
            entry = rows[wrt[0]][names[wrt[1]]]
        else:
            assert kind == NODE and node is not None
            handle = translation.tensors[by_key[node]]
            entry = grad_or_none(total, [handle], create_graph=True)[0]
        yield key, _sensitivity(entry, perturbation_leaves, empty)


def _sensitivity(
    entry: torch.Tensor | None,
    perturbation_leaves: list[torch.Tensor],
    empty: torch.Tensor,
) -> torch.Tensor:
    if entry is None or not entry.requires_grad:
        return empty
    try:
        grads = grad_or_none(entry.sum(), perturbation_leaves, create_graph=False)
    except RuntimeError:
        # An operation without a derivative of this order: nothing bounds the entry.
        return torch.full_like(empty, torch.inf)
    stacked = torch.stack(
        [torch.zeros_like(empty[0]) if g is None else g.detach().abs() for g in grads]
    )
    return torch.nan_to_num(stacked, nan=torch.inf)


def _depth(expr: sympy.Basic) -> int:
    deepest = 1
    stack = [(expr, 1)]
    while stack:
        node, depth = stack.pop()
        deepest = max(deepest, depth)
        stack.extend((child, depth + 1) for child in children(node))
    return deepest
