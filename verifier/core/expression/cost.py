"""The cost of a check, estimated before it runs: what admission control bounds.

A check's work grows with the reference values it certifies and with the derivatives SymPy
takes, so its cost in *units* is

    points x entries per point x value weight  +  symbolic size x derivatives x SYMBOLIC_WEIGHT
      +  limit-prone nodes x limits each x LIMIT_UNITS

- entries per point: n gradient components, n**2 Hessian elements, one per distinct node;
- value weight: 1, plus ``JUMP_WEIGHT`` for every jump function in the expression (sign,
  Heaviside, floor, ceiling, Piecewise, Abs, Max, Min, atan2): a point sitting on a jump is
  evaluated again from each side that can occur, and a hostile client can put every point there;
- symbolic size: the nodes of the expression's tree; derivatives taken: n, plus n**2 for a
  Hessian, plus one per node gradient;
- limit-prone nodes: the nodes, definitions expanded, where a derivative can be 0/0 or infinite
  while the value is finite (``sinc``, a power whose exponent is not a natural number, a
  logarithm, an inverse function with finite ends): at such a point the reference is a
  symbolic limit, about 0.15 s each. A check reserves room for one limit per kind of
  derivative (gradient, Hessian, node gradients) at each such node; the reference keeps one
  limit per derivative and singular value (``verifier/core/exact/reference.py``), so points
  that share a singular value cost one limit, and points at many different singular values
  run into the budget that the estimate sets (``verifier.core.check``).

One unit is about ``SECONDS_PER_UNIT`` of worker time on the 2-core development machine (a
certified reference value of a smooth expression takes 10 to 40 microseconds there; one at a
jump or a singular point takes far longer, which is what the weights, the limit reserve and
the budget in ``verifier.core.check`` are for). ``benchmarks/cost_model.py`` measures each class
against its estimate; ``docs/admission.md`` has the figures.

A hand count: ``sin(x)*y`` has 2 variables, so 2 + 4 derivatives with a Hessian, and 4 tree
nodes (the product, sin, x, y), none limit-prone; at 100 points that is 100 x 6 x 1 +
4 x 6 x 4 = 696 units. ``sinc(x)`` at 10 points: 10 x 2 + 2 x 2 x 4, and one limit-prone node
with room for 2 limits (gradient and Hessian) of 4,000 units: 8,036.

>>> from verifier.core.expression.parse import parse_expression
>>> estimate(parse_expression("sin(x)*y"), 100, hessian=True, nodes=False).units
696
>>> estimate(parse_expression("sinc(x)"), 10, hessian=True, nodes=False).units
8036
"""

from __future__ import annotations

from dataclasses import dataclass

import sympy

from verifier.core.expression import special as sp
from verifier.core.expression.functions import sinc
from verifier.core.expression.symbolic import distinct_nodes
from verifier.core.expression.syntax import ParsedExpression

JUMP_WEIGHT = 12
"""Extra value weight per jump function in the expression: a value at a point on three jumps
took 1.5 ms (benchmarks/cost_model.py, "jumps")."""
SYMBOLIC_WEIGHT = 4
"""Units per tree node and derivative taken: SymPy's derivatives of a 286-node tree took
0.33 s for 12 derivatives, those of a product of 14 factors 0.7 s for 210 (the benchmark)."""
SECONDS_PER_UNIT = 50e-6
"""Worker seconds per cost unit, measured on the development machine (docs/admission.md)."""
LIMIT_UNITS = 4_000
"""One symbolic limit of a derivative (both sides): 0.15 s on a quiet machine, 0.3 s on a
busy one (benchmarks/cost_model.py, "removable singularities, one value")."""
DEFAULT_MAX_CHECK_COST_UNITS = 4_000_000
"""Per check: about 200 s of worker time, a third of the default hard limit of 600 s."""
DEFAULT_MAX_JOB_COST_UNITS = 40_000_000
"""Per job: ten checks at the per-check bound."""
DEFAULT_MAX_QUEUED_COST_UNITS = 160_000_000
"""Per API key, the work of its checks not yet done: four jobs at the per-job bound, about
2.2 hours of one worker."""

