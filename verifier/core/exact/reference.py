"""Reference values: the exact derivatives at the exact dtype-rounded points, certified.

Each value is an arb ball (python-flint) that provably contains the exact derivative. The
working precision starts at twice the dtype's and doubles until the ball's radius is below
2**-(mantissa + REFERENCE_MARGIN_BITS) of the value, so the reference's own error is far below
one ulp of the dtype under test.

Before a derivative is trusted, the point is checked:

- the output must be finite and real there, else the entry is ``domain``;
- every lower-order expression on the way (the output, then the first derivative for a
  Hessian element) must be continuous there: a jump function (sign, Heaviside, floor,
  ceiling, a Piecewise condition, atan2 on its branch cut) sitting on its jump is re-evaluated
  with the one-sided choices that can occur together, and different answers mean the
  derivative does not exist (``undefined``);
- the derivative itself must agree for every such choice (``|x|`` at 0 gives sign(0)=0 in
  SymPy but -1 and 1 one-sidedly: ``undefined``; ``Max(x, -x)**2`` at 0 has the same second
  derivative, 2, from both sides: defined);
- a non-finite derivative (0/0 at a removable singularity) is replaced by its limit when the
  limits along the variables, from each side where the expression is real, agree and are
  finite; otherwise ``undefined``.

The choices that can occur together are those seen when the point moves a tiny step along a
direction: each axis, both ways, and (for up to ``MAX_DIAGONAL_VARIABLES`` variables) each
diagonal of two axes. A jump whose side a direction cannot settle (its argument does not move
to first order) takes both sides.

Literals are bound to their dtype values (:mod:`verifier.core.expression.literals`): the
placeholders are inputs of the program like the variables, and they do not move.

For float32, float16 and bfloat16, whose precision target float64 can reach, a program without
jumps is first run for all points at once in float64 with a rigorous error bound
(:mod:`verifier.core.exact.bounded`); every point where each value is finite and its bound meets the
same target is settled there (``METHOD_BOUNDED``), and only the others are evaluated in arb.
``docs/performance.md`` says exactly what that certifies. The references cross back from the
sandbox as columns (:class:`ReferenceTable`), not one object per value.
"""

from __future__ import annotations

import itertools
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import flint
import numpy as np
import sympy

from verifier.core.exact.bounded import bounded_run, supports
from verifier.core.exact.evaluator import NeedPrecision, Program, Run
from verifier.core.expression.custom import Declaration
from verifier.core.expression.functions import sinc
from verifier.core.expression.literals import bind_literals
from verifier.core.expression.parse import parse_expression
from verifier.core.expression.registry import install
from verifier.core.expression.special import expand_definitions
from verifier.core.expression.symbolic import Key, Target, derive
from verifier.core.expression.syntax import make_symbol
from verifier.core.floats.dtypes import DType
from verifier.core.floats.points import variable_columns

REFERENCE_MARGIN_BITS = 10
MAX_REFERENCE_PRECISION_BITS = 4096
MAX_JUMP_COMBINATIONS = 64
MAX_DIAGONAL_VARIABLES = 6
STEP_BITS = 120
"""A one-sided step moves a variable by 2**-STEP_BITS of its magnitude (2**-1100 at zero)."""

OK = "ok"
UNDEFINED = "undefined"
DOMAIN = "domain"

METHOD_ARB = "arb ball arithmetic (certified radius)"
METHOD_LIMIT = "limit (SymPy), then arb ball arithmetic"
METHOD_BOUNDED = "float64 with a rigorous error bound (certified radius)"
BOUNDED_MAX_TARGET_BITS = 40
"""The bounded float64 evaluation is tried only where the precision target (the dtype's
significand plus REFERENCE_MARGIN_BITS) is at most this many bits: not for float64."""

STATUSES = (OK, UNDEFINED, DOMAIN)
METHODS = (METHOD_ARB, METHOD_LIMIT, METHOD_BOUNDED)


