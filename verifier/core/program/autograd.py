"""Autograd, done right: gradients, full Hessians and node gradients for a batch of points.

All points of a check run together as one batch: each variable is a tensor with one value per
point, and since points do not interact, the gradient of the sum of the outputs is every
point's gradient at once. The gradient is a plain ``torch.autograd.grad`` (no
``create_graph``), as users call it; second derivatives differentiate a first-derivative graph
built for them (``torch.autograd.grad(..., create_graph=True)``), one row per variable, so both
orders of every mixed partial are computed separately.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import sympy
import torch

from verifier.core.expression.symbolic import GRADIENT, HESSIAN, NODE, VALUE, Key, node_key
from verifier.core.floats.dtypes import DEVICES, DType
from verifier.core.floats.points import Floats, variable_columns
from verifier.core.program.translate import Translation
from verifier.errors import OptionError

SEED_IDIOM_NOTE = (
    "z.backward(); x.grad.grad returns {result} here: after a plain backward(), x.grad is a "
    "leaf tensor with no graph, because the first pass did not run with create_graph=True. "
    "The Hessian in this report differentiates the gradient graph instead: "
    "torch.autograd.grad(z, x, create_graph=True), then torch.autograd.grad on each component."
)


@dataclass(frozen=True)
class AutogradResult:
    """What autograd computed.

    Attributes:
        values: per target key, one float64 per point (a numpy array).
        device: the device it ran on.
        seed_idiom: what ``z.backward(); x.grad.grad`` returned (as text), if it was run.
        second_backward: per variable whose Hessian row autograd could not differentiate
            (asked for with ``black_box``): why, in words. A gradient with no graph gives a
            row of zeros; one whose double backward raised gives a row of nan.
        forward: every node's value as this run computed it (detached, on the CPU), for the
            local audit: torch's kernels for a whole batch and for part of it may differ in
            the last bits, so the audit judges the values this very run fed each operation.
    """

    values: dict[Key, Floats]
    device: str
    seed_idiom: str | None
    second_backward: dict[str, str] = field(default_factory=dict)
    forward: dict[sympy.Basic, torch.Tensor] = field(default_factory=dict)


NO_GRAPH = (
    "the gradient d/d{name} that autograd returned has no graph (its backward ran on "
    "detached tensors or under no_grad, so it is not differentiable): autograd's second "
    "derivatives are 0 here"
)
DOUBLE_BACKWARD_RAISED = "torch raised on the second backward through d/d{name}: {message}"


def resolve_device(device: str) -> torch.device:
    """``auto`` is CUDA when available, else CPU; ``cuda`` without CUDA is an error."""
    if device not in DEVICES and not str(device).startswith("cuda:"):
        raise OptionError(f"unknown device {device!r}: choose one of {', '.join(DEVICES)}")
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if str(device).startswith("cuda") and not torch.cuda.is_available():
        raise OptionError(f"device {device!r} requested but CUDA is not available here")
    return torch.device(device)


def run_autograd(
    expr: sympy.Expr,
    variables: Sequence[str],
    points: Sequence[Mapping[str, float]],
    dtype: DType,
    device: torch.device,
    *,
    hessian: bool,
    nodes: Sequence[sympy.Expr],
    values: bool = False,
    black_box: bool = False,
) -> AutogradResult:
    """Evaluate the gradient, optionally the Hessian and node gradients, at every point.

    Args:
        expr: the expression's SymPy tree, as parsed.
        variables: variable names, in order.
        points: dtype-rounded points.
        dtype: the check's floating-point format.
        device: where to run.
        hessian: compute all n*n second derivatives.
        nodes: the nodes whose gradients to compute (each must be a node of ``expr``).
        values: also return the expression's value (key ``value``).
        black_box: the expression calls a user's function, whose backward may not be
            differentiable: a gradient with no graph and a double backward that raises are
            kept per row (``second_backward``) rather than passed off as zeros or raised.

    Returns:
        Values keyed like :func:`verifier.core.expression.symbolic.entry_keys`.
    """
    inputs = {
        name: torch.from_numpy(column).to(device=device, dtype=dtype.torch).requires_grad_(True)
        for name, column in variable_columns(points, variables).items()
    }
    translation = Translation(expr, inputs, dtype, device)
    leaves = [inputs[name] for name in variables]
    total = translation.output.sum()
    found: dict[Key, Floats] = {}
    if values:
        found[(VALUE, (), None)] = _floats(translation.output, len(points))
    if nodes:
        tensors = [translation.tensors[node] for node in nodes]
        grads = _grad(total, tensors, create_graph=False)
        for node, grad in zip(nodes, grads, strict=True):
            found[(NODE, (), node_key(node))] = _floats(grad, len(points))

    seed = None
    if black_box and hessian and total.requires_grad:
        # An incoming gradient that itself requires grad, as inside any larger graph: a
        # backward marked once-differentiable then raises on the double backward, as it
        # would in the user's own second-order code, instead of returning a bare tensor.
        seed = torch.ones_like(translation.output).requires_grad_(True)
        first = _seeded_grad(translation.output, leaves, seed)
    else:
        first = _grad(total, leaves, create_graph=hessian)
    # The gradient is a plain backward, as users call it (autograd:reverse): with
    # create_graph=True torch can take another branch (det's at a singular matrix).
    plain = _grad(total, leaves, create_graph=False) if hessian else first
    for name, grad in zip(variables, plain, strict=True):
        found[(GRADIENT, (name,), None)] = _floats(grad, len(points))
    seed_idiom = None
    problems: dict[str, str] = {}
    if hessian:
        for name_i, grad_i in zip(variables, first, strict=True):
            problem = None
            if seed is not None:
                problem = _double_backward_problem(name_i, grad_i, leaves, seed)
            if problem is not None:
                problems[name_i] = problem
            if problem is not None and problem.startswith(DOUBLE_BACKWARD_RAISED[:20]):
                row = [torch.full_like(leaf, float("nan")) for leaf in leaves]
            else:
                row = _grad(grad_i.sum(), leaves, create_graph=False)
            for name_j, second in zip(variables, row, strict=True):
                found[(HESSIAN, (name_i, name_j), None)] = _floats(second, len(points))
        seed_idiom = _seed_idiom(expr, variables, points[:1], dtype, device)
    forward = {node: tensor.detach().cpu() for node, tensor in translation.tensors.items()}
    return AutogradResult(
        values=found,
        device=str(device),
        seed_idiom=seed_idiom,
        second_backward=problems,
        forward=forward,
    )


def _grad(
    output: torch.Tensor, wrt: Sequence[torch.Tensor], *, create_graph: bool
) -> list[torch.Tensor]:
    if not output.requires_grad:
        return [torch.zeros_like(tensor) for tensor in wrt]
    grads = torch.autograd.grad(
        output, list(wrt), create_graph=create_graph, retain_graph=True, allow_unused=True
    )
    return [torch.zeros_like(t) if g is None else g for g, t in zip(grads, wrt, strict=True)]


def _seeded_grad(
    output: torch.Tensor, wrt: Sequence[torch.Tensor], seed: torch.Tensor
) -> list[torch.Tensor]:
    grads = torch.autograd.grad(
        output,
        list(wrt),
        grad_outputs=seed,
        create_graph=True,
        retain_graph=True,
        allow_unused=True,
    )
    return [torch.zeros_like(t) if g is None else g for g, t in zip(grads, wrt, strict=True)]


def _double_backward_problem(
    name: str, gradient: torch.Tensor, leaves: Sequence[torch.Tensor], seed: torch.Tensor
) -> str | None:
    """Why autograd cannot differentiate ``gradient`` (d/d``name``) again, or None.

    A backward marked once-differentiable hangs an error node on its result, reached only when
    the whole graph behind the gradient is walked (``backward()``): that walk raises torch's own
    message. A backward run on detached tensors leaves no path back to the inputs at all.
    """
    if gradient.requires_grad:
        try:
            torch.autograd.backward(gradient.sum(), retain_graph=True)
        except RuntimeError as error:
            message = str(error).splitlines()[0]
            return DOUBLE_BACKWARD_RAISED.format(name=name, message=message)
        finally:
            for leaf in [*leaves, seed]:
                leaf.grad = None
        grads = torch.autograd.grad(
            gradient.sum(), list(leaves), retain_graph=True, allow_unused=True
        )
        if any(g is not None for g in grads):
            return None
    return NO_GRAPH.format(name=name)


def _floats(tensor: torch.Tensor, count: int) -> Floats:
    if tensor._is_zerotensor():  # autograd's storage-free zeros (e.g. from sign's derivative)
        return np.zeros(count)
    values: Floats = tensor.detach().to("cpu", torch.float64).expand(count).numpy().copy()
    return values


def _seed_idiom(
    expr: sympy.Expr,
    variables: Sequence[str],
    points: Sequence[Mapping[str, float]],
    dtype: DType,
    device: torch.device,
) -> str:
    """Run ``z.backward(); x.grad.grad`` for real, on the first point."""
    inputs = {
        name: torch.tensor([points[0][name]], dtype=dtype.torch, device=device, requires_grad=True)
        for name in variables
    }
    z = Translation(expr, inputs, dtype, device).output.sum()
    if not z.requires_grad:
        return "None"
    z.backward()
    x = inputs[variables[0]]
    return repr(None if x.grad is None else x.grad.grad)
