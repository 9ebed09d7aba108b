"""Derivatives along one path: a program's gradient or Hessian, computed the way a mode says.

The modes and the torch calls each makes are the table of :mod:`verifier.core.program.modes`
(shown in ``docs/report-format.md``, "Derivative paths"). A program here is a function of one
tensor per variable; batched (the default) it takes one 1-d tensor per variable holding every
point, as the translated programs of :mod:`verifier.core.program.translate` do, and the
``autograd`` modes use that the points are independent (the gradient of the summed outputs,
a tangent of ones); the ``func`` modes apply ``torch.func`` to the function of one point and
``vmap`` it over the points. Unbatched, the program is called once per point with 0-d tensors.

A path torch refuses (no forward-mode formula, a custom ``torch.autograd.Function`` without
``jvp``, an in-place error, nested forward levels) raises nothing: the result holds torch's
message for that path and no values, and the other paths are unaffected.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache

import numpy as np
import sympy
import torch
import torch.autograd.forward_ad as fwad

from verifier.core.expression.symbolic import GRADIENT, HESSIAN, Key
from verifier.core.floats.dtypes import DType
from verifier.core.floats.points import Floats
from verifier.core.program.modes import AUTOGRAD, Mode, mode_named
from verifier.core.program.translate import Translation

Tensor = torch.Tensor
Program = Callable[..., Tensor]
Grid = list[list[Tensor]]
"""A path's raw result: one row of one tensor (order 1), or n rows of n (order 2, H[i][j] is
d/dx_j of df/dx_i)."""

TORCH_NOTICES = (
    "There is a performance drop because we have not yet implemented the batching rule",
    "An output with one or more elements was resized",
)
"""Warnings torch gives about its own internals on a path (vmap's slow fallback for an
operation with no batching rule; a kernel resizing its own output buffer under vmap): they say
nothing about the derivatives, so a path runs with them silenced."""

MAX_MESSAGE_CHARS = 500
"""The longest refusal message kept, in characters (the first line of torch's message)."""


@dataclass(frozen=True)
class PathResult:
    """What one path computed.

    Attributes:
        mode: the path.
        values: per entry key (``gradient`` for order 1, ``hessian`` for order 2), one float64
            per point; empty when torch refused the path.
        error: torch's message when it refused the path, else None.
    """

    mode: Mode
    values: dict[Key, Floats] = field(default_factory=dict)
    error: str | None = None


def run_path(
    fn: Program, inputs: Mapping[str, Tensor], mode: Mode | str, *, batched: bool = True
) -> PathResult:
    """The gradient (order-1 mode) or the full Hessian (order 2) of ``fn`` along ``mode``.

    Args:
        fn: the program, called with one tensor per variable in the order of ``inputs``.
        inputs: variable name to a 1-d tensor of its values, one per point.
        mode: a :class:`Mode` or its name.
        batched: call ``fn`` on every point at once (1-d tensors; the ``func`` modes vmap the
            function of one point, which sees each variable as a 1-element tensor); else once
            per point with 0-d tensors.

    Returns:
        Values keyed like :func:`verifier.core.expression.symbolic.entry_keys`, or torch's
        refusal.

    >>> x = torch.tensor([1.0, 2.0], dtype=torch.float64)
    >>> result = run_path(lambda x: x**3, {"x": x}, "func:forward-over-reverse")
    >>> result.values[("hessian", ("x", "x"), None)]
    array([ 6., 12.])
    """
    chosen = mode if isinstance(mode, Mode) else mode_named(mode)
    names = list(inputs)
    if not names:
        return PathResult(chosen)
    columns = [inputs[name].detach() for name in names]
    count = columns[0].shape[0]
    if chosen.forward:
        _load_forward_rules()
    try:
        # catch_warnings swaps the process's filters: two threads running paths at once may
        # leave these two ignores in place, which silences only torch's notes above.
        with warnings.catch_warnings():
            for notice in TORCH_NOTICES:
                warnings.filterwarnings("ignore", notice, UserWarning)
            if batched:
                grid = [[_floats(t, count) for t in row] for row in _run(fn, columns, chosen)]
            else:
                grid = _per_point(fn, columns, chosen, count)
    except torch.OutOfMemoryError:
        raise  # the device's limit, not the path's: the check as a whole ends
    except Exception as error:  # noqa: BLE001  (torch's refusal of this path, whatever its type)
        # RuntimeError and NotImplementedError for missing formulas and in-place writes,
        # AssertionError from torch.func's internals (a jvp through a Function that has none),
        # anything from a user's Function that fails only here (a jvp reading saved tensors it
        # never saved): this path ends with the message, the others still run.
        return PathResult(chosen, error=refusal(error, chosen))
    values: dict[Key, Floats] = {}
    if chosen.order == 1:
        for name, column in zip(names, grid[0], strict=True):
            values[(GRADIENT, (name,), None)] = column
    else:
        for name_i, row in zip(names, grid, strict=True):
            for name_j, column in zip(names, row, strict=True):
                values[(HESSIAN, (name_i, name_j), None)] = column
    return PathResult(chosen, values)


def expression_function(
    expr: sympy.Expr, variables: Sequence[str], dtype: DType, device: torch.device
) -> Program:
    """The translated program of ``expr`` as a function of one tensor per variable: 1-d tensors
    (every point) give one value per point, 0-d tensors (one point) a 0-d value."""

    def program(*tensors: Tensor) -> Tensor:
        single = bool(tensors) and tensors[0].dim() == 0
        inputs = {
            name: tensor.reshape(1) if single else tensor
            for name, tensor in zip(variables, tensors, strict=True)
        }
        output = Translation(expr, inputs, dtype, device).output
        return output.reshape(()) if single else output

    return program


def refusal(error: BaseException, mode: Mode) -> str:
    """Torch's message for a refused path, naming the custom Function it came from, if any."""
    text = str(error).strip()
    first = text.splitlines()[0][:MAX_MESSAGE_CHARS] if text else ""
    message = f"{type(error).__name__}: {first}" if first else type(error).__name__
    function = custom_function(error)
    if function is None:
        return message
    label = f"torch.autograd.Function {function.__module__}.{function.__qualname__}"
    if mode.forward and function.jvp is torch.autograd.Function.jvp:
        return f"{label} defines no jvp, which forward-mode AD needs ({message})"
    return f"{message} (in {label})"


def custom_function(error: BaseException) -> type[torch.autograd.Function] | None:
    """The user's ``torch.autograd.Function`` nearest to where ``error`` was raised, if any.

    Torch's own messages (a missing ``jvp``, a missing ``setup_context``) do not name the
    Function; its class is a local of the frames that ran it (``ctx`` is an instance of its
    generated backward class, which knows it), so the traceback is read innermost first.
    """
    frames = []
    trace = error.__traceback__
    while trace is not None:
        frames.append(trace.tb_frame)
        trace = trace.tb_next
    for frame in reversed(frames):
        for value in frame.f_locals.values():
            if isinstance(value, torch.autograd.function.BackwardCFunction):
                value = getattr(value, "_forward_cls", None)
            if (
                isinstance(value, type)
                and issubclass(value, torch.autograd.Function)
                and value.__module__.split(".")[0] != "torch"
            ):
                return value
    return None


def _per_point(
    fn: Program, columns: Sequence[Tensor], mode: Mode, count: int
) -> list[list[Floats]]:
    """The path run once per point, with 0-d tensors, gathered into one column per entry."""
    grids = [_run(fn, [column[k] for column in columns], mode) for k in range(count)]
    shape = [len(row) for row in grids[0]] if grids else []
    return [
        [
            np.array([_floats(grid[i][j], 1)[0] for grid in grids], dtype=np.float64)
            for j in range(width)
        ]
        for i, width in enumerate(shape)
    ]


@cache
def _load_forward_rules() -> None:
    """Load torch's forward-mode decompositions once, quietly.

    ``make_dual`` and ``torch.func``'s jvp import them on first use, and that import scripts
    them with ``torch.jit.script``, which warns that it is deprecated: a warning about torch's
    own internals, which would otherwise reach (or, where warnings are errors, stop) the
    first forward path of the process.
    """
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "`torch.jit.script` is deprecated", DeprecationWarning)
        try:
            import torch._decomp.decompositions_for_jvp  # noqa: F401
        except ImportError:  # a torch without them loads nothing on first use either
            pass