@dataclass(frozen=True)
class ReferenceValue:
    """The reference for one entry at one point.

    Attributes:
        status: ``ok``, ``undefined`` or ``domain``.
        high, low: the value as an unevaluated sum of two floats (high + low), so errors can
            be measured beyond float64; None when the value does not exist.
        radius: certified bound on |exact - (high + low)|... plus the float rounding of low.
        certified: whether the radius met the precision target.
        method: how the value was obtained.
        detail: why, for ``undefined`` and ``domain``.
    """

    status: str
    high: float | None = None
    low: float = 0.0
    radius: float | None = None
    certified: bool = True
    method: str = METHOD_ARB
    detail: str | None = None


@dataclass
class ReferenceTable:
    """The references of a check as columns indexed ``[point, target]``.

    ``status`` and ``method`` index :data:`STATUSES` and :data:`METHODS`; ``high``, ``low``
    and ``radius`` are NaN where the status is not ``ok``; ``details`` holds the words of the
    values that have them. :meth:`value` gives one :class:`ReferenceValue` back.
    """

    status: np.ndarray[Any, np.dtype[np.int8]]
    high: np.ndarray[Any, np.dtype[np.float64]]
    low: np.ndarray[Any, np.dtype[np.float64]]
    radius: np.ndarray[Any, np.dtype[np.float64]]
    certified: np.ndarray[Any, np.dtype[np.bool_]]
    method: np.ndarray[Any, np.dtype[np.int8]]
    details: dict[tuple[int, int], str]

    @classmethod
    def empty(cls, points: int, targets: int) -> ReferenceTable:
        """A table of ``points`` x ``targets`` values still to fill."""
        shape = (points, targets)
        return cls(
            status=np.zeros(shape, dtype=np.int8),
            high=np.full(shape, np.nan),
            low=np.zeros(shape),
            radius=np.full(shape, np.nan),
            certified=np.ones(shape, dtype=bool),
            method=np.zeros(shape, dtype=np.int8),
            details={},
        )

    def put(self, point: int, row: Sequence[ReferenceValue]) -> None:
        """Store the values of one point."""
        for target, value in enumerate(row):
            self.status[point, target] = STATUSES.index(value.status)
            if value.high is not None:
                self.high[point, target] = value.high
            self.low[point, target] = value.low
            if value.radius is not None:
                self.radius[point, target] = value.radius
            self.certified[point, target] = value.certified
            self.method[point, target] = METHODS.index(value.method)
            if value.detail is not None:
                self.details[point, target] = value.detail

    def columns(self, targets: Sequence[int]) -> ReferenceTable:
        """The table of ``targets`` alone, in that order."""
        chosen = list(targets)
        place = {target: i for i, target in enumerate(chosen)}
        return ReferenceTable(
            status=self.status[:, chosen],
            high=self.high[:, chosen],
            low=self.low[:, chosen],
            radius=self.radius[:, chosen],
            certified=self.certified[:, chosen],
            method=self.method[:, chosen],
            details={
                (point, place[target]): text
                for (point, target), text in self.details.items()
                if target in place
            },
        )

    def value(self, point: int, target: int) -> ReferenceValue:
        """The value of ``target`` at ``point``."""
        return _reference_value(
            int(self.status[point, target]),
            float(self.high[point, target]),
            float(self.low[point, target]),
            float(self.radius[point, target]),
            bool(self.certified[point, target]),
            int(self.method[point, target]),
            self.details.get((point, target)),
        )

    def rows(self) -> list[list[ReferenceValue]]:
        """Every value, ``[point][target]``."""
        status, high, low = self.status.tolist(), self.high.tolist(), self.low.tolist()
        radius, certified = self.radius.tolist(), self.certified.tolist()
        method = self.method.tolist()
        points, targets = self.status.shape
        return [
            [
                _reference_value(
                    status[p][t],
                    high[p][t],
                    low[p][t],
                    radius[p][t],
                    certified[p][t],
                    method[p][t],
                    self.details.get((p, t)),
                )
                for t in range(targets)
            ]
            for p in range(points)
        ]


