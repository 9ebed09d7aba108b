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
  depth of the expression, bounds what the backward passes add.

The condition factor of an entry is (forward weights + sum of |terms|) / |exact value|: the
error relative to the exact value is at most about the condition factor times ``u``.
``docs/report-format.md`` explains how the diagnosis uses it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import sympy
import torch

from verifier.core.dtypes import DType
from verifier.core.parse import make_symbol
from verifier.core.symbolic import GRADIENT, HESSIAN, NODE, Key, node_key
from verifier.core.translate import Translation, apply, children

_CONDITIONS = (sympy.logic.boolalg.BooleanAtom, sympy.core.relational.Relational)
BOUND_SAFETY = 4.0
"""The first-order bound is multiplied by this, for second-order terms and the ulps of |x|."""


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

    bound: dict[Key, list[float]]
    weight: dict[Key, list[float]]
    site: dict[Key, torch.Tensor]
    sites: list[sympy.Basic]
    order: list[sympy.Basic]
    local: dict[sympy.Basic, list[float]]

    def factor(self, key: Key, point: int, exact: float) -> float:
        """The condition factor of entry ``key`` at ``point``: weight over |exact value|."""
        weight = self.weight[key][point]
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
        return max(above, key=lambda node: self.local.get(node, [0.0] * (point + 1))[point])


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
        name: torch.tensor([p[name] for p in points], dtype=torch.float64, requires_grad=True)
        for name in variables
    }
    perturbations: dict[sympy.Basic, torch.Tensor] = {}

    def perturb(node: sympy.Basic, result: torch.Tensor) -> torch.Tensor:
        if not result.is_floating_point():  # a condition: nothing is rounded
            return result
        extra = torch.zeros(count, dtype=torch.float64, requires_grad=True)
        perturbations[node] = extra
        return result + extra

    translation = Translation(
        expr, inputs, "float64", torch.device("cpu"), literal_dtype=dtype.name, perturb=perturb
    )
    values = {node: tensor.detach() for node, tensor in translation.tensors.items()}
    sites = list(perturbations)
    scale = torch.stack(
        [_rounding(node, values, dtype, unit, count) for node in sites]
        or [torch.zeros(0, dtype=torch.float64)]
    ).reshape(len(sites), count)
    forward = _forward_weights(
        translation, inputs, variables, [perturbations[n] for n in sites], keys, scale
    )
    locals_ = {
        node: _local_first(node, values, kids)
        for node in order
        if (kids := differentiable_children(node)) and not isinstance(node, sympy.Symbol)
    }
    paths = _paths(expr, order, locals_, variables, count, keys)
    depth = float(_depth(expr))
    bound: dict[Key, list[float]] = {}
    weight: dict[Key, list[float]] = {}
    site: dict[Key, torch.Tensor] = {}
    for key in keys:
        weights = forward[key]  # sites x points
        forward_total = weights.sum(0)
        backward = paths[key] * 2 * depth * unit
        total = (forward_total + backward) * BOUND_SAFETY
        bound[key] = total.tolist()
        weight[key] = (forward_total / unit + paths[key]).tolist()
        best = weights.argmax(0) if sites else torch.zeros(count, dtype=torch.long)
        site[key] = torch.where(forward_total >= backward, best, -1) if sites else best - 1
    local = _local_conditions(locals_, values, count)
    return Conditioning(bound, weight, site, sites, order, local)


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
) -> dict[Key, torch.Tensor]:
    """Per key, |d entry / d perturbation| times each site's rounding (sites x points)."""
    count = scale.shape[1]
    leaves = [inputs[name] for name in variables]
    total = translation.output.sum()
    empty = torch.zeros(len(perturbation_leaves), count, dtype=torch.float64)
    result: dict[Key, torch.Tensor] = {}
    if not total.requires_grad or not perturbation_leaves:
        return {key: empty for key in keys}
    first = _grad(total, leaves, create_graph=True)
    rows: dict[str, list[torch.Tensor | None]] = {}
    by_key = {node_key(node): node for node in translation.tensors}
    names = {name: i for i, name in enumerate(variables)}
    for key in keys:
        kind, wrt, node = key
        if kind == GRADIENT:
            entry = first[names[wrt[0]]]
        elif kind == HESSIAN:
            if wrt[0] not in rows:
                g = first[names[wrt[0]]]
                rows[wrt[0]] = (
                    _grad(g.sum(), leaves, create_graph=True)
                    if g is not None and g.requires_grad
                    else [None] * len(leaves)
                )
            entry = rows[wrt[0]][names[wrt[1]]]
        else:
            assert kind == NODE and node is not None
            handle = translation.tensors[by_key[node]]
            entry = _grad(total, [handle], create_graph=True)[0]
        result[key] = _weights(entry, perturbation_leaves, scale, empty)
    return result