def _run(fn: Program, columns: Sequence[Tensor], mode: Mode) -> Grid:
    if mode.api == AUTOGRAD:
        return _AUTOGRAD[mode.path](fn, columns)
    return _func(fn, columns, mode, single=columns[0].dim() == 0)


def _leaves(columns: Sequence[Tensor], *, grad: bool) -> list[Tensor]:
    # Fresh tensors per path: a program that writes into its inputs spoils no other path.
    return [column.detach().clone().requires_grad_(grad) for column in columns]


def _grad(output: Tensor, wrt: Sequence[Tensor], *, create_graph: bool) -> list[Tensor]:
    if not output.requires_grad:
        return [torch.zeros_like(tensor) for tensor in wrt]
    grads = torch.autograd.grad(
        output, list(wrt), create_graph=create_graph, retain_graph=True, allow_unused=True
    )
    return [torch.zeros_like(t) if g is None else g for g, t in zip(grads, wrt, strict=True)]


def _tangent(tensor: Tensor, level: int | None = None) -> Tensor:
    primal, tangent = fwad.unpack_dual(tensor, level=level)
    return torch.zeros_like(primal) if tangent is None else tangent


def _jvp(fn: Program, xs: Sequence[Tensor], i: int) -> Tensor:
    """df/dx_i at every point: a tangent of ones on x_i, in a dual level of its own."""
    with fwad.dual_level():
        args = list(xs)
        args[i] = fwad.make_dual(xs[i], torch.ones_like(xs[i]))
        return _tangent(fn(*args))


