"""Reference values: the exact derivatives at the exact dtype-rounded points, certified.

Each value is an arb ball (python-flint) that provably contains the exact derivative. The
working precision starts at twice the dtype's and doubles until the ball's radius is below
2**-(mantissa + REFERENCE_MARGIN_BITS) of the value, so the reference's own error is far below
one ulp of the dtype under test.

Before a derivative is trusted, the point is checked:

- the output must be finite and real there, else the entry is ``domain``;
- every lower-order expression on the way (the output, then the first derivative for a
  Hessian element) must be continuous there: a jump function (sign, Heaviside, floor,
  ceiling, a Piecewise condition) sitting on its jump is re-evaluated with each one-sided
  choice, and different answers mean the derivative does not exist (``undefined``);
- the derivative itself must agree for every one-sided choice (``|x|`` at 0 gives sign(0)=0 in
  SymPy but -1 and 1 one-sidedly: ``undefined``);
- a non-finite derivative (0/0 at a removable singularity) is replaced by its limit when the
  limits along every variable, from both sides, agree and are finite; otherwise ``undefined``.
"""

from __future__ import annotations

import itertools
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import flint
import sympy

from verifier.core.dtypes import DTYPES, DType
from verifier.core.evaluator import NeedPrecision, Program, Run
from verifier.core.functions import sinc
from verifier.core.parse import make_symbol, parse_expression
from verifier.core.symbolic import Key, Target, derive

REFERENCE_MARGIN_BITS = 10
MAX_REFERENCE_PRECISION_BITS = 4096
MAX_JUMP_COMBINATIONS = 64

OK = "ok"
UNDEFINED = "undefined"
DOMAIN = "domain"

METHOD_ARB = "arb ball arithmetic (certified radius)"
METHOD_LIMIT = "limit (SymPy), then arb ball arithmetic"


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


def compute_truth(
    text: str,
    hessian: bool,
    nodes: bool,
    points: Sequence[Mapping[str, float]],
    dtype_name: str,
    *,
    progress: Callable[[str], None],
) -> tuple[list[Key], list[list[ReferenceValue]], dict[str, float]]:
    """The symbolic side of a check, as run in the sandbox: derive, then evaluate.

    Calls ``progress("symbolic")`` once the derivatives are known. Returns the entry keys,
    the references indexed ``[point][entry]`` and the seconds each stage took.
    """
    started = time.perf_counter()
    parsed = parse_expression(text)
    targets = derive(parsed, hessian=hessian, nodes=nodes)
    progress("symbolic")
    derived = time.perf_counter()
    values = reference_values(parsed.expr, targets, parsed.variables, points, DTYPES[dtype_name])
    timings = {"symbolic": derived - started, "reference": time.perf_counter() - derived}
    return [target.key for target in targets], values, timings


def reference_values(
    f: sympy.Expr,
    targets: Sequence[Target],
    variables: Sequence[str],
    points: Sequence[Mapping[str, float]],
    dtype: DType,
) -> list[list[ReferenceValue]]:
    """Certified references, indexed ``[point][target]``.

    Args:
        f: the expression.
        targets: the derivatives to evaluate (see :func:`verifier.core.symbolic.derive`).
        variables: the expression's variable names.
        points: dtype-rounded points, variable name to float.
        dtype: the dtype under test; it sets the precision target.
    """
    exprs: list[sympy.Basic] = [f]
    for target in targets:
        exprs.extend(target.chain)
        exprs.append(target.expr)
    program = Program(exprs, variables)
    evaluation = _Evaluation(program, f, targets, variables, dtype)
    return [evaluation.at(point) for point in points]


class _Evaluation:
    def __init__(
        self,
        program: Program,
        f: sympy.Expr,
        targets: Sequence[Target],
        variables: Sequence[str],
        dtype: DType,
    ):
        self.program = program
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
            detail = f"the expression is not finite and real here ({self.f})"
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
            if not value.is_finite() and removable_limit(expr, point) is None:
                detail = f"{expr} is not finite here, so its derivative does not exist"
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
        if 2 ** len(jumps) > MAX_JUMP_COMBINATIONS:
            return None
        values = []
        for sides in itertools.product((0, 1), repeat=len(jumps)):
            forced = self.program.run(point, precision, dict(zip(jumps, sides, strict=True)))
            values.append(forced.values[index])
        first = values[0]
        for other in values[1:]:
            if first.is_finite() != other.is_finite():
                return None
            if first.is_finite() and not first.overlaps(other):
                return None
        return first

    def _jump_detail(self, run: Run, index: int, expr: sympy.Basic) -> str:
        jumps = sorted(self.program.jumps_below(index) & run.jumps)
        where = ", ".join(str(self.program.labels[j]) for j in jumps) or "a jump"
        return f"{expr} differs on the two sides of {where} at this point"

    def _limit(self, point: Mapping[str, float], target: Target, precision: int) -> ReferenceValue:
        value = removable_limit(target.expr, point)
        if value is None:
            detail = f"the derivative {target.expr} is singular here"
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
    """The limit of ``expr`` at ``point`` along each variable, if all agree and are finite."""
    rewritten = expr.replace(
        lambda e: isinstance(e, sinc),
        lambda e: sympy.sin(sympy.pi * e.args[0]) / (sympy.pi * e.args[0]),
    )
    exact = {make_symbol(name): sympy.Rational(value) for name, value in point.items()}
    free = [symbol for symbol in rewritten.free_symbols if symbol in exact] or list(exact)[:1]
    found: sympy.Expr | None = None
    for symbol in free:
        others = {s: v for s, v in exact.items() if s != symbol}
        try:
            value = sympy.limit(rewritten.xreplace(others), symbol, exact[symbol], dir="+-")
        except (ValueError, NotImplementedError, TypeError, RecursionError):
            return None
        if not value.is_finite or not value.is_real:
            return None
        if found is not None and sympy.simplify(found - value) != 0:
            return None
        found = value
    return found
