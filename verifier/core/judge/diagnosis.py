"""Whose fault an entry's error is: torch's, the expression's as written, or the float range.

An entry outside the tolerance is diagnosed from three sources, in this order
(``docs/report-format.md`` has the full rules and examples):

1. autograd gave nan or inf: ``range`` when an intermediate overflowed or underflowed (a value
   rounded to 0 or inf is how nan and inf arise from range events), else ``nonfinite``,
   naming the operation that first went wrong where the audit found one;
2. an intermediate overflowed (any phase): ``range``;
3. an operation was locally inaccurate (:mod:`verifier.core.judge.audit`) in a phase the entry
   depends on: ``fail``, naming the operation and phase;
4. torch applied a derivative rule at a kink or tie of an operation although the whole
   expression is differentiable there (``Abs(x)*Abs(x)`` at 0): ``fail``;
5. the error is within what rounding of the computation as written explains
   (:mod:`verifier.core.judge.conditioning`): ``ill-conditioned``, naming where digits are lost
   (an infinite bound explains nothing where a range event the entry reads does: ``range``);
6. an intermediate underflowed: ``range``;
7. otherwise ``fail``: no bound explains the error.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import sympy

from verifier.core.expression.symbolic import HESSIAN, NODE, VALUE, Key
from verifier.core.floats.dtypes import DType
from verifier.core.judge.audit import (
    FIRST_BACKWARD,
    FORWARD,
    INACCURATE,
    KINK,
    NONFINITE,
    OVERFLOW,
    SECOND_BACKWARD,
    UNDERFLOW,
    Finding,
)
from verifier.core.judge.compare import Judgement
from verifier.core.judge.conditioning import AMPLIFIED, Conditioning
from verifier.core.judge.verdict import Verdict

CANCELLATION = 2.0
"""A condition factor from this on means the chain rule's terms cancel: the sum of their
absolute values is at least twice the sum's."""
AMPLIFYING = 2.0
"""A local condition number from this on makes an operation where digits are lost."""


@dataclass(frozen=True)
class Diagnosis:
    """The verdict of an entry outside the tolerance, the node it points at, and why."""

    verdict: Verdict
    blame: sympy.Basic | None
    phase: str | None
    detail: str


def diagnose(
    key: Key,
    point: int,
    autograd: float,
    judgement: Judgement,
    findings: Sequence[Finding],
    conditioning: Conditioning,
    dtype: DType,
) -> Diagnosis:
    """The verdict of entry ``key`` at ``point``, outside the tolerance per ``judgement``."""
    relevant = [f for f in findings if _relevant(f, key)]
    overflow = _first(relevant, OVERFLOW)
    if not math.isfinite(autograd):
        event = overflow or _first(relevant, UNDERFLOW)
        if event is not None:
            return _from(Verdict.RANGE, event, f"autograd gave {autograd}: ")
        culprit = relevant[0] if relevant else None
        if judgement.reference is not None:
            exact = f"the exact value is {judgement.reference:.17g}"
        else:  # a finite bound that could not be narrowed
            exact = (judgement.detail or "the exact value is finite").split(" and could not")[0]
        detail = f"autograd gave {autograd} where {exact}"
        if culprit is None:
            return Diagnosis(Verdict.NONFINITE, None, None, detail)
        return Diagnosis(
            Verdict.NONFINITE, culprit.node, culprit.phase, f"{detail}; {culprit.detail}"
        )
    if overflow is not None:
        return _from(Verdict.RANGE, overflow, "")
    # An operation that gave nan or inf where its exact local value is finite and in range is
    # inaccurate too, even where the entry came out finite (exp(-inf) and 1/inf are 0).
    inaccurate = [f for f in relevant if f.kind in (INACCURATE, NONFINITE)]
    if inaccurate:
        worst = max(inaccurate, key=lambda f: f.ratio)
        detail = f"{worst.detail}, {worst.ratio:.3g} times the tolerance"
        return Diagnosis(Verdict.FAIL, worst.node, worst.phase, detail)
    kink = _first(relevant, KINK)
    if kink is not None:
        detail = (
            f"torch applied the derivative rule of {kink.node} at its kink or tie "
            f"({kink.phase}), but the expression as a whole is differentiable here"
        )
        return Diagnosis(Verdict.FAIL, kink.node, kink.phase, detail)
    assert judgement.abs_error is not None
    bound = conditioning.bound[key][point]
    event = overflow or _first(relevant, UNDERFLOW)
    if not math.isfinite(bound) and event is not None:
        # The float64 shadow broke down where the range event is: its infinite bound is no
        # explanation, the range event is.
        return _from(Verdict.RANGE, event, "")
    if judgement.abs_error <= bound:
        return _conditioned(key, point, judgement, conditioning, dtype)
    underflow = _first(relevant, UNDERFLOW)
    if underflow is not None:
        return _from(Verdict.RANGE, underflow, "")
    detail = (
        f"the error {judgement.abs_error:.3g} is above {bound:.3g}, the most that rounding "
        f"of the computation as written explains, and no operation is locally inaccurate"
    )
    return Diagnosis(Verdict.FAIL, None, None, detail)


