"""Autograd, done right: gradients, full Hessians and node gradients for a batch of points.

All points of a check run together as one batch: each variable is a tensor with one value per
point, and since points do not interact, the gradient of the sum of the outputs is every
point's gradient at once. Second derivatives differentiate the first-derivative graph
(``torch.autograd.grad(..., create_graph=True)``), one row per variable, so both orders of
every mixed partial are computed separately.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import sympy
import torch

from verifier.core.dtypes import DEVICES
from verifier.core.symbolic import GRADIENT, HESSIAN, NODE, Key, node_key
from verifier.core.translate import Translation
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
        values: per target key, one float per point.
        device: the device it ran on.
        seed_idiom: what ``z.backward(); x.grad.grad`` returned (as text), if it was run.
    """

    values: dict[Key, list[float]]
    device: str
    seed_idiom: str | None


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
    dtype_name: str,
    device: torch.device,
    *,
    hessian: bool,
    nodes: Sequence[sympy.Expr],
) -> AutogradResult:
    """Evaluate the gradient, optionally the Hessian and node gradients, at every point.

    Args:
        expr: the expression's SymPy tree, as parsed.
        variables: variable names, in order.
        points: dtype-rounded points.
        dtype_name: a key of :data:`verifier.core.dtypes.DTYPES`.
        device: where to run.
        hessian: compute all n*n second derivatives.
        nodes: the nodes whose gradients to compute (each must be a node of ``expr``).

    Returns:
        Values keyed like :func:`verifier.core.symbolic.entry_keys`.
    """
    dtype = getattr(torch, dtype_name)
    inputs = {
        name: torch.tensor(
            [point[name] for point in points], dtype=dtype, device=device, requires_grad=True
        )
        for name in variables
    }
    translation = Translation(expr, inputs, dtype_name, device)
    leaves = [inputs[name] for name in variables]
    total = translation.output.sum()
    values: dict[Key, list[float]] = {}
    if nodes:
        tensors = [translation.tensors[node] for node in nodes]
        grads = _grad(total, tensors, create_graph=False)
        for node, grad in zip(nodes, grads, strict=True):
            values[(NODE, (), node_key(node))] = _floats(grad, len(points))

    first = _grad(total, leaves, create_graph=hessian)
    for name, grad in zip(variables, first, strict=True):
        values[(GRADIENT, (name,), None)] = _floats(grad, len(points))
    seed_idiom = None
    if hessian:
        for name_i, grad_i in zip(variables, first, strict=True):
            row = _grad(grad_i.sum(), leaves, create_graph=False)
            for name_j, second in zip(variables, row, strict=True):
                values[(HESSIAN, (name_i, name_j), None)] = _floats(second, len(points))
        seed_idiom = _seed_idiom(expr, variables, points[:1], dtype_name, device)
    return AutogradResult(values=values, device=str(device), seed_idiom=seed_idiom)


def _grad(
    output: torch.Tensor, wrt: Sequence[torch.Tensor], *, create_graph: bool
) -> list[torch.Tensor]:
    if not output.requires_grad:
        return [torch.zeros_like(tensor) for tensor in wrt]
    grads = torch.autograd.grad(
        output, list(wrt), create_graph=create_graph, retain_graph=True, allow_unused=True
    )
    return [torch.zeros_like(t) if g is None else g for g, t in zip(grads, wrt, strict=True)]


def _floats(tensor: torch.Tensor, count: int) -> list[float]:
    if tensor._is_zerotensor():  # autograd's storage-free zeros (e.g. from sign's derivative)
        return [0.0] * count
    return [float(v) for v in tensor.detach().to("cpu", torch.float64).expand(count).tolist()]


def _seed_idiom(
    expr: sympy.Expr,
    variables: Sequence[str],
    points: Sequence[Mapping[str, float]],
    dtype_name: str,
    device: torch.device,
) -> str:
    """Run ``z.backward(); x.grad.grad`` for real, on the first point."""
    dtype = getattr(torch, dtype_name)
    inputs = {
        name: torch.tensor([points[0][name]], dtype=dtype, device=device, requires_grad=True)
        for name in variables
    }
    z = Translation(expr, inputs, dtype_name, device).output.sum()
    if not z.requires_grad:
        return "None"
    z.backward()
    x = inputs[variables[0]]
    return repr(None if x.grad is None else x.grad.grad)
