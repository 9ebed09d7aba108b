"""Magnitudes of the chain rule: |local derivatives| accumulated through the torch program.

The rounding of a backward pass is bounded by the sum of the absolute values of the terms it
adds up: forward-mode accumulation of |local derivatives| gives that sum for every gradient and
Hessian entry, reverse accumulation for every node gradient. Each node's local condition number
(how much it amplifies its inputs' relative errors) comes from the same local derivatives.
Everything here runs in float64 on the values of a shadow program
(:mod:`verifier.core.conditioning`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import sympy
import torch

from verifier.core.parse import make_symbol
from verifier.core.symbolic import GRADIENT, HESSIAN, VALUE, Key, node_key
from verifier.core.translate import apply, children, differentiable_children


def grad_or_none(
    output: torch.Tensor, wrt: Sequence[torch.Tensor], *, create_graph: bool
) -> list[torch.Tensor | None]:
    """d output / d each of ``wrt`` (None where unused), keeping the graph."""
    if not output.requires_grad:
        return [None] * len(wrt)
    return list(
        torch.autograd.grad(
            output, list(wrt), retain_graph=True, create_graph=create_graph, allow_unused=True
        )
    )


Locals = Mapping[sympy.Basic, tuple[list[torch.Tensor], list[list[torch.Tensor]]]]
"""Per node: |first| derivatives by its differentiable children, and |second| ones."""


def local_derivatives(
    node: sympy.Basic,
    values: Mapping[sympy.Basic, torch.Tensor],
    kids: Sequence[sympy.Basic],
    *,
    second: bool = True,
) -> tuple[list[torch.Tensor], list[list[torch.Tensor]]]:
    """|first| and |second| derivatives of ``node`` by its children ``kids`` (float64).

    Without ``second`` (no Hessian entry needs them) the second derivatives are zeros and
    torch is not asked for them; where torch has no derivative of the node's backward
    (``hardsigmoid``), they are infinite: nothing bounds what rounding does there.
    """
    leaves = {c: values[c].detach().clone().requires_grad_(True) for c in kids}
    args = [leaves.get(c, values[c]) for c in children(node)]
    out = apply(node, args)
    leaf_list = [leaves[c] for c in kids]
    firsts = grad_or_none(out.sum(), leaf_list, create_graph=second) if out.requires_grad else []
    firsts = firsts or [None] * len(kids)
    unknown = torch.full(out.shape, torch.inf, dtype=torch.float64)
    seconds: list[list[torch.Tensor | None]] = []
    for g in firsts:
        row: list[torch.Tensor | None] = [None] * len(kids)
        if second and g is not None and g.requires_grad:
            try:
                row = grad_or_none(g.sum(), leaf_list, create_graph=False)
            except RuntimeError:
                # torch has no derivative of this backward: unbounded, not an error.
                row = [unknown] * len(kids)
        seconds.append(row)
    return [_abs(g, out) for g in firsts], [[_abs(g, out) for g in row] for row in seconds]


def _abs(grad: torch.Tensor | None, like: torch.Tensor) -> torch.Tensor:
    if grad is None or grad._is_zerotensor():
        return torch.zeros(like.shape, dtype=torch.float64)
    magnitude = grad.detach().abs().expand(like.shape).to(torch.float64)
    return torch.nan_to_num(magnitude, nan=torch.inf)


def path_sums(
    expr: sympy.Expr,
    order: list[sympy.Basic],
    locals_: Locals,
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
        elif kind == VALUE:  # no backward: only the forward roundings weigh
            result[key] = torch.zeros(count, dtype=torch.float64)
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


def local_conditions(
    locals_: Locals, values: Mapping[sympy.Basic, torch.Tensor], count: int
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