def _conditioned(
    key: Key, point: int, judgement: Judgement, conditioning: Conditioning, dtype: DType
) -> Diagnosis:
    factor = conditioning.factor(key, point, _exact(judgement))
    bits = judgement.correct_bits or 0.0
    lost = conditioning.lost_at(key, point)
    head = (
        f"the rounding of the computation as written in {dtype.name} explains it "
        f"(condition factor {factor:.3g}; {bits:.0f} of {dtype.mantissa_bits} bits correct)"
    )
    if lost is not None:
        return Diagnosis(
            Verdict.ILL_CONDITIONED, lost, FORWARD, f"{head}: the digits are lost at {lost}"
        )
    kind, wrt, _ = key
    if kind == VALUE:
        detail = f"{head}: the forward value's roundings add up"
        return Diagnosis(Verdict.ILL_CONDITIONED, None, FORWARD, detail)
    phase = SECOND_BACKWARD if kind == HESSIAN else FIRST_BACKWARD
    where = wrt[-1] if wrt else "this node"
    amplifier = _amplifier(conditioning, point)
    if amplifier is not None and int(conditioning.site[key][point]) == AMPLIFIED:
        detail = f"{head}: the digits are lost at {amplifier}, which amplifies its inputs' errors"
        return Diagnosis(Verdict.ILL_CONDITIONED, amplifier, FORWARD, detail)
    if factor >= CANCELLATION:
        detail = f"{head}: the terms of the chain rule summed for {where} cancel in the {phase}"
        blame = sympy.Symbol(wrt[-1]) if wrt else None
        return Diagnosis(Verdict.ILL_CONDITIONED, blame, phase, detail)
    # No sum cancels: the error is a rounding that an operation amplifies, where the float64
    # shadow cannot weigh it (its derivative of the rounding underflowed), or the backward's
    # own roundings adding up.
    if amplifier is not None:
        detail = f"{head}: the digits are lost at {amplifier}, which amplifies its inputs' errors"
        return Diagnosis(Verdict.ILL_CONDITIONED, amplifier, FORWARD, detail)
    detail = f"{head}: the roundings of the chain rule's products for {where} add up"
    return Diagnosis(Verdict.ILL_CONDITIONED, None, phase, detail)


def _amplifier(conditioning: Conditioning, point: int) -> sympy.Basic | None:
    """The node that amplifies relative errors most at ``point``, where it amplifies them at
    least ``AMPLIFYING`` times; None where none does."""
    local = {
        node: float(values[point])
        for node, values in conditioning.local.items()
        if node.free_symbols and math.isfinite(float(values[point]))
    }
    if not local:
        return None
    node = max(local, key=lambda n: local[n])
    return node if local[node] >= AMPLIFYING else None


def _exact(judgement: Judgement) -> float:
    return judgement.reference if judgement.reference is not None else 0.0


def _from(verdict: Verdict, finding: Finding, prefix: str) -> Diagnosis:
    return Diagnosis(verdict, finding.node, finding.phase, f"{prefix}{finding.detail}")


def _first(findings: Sequence[Finding], kind: str) -> Finding | None:
    return next((f for f in findings if f.kind == kind), None)


def _relevant(finding: Finding, key: Key) -> bool:
    """Whether a finding can touch the entry: it lies on the entry's dependency path, in a
    phase the entry reads (every finding, for a node gradient).

    - A forward value touches an entry whose gradient reads it or a value computed from it
      (``read_by``): ``ndtr``'s backward never reads ``ndtr(x)``, ``x*exp(y)``'s backward for x
      reads ``exp(y)``.
    - A local first derivative by child ``c`` touches the gradients of the variables in ``c``
      and the Hessian elements of their rows, except those the audit knows no double backward
      reads (``read_by``: the output's derivative by a variable, whose incoming gradient is
      the constant seed).
    - A local second derivative by ``(a, b)`` touches the Hessian elements by one variable of
      ``a`` and one of ``b``.
    - A gradient flowing back through a node touches the entries of the node's variables.
    """
    kind, wrt, _ = key
    if finding.phase == SECOND_BACKWARD and kind != HESSIAN:
        return False
    if kind == VALUE:
        return finding.phase == FORWARD
    if kind == NODE:
        return True
    asked = set(wrt)
    if finding.phase == FORWARD and finding.read_by is not None:
        return bool(finding.read_by & asked)
    if not finding.node.free_symbols:
        return True
    if len(finding.wrt) == 1:
        (child,) = finding.wrt
        names = _names(child)
        if kind == HESSIAN and finding.read_by is not None:
            return wrt[0] in names and bool(finding.read_by & asked)
        return bool(names & asked)
    if len(finding.wrt) == 2 and kind == HESSIAN:
        first, second = (_names(child) for child in finding.wrt)
        return (wrt[0] in first and wrt[1] in second) or (wrt[1] in first and wrt[0] in second)
    return bool(_names(finding.node) & asked)


def _names(node: sympy.Basic) -> set[str]:
    return {symbol.name for symbol in node.free_symbols}