def _reference_value(
    status: int,
    high: float,
    low: float,
    radius: float,
    certified: bool,
    method: int,
    detail: str | None,
) -> ReferenceValue:
    """One cell of a :class:`ReferenceTable` as a :class:`ReferenceValue`."""
    ok = STATUSES[status] == OK
    return ReferenceValue(
        STATUSES[status],
        high if ok else None,
        low,
        radius if ok else None,
        certified,
        METHODS[method],
        detail,
    )


def compute_truth(
    text: str,
    hessian: bool,
    nodes: bool,
    points: Sequence[Mapping[str, float]],
    dtype: DType,
    *,
    progress: Callable[[str], None],
) -> tuple[list[Key], list[list[ReferenceValue]], dict[str, float]]:
    """:func:`compute_table`, its references as objects indexed ``[point][entry]``."""
    keys, table, timings = compute_table(text, hessian, nodes, points, dtype, progress=progress)
    return keys, table.rows(), timings


def compute_table(
    text: str,
    hessian: bool,
    nodes: bool,
    points: Sequence[Mapping[str, float]],
    dtype: DType,
    values: bool = False,
    functions: Sequence[Declaration] = (),
    *,
    progress: Callable[[str], None],
) -> tuple[list[Key], ReferenceTable, dict[str, float]]:
    """The symbolic side of a check, as run in the sandbox: derive, then evaluate.

    ``values`` adds the expression's own value as the first entry; ``functions`` are the
    custom functions registered in the calling process (a sandbox child is told them).
    Calls ``progress("symbolic")`` once the derivatives are known. Returns the entry keys,
    the references (a table indexed ``[point, entry]``) and the seconds each stage took.
    """
    started = time.perf_counter()
    install(functions)
    parsed = parse_expression(text)
    targets = derive(parsed, dtype, hessian=hessian, nodes=nodes, values=values)
    progress("symbolic")
    derived = time.perf_counter()
    literals = bind_literals(parsed.expr, dtype)
    table = reference_table(
        literals.expr,
        targets,
        parsed.variables,
        points,
        dtype,
        constants=literals.values,
        shown={str(p): literal for literal, p in literals.forward.items()},
    )
    timings = {"symbolic": derived - started, "reference": time.perf_counter() - derived}
    return [target.key for target in targets], table, timings


def reference_values(
    f: sympy.Expr,
    targets: Sequence[Target],
    variables: Sequence[str],
    points: Sequence[Mapping[str, float]],
    dtype: DType,
    *,
    constants: Mapping[str, float] | None = None,
    shown: Mapping[str, sympy.Basic] | None = None,
) -> list[list[ReferenceValue]]:
    """Certified references, indexed ``[point][target]`` (see :func:`reference_table`)."""
    return reference_table(
        f, targets, variables, points, dtype, constants=constants, shown=shown
    ).rows()


def reference_table(
    f: sympy.Expr,
    targets: Sequence[Target],
    variables: Sequence[str],
    points: Sequence[Mapping[str, float]],
    dtype: DType,
    *,
    constants: Mapping[str, float] | None = None,
    shown: Mapping[str, sympy.Basic] | None = None,
) -> ReferenceTable:
    """Certified references as a table indexed ``[point, target]``.

    Args:
        f: the expression.
        targets: the derivatives to evaluate (see :func:`verifier.core.expression.symbolic.derive`).
        variables: the expression's variable names.
        points: dtype-rounded points, variable name to float.
        dtype: the dtype under test; it sets the precision target.
        constants: placeholder name to value, for literals bound to their dtype values.
        shown: placeholder name to the literal as written, for the details in words.
    """
    constants = dict(constants or {})
    exprs: list[sympy.Basic] = [f]
    for target in targets:
        exprs.extend(target.chain)
        exprs.append(target.expr)
    program = Program(exprs, [*variables, *constants])
    evaluation = _Evaluation(program, f, targets, variables, dtype, constants, shown or {})
    table = ReferenceTable.empty(len(points), len(targets))
    for index in _bounded(evaluation, points, constants, table):
        table.put(index, evaluation.at({**points[index], **constants}))
    return table


