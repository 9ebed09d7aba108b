"""The torch implementations: custom autograd Functions with hand-written backward passes.

Both backward passes are built from differentiable torch operations, so their second
derivatives exist (derivcheck checks the Hessian through them).
"""

from __future__ import annotations

from typing import Any

import torch


class _StableSoftplus(torch.autograd.Function):
    """log(1 + exp(x)) as max(x, 0) + log1p(exp(-|x|)): no overflow for large x."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(x)
        return torch.clamp_min(x, 0) + torch.log1p(torch.exp(-torch.abs(x)))

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> torch.Tensor:
        (x,) = ctx.saved_tensors
        return grad * torch.sigmoid(x)


class _SmoothAbs(torch.autograd.Function):
    """sqrt(x**2 + eps**2), a smooth |x|, differentiable in both arguments."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
        result = torch.hypot(x, eps)
        ctx.save_for_backward(x, eps, result)
        return result

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x, eps, result = ctx.saved_tensors
        return grad * x / result, grad * eps / result


def stable_softplus(x: torch.Tensor) -> torch.Tensor:
    """Softplus by a custom Function."""
    return _StableSoftplus.apply(x)


def smooth_abs(x: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
    """A smooth absolute value by a custom Function."""
    return _SmoothAbs.apply(x, eps)
