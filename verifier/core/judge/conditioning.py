"""Conditioning: how far the rounding of the computation as written can move each entry.

A float64 shadow of the torch program (the same tree, literals rounded to the check's dtype,
points exactly as autograd saw them) gives, per entry and point, a first-order bound on the
error that rounding alone explains when every operation is accurate:

- forward rounding: every operation's result carries an error of up to ``u`` times its size
  (``u`` is half an ulp for ``+``, ``*`` and integer powers, which are correctly rounded, and
  the check's tolerance for other functions, which the local audit holds them to). An additive
  perturbation ``d_n`` on each node's result, differentiated through the whole derivative
  computation, gives each rounding's weight in the entry; the one with the largest weight is
  where the error comes from;
- backward rounding: each term of the chain rule is rounded on its way, so the sum of the
  absolute values of the terms (forward-mode accumulation of |local derivatives|), times the
  depth of the expression, bounds what the backward passes add
  (:mod:`verifier.core.judge.magnitudes`).

The condition factor of an entry is (forward weights + sum of |terms|) / |exact value|: the
error relative to the exact value is at most about the condition factor times ``u``.
``docs/report-format.md`` explains how the diagnosis uses it.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import sympy
import torch

from verifier.core.expression.symbolic import GRADIENT, HESSIAN, NODE, VALUE, Key
from verifier.core.floats.dtypes import DTYPES, DType
from verifier.core.floats.points import variable_columns
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
"""The first-order bound is multiplied by this, for second-order terms and the ulps of |x|."""

Indices = np.ndarray[Any, np.dtype[np.int64]]


@dataclass(frozen=True)
class Conditioning:
    """Per entry key, per point: the bound, the condition factor and the dominant rounding.

    Attributes:
        bound: absolute error that rounding of the computation as written explains.
        weight: the same without the unit roundoff: forward weights plus the sum of |terms|.
        site: per key, the index into ``sites`` of the node whose forward rounding weighs
            most at each point, or -1 where the backward terms weigh more.
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
    scale = torch.stack(
        [_rounding(node, values, dtype, unit, count) for node in sites]
        or [torch.zeros(0, dtype=torch.float64)]
    ).reshape(len(sites), count)
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
        translation, inputs, variables, [perturbations[n] for n in sites], keys, scale
    )
    for key, weights in forward:
        forward_total = weights.sum(0).numpy()
        with np.errstate(over="ignore", invalid="ignore"):  # an infinite bound is no bound
            backward = paths[key] * 2 * depth * unit
            bound[key] = (forward_total + backward) * BOUND_SAFETY
            weight[key] = forward_total / unit + paths[key]
        site[key] = np.where(forward_total >= backward, _first_argmax(weights.numpy()), -1)
    local = local_conditions(locals_, values, count)
    return Conditioning(bound, weight, site, sites, order, local)


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
    scale: torch.Tensor,
) -> Iterator[tuple[Key, torch.Tensor]]:
    """Per key in order, |d entry / d perturbation| times each site's rounding (sites x
    points), made as it is asked for."""
    count = scale.shape[1]
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
        yield key, _weights(entry, perturbation_leaves, scale, empty)


def _weights(
    entry: torch.Tensor | None,
    perturbation_leaves: list[torch.Tensor],
    scale: torch.Tensor,
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
        [torch.zeros_like(scale[0]) if g is None else g.detach().abs() for g in grads]
    )
    return torch.nan_to_num(stacked * scale, nan=torch.inf)


def _depth(expr: sympy.Basic) -> int:
    deepest = 1
    stack = [(expr, 1)]
    while stack:
        node, depth = stack.pop()
        deepest = max(deepest, depth)
        stack.extend((child, depth + 1) for child in children(node))
    return deepest
