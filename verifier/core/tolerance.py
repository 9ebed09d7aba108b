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

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import sympy
import torch

from verifier.core.dtypes import DType
from verifier.core.parse import make_symbol
from verifier.core.symbolic import GRADIENT, HESSIAN, NODE, Key, node_key
from verifier.core.translate import Translation, apply, children
from verifier.errors import OptionError

MAX_CHILDREN_THIRD_ORDER = 8
"""Nodes with more children skip the third-derivative slack term (k**3 autograd calls)."""

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
    # Per-node gradient and Hessian magnitudes are (points x n x n): free each once its
    # last parent has used it.
    uses = Counter(child for node in order for child in _differentiable_children(node))
    for node in order:
        scales.visit(node)
        local = scales.local.get(node)
        for child in local.kids if local is not None else ():
            uses[child] -= 1
            if uses[child] == 0:
                scales.release(child)
    adjoint = _adjoints(order, scales, len(points))
    by_key = {node_key(node): node for node in order}
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
            column = adjoint.get(by_key[node], torch.zeros(len(points), dtype=torch.float64))
        result[key] = [float(v) for v in column.tolist()]
    return result


@dataclass(frozen=True)
class _Local:
    """A node's |first| and |second| derivatives by its children, and how far each child
    may be off."""

    kids: list[sympy.Basic]
    first: list[torch.Tensor]
    second: list[list[torch.Tensor]]
    off: list[torch.Tensor]


class _Scales:
    """Forward-mode accumulation of magnitudes, node by node (children first).

    For every node: ``slack``, the forward rounding error it inherits from the rounding of
    function arguments, in units of epsilon (|phi'(u)| * (|u| + slack(u)) for a function
    phi of u; sums and products pass their children's slack on but add none, so cancellation
    in the expression as written is not forgiven); ``grad``/``hess``, the sums of |terms|
    autograd accumulates; ``grad_slack``/``hess_slack``, how far those move when the node
    values move by their slack (to first order).
    """

    def __init__(
        self,
        values: Mapping[sympy.Basic, torch.Tensor],
        variables: list[str],
        count: int,
        want_hessian: bool,
    ):
        self.values = values
        self.want_hessian = want_hessian
        n = len(variables)
        self.zero_v = torch.zeros(count, dtype=torch.float64)
        self.zero_g = torch.zeros(count, n, dtype=torch.float64)
        self.zero_h = torch.zeros(count, n, n, dtype=torch.float64)
        self.index = {make_symbol(name): i for i, name in enumerate(variables)}
        self.slack: dict[sympy.Basic, torch.Tensor] = {}
        self.grad: dict[sympy.Basic, torch.Tensor] = {}
        self.grad_slack: dict[sympy.Basic, torch.Tensor] = {}
        self.hess: dict[sympy.Basic, torch.Tensor] = {}
        self.hess_slack: dict[sympy.Basic, torch.Tensor] = {}
        self.local: dict[sympy.Basic, _Local] = {}

    def release(self, node: sympy.Basic) -> None:
        """Forget the (large) gradient and Hessian magnitudes of ``node``."""
        for table in (self.grad, self.grad_slack, self.hess, self.hess_slack):
            table.pop(node, None)

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
        first, second, third = _local_derivatives(
            node, self.values, kids, want_third=self.want_hessian
        )
        # How far each child's value may be off: its inherited slack, plus its own rounding
        # when it is the argument of a function (sums and products forgive no rounding).
        function_like = not isinstance(node, sympy.Add | sympy.Mul)
        off = [self.slack[c] + (self.values[c].abs() if function_like else 0.0) for c in kids]
        self.local[node] = _Local(kids, first, second, off)
        slack = sum((d * o for d, o in zip(first, off, strict=True)), self.zero_v)
        g = sum(
            (d.unsqueeze(1) * self.grad[c] for d, c in zip(first, kids, strict=True)), self.zero_g
        )
        gs = sum(
            (d.unsqueeze(1) * self.grad_slack[c] for d, c in zip(first, kids, strict=True)),
            self.zero_g,
        )
        for a, ca in enumerate(kids):
            for b in range(len(kids)):
                gs = gs + (second[a][b] * off[b]).unsqueeze(1) * self.grad[ca].abs()
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
                    off[b][:, None, None] * self.hess[ca].abs()
                    + _outer(self.grad_slack[ca], self.grad[cb])
                    + _outer(self.grad[ca], self.grad_slack[cb])
                )
                moved = sum((third[a][b][c] * off[c] for c in range(len(kids))), self.zero_v)
                hs = hs + moved[:, None, None] * _outer(self.grad[ca], self.grad[cb]).abs()
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
    *,
    want_third: bool,
) -> tuple[list[torch.Tensor], list[list[torch.Tensor]], list[list[list[torch.Tensor]]]]:
    """|first|, |second| and (if asked) |third| derivatives of a node by its children."""
    leaves = {c: values[c].detach().clone().requires_grad_(True) for c in kids}
    args = [leaves.get(c, values[c]) for c in children(node)]
    out = apply(node, args)
    leaf_list = [leaves[c] for c in kids]
    want_third = want_third and len(kids) <= MAX_CHILDREN_THIRD_ORDER
    firsts = _derivatives(out, leaf_list, create_graph=True)
    seconds = [_derivatives(g, leaf_list, create_graph=want_third) for g in firsts]
    first = [_abs(g, out) for g in firsts]
    zero = torch.zeros(out.shape, dtype=torch.float64)
    second = [[_abs(g, out) for g in row] for row in seconds]
    third = (
        [
            [[_abs(g, out) for g in _derivatives(s, leaf_list, create_graph=False)] for s in row]
            for row in seconds
        ]
        if want_third
        else [[[zero] * len(kids) for _ in kids] for _ in kids]
    )
    return first, second, third


def _derivatives(
    output: torch.Tensor | None, leaves: list[torch.Tensor], *, create_graph: bool
) -> list[torch.Tensor | None]:
    if output is None or not output.requires_grad:
        return [None] * len(leaves)
    return list(
        torch.autograd.grad(
            output.sum(), leaves, retain_graph=True, create_graph=create_graph, allow_unused=True
        )
    )


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
                (row * off for row, off in zip(local.second[a], local.off, strict=True)), zero
            )
            adjoint[child] = adjoint.get(child, zero) + adjoint[node] * local.first[a]
            slack[child] = (
                slack.get(child, zero) + slack[node] * local.first[a] + adjoint[node] * moved
            )
    return {node: adjoint[node] + slack[node] for node in adjoint}