def _bounded(
    evaluation: _Evaluation,
    points: Sequence[Mapping[str, float]],
    constants: Mapping[str, float],
    table: ReferenceTable,
) -> list[int]:
    """Settle what the bounded float64 evaluation certifies; the points left for arb."""
    program, dtype = evaluation.program, evaluation.dtype
    everything = list(range(len(points)))
    target_bits = dtype.mantissa_bits + REFERENCE_MARGIN_BITS
    if not points or target_bits > BOUNDED_MAX_TARGET_BITS or not supports(program):
        return everything
    inputs = variable_columns(points, evaluation.variables)
    inputs.update((name, np.array([value], dtype=np.float64)) for name, value in constants.items())
    run = bounded_run(program, inputs)
    indices = [index for _, index in evaluation.layout]
    high = np.stack([run.value[i] for i in indices], axis=1)
    radius = np.stack([run.bound[i] for i in indices], axis=1)
    scale = np.maximum(np.abs(high), dtype.smallest_normal)
    with np.errstate(invalid="ignore", over="ignore"):
        met = radius <= scale * 2.0**-target_bits
    settled = ~run.unsettled & met.all(axis=1)
    table.high[settled] = high[settled]
    table.radius[settled] = radius[settled]
    table.method[settled] = METHODS.index(METHOD_BOUNDED)
    return [int(index) for index in np.flatnonzero(~settled)]


