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

DEFAULT_ULPS = {"float64": 64, "float32": 64, "float16": 16, "bfloat16": 8}
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
    """Per entry key, per point, the scale autograd's rounding error is judged against."""
    inputs = {
        name: torch.tensor([p[name] for p in points], dtype=torch.float64) for name in variables
    }
    with torch.no_grad():
        values = Translation(expr, inputs, "float64", torch.device("cpu")).tensors
    scales = _Scales(values, list(variables), len(points), any(k[0] == HESSIAN for k in keys))
    order = _topological(expr)
    for node in order:
        scales.visit(node)
    adjoint = _adjoints(order, scales, len(points))
    by_name = {str(node): node for node in order}
    names = {name: i for i, name in enumerate(variables)}
    result: dict[Key, list[float]] = {}
    for key in keys:
        kind, wrt, node = key
        if kind == GRADIENT:
            i = names[wrt[0]]
            column = scales.grad[expr][:, i] + scales.grad_slack[expr][:, i]
        elif kind == HESSIAN:
            i, j = names[wrt[0]], names[wrt[1]]
            column = scales.hess[expr][:, i, j] + scales.hess_slack[expr][:, i, j]
        else:
            assert kind == NODE and node is not None
            column = adjoint.get(by_name[node], torch.zeros(len(points), dtype=torch.float64))
        result[key] = [float(v) for v in column.tolist()]
    return result


@dataclass(frozen=True)
class _Local:
    """|first| and |second| derivatives of a node with respect to its children."""

    kids: list[sympy.Basic]
    first: list[torch.Tensor]
    second: list[list[torch.Tensor]]


class _Scales:
    """Forward-mode accumulation of magnitudes, node by node (children first).

    For every node: ``slack``, the forward rounding error it inherits from the rounding of
    function arguments, in units of epsilon (|phi'(u)| * (|u| + slack(u)) for a function
    phi of u; sums and products pass their children's slack on but add none, so cancellation
    in the expression as written is not forgiven); ``grad``/``hess``, the sums of |terms|
    autograd accumulates; ``grad_slack``/``hess_slack``, how far those move when the node
    values move by their slack (first order; the Hessian's third-derivative terms are left
    out).
    """

    def __init__(
        self, values: Mapping[sympy.Basic, torch.Tensor], variables: list[str], count: int,
        want_hessian: bool,
    ):
        self.values = values
        self.want_hessian = want_hessian
        n = len(variables)
        self.zero_v = torch.zeros(count, dtype=torch.float64)
        self.zero_g = torch.zeros(count, n, dtype=torch.float64)
        self.zero_h = torch.zeros(count, n, n, dtype=torch.float64)
        self.index = {sympy.Symbol(name, real=True): i for i, name in enumerate(variables)}
        self.slack: dict[sympy.Basic, torch.Tensor] = {}
        self.grad: dict[sympy.Basic, torch.Tensor] = {}
        self.grad_slack: dict[sympy.Basic, torch.Tensor] = {}
        self.hess: dict[sympy.Basic, torch.Tensor] = {}
        self.hess_slack: dict[sympy.Basic, torch.Tensor] = {}
        self.local: dict[sympy.Basic, _Local] = {}

    def visit(self, node: sympy.Basic) -> None:
        """Compute every magnitude of ``node`` from its children's."""
        kids = [] if node in self.index else _differentiable_children(node)
        if not kids:
            g = self.zero_g.clone()
            if node in self.index:
                g[:, self.index[node]] = 1.0
            self.slack[node], self.grad[node], self.grad_slack[node] = self.zero_v, g, self.zero_g
            self.hess[node] = self.hess_slack[node] = self.zero_h
            return
        first, second = _local_derivatives(node, self.values, kids)
        self.local[node] = _Local(kids, first, second)
        function_like = not isinstance(node, sympy.Add | sympy.Mul)
        slack = self.zero_v
        g, gs = self.zero_g, self.zero_g
        for d, c in zip(first, kids, strict=True):
            inherited = self.slack[c] + (self.values[c].abs() if function_like else 0.0)
            slack = slack + d * inherited
            g = g + d.unsqueeze(1) * self.grad[c]
            gs = gs + d.unsqueeze(1) * self.grad_slack[c]
        for a, ca in enumerate(kids):
            for b, cb in enumerate(kids):
                gs = gs + (second[a][b] * self.slack[cb]).unsqueeze(1) * self.grad[ca].abs()
        self.slack[node], self.grad[node], self.grad_slack[node] = slack, g, gs
        if not self.want_hessian:
            self.hess[node] = self.hess_slack[node] = self.zero_h
            return
        h, hs = self.zero_h, self.zero_h
        for d, c in zip(first, kids, strict=True):
            h = h + d[:, None, None] * self.hess[c]
            hs = hs + d[:, None, None] * self.hess_slack[c]
        for a, ca in enumerate(kids):
            for b, cb in enumerate(kids):
                weight = second[a][b][:, None, None]
                h = h + weight * _outer(self.grad[ca], self.grad[cb])
                hs = hs + weight * (
                    self.slack[cb][:, None, None] * self.hess[ca].abs()
                    + _outer(self.grad_slack[ca], self.grad[cb])
                    + _outer(self.grad[ca], self.grad_slack[cb])
                )
        self.hess[node], self.hess_slack[node] = h, hs