def _weights(
    entry: torch.Tensor | None,
    perturbation_leaves: list[torch.Tensor],
    scale: torch.Tensor,
    empty: torch.Tensor,
) -> torch.Tensor:
    if entry is None or not entry.requires_grad:
        return empty
    try:
        grads = _grad(entry.sum(), perturbation_leaves, create_graph=False)
    except RuntimeError:
        # An operation without a derivative of this order: nothing bounds the entry.
        return torch.full_like(empty, torch.inf)
    stacked = torch.stack(
        [torch.zeros_like(scale[0]) if g is None else g.detach().abs() for g in grads]
    )
    return torch.nan_to_num(stacked * scale, nan=torch.inf)


def _grad(
    output: torch.Tensor, wrt: Sequence[torch.Tensor], *, create_graph: bool
) -> list[torch.Tensor | None]:
    if not output.requires_grad:
        return [None] * len(wrt)
    return list(
        torch.autograd.grad(
            output, list(wrt), retain_graph=True, create_graph=create_graph, allow_unused=True
        )
    )


def _depth(expr: sympy.Basic) -> int:
    deepest = 1
    stack = [(expr, 1)]
    while stack:
        node, depth = stack.pop()
        deepest = max(deepest, depth)
        stack.extend((child, depth + 1) for child in children(node))
    return deepest


def program_order(expr: sympy.Expr) -> list[sympy.Basic]:
    """Nodes children-first, each once."""
    order: list[sympy.Basic] = []
    seen: set[sympy.Basic] = set()
    stack: list[tuple[sympy.Basic, bool]] = [(expr, False)]
    while stack:
        node, ready = stack.pop()
        if ready:
            order.append(node)
            continue
        if node in seen:
            continue
        seen.add(node)
        stack.append((node, True))
        stack.extend((child, False) for child in children(node) if child not in seen)
    return order


def differentiable_children(node: sympy.Basic) -> list[sympy.Basic]:
    """Distinct children that carry a derivative (not numbers, conditions or relations)."""
    if node.is_Relational or not node.free_symbols:
        return []
    return list(
        dict.fromkeys(
            child
            for child in children(node)
            if child.free_symbols and not isinstance(child, _CONDITIONS)
        )
    )


def _local_first(
    node: sympy.Basic, values: Mapping[sympy.Basic, torch.Tensor], kids: Sequence[sympy.Basic]
) -> tuple[list[torch.Tensor], list[list[torch.Tensor]]]:
    """|first| and |second| derivatives of a node by its children (float64)."""
    leaves = {c: values[c].detach().clone().requires_grad_(True) for c in kids}
    args = [leaves.get(c, values[c]) for c in children(node)]
    out = apply(node, args)
    leaf_list = [leaves[c] for c in kids]
    firsts = _grad(out.sum(), leaf_list, create_graph=True) if out.requires_grad else []
    firsts = firsts or [None] * len(kids)
    seconds = [
        _grad(g.sum(), leaf_list, create_graph=False)
        if g is not None and g.requires_grad
        else [None] * len(kids)
        for g in firsts
    ]
    return [_abs(g, out) for g in firsts], [[_abs(g, out) for g in row] for row in seconds]


def _abs(grad: torch.Tensor | None, like: torch.Tensor) -> torch.Tensor:
    if grad is None or grad._is_zerotensor():
        return torch.zeros(like.shape, dtype=torch.float64)
    magnitude = grad.detach().abs().expand(like.shape).to(torch.float64)
    return torch.nan_to_num(magnitude, nan=torch.inf)