class _Evaluation:
    def __init__(
        self,
        program: Program,
        f: sympy.Expr,
        targets: Sequence[Target],
        variables: Sequence[str],
        dtype: DType,
        constants: Mapping[str, float],
        shown: Mapping[str, sympy.Basic],
    ):
        self.program = program
        self.constants = dict(constants)
        self.shown = {make_symbol(name): literal for name, literal in shown.items()}
        self.f = f
        self.targets = targets
        self.variables = list(variables)
        self.dtype = dtype
        outputs = iter(program.outputs)
        self.f_index = next(outputs)
        self.layout: list[tuple[list[int], int]] = []
        for target in targets:
            chain = [next(outputs) for _ in target.chain]
            self.layout.append((chain, next(outputs)))
        self.start_precision = 2 * dtype.mantissa_bits + 64
        self.limits: dict[tuple[sympy.Basic, tuple[tuple[str, float], ...]], sympy.Expr | None] = {}

    def at(self, point: Mapping[str, float]) -> list[ReferenceValue]:
        precision = self.start_precision
        while True:
            final = precision * 2 > MAX_REFERENCE_PRECISION_BITS
            try:
                results = self._attempt(point, precision, final=final)
            except NeedPrecision:
                if final:
                    detail = "a jump could not be located at the maximum precision"
                    return [ReferenceValue(UNDEFINED, detail=detail) for _ in self.targets]
                precision *= 2
                continue
            if final or all(result.certified for result in results):
                return results
            precision *= 2

    def _attempt(
        self, point: Mapping[str, float], precision: int, *, final: bool
    ) -> list[ReferenceValue]:
        run = self.program.run(point, precision)
        value = run.values[self.f_index]
        if not value.is_finite():
            detail = f"the expression is not finite and real here ({self._show(self.f)})"
            return [ReferenceValue(DOMAIN, detail=detail) for _ in self.targets]
        return [
            self._target(point, precision, run, chain, index, target, final=final)
            for target, (chain, index) in zip(self.targets, self.layout, strict=True)
        ]

    def _target(
        self,
        point: Mapping[str, float],
        precision: int,
        run: Run,
        chain: list[int],
        index: int,
        target: Target,
        *,
        final: bool,
    ) -> ReferenceValue:
        for link, expr in zip(chain, target.chain, strict=True):
            value = self._one_sided(point, precision, run, link)
            if value is None:
                return ReferenceValue(UNDEFINED, detail=self._jump_detail(run, link, expr))
            if not value.is_finite() and self._removable(expr, point) is None:
                detail = f"{self._show(expr)} is not finite here, so its derivative does not exist"
                return ReferenceValue(UNDEFINED, detail=detail)
        value = self._one_sided(point, precision, run, index)
        if value is None:
            return ReferenceValue(UNDEFINED, detail=self._jump_detail(run, index, target.expr))
        if not value.is_finite():
            return self._limit(point, target, precision)
        return self._finish(value, METHOD_ARB, final=final)

    def _one_sided(
        self, point: Mapping[str, float], precision: int, run: Run, index: int
    ) -> flint.arb | None:
        """The value at ``index``, the same from every side of every jump; None if not."""
        jumps = sorted(self.program.jumps_below(index) & run.jumps)
        if not jumps:
            return run.values[index]
        combinations = self._sides(point, precision, jumps)
        if combinations is None:
            return None
        values = []
        for sides in combinations:
            forced = self.program.run(point, precision, dict(zip(jumps, sides, strict=True)))
            values.append(forced.values[index])
        first = values[0]
        for other in values[1:]:
            if first.is_finite() != other.is_finite():
                return None
            if first.is_finite() and not first.overlaps(other):
                return None
        return first

    def _sides(
        self, point: Mapping[str, float], precision: int, jumps: list[int]
    ) -> list[tuple[int, ...]] | None:
        """The combinations of sides of ``jumps`` that occur together next to ``point``."""
        found: set[tuple[int, ...]] = set()
        moved_precision = max(precision, 4 * STEP_BITS + 64)
        for direction in _directions(self.variables):
            run = self.program.run(_moved(point, direction, moved_precision), moved_precision)
            choices = [self.program.side(jump, run) for jump in jumps]
            unsettled = [(0, 1) if side is None else (side,) for side in choices]
            found.update(itertools.product(*unsettled))
            if len(found) > MAX_JUMP_COMBINATIONS:
                return None
        return sorted(found)

    def _removable(self, expr: sympy.Expr, point: Mapping[str, float]) -> sympy.Expr | None:
        """The limit of ``expr`` at ``point``, the placeholders at their values.

        Each limit is taken once per check for the values of the variables ``expr`` holds: a
        symbolic limit takes about 0.1 s, and points that share those values (every point at
        the removable singularity of ``sinc(x)``, whatever the other variables) share it.
        """
        held = {symbol.name for symbol in expr.free_symbols}
        variables = {name: value for name, value in point.items() if name in self.variables}
        key = (expr, tuple(sorted((n, v) for n, v in variables.items() if n in held)))
        if key not in self.limits:
            bound = expr.xreplace(
                {make_symbol(n): sympy.Rational(v) for n, v in self.constants.items()}
            )
            self.limits[key] = removable_limit(bound, variables)
        return self.limits[key]

    def _jump_detail(self, run: Run, index: int, expr: sympy.Basic) -> str:
        jumps = sorted(self.program.jumps_below(index) & run.jumps)
        where = ", ".join(self._show(self.program.labels[j]) for j in jumps) or "a jump"
        return f"{self._show(expr)} differs on the two sides of {where} at this point"

    def _show(self, expr: object) -> str:
        """``expr`` in words, its placeholders shown as the literals written."""
        if not self.shown or not isinstance(expr, sympy.Basic):
            return str(expr)
        with sympy.evaluate(False):
            return str(expr.xreplace(self.shown))

    def _limit(self, point: Mapping[str, float], target: Target, precision: int) -> ReferenceValue:
        value = self._removable(target.expr, point)
        if value is None:
            detail = f"the derivative {self._show(target.expr)} is singular here"
            return ReferenceValue(UNDEFINED, detail=detail)
        program = Program([value], [])
        limit_precision = max(precision, self.start_precision)
        while True:
            ball = program.run({}, limit_precision).values[program.outputs[0]]
            result = self._finish(ball, METHOD_LIMIT, final=False)
            if result.certified or limit_precision * 2 > MAX_REFERENCE_PRECISION_BITS:
                return result
            limit_precision *= 2

    def _finish(self, ball: flint.arb, method: str, *, final: bool) -> ReferenceValue:
        mid = ball.mid()
        high = float(mid)
        low = float(mid - flint.arb(high)) if math.isfinite(high) else 0.0
        radius = float(ball.rad())
        scale = max(abs(high), self.dtype.smallest_normal)
        certified = radius <= scale * 2.0 ** -(self.dtype.mantissa_bits + REFERENCE_MARGIN_BITS)
        return ReferenceValue(OK, high, low, radius, certified, method)


