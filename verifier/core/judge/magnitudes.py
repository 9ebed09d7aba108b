"""Magnitudes of the chain rule: |local derivatives| accumulated through the torch program.

The rounding of a backward pass is bounded by the sum of the absolute values of the terms it
adds up: forward-mode accumulation of |local derivatives| gives that sum for every gradient and
Hessian entry, reverse accumulation for every node gradient. Each node's local condition number
(how much it amplifies its inputs' relative errors) comes from the same local derivatives.
Everything here runs in float64 on the values of a shadow program
(:mod:`verifier.core.judge.conditioning`).

The accumulation is kept entry by entry (one array per variable, or pair of variables, with
one value per point), and an entry that is zero at every point by construction (a node that
does not depend on a variable, a local derivative that autograd returns as unused) is a
:class:`Block` of ``None``: it is skipped rather than multiplied out. Skipping it gives the same
numbers as the dense products: adding an exact zero changes nothing, and a product with an
exact zero is computed only where the other factor is not finite (``0 * inf`` is nan).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from functools import reduce
from typing import Any

import numpy as np
import sympy
import torch

from verifier.core.expression.symbolic import GRADIENT, HESSIAN, NODE, VALUE, Key, node_key
from verifier.core.expression.syntax import make_symbol
from verifier.core.program.translate import apply, children, differentiable_children

Floats = np.ndarray[Any, np.dtype[np.float64]]


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


def nodes_by_key(nodes: Iterable[sympy.Basic], keys: Sequence[Key]) -> dict[str, sympy.Basic]:
    """``nodes`` by their node keys, when ``keys`` ask for any node gradient (printing a node's
    key costs more than the rest of a small analysis)."""
    if not any(kind == NODE for kind, _, _ in keys):
        return {}
    return {node_key(node): node for node in nodes}


class Block:
    """One value per point, or ``None``: zero at every point, kept without its array."""

    __slots__ = ("values", "_finite")

    def __init__(self, values: Floats | None) -> None:
        self.values = values
        self._finite: bool | None = None

    @property
    def finite(self) -> bool:
        """Whether every value is finite (computed once)."""
        if self._finite is None:
            self._finite = self.values is None or bool(np.isfinite(self.values).all())
        return self._finite

    def dense(self, count: int) -> Floats:
        """The values as an array of ``count`` points (zeros for an exact zero)."""
        if self.values is None:
            return np.zeros(count, dtype=np.float64)
        return np.broadcast_to(self.values, (count,)).copy()


ZERO = Block(None)


def times(a: Block, b: Block) -> Block:
    """``a * b`` point by point; an exact zero times finite values stays an exact zero."""
    if a.values is not None and b.values is not None:
        return Block(a.values * b.values)
    other = b if a.values is None else a
    if other.finite:
        return ZERO
    assert other.values is not None
    with np.errstate(invalid="ignore"):  # the nan of 0 * inf is the point
        return Block(other.values * 0.0)


def plus(a: Block, b: Block) -> Block:
    """``a + b`` point by point."""
    if a.values is None:
        return b
    if b.values is None:
        return a
    return Block(a.values + b.values)


def total(blocks: Iterable[Block]) -> Block:
    """The sum of ``blocks``, added left to right from an exact zero."""
    return reduce(plus, blocks, ZERO)


Locals = Mapping[sympy.Basic, tuple[list[Block], list[list[Block]]]]
"""Per node: |first| derivatives by its differentiable children, and |second| ones."""


def local_derivatives(
    node: sympy.Basic,
    values: Mapping[sympy.Basic, torch.Tensor],
    kids: Sequence[sympy.Basic],
    *,
    second: bool = True,
) -> tuple[list[Block], list[list[Block]]]:
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


def _abs(grad: torch.Tensor | None, like: torch.Tensor) -> Block:
    if grad is None or grad._is_zerotensor():
        return ZERO
    magnitude = grad.detach().abs().expand(like.shape).to(torch.float64)
    return Block(torch.nan_to_num(magnitude, nan=torch.inf).numpy())


@np.errstate(over="ignore", invalid="ignore")  # inf and nan are unbounded sums
def path_sums(
    expr: sympy.Expr,
    order: list[sympy.Basic],
    locals_: Locals,
    variables: Sequence[str],
    count: int,
    keys: Sequence[Key],
) -> dict[Key, Floats]:
    """Per key, the sum of |terms| of its chain rule (forward-mode accumulation)."""
    n = len(variables)
    index = {make_symbol(name): i for i, name in enumerate(variables)}
    want_hessian = any(k[0] == HESSIAN for k in keys)
    grad: dict[sympy.Basic, list[Block]] = {}
    hess: dict[sympy.Basic, list[list[Block]]] = {}
    firsts: dict[sympy.Basic, tuple[list[sympy.Basic], list[Block]]] = {}
    ones = Block(np.ones(count, dtype=np.float64))
    zero_h = [[ZERO] * n for _ in range(n)]
    for node in order:
        kids = [] if node in index else differentiable_children(node)
        if not kids:
            grad[node] = [ones if index.get(node) == i else ZERO for i in range(n)]
            hess[node] = zero_h
            continue
        first, second = locals_[node]
        firsts[node] = (kids, first)
        grad[node] = [
            total(times(d, grad[c][i]) for d, c in zip(first, kids, strict=True)) for i in range(n)
        ]
        hess[node] = _hessian(kids, first, second, grad, hess, n) if want_hessian else zero_h
    adjoint = _adjoints(order, firsts, count)
    names = {name: i for i, name in enumerate(variables)}
    by_key = nodes_by_key(order, keys)
    result: dict[Key, Floats] = {}
    for key in keys:
        kind, wrt, node = key
        if kind == GRADIENT:
            result[key] = grad[expr][names[wrt[0]]].dense(count)
        elif kind == HESSIAN:
            result[key] = hess[expr][names[wrt[0]]][names[wrt[1]]].dense(count)
        elif kind == VALUE:  # no backward: only the forward roundings weigh
            result[key] = np.zeros(count, dtype=np.float64)
        else:
            assert node is not None
            result[key] = adjoint.get(by_key[node], ZERO).dense(count)
    return result


def _hessian(
    kids: Sequence[sympy.Basic],
    first: Sequence[Block],
    second: Sequence[Sequence[Block]],
    grad: Mapping[sympy.Basic, Sequence[Block]],
    hess: Mapping[sympy.Basic, Sequence[Sequence[Block]]],
    n: int,
) -> list[list[Block]]:
    """A node's sums of |terms| for its second derivatives: the children's, carried by
    |first| derivatives, plus |second| derivatives times the children's gradients."""
    pairs = [
        (second[a][b], grad[ca], grad[cb])
        for a, ca in enumerate(kids)
        for b, cb in enumerate(kids)
        # an exact zero times finite gradients adds nothing to any entry
        if second[a][b].values is not None or not all(g.finite for g in (*grad[ca], *grad[cb]))
    ]
    return [
        [
            total(
                [
                    *(times(d, hess[c][i][j]) for d, c in zip(first, kids, strict=True)),
                    *(times(times(w, ga[i]), gb[j]) for w, ga, gb in pairs),
                ]
            )
            for j in range(n)
        ]
        for i in range(n)
    ]


