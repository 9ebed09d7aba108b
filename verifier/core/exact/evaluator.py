"""Certified evaluation of SymPy expressions in arb ball arithmetic (python-flint).

Expressions are compiled once into a shared program (common subexpressions evaluated once)
and run per point at a chosen precision. Every value is a ball that provably contains the
exact value. Functions with a jump (sign, Heaviside, floor, ceiling, rint, Piecewise
conditions, DiracDelta, atan2 on its branch cut y = 0, x < 0) record when a point sits exactly
on the jump; the caller can then re-run with one-sided choices forced, to tell a derivative
that exists from one that does not. A function of :mod:`verifier.core.expression.special` without an
arb counterpart below is compiled as its definition, so its jumps are these same instructions.

>>> import sympy
>>> x = sympy.Symbol("x", real=True)
>>> program = Program([sympy.sin(x) ** 2], ["x"])
>>> run = program.run({"x": 0.5}, precision=128)
>>> float(run.values[program.outputs[0]].mid())
0.22984884706593015
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import cast

import flint
import sympy

from verifier.core.expression import special as sp
from verifier.core.expression.functions import sinc

arb = flint.arb


def _sqrt2() -> flint.arb:
    return arb(2).sqrt()


def _ndtr(u: flint.arb) -> flint.arb:
    return (-u / _sqrt2()).erfc() / 2


def _lgamma(u: flint.arb) -> flint.arb:
    """log|gamma(u)| for every real u off the poles (reflection below 1/2)."""
    if u > 0.5:
        return u.lgamma()
    if u.contains_integer() and u < 1:
        return arb.nan()
    # |gamma(u)| = pi / (|sin(pi u)| gamma(1 - u))
    return arb.pi().log() - abs(u.sin_pi()).log() - (1 - u).lgamma()


def _mvlgamma(u: flint.arb, p: flint.arb) -> flint.arb:
    integer = p.unique_fmpz()
    if integer is None:
        return arb.nan()
    dimension = int(integer)
    total = arb(dimension * (dimension - 1)) / 4 * arb.pi().log()
    for j in range(dimension):
        total += _lgamma(u - arb(j) / 2)
    return total


def _entr(u: flint.arb) -> flint.arb:
    if u.is_zero():
        return arb(0)
    return -u * u.log() if u > 0 else arb.nan()


def _x_times(x: flint.arb, y: flint.arb) -> flint.arb:
    """x*y, and exactly 0 where x is 0 whatever y is (torch's xlogy and xlog1py)."""
    return arb(0) if x.is_zero() else x * y


# One entry per function SymPy may produce in an expression or a derivative of one.
_SMOOTH: dict[type, Callable[..., flint.arb]] = {
    sympy.exp: lambda u: u.exp(),
    sympy.log: lambda u: u.log(),
    sympy.sin: lambda u: u.sin(),
    sympy.cos: lambda u: u.cos(),
    sympy.tan: lambda u: u.tan(),
    sympy.cot: lambda u: u.cot(),
    sympy.sec: lambda u: u.sec(),
    sympy.csc: lambda u: u.csc(),
    sympy.asin: lambda u: u.asin(),
    sympy.acos: lambda u: u.acos(),
    sympy.atan: lambda u: u.atan(),
    sympy.sinh: lambda u: u.sinh(),
    sympy.cosh: lambda u: u.cosh(),
    sympy.tanh: lambda u: u.tanh(),
    sympy.coth: lambda u: u.coth(),
    sympy.sech: lambda u: u.sech(),
    sympy.csch: lambda u: u.csch(),
    sympy.asinh: lambda u: u.asinh(),
    sympy.acosh: lambda u: u.acosh(),
    sympy.atanh: lambda u: u.atanh(),
    sympy.Abs: lambda u: abs(u),
    sympy.erf: lambda u: u.erf(),
    sympy.erfc: lambda u: u.erfc(),
    sympy.gamma: lambda u: u.gamma(),
    sympy.loggamma: lambda u: u.lgamma(),
    sympy.digamma: lambda u: u.digamma(),
    sympy.polygamma: lambda n, u: flint.acb(u).polygamma(flint.acb(n)).real,
    sinc: lambda u: u.sinc_pi(),
    sympy.besseli: lambda n, u: u.bessel_i(n),
    sympy.erfinv: lambda u: u.erfinv(),
    sympy.erfcinv: lambda u: u.erfcinv(),
    sp.log1p: lambda u: u.log1p(),
    sp.expm1: lambda u: u.expm1(),
    sp.exp2: lambda u: arb(2) ** u,
    sp.log2: lambda u: u.log() / arb(2).log(),
    sp.log10: lambda u: u.log() / arb(10).log(),
    sp.reciprocal: lambda u: 1 / u,
    sp.square: lambda u: u**2,
    sp.neg: lambda u: -u,
    sp.positive: lambda u: u,
    sp.nan_to_num: lambda u: u,
    sp.deg2rad: lambda u: u * arb.pi() / 180,
    sp.rad2deg: lambda u: u * 180 / arb.pi(),
    sp.sigmoid: lambda u: 1 / (1 + (-u).exp()),
    sp.logit: lambda u: (u / (1 - u)).log(),
    sp.erfinv: lambda u: u.erfinv(),
    sp.ndtr: _ndtr,
    sp.ndtri: lambda u: -_sqrt2() * (2 * u).erfcinv(),
    sp.log_ndtr: lambda u: _ndtr(u).log(),
    sp.erfcx: lambda u: (u * u).exp() * u.erfc(),
    sp.i0: lambda u: u.bessel_i(0),
    sp.i1: lambda u: u.bessel_i(1),
    sp.i0e: lambda u: (-abs(u)).exp() * u.bessel_i(0),
    sp.i1e: lambda u: (-abs(u)).exp() * u.bessel_i(1),
    sp.entr: _entr,
    sp.lgamma: _lgamma,
    sp.mvlgamma: _mvlgamma,
    sp.silu: lambda u: u / (1 + (-u).exp()),
    sp.mish: lambda u: u * u.exp().log1p().tanh(),
    sp.gelu: lambda u: u * _ndtr(u),
    sp.logsigmoid: lambda u: -((-u).exp().log1p()),
    sp.tanhshrink: lambda u: u - u.tanh(),
    sp.xlogy: lambda x, y: _x_times(x, y.log()),
    sp.xlog1py: lambda x, y: _x_times(x, y.log1p()),
    sympy.Max: lambda *args: _reduce(args, lambda a, b: a.max(b)),
    sympy.Min: lambda *args: _reduce(args, lambda a, b: a.min(b)),
}

_RELATIONS: dict[type, Callable[[flint.arb], bool]] = {
    sympy.StrictLessThan: lambda d: d < 0,
    sympy.LessThan: lambda d: d <= 0,
    sympy.StrictGreaterThan: lambda d: d > 0,
    sympy.GreaterThan: lambda d: d >= 0,
}


def _reduce(
    args: Sequence[flint.arb], op: Callable[[flint.arb, flint.arb], flint.arb]
) -> flint.arb:
    result = args[0]
    for arg in args[1:]:
        result = op(result, arg)
    return result


class UnsupportedError(Exception):
    """An expression uses something the evaluator has no certified counterpart for."""


class NeedPrecision(Exception):
    """A decision (a comparison, a jump) cannot be made at this precision."""


@dataclass
class Run:
    """The result of running a program at one point.

    Attributes:
        values: one ball per instruction.
        jumps: instruction indices of jump functions (DiracDelta included) whose argument
            sits on the jump.
    """

    values: list[flint.arb]
    jumps: set[int] = field(default_factory=set)


# Instruction: (opcode, payload, argument instruction indices)
_Instruction = tuple[str, object, tuple[int, ...]]


class Program:
    """Expressions compiled to one straight-line program over shared subexpressions."""

    def __init__(self, exprs: Sequence[sympy.Basic], variables: Sequence[str]):
        self.variables = list(variables)
        self.instructions: list[_Instruction] = []
        self.labels: list[sympy.Basic] = []
        self._index: dict[sympy.Basic, int] = {}
        self.outputs = [self._compile(expr) for expr in exprs]
        self._dependencies: dict[int, frozenset[int]] = {}

    def jumps_below(self, index: int) -> frozenset[int]:
        """Jump instructions that instruction ``index`` depends on."""
        if index not in self._dependencies:
            opcode, _, args = self.instructions[index]
            found: set[int] = {index} if opcode in _JUMP_OPCODES else set()
            for arg in args:
                found |= self.jumps_below(arg)
            self._dependencies[index] = frozenset(found)
        return self._dependencies[index]

    def side(self, index: int, run: Run) -> int | None:
        """Which side of its jump instruction ``index`` is on in ``run``: 0 below, 1 above,
        None when the run sits on the jump too."""
        opcode, _, args = self.instructions[index]
        u = run.values[args[0]]
        if opcode in _ROUNDINGS:
            if opcode == "rint":
                u = u + arb(0.5)  # rint jumps where u + 1/2 is an integer
            if u.contains_integer():
                return None
            # u is a tiny step from the integer it sat on: just below it or just above.
            return int(u - u.floor() < 0.5)
        if u.contains(0):  # for atan2, u is y: the side of the cut is its sign
            return None
        return int(u > 0)

    def run(
        self,
        point: Mapping[str, float | flint.arb],
        precision: int,
        choices: Mapping[int, int] | None = None,
    ) -> Run:
        """Evaluate every instruction at ``point`` with ``precision`` bits.

        ``choices`` forces jump instructions to one side: 0 for the left (below the jump),
        1 for the right.
        """
        choices = choices or {}
        old = flint.ctx.prec
        flint.ctx.prec = precision
        try:
            run = Run(values=[])
            for position, instruction in enumerate(self.instructions):
                run.values.append(self._step(position, instruction, point, run, choices))
            return run
        finally:
            flint.ctx.prec = old

    def _compile(self, expr: sympy.Basic) -> int:
        known = self._index.get(expr)
        if known is not None:
            return known
        instruction: _Instruction
        if isinstance(expr, sp.TorchFunction) and type(expr) not in _SMOOTH:
            if isinstance(expr, sp.rint):
                instruction = ("rint", None, self._args(expr.args))
            else:
                index = self._compile(expr.definition())
                self._index[expr] = index
                return index
        else:
            instruction = self._instruction(expr)
        self.instructions.append(instruction)
        self.labels.append(expr)
        index = len(self.instructions) - 1
        self._index[expr] = index
        return index

    def _instruction(self, expr: sympy.Basic) -> _Instruction:
        if isinstance(expr, sympy.Symbol):
            if expr.name not in self.variables:
                raise UnsupportedError(f"unexpected symbol {expr.name}")
            return ("var", expr.name, ())
        if isinstance(expr, sympy.Rational):
            return ("rational", (int(expr.p), int(expr.q)), ())
        if expr is sympy.pi:
            return ("pi", None, ())
        if expr is sympy.E:
            return ("e", None, ())
        if expr is sympy.EulerGamma:
            return ("euler", None, ())
        if expr in (sympy.nan, sympy.zoo, sympy.oo, sympy.S.NegativeInfinity):
            return ("nan", None, ())
        if isinstance(expr, sympy.Add):
            return ("add", None, self._args(expr.args))
        if isinstance(expr, sympy.Mul):
            return ("mul", None, self._args(expr.args))
        if isinstance(expr, sympy.Pow):
            base, exponent = expr.args
            if isinstance(exponent, sympy.Integer):
                return ("ipow", int(exponent), self._args([base]))
            if exponent == sympy.S.Half:
                return ("sqrt", None, self._args([base]))
            return ("pow", None, self._args([base, exponent]))
        if isinstance(expr, sympy.Piecewise):
            args: list[int] = []
            for value, condition in expr.args:
                args.append(self._compile(value))
                args.append(self._condition(condition))
            return ("piecewise", None, tuple(args))
        if isinstance(expr, sympy.sign):
            return ("sign", None, self._args(expr.args))
        if isinstance(expr, sympy.Heaviside):
            at_zero = expr.args[1] if len(expr.args) > 1 else sympy.S.Half
            return ("heaviside", self._compile(at_zero), self._args(expr.args[:1]))
        if isinstance(expr, sympy.floor):
            return ("floor", None, self._args(expr.args))
        if isinstance(expr, sympy.ceiling):
            return ("ceiling", None, self._args(expr.args))
        if isinstance(expr, sympy.atan2):
            return ("atan2", None, self._args(expr.args))
        if isinstance(expr, sympy.DiracDelta):
            return ("delta", None, self._args(expr.args[:1]))
        function = _SMOOTH.get(type(expr))
        if function is not None:
            return ("call", function, self._args(expr.args))
        raise UnsupportedError(f"no certified evaluation for {type(expr).__name__}")

    def _condition(self, condition: sympy.Basic) -> int:
        if condition is sympy.true:
            index = self._compile(sympy.S.One)
            return index
        if isinstance(condition, sympy.Or | sympy.And):
            # SymPy merges neighbouring Piecewise pieces of equal value under an Or.
            key = ("condition", condition)
            if key not in self._index:
                parts = tuple(self._condition(part) for part in condition.args)
                opcode = "or" if isinstance(condition, sympy.Or) else "and"
                self.instructions.append((opcode, None, parts))
                self.labels.append(condition)
                self._index[key] = len(self.instructions) - 1
            return self._index[key]
        relation = type(condition)
        if relation not in _RELATIONS:
            raise UnsupportedError(f"unsupported Piecewise condition {condition}")
        difference = self._compile(sympy.Add(condition.lhs, -condition.rhs))
        key = ("condition", condition)
        if key in self._index:
            return self._index[key]
        self.instructions.append(("relation", _RELATIONS[relation], (difference,)))
        self.labels.append(condition)
        self._index[key] = len(self.instructions) - 1
        return len(self.instructions) - 1

    def _args(self, args: Sequence[sympy.Basic]) -> tuple[int, ...]:
        return tuple(self._compile(arg) for arg in args)

    def _step(
        self,
        position: int,
        instruction: _Instruction,
        point: Mapping[str, float | flint.arb],
        run: Run,
        choices: Mapping[int, int],
    ) -> flint.arb:
        opcode, payload, arg_indices = instruction
        args = [run.values[i] for i in arg_indices]
        if opcode == "var":
            return arb(point[str(payload)])
        if opcode == "rational":
            numerator, denominator = cast(tuple[int, int], payload)
            return arb(flint.fmpq(numerator, denominator))
        if opcode == "add":
            return _reduce(args, lambda a, b: a + b)
        if opcode == "mul":
            return _reduce(args, lambda a, b: a * b)
        if opcode == "ipow":
            exponent = int(payload)  # type: ignore[call-overload]
            if exponent < 0 and args[0].contains(0):
                return arb.nan()
            return args[0] ** exponent
        if opcode == "sqrt":
            return args[0].sqrt()
        if opcode == "pow":
            return args[0] ** args[1]
        if opcode == "call":
            return payload(*args)  # type: ignore[operator]
        if opcode == "atan2":
            return self._atan2(position, args, run, choices)
        if opcode in _JUMP_OPCODES:
            return self._jump(position, opcode, payload, args, run, choices)
        if opcode in ("or", "and"):
            truths = [value != 0 for value in args]
            return arb(1 if (any(truths) if opcode == "or" else all(truths)) else 0)
        if opcode == "piecewise":
            for value_index, condition_index in zip(
                arg_indices[::2], arg_indices[1::2], strict=True
            ):
                if run.values[condition_index] != 0:
                    return run.values[value_index]
            return arb.nan()
        constants = {"pi": arb.pi, "e": lambda: arb(1).exp(), "euler": arb.const_euler}
        if opcode in constants:
            return constants[opcode]()
        if opcode == "nan":
            return arb.nan()
        raise UnsupportedError(f"unknown instruction {opcode}")

    def _atan2(
        self, position: int, args: list[flint.arb], run: Run, choices: Mapping[int, int]
    ) -> flint.arb:
        """atan2(y, x), which jumps from pi to -pi across y = 0 where x < 0."""
        y, x = args
        if not (y.contains(0) and x < 0):
            return arb.atan2(y, x)
        if not y.is_exact():
            raise NeedPrecision()
        run.jumps.add(position)
        side = choices.get(position)
        return -arb.pi() if side == 0 else arb.pi()

    def _rounding(
        self, position: int, opcode: str, u: flint.arb, run: Run, choices: Mapping[int, int]
    ) -> flint.arb:
        """floor, ceiling, and rint (ties to even), which jumps where u + 1/2 is an integer."""
        shifted = u + arb(0.5) if opcode == "rint" else u
        if not shifted.contains_integer():
            return shifted.ceil() if opcode == "ceiling" else shifted.floor()
        integer = shifted.unique_fmpz()
        if integer is None or not shifted.is_exact():
            raise NeedPrecision()
        run.jumps.add(position)
        n = arb(integer)
        side = choices.get(position)
        if side is None:
            if opcode == "rint":  # u = n - 1/2: the even one of n - 1 and n
                return n if int(integer) % 2 == 0 else n - 1
            return n
        low, high = (n, n + 1) if opcode == "ceiling" else (n - 1, n)
        return low if side == 0 else high

    def _jump(
        self,
        position: int,
        opcode: str,
        payload: object,
        args: list[flint.arb],
        run: Run,
        choices: Mapping[int, int],
    ) -> flint.arb:
        (u,) = args
        if not u.is_finite():
            return arb.nan()
        if opcode in _ROUNDINGS:
            return self._rounding(position, opcode, u, run, choices)
        if not u.contains(0):
            return _off_jump(opcode, u, payload, run)
        if not u.is_exact():
            raise NeedPrecision()
        run.jumps.add(position)
        side = choices.get(position)
        if opcode == "delta":
            # Zero on both sides; at the jump itself a point mass, which has no value.
            return arb.nan() if side is None else arb(0)
        if opcode == "sign":
            return arb(0) if side is None else arb(-1 if side == 0 else 1)
        if opcode == "heaviside":
            return run.values[int(payload)] if side is None else arb(side)  # type: ignore[call-overload]
        # relation: the difference lhs - rhs is exactly zero
        holds = bool(payload(u))  # type: ignore[operator]
        if side is not None:
            holds = _side_holds(payload, side)
        return arb(1 if holds else 0)


_ROUNDINGS = frozenset({"floor", "ceiling", "rint"})
_JUMP_OPCODES = frozenset(
    {"sign", "heaviside", "floor", "ceiling", "rint", "delta", "relation", "atan2"}
)


def _off_jump(opcode: str, u: flint.arb, payload: object, run: Run) -> flint.arb:
    if opcode == "sign":
        return arb(1 if u > 0 else -1)
    if opcode == "heaviside":
        return arb(1 if u > 0 else 0)
    if opcode == "delta":
        return arb(0)
    return arb(1 if payload(u) else 0)  # type: ignore[operator]


def _side_holds(relation: object, side: int) -> bool:
    """Whether a relation of lhs - rhs holds just below (side 0) or above (side 1) zero."""
    probe = arb(-1 if side == 0 else 1)
    return bool(relation(probe))  # type: ignore[operator]
