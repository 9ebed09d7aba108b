"""``check_function()``: a user's torch function against an exact specification.

The function is a black box: for the length of the check it is a custom function
(:mod:`verifier.core.expression.registry`) whose implementation is ``fn`` and whose definition is
the spec, and the check is that of the expression ``name(x, y, ...)`` with one more kind of entry,
``value`` (the function's own value against the spec's). Everything else is what
:func:`verifier.core.check.check` does: the same points, tolerances, certified references and
verdicts. ``docs/custom-functions.md`` says what the tolerance is measured against and why.

>>> import torch
>>> def softplus(x):
...     return torch.nn.functional.softplus(x)
>>> report = check_function(softplus, "log(1 + exp(x))", at={"x": 0.5})
>>> report.verdict, [e.kind for e in report.entries]
('pass', ['value', 'gradient', 'hessian'])
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any, Unpack

from verifier.core.check import plan_check, resolve_options, run_plan
from verifier.core.expression import registry
from verifier.core.expression.parse import parse_expression, require_variables
from verifier.core.floats.points import PointInput
from verifier.core.judge.report import Report
from verifier.core.options import CheckOptions, OptionFields
from verifier.errors import OptionError

BLACK_BOX_NOTE = (
    "{name} is checked as a black box against its spec {spec}. Each entry's tolerance is "
    "atol + rtol x |exact value|: the function receives its inputs exactly, as one torch "
    "operation does, so its value and derivatives are held to the accuracy of one operation "
    "at exact inputs; what the spec would lose to rounding if computed as written is no "
    "excuse (a black box's inside cannot be seen)."
)

_names = itertools.count(1)
_names_lock = threading.Lock()


def check_function(
    fn: Callable[..., Any],
    spec: str,
    at: PointInput | Sequence[PointInput] | None = None,
    *,
    variables: Sequence[str] | None = None,
    batched: bool = True,
    options: CheckOptions | None = None,
    **given: Unpack[OptionFields],
) -> Report:
    """Check ``fn``'s value, gradient and Hessian against the exact ones of ``spec``.

    Args:
        fn: a torch callable taking one tensor per variable, positionally, in the order of
            ``variables``; each tensor holds every point (a batch), and ``fn`` returns one
            value per point, in the inputs' dtype.
        spec: the exact definition in the syntax of :func:`verifier.check`, e.g.
            ``"log(1 + exp(x))"``.
        at, options, given: as for :func:`verifier.check` (``nodes`` and
            ``compare_devices`` excepted: a black box has no nodes to see).
        variables: the names of ``fn``'s arguments, in order; may be omitted when ``spec``
            has one variable.
        batched: ``fn`` takes every point at once; False calls it once per point with 0-d
            tensors (for a function that does not batch, e.g. one that branches on a
            value), every derivative path going through those calls.

    Returns:
        The report: entries of kind ``value``, ``gradient`` and ``hessian``; a function
        that raises or returns something other than one value per point ends as verdict
        ``error`` with a reason that names it.

    Raises:
        InputError: the spec, a point or an option is invalid (nothing ran).
    """
    started = time.perf_counter()
    if not callable(fn):
        raise OptionError(f"fn must be callable, not {type(fn).__name__}")
    resolved = resolve_options(options, given)
    for name in ("nodes", "compare_devices"):
        if getattr(resolved, name):
            raise OptionError(
                f"check_function does not take {name}: it checks the function as a whole",
                option=name,
            )
    parsed = require_variables(parse_expression(spec))
    names = _variables(parsed.variables, variables)
    name = _register(fn, spec, names, fn if batched else _point_by_point(fn))
    try:
        expression = f"{name}({', '.join(names)})"
        report = run_plan(plan_check(expression, at, resolved), started, values=True)
    finally:
        registry.forget(name)
    report.functions = sorted(parsed.functions)
    report.notes.insert(0, BLACK_BOX_NOTE.format(name=expression, spec=spec))
    return report


def _variables(in_spec: Sequence[str], given: Sequence[str] | None) -> tuple[str, ...]:
    if given is None:
        if len(in_spec) != 1:
            raise OptionError(
                f"the spec has the variables {', '.join(in_spec)}: give variables=[...] in the "
                "order fn takes them"
            )
        return tuple(in_spec)
    if isinstance(given, str):
        raise OptionError("variables is a sequence of names, e.g. ['x', 'y']")
    names = tuple(given)
    unknown = [v for v in in_spec if v not in names]
    if unknown:
        raise OptionError(
            f"the spec uses {unknown[0]!r}, which is not among variables ({', '.join(names)})"
        )
    return names


def _point_by_point(fn: Callable[..., Any]) -> Callable[..., Any]:
    """``fn`` of 0-d tensors as a function of batches: called once per point, the results
    stacked (autograd, forward mode and torch.func all go through the calls)."""
    import torch

    def each(*tensors: Any) -> Any:
        count = tensors[0].shape[0] if tensors and tensors[0].dim() else 1
        if tensors and tensors[0].dim() == 0:
            return fn(*tensors)
        return torch.stack(
            [torch.as_tensor(fn(*[t[i] for t in tensors])).reshape(()) for i in range(count)]
        )

    return each


def _register(
    fn: Callable[..., Any], spec: str, names: tuple[str, ...], implementation: Callable[..., Any]
) -> str:
    """Register ``implementation`` under ``fn``'s own name where it is free, else a numbered
    one."""
    own = _own_name(fn)
    candidates = [own] if own.isidentifier() and not own.startswith("_") else []
    with _names_lock:
        numbered = (f"fn{next(_names)}" for _ in range(1000))
        for candidate in itertools.chain(candidates, numbered):
            if candidate in names:
                continue
            try:
                registry.register_function(candidate, implementation, spec, names)
            except OptionError:
                continue
            return candidate
    raise OptionError("no free name to check the function under")  # pragma: no cover


def _own_name(fn: Callable[..., Any]) -> str:
    """The name a report gives ``fn``: its ``__name__``, but a custom autograd Function's
    class name for its ``apply`` (``MySin.apply`` is ``MySin``: every one is ``apply``)."""
    own = getattr(fn, "__name__", "") or ""
    owner = getattr(fn, "__self__", None)
    if own == "apply" and isinstance(owner, type):
        return owner.__name__
    return own