def _adjoints(
    order: Sequence[sympy.Basic],
    firsts: Mapping[sympy.Basic, tuple[list[sympy.Basic], list[Block]]],
    count: int,
) -> dict[sympy.Basic, Block]:
    """|d output / d node| by reverse accumulation of |local derivatives|."""
    adjoint = {order[-1]: Block(np.ones(count, dtype=np.float64))}
    for node in reversed(order):
        if node not in firsts or node not in adjoint:
            continue
        kids, first = firsts[node]
        for child, d in zip(kids, first, strict=True):
            adjoint[child] = plus(adjoint.get(child, ZERO), times(adjoint[node], d))
    return adjoint


def local_conditions(
    locals_: Locals, values: Mapping[sympy.Basic, torch.Tensor], count: int
) -> dict[sympy.Basic, Floats]:
    """Each node's local condition number: sum over children of |d node/d child| |child|
    over |node| (for a sum, the sum of |terms| over |sum|: its cancellation)."""
    result: dict[sympy.Basic, Floats] = {}
    for node, (first, _) in locals_.items():
        kids = differentiable_children(node)
        size = _magnitude(values[node], count)
        with np.errstate(all="ignore"):  # inf and nan are unbounded amplifications
            spread = total(
                times(d, Block(_magnitude(values[c], count)))
                for d, c in zip(first, kids, strict=True)
            ).dense(count)
            ratio = np.where(size > 0, spread / size, np.where(spread > 0, np.inf, 0.0))
        result[node] = ratio
    return result


def _magnitude(value: torch.Tensor, count: int) -> Floats:
    return np.broadcast_to(value.detach().abs().to(torch.float64).numpy(), (count,))