def _reverse(fn: Program, columns: Sequence[Tensor]) -> Grid:
    xs = _leaves(columns, grad=True)
    return [_grad(fn(*xs).sum(), xs, create_graph=False)]


def _forward(fn: Program, columns: Sequence[Tensor]) -> Grid:
    return [[_jvp(fn, _leaves(columns, grad=False), i) for i in range(len(columns))]]


def _reverse_over_reverse(fn: Program, columns: Sequence[Tensor]) -> Grid:
    xs = _leaves(columns, grad=True)
    first = _grad(fn(*xs).sum(), xs, create_graph=True)
    return [_grad(g.sum(), xs, create_graph=False) for g in first]


def _forward_over_reverse(fn: Program, columns: Sequence[Tensor]) -> Grid:
    xs = _leaves(columns, grad=True)
    by_column = []
    for j in range(len(xs)):
        with fwad.dual_level():
            args = list(xs)
            args[j] = fwad.make_dual(xs[j], torch.ones_like(xs[j]))
            first = _grad(fn(*args).sum(), args, create_graph=True)
            by_column.append([_tangent(g) for g in first])
    return [list(row) for row in zip(*by_column, strict=True)]


def _reverse_over_forward(fn: Program, columns: Sequence[Tensor]) -> Grid:
    xs = _leaves(columns, grad=True)
    return [_grad(_jvp(fn, xs, i).sum(), xs, create_graph=False) for i in range(len(xs))]


def _forward_over_forward(fn: Program, columns: Sequence[Tensor]) -> Grid:
    by_column = []
    for j in range(len(columns)):
        column = []
        xs = _leaves(columns, grad=False)
        with fwad.dual_level() as outer:
            args = list(xs)
            args[j] = fwad.make_dual(xs[j], torch.ones_like(xs[j]), level=outer)
            for i in range(len(xs)):
                with fwad.dual_level() as inner:  # torch 2.13 refuses nested levels here
                    inner_args = list(args)
                    inner_args[i] = fwad.make_dual(args[i], torch.ones_like(xs[i]), level=inner)
                    first = _tangent(fn(*inner_args), level=inner)
                column.append(_tangent(first, level=outer))
        by_column.append(column)
    return [list(row) for row in zip(*by_column, strict=True)]


_AUTOGRAD: dict[str, Callable[[Program, Sequence[Tensor]], Grid]] = {
    "reverse": _reverse,
    "forward": _forward,
    "reverse-over-reverse": _reverse_over_reverse,
    "forward-over-reverse": _forward_over_reverse,
    "reverse-over-forward": _reverse_over_forward,
    "forward-over-forward": _forward_over_forward,
}


def _func(fn: Program, columns: Sequence[Tensor], mode: Mode, *, single: bool) -> Grid:
    """A torch.func transform of the function of one point, vmapped over the points (or
    applied to the one point given)."""
    from torch import func

    argnums = tuple(range(len(columns)))
    transforms: dict[str, Callable[[Program], Program]] = {
        "reverse": lambda f: func.grad(f, argnums),
        "forward": lambda f: func.jacfwd(f, argnums),
        "reverse-over-reverse": lambda f: func.jacrev(func.jacrev(f, argnums), argnums),
        "forward-over-reverse": lambda f: func.hessian(f, argnums),
        "reverse-over-forward": lambda f: func.jacrev(func.jacfwd(f, argnums), argnums),
        "forward-over-forward": lambda f: func.jacfwd(func.jacfwd(f, argnums), argnums),
    }

    def one_point(*scalars: Tensor) -> Tensor:
        # A batched program takes 1-d tensors: inside vmap each variable is one element.
        args = scalars if single else tuple(s.reshape(1) for s in scalars)
        return fn(*args).reshape(())

    transformed = transforms[mode.path](one_point)
    fresh = _leaves(columns, grad=False)
    found = transformed(*fresh) if single else func.vmap(transformed)(*fresh)
    if mode.order == 1:
        return [list(found)]
    return [list(row) for row in found]


def _floats(tensor: Tensor, count: int) -> Floats:
    if tensor._is_zerotensor():  # autograd's storage-free zeros
        return np.zeros(count)
    values: Floats = (
        tensor.detach().to("cpu", torch.float64).reshape(-1).expand(count).numpy().copy()
    )
    return values