_Locals = Mapping[sympy.Basic, tuple[list[torch.Tensor], list[list[torch.Tensor]]]]


def _paths(
    expr: sympy.Expr,
    order: list[sympy.Basic],
    locals_: _Locals,
    variables: Sequence[str],
    count: int,
    keys: Sequence[Key],
) -> dict[Key, torch.Tensor]:
    """Per key, the sum of |terms| of its chain rule (forward-mode accumulation)."""
    n = len(variables)
    index = {make_symbol(name): i for i, name in enumerate(variables)}
    want_hessian = any(k[0] == HESSIAN for k in keys)
    grad: dict[sympy.Basic, torch.Tensor] = {}
    hess: dict[sympy.Basic, torch.Tensor] = {}
    firsts: dict[sympy.Basic, tuple[list[sympy.Basic], list[torch.Tensor]]] = {}
    zero_g = torch.zeros(count, n, dtype=torch.float64)
    zero_h = torch.zeros(count, n, n, dtype=torch.float64)
    for node in order:
        kids = [] if node in index else differentiable_children(node)
        if not kids:
            g = zero_g.clone()
            if node in index:
                g[:, index[node]] = 1.0
            grad[node], hess[node] = g, zero_h
            continue
        first, second = locals_[node]
        firsts[node] = (kids, [d.expand(count) for d in first])
        g = zero_g
        for d, c in zip(first, kids, strict=True):
            g = g + d.expand(count).unsqueeze(1) * grad[c]
        grad[node] = g
        if not want_hessian:
            hess[node] = zero_h
            continue
        h = zero_h
        for d, c in zip(first, kids, strict=True):
            h = h + d.expand(count)[:, None, None] * hess[c]
        for a, ca in enumerate(kids):
            for b, cb in enumerate(kids):
                weight = second[a][b].expand(count)[:, None, None]
                h = h + weight * grad[ca].unsqueeze(2) * grad[cb].unsqueeze(1)
        hess[node] = h
    adjoint = _adjoints(order, firsts, count)
    names = {name: i for i, name in enumerate(variables)}
    by_key = {node_key(node): node for node in order}
    result: dict[Key, torch.Tensor] = {}
    for key in keys:
        kind, wrt, node = key
        if kind == GRADIENT:
            result[key] = grad[expr][:, names[wrt[0]]]
        elif kind == HESSIAN:
            result[key] = hess[expr][:, names[wrt[0]], names[wrt[1]]]
        else:
            assert node is not None
            zero = torch.zeros(count, dtype=torch.float64)
            result[key] = adjoint.get(by_key[node], zero)
    return result


def _adjoints(
    order: Sequence[sympy.Basic],
    firsts: Mapping[sympy.Basic, tuple[list[sympy.Basic], list[torch.Tensor]]],
    count: int,
) -> dict[sympy.Basic, torch.Tensor]:
    """|d output / d node| by reverse accumulation of |local derivatives|."""
    zero = torch.zeros(count, dtype=torch.float64)
    adjoint = {order[-1]: torch.ones(count, dtype=torch.float64)}
    for node in reversed(order):
        if node not in firsts or node not in adjoint:
            continue
        kids, first = firsts[node]
        for child, d in zip(kids, first, strict=True):
            adjoint[child] = adjoint.get(child, zero) + adjoint[node] * d
    return adjoint


def _local_conditions(
    locals_: _Locals, values: Mapping[sympy.Basic, torch.Tensor], count: int
) -> dict[sympy.Basic, list[float]]:
    """Each node's local condition number: sum over children of |d node/d child| |child|
    over |node| (for a sum, the sum of |terms| over |sum|: its cancellation)."""
    result: dict[sympy.Basic, list[float]] = {}
    for node, (first, _) in locals_.items():
        kids = differentiable_children(node)
        spread = sum(
            (
                d.expand(count) * values[c].abs().expand(count)
                for d, c in zip(first, kids, strict=True)
            ),
            torch.zeros(count, dtype=torch.float64),
        )
        size = values[node].abs().expand(count)
        ratio = torch.where(size > 0, spread / size, torch.where(spread > 0, torch.inf, 0.0))
        result[node] = ratio.tolist()
    return result