_JUMPS = (
    sympy.sign,
    sympy.Heaviside,
    sympy.floor,
    sympy.ceiling,
    sympy.Piecewise,
    sympy.Abs,
    sympy.Max,
    sympy.Min,
    sympy.atan2,
    # torch operations whose definitions hold jumps or kinks (verifier/core/expression/special.py)
    sp.trunc,
    sp.frac,
    sp.round,
    sp.sgn,
    sp.angle,
    sp.relu,
    sp.relu6,
    sp.hardtanh,
    sp.hardsigmoid,
    sp.hardswish,
    sp.threshold,
    sp.softshrink,
    sp.hardshrink,
    sp.softplus,
    sp.elu,
    sp.celu,
    sp.selu,
    sp.leaky_relu,
    sp.prelu,
    sp.copysign,
    sp.fmax,
    sp.fmin,
    sp.clamp_min,
    sp.clamp_max,
    sp.fmod,
    sp.remainder,
    sp.i0e,
    sp.i1e,
    sp.softsign,
)
_LIMIT_PRONE = (
    sinc,
    sympy.log,
    sympy.asin,
    sympy.acos,
    sympy.atanh,
    sympy.acoth,
    sympy.acosh,
    sympy.asec,
    sympy.acsc,
    sympy.erfinv,
)


@dataclass(frozen=True)
class Cost:
    """The estimated work of one check (see the module docstring for the formula)."""

    points: int
    entries_per_point: int
    value_weight: int
    symbolic_size: int
    derivatives: int
    limits: int = 0
    """Symbolic limits the check has room for (see the module docstring)."""

    @property
    def units(self) -> int:
        """The cost in units."""
        values = self.points * self.entries_per_point * self.value_weight
        symbolic = self.symbolic_size * self.derivatives * SYMBOLIC_WEIGHT
        return values + symbolic + self.limits * LIMIT_UNITS

    @property
    def seconds(self) -> float:
        """About how many seconds of worker time the check takes."""
        return self.units * SECONDS_PER_UNIT

    def points_within(self, bound: int) -> int:
        """The most points a check like this one may have to stay within ``bound`` units."""
        symbolic = self.symbolic_size * self.derivatives * SYMBOLIC_WEIGHT
        symbolic += self.limits * LIMIT_UNITS
        per_point = self.entries_per_point * self.value_weight
        return max(0, (bound - symbolic) // per_point)


@dataclass(frozen=True)
class Shape:
    """What an expression contributes to a check's cost, whatever the check's options."""

    variables: int
    symbolic_size: int
    node_count: int
    jumps: int
    limit_prone: int = 0


def shape(parsed: ParsedExpression) -> Shape:
    """The shape of ``parsed``: variables, tree nodes, distinct inner nodes, jump functions,
    limit-prone nodes."""
    tree = list(sympy.preorder_traversal(parsed.expr))
    expanded = sympy.preorder_traversal(_defined(parsed.expr))
    return Shape(
        variables=len(parsed.variables),
        symbolic_size=len(tree),
        node_count=len(distinct_nodes(parsed.expr)),
        jumps=sum(1 for node in tree if isinstance(node, _JUMPS)),
        limit_prone=sum(1 for node in expanded if _limit_prone(node)),
    )


def _defined(expr: sympy.Basic) -> sympy.Basic:
    """``expr`` with torch's functions replaced by their definitions where they have one (a
    function that the evaluator runs as a jump instruction, ``rint``, has none)."""

    def definition(function: sp.TorchFunction) -> sympy.Basic:
        try:
            return function.definition()
        except NotImplementedError:
            return function

    while True:
        expanded = expr.replace(lambda e: isinstance(e, sp.TorchFunction), definition)
        if expanded == expr:
            return expr
        expr = expanded


def _limit_prone(node: sympy.Basic) -> bool:
    """Whether a derivative of ``node`` can be 0/0 or infinite where ``node`` is finite."""
    if isinstance(node, sympy.Pow):
        exponent = node.exp
        return not (exponent.is_Integer and exponent >= 0) and bool(node.base.free_symbols)
    return isinstance(node, _LIMIT_PRONE)


def estimate(parsed: ParsedExpression, points: int, *, hessian: bool, nodes: bool) -> Cost:
    """The cost of checking ``parsed`` at ``points`` points with these options."""
    return estimate_shape(shape(parsed), points, hessian=hessian, nodes=nodes)


def estimate_shape(form: Shape, points: int, *, hessian: bool, nodes: bool) -> Cost:
    """The cost of checking an expression of shape ``form`` at ``points`` points."""
    n = form.variables
    derivatives = n + (n * n if hessian else 0) + (form.node_count if nodes else 0)
    return Cost(
        points=points,
        entries_per_point=derivatives,
        value_weight=1 + JUMP_WEIGHT * form.jumps,
        symbolic_size=form.symbolic_size,
        derivatives=derivatives,
        limits=form.limit_prone * (1 + hessian + nodes),
    )
