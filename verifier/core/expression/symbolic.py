"""Exact derivatives with SymPy: gradient, full Hessian and node gradients.

A node gradient is d(output)/d(node) for a non-leaf subexpression: a fresh symbol stands in
for every occurrence of the node, the output is differentiated with respect to it, and the
node is substituted back.

>>> from verifier.core.expression.parse import parse_expression
>>> from verifier.core.floats.dtypes import DTYPES
>>> parsed = parse_expression("3*x**2 + 2*x*y + y**2")
>>> targets = derive(parsed, DTYPES["float64"], hessian=True, nodes=False)
>>> [str(t.expr) for t in targets if t.kind == "gradient"]
['6*x + 2*y', '2*x + 2*y']
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache

import sympy

from verifier.core.expression import registry
from verifier.core.expression.literals import bind_literals
from verifier.core.expression.parse import parse_expression
from verifier.core.expression.syntax import ParsedExpression
from verifier.core.floats.dtypes import DType

VALUE = "value"
GRADIENT = "gradient"
HESSIAN = "hessian"
NODE = "node"


class SymbolicError(Exception):
    """SymPy could not produce a usable derivative."""


Key = tuple[str, tuple[str, ...], str | None]
"""Identity of an entry, shared by the autograd and reference sides: (kind, wrt, node key)."""


def node_key(node: sympy.Basic) -> str:
    """A node's identity: its full structure, since distinct unevaluated nodes can print
    alike (``0.5*x`` and ``x/2`` both print as ``x/2``)."""
    return sympy.srepr(node)


def entry_keys(
    parsed: ParsedExpression, *, hessian: bool, nodes: bool, values: bool = False
) -> list[Key]:
    """The keys of every entry a check compares, in the order of :func:`derive`."""
    names = parsed.variables
    keys: list[Key] = [(VALUE, (), None)] if values else []
    keys.extend((GRADIENT, (name,), None) for name in names)
    if hessian:
        keys.extend((HESSIAN, (a, b), None) for a in names for b in names)
    if nodes:
        keys.extend((NODE, (), node_key(node)) for node in distinct_nodes(parsed.expr))
    return keys


@dataclass(frozen=True)
class Target:
    """One exact derivative to compare with autograd.

    Attributes:
        kind: ``value``, ``gradient``, ``hessian`` or ``node``.
        wrt: variable names differentiated by, in order; empty for a node gradient.
        node: the subexpression as written, for a node gradient.
        expr: the exact derivative, in the expression's variables.
        chain: the expressions that must be continuous at a point for this derivative to
            exist there: the output, then each lower-order derivative on the way.
    """

    kind: str
    wrt: tuple[str, ...]
    node: sympy.Expr | None
    expr: sympy.Expr
    chain: tuple[sympy.Expr, ...]

    @property
    def key(self) -> Key:
        """A hashable identity shared by the autograd and reference sides."""
        return (self.kind, self.wrt, None if self.node is None else node_key(self.node))


def distinct_nodes(expr: sympy.Expr) -> list[sympy.Expr]:
    """Distinct non-leaf subexpressions that depend on a variable, outermost first.

    Shared subtrees are counted once. Constant subexpressions are left out: autograd does
    not track them, so they have no gradient to compare.
    """
    seen: set[sympy.Basic] = set()
    ordered: list[sympy.Expr] = []
    for node in _preorder(expr):
        if node in seen:
            continue
        seen.add(node)
        if isinstance(node, sympy.Expr) and not node.is_Atom and node.free_symbols:
            ordered.append(node)
    return ordered


def _preorder(expr: sympy.Basic) -> Iterator[sympy.Basic]:
    stack = [expr]
    while stack:
        node = stack.pop()
        yield node
        stack.extend(reversed(node.args))


def derive(
    parsed: ParsedExpression, dtype: DType, *, hessian: bool, nodes: bool, values: bool = False
) -> tuple[Target, ...]:
    """Every exact derivative a check compares, in the order entries are reported.

    Literals the dtype does not hold exactly stay placeholders (see
    :mod:`verifier.core.expression.literals`), so the derivatives are taken with the literals as the
    torch graph holds them.

    Args:
        parsed: the expression.
        dtype: the check's dtype, which decides which literals are inexact.
        hessian: include all n*n second derivatives d2f/dvi dvj (i, j in variable order).
        nodes: include d(output)/d(node) for every distinct non-leaf node.
        values: include the expression's own value first (``check_function``: the value of
            the function under check is compared too).

    Returns:
        The value target (if asked), gradient targets, then Hessian targets row by row, then
        node targets.
    """
    return _derive_cached(parsed.text, dtype, hessian, nodes, values, registry.generation())


@lru_cache(maxsize=256)
def _derive_cached(
    text: str, dtype: DType, hessian: bool, nodes: bool, values: bool, generation: int
) -> tuple[Target, ...]:
    """The derivatives of ``text`` with the custom functions of ``generation`` (a change of
    the functions is a new key: the same text may mean otherwise)."""
    parsed = parse_expression(text)
    literals = bind_literals(parsed.expr, dtype)
    f = literals.expr
    symbols = parsed.symbols
    names = parsed.variables
    first = [_clean(sympy.diff(f, symbol)) for symbol in symbols]
    targets = [Target(VALUE, (), None, f, ())] if values else []
    targets.extend(
        Target(GRADIENT, (name,), None, derivative, (f,))
        for name, derivative in zip(names, first, strict=True)
    )
    if hessian:
        for name_i, derivative_i in zip(names, first, strict=True):
            for name_j, symbol_j in zip(names, symbols, strict=True):
                second = _clean(sympy.diff(derivative_i, symbol_j))
                targets.append(Target(HESSIAN, (name_i, name_j), None, second, (f, derivative_i)))
    if nodes:
        for node in distinct_nodes(parsed.expr):
            gradient = _node_gradient(f, literals.bind(node))
            targets.append(Target(NODE, (), node, gradient, (f,)))
    return tuple(targets)


def _node_gradient(f: sympy.Expr, node: sympy.Expr) -> sympy.Expr:
    stand_in = sympy.Dummy("node", real=True)
    replaced = f.xreplace({node: stand_in})
    # Clean first: a Derivative taken by the stand-in cannot take the node back.
    return _clean(_clean(sympy.diff(replaced, stand_in)).xreplace({stand_in: node}))


def _clean(derivative: sympy.Expr) -> sympy.Expr:
    """Resolve what SymPy leaves unevaluated; refuse what cannot be evaluated exactly."""
    # floor and ceiling are constant between integers; SymPy leaves their derivative
    # unevaluated. At integers the reference's continuity analysis reports `undefined`.
    derivative = derivative.replace(
        lambda e: (
            isinstance(e, sympy.Derivative) and isinstance(e.expr, sympy.floor | sympy.ceiling)
        ),
        lambda e: sympy.S.Zero,
    )
    # floor(2*x - 1) differentiates through Subs(Derivative(floor(u), u), u, 2*x - 1).
    derivative = derivative.replace(
        lambda e: isinstance(e, sympy.Subs) and not e.expr.atoms(sympy.Derivative),
        lambda e: e.expr.xreplace(dict(zip(e.variables, e.point, strict=True))),
    )
    leftover = derivative.atoms(sympy.Derivative, sympy.Subs)
    if leftover:
        raise SymbolicError(
            f"SymPy left the derivative unevaluated: {sorted(map(str, leftover))[0]}"
        )
    return derivative
