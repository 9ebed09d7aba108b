"""Tolerances: how far autograd may be from the exact value before an entry fails.

An entry passes when ``|autograd - reference| <= atol + rtol * max(|reference|, magnitude)``.

``rtol`` defaults to a number of units in the last place of the dtype (``DEFAULT_ULPS``), and
``atol`` to the dtype's smallest normal number. ``magnitude`` is the size of the terms autograd
adds up on its way to the entry: a derivative is a sum over paths of products of local
derivatives, and the rounding error of that sum scales with the sum of the absolute values of
its terms, not with the (possibly cancelled) result. ``x/x`` has derivative 1/x - x/x**2 = 0;
autograd's rounding there is judged against 2/x, not against 0. The magnitude is computed by
forward-mode accumulation of |local derivatives| in float64; the values of the expression's own
subexpressions are exact, so cancellation in the expression as written (``1 - cos(x)`` near 0)
is not forgiven: it is autograd's error, and the report shows it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import sympy
import torch

from verifier.core.dtypes import DType
from verifier.core.symbolic import GRADIENT, HESSIAN, NODE, Key
from verifier.core.translate import Translation, apply, children
from verifier.errors import OptionError

_CONDITIONS = (sympy.logic.boolalg.BooleanAtom, sympy.core.relational.Relational)

DEFAULT_ULPS = {"float64": 1024, "float32": 256, "float16": 32, "bfloat16": 16}
"""Default relative tolerance per dtype, in units in the last place (ulps) at 1.0."""


@dataclass(frozen=True)
class Tolerance:
    """The tolerance of a check: relative (also in ulps) and absolute."""

    rtol: float
    atol: float
    ulps: float

    def allowed(self, reference: float, magnitude: float) -> float:
        """The absolute error allowed for an entry."""
        scale = abs(reference)
        if magnitude == magnitude and magnitude > scale:  # magnitude may be nan
            scale = magnitude
        return self.atol + self.rtol * scale

    def to_dict(self) -> dict[str, float]:
        """The tolerance as the report shows it."""
        return {"rtol": self.rtol, "atol": self.atol, "ulps": self.ulps}


def make_tolerance(dtype: DType, rtol: float | None = None, atol: float | None = None) -> Tolerance:
    """The default tolerance for ``dtype``, with any given ``rtol``/``atol`` overriding it."""
    for name, value in (("rtol", rtol), ("atol", atol)):
        if value is not None and not (isinstance(value, int | float) and 0 <= value < 1e300):
            raise OptionError(f"{name} must be a non-negative number, got {value!r}")
    if rtol is None:
        ulps = float(DEFAULT_ULPS[dtype.name])
        rtol = ulps * dtype.epsilon
    else:
        ulps = rtol / dtype.epsilon
    if atol is None:
        atol = dtype.smallest_normal
    return Tolerance(rtol=float(rtol), atol=float(atol), ulps=ulps)


def magnitudes(
    expr: sympy.Expr,
    variables: Sequence[str],
    points: Sequence[Mapping[str, float]],
    keys: Sequence[Key],
) -> dict[Key, list[float]]:
    """Per entry key, per point, the sum of |terms| that autograd accumulates for it."""
    count = len(points)
    inputs = {
        name: torch.tensor([p[name] for p in points], dtype=torch.float64) for name in variables
    }
    with torch.no_grad():
        values = Translation(expr, inputs, "float64", torch.device("cpu")).tensors
    n = len(variables)
    want_hessian = any(key[0] == HESSIAN for key in keys)
    order = _topological(expr)
    grad: dict[sympy.Basic, torch.Tensor] = {}
    hess: dict[sympy.Basic, torch.Tensor] = {}
    local: dict[sympy.Basic, tuple[list[sympy.Basic], list[torch.Tensor]]] = {}
    zero_g = torch.zeros(count, n, dtype=torch.float64)
    zero_h = torch.zeros(count, n, n, dtype=torch.float64)
    index = {sympy.Symbol(name, real=True): i for i, name in enumerate(variables)}
    for node in order:
        if node in index:
            g = zero_g.clone()
            g[:, index[node]] = 1.0
            grad[node], hess[node] = g, zero_h
            continue
        kids = _differentiable_children(node)
        if not kids:
            grad[node], hess[node] = zero_g, zero_h
            continue
        first, second = _local_derivatives(node, values, kids, want_hessian)
        local[node] = (kids, first)
        g = sum((d.unsqueeze(1) * grad[c] for d, c in zip(first, kids, strict=True)), zero_g)
        grad[node] = g
        if want_hessian:
            h = sum((d[:, None, None] * hess[c] for d, c in zip(first, kids, strict=True)), zero_h)
            for a, ca in enumerate(kids):
                for b, cb in enumerate(kids):
                    outer = grad[ca].unsqueeze(2) * grad[cb].unsqueeze(1)
                    h = h + second[a][b][:, None, None] * outer
            hess[node] = h
    adjoint = _adjoints(order, local, count)
    by_name = {str(node): node for node in order}
    result: dict[Key, list[float]] = {}
    names = {name: i for i, name in enumerate(variables)}
    for key in keys:
        kind, wrt, node = key
        if kind == GRADIENT:
            column = grad[expr][:, names[wrt[0]]]
        elif kind == HESSIAN:
            column = hess[expr][:, names[wrt[0]], names[wrt[1]]]
        else:
            assert kind == NODE and node is not None
            column = adjoint.get(by_name[node], torch.zeros(count, dtype=torch.float64))
        result[key] = [float(v) for v in column.tolist()]
    return result


def _topological(expr: sympy.Expr) -> list[sympy.Basic]:
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


def _differentiable_children(node: sympy.Basic) -> list[sympy.Basic]:
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


def _local_derivatives(
    node: sympy.Basic,
    values: Mapping[sympy.Basic, torch.Tensor],
    kids: Sequence[sympy.Basic],
    want_hessian: bool,
) -> tuple[list[torch.Tensor], list[list[torch.Tensor]]]:
    """|d node / d child| and |d2 node / d child d child'| at every point, in float64."""
    leaves = {c: values[c].detach().clone().requires_grad_(True) for c in kids}
    args = [leaves.get(c, values[c]) for c in children(node)]
    out = apply(node, args)
    leaf_list = [leaves[c] for c in kids]
    firsts = torch.autograd.grad(
        out.sum(), leaf_list, create_graph=want_hessian, allow_unused=True
    )
    first = [_abs(g, out) for g in firsts]
    second: list[list[torch.Tensor]] = []
    if want_hessian:
        for g in firsts:
            if g is None or not g.requires_grad:
                second.append([torch.zeros_like(out, dtype=torch.float64) for _ in kids])
                continue
            row = torch.autograd.grad(g.sum(), leaf_list, retain_graph=True, allow_unused=True)
            second.append([_abs(r, out) for r in row])
    return first, second


def _abs(grad: torch.Tensor | None, like: torch.Tensor) -> torch.Tensor:
    if grad is None:
        return torch.zeros(like.shape, dtype=torch.float64)
    return grad.detach().abs().expand(like.shape).to(torch.float64)


def _adjoints(
    order: Sequence[sympy.Basic],
    local: Mapping[sympy.Basic, tuple[list[sympy.Basic], list[torch.Tensor]]],
    count: int,
) -> dict[sympy.Basic, torch.Tensor]:
    """Reverse accumulation of |local derivatives|: the magnitude of d output / d node."""
    adjoint: dict[sympy.Basic, torch.Tensor] = {order[-1]: torch.ones(count, dtype=torch.float64)}
    for node in reversed(order):
        if node not in local or node not in adjoint:
            continue
        kids, weights = local[node]
        for child, weight in zip(kids, weights, strict=True):
            previous = adjoint.get(child, torch.zeros(count, dtype=torch.float64))
            adjoint[child] = previous + adjoint[node] * weight
    return adjoint