def _outer(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return a.unsqueeze(2) * b.unsqueeze(1)


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
) -> tuple[list[torch.Tensor], list[list[torch.Tensor]]]:
    """|d node / d child| and |d2 node / d child d child'| at every point, in float64."""
    leaves = {c: values[c].detach().clone().requires_grad_(True) for c in kids}
    args = [leaves.get(c, values[c]) for c in children(node)]
    out = apply(node, args)
    leaf_list = [leaves[c] for c in kids]
    firsts = torch.autograd.grad(out.sum(), leaf_list, create_graph=True, allow_unused=True)
    first = [_abs(g, out) for g in firsts]
    second: list[list[torch.Tensor]] = []
    for g in firsts:
        if g is None or not g.requires_grad:
            second.append([torch.zeros(out.shape, dtype=torch.float64) for _ in kids])
            continue
        row = torch.autograd.grad(g.sum(), leaf_list, retain_graph=True, allow_unused=True)
        second.append([_abs(r, out) for r in row])
    return first, second


def _abs(grad: torch.Tensor | None, like: torch.Tensor) -> torch.Tensor:
    if grad is None or grad._is_zerotensor():
        return torch.zeros(like.shape, dtype=torch.float64)
    magnitude = grad.detach().abs().expand(like.shape).to(torch.float64)
    # A local derivative that is nan or inf (a pole, a kink) gives no usable scale.
    return torch.nan_to_num(magnitude, nan=0.0, posinf=0.0)


def _adjoints(
    order: Sequence[sympy.Basic], scales: _Scales, count: int
) -> dict[sympy.Basic, torch.Tensor]:
    """Magnitude of d output / d node: reverse accumulation of |local derivatives|, plus
    how far it moves when node values move by their slack."""
    zero = torch.zeros(count, dtype=torch.float64)
    adjoint: dict[sympy.Basic, torch.Tensor] = {order[-1]: torch.ones(count, dtype=torch.float64)}
    slack: dict[sympy.Basic, torch.Tensor] = {order[-1]: zero}
    for node in reversed(order):
        local = scales.local.get(node)
        if local is None or node not in adjoint:
            continue
        for a, child in enumerate(local.kids):
            moved = sum(
                (local.second[a][b] * scales.slack[other] for b, other in enumerate(local.kids)),
                zero,
            )
            adjoint[child] = adjoint.get(child, zero) + adjoint[node] * local.first[a]
            slack[child] = (
                slack.get(child, zero) + slack[node] * local.first[a] + adjoint[node] * moved
            )
    return {node: adjoint[node] + slack[node] for node in adjoint}