def removable_limit(expr: sympy.Expr, point: Mapping[str, float]) -> sympy.Expr | None:
    """The limit of ``expr`` at ``point``, if it is the same along every variable and side.

    A side where the expression is not real or not finite next to the point (the boundary of
    its domain, ``x**2*log(x)`` left of 0) says nothing and is skipped; at least one side must
    give a finite real limit, and all that give one must agree.
    """
    rewritten = expand_definitions(expr).replace(
        lambda e: isinstance(e, sinc),
        lambda e: sympy.sin(sympy.pi * e.args[0]) / (sympy.pi * e.args[0]),
    )
    exact = {make_symbol(name): sympy.Rational(value) for name, value in point.items()}
    free = [symbol for symbol in rewritten.free_symbols if symbol in exact] or list(exact)[:1]
    found: sympy.Expr | None = None
    for symbol in free:
        others = {s: v for s, v in exact.items() if s != symbol}
        line = rewritten.xreplace(others)
        for side in ("+", "-"):
            if not _real_beside(line, symbol, exact[symbol], side):
                continue
            try:
                value = sympy.limit(line, symbol, exact[symbol], dir=side)
            except (ValueError, NotImplementedError, TypeError, RecursionError):
                return None
            if not value.is_finite or not value.is_real:
                return None
            if found is not None and sympy.simplify(found - value) != 0:
                return None
            found = value
    return found


def _real_beside(line: sympy.Expr, symbol: sympy.Symbol, at: sympy.Rational, side: str) -> bool:
    """Whether ``line`` is finite and real just to one side of ``at``."""
    step = sympy.Rational(1, 2**40) * max(abs(at), sympy.S.One)
    probe = at + step if side == "+" else at - step
    try:
        value = sympy.N(line.xreplace({symbol: probe}), 30)
    except (ValueError, TypeError, ZeroDivisionError):
        return False
    return bool(value.is_finite) and bool(value.is_real)


def _moved(
    point: Mapping[str, float], direction: Mapping[str, int], precision: int
) -> dict[str, float | flint.arb]:
    """``point`` moved one tiny step along ``direction`` (exactly, at ``precision`` bits)."""
    old = flint.ctx.prec
    flint.ctx.prec = precision
    try:
        moved: dict[str, float | flint.arb] = dict(point)
        for name, sign in direction.items():
            value = point[name]
            exponent = -1100 if value == 0 else math.frexp(value)[1] - STEP_BITS
            moved[name] = flint.arb(value) + sign * flint.arb(2) ** exponent
        return moved
    finally:
        flint.ctx.prec = old


def _directions(variables: Sequence[str]) -> list[dict[str, int]]:
    """Axis directions both ways, then two-axis diagonals for a few variables."""
    found: list[dict[str, int]] = []
    for name in variables:
        found.extend(({name: 1}, {name: -1}))
    if len(variables) <= MAX_DIAGONAL_VARIABLES:
        for a, b in itertools.combinations(variables, 2):
            for sa, sb in itertools.product((1, -1), repeat=2):
                found.append({a: sa, b: sb})
    return found
