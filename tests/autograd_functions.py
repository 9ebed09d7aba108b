"""torch.autograd.Functions that the tests of derivative paths share: each is sin, right or
wrong in one formula that a test names (tests/core/test_paths.py, test_check_modes.py)."""

from __future__ import annotations

from typing import Any

import torch


class NoJvpSin(torch.autograd.Function):
    """sin x with a backward and no jvp."""

    generate_vmap_rule = True

    @staticmethod
    def forward(x: torch.Tensor) -> torch.Tensor:
        return torch.sin(x)

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple[torch.Tensor], output: torch.Tensor) -> None:
        ctx.save_for_backward(inputs[0])

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> torch.Tensor:
        (x,) = ctx.saved_tensors
        return grad * torch.cos(x)


class WrongJvpSin(NoJvpSin):
    """sin with the right backward (g cos x) and a wrong jvp (t cos x (1 + 2**-20))."""

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple[torch.Tensor], output: torch.Tensor) -> None:
        ctx.save_for_backward(inputs[0])
        ctx.save_for_forward(inputs[0])

    @staticmethod
    def jvp(ctx: Any, tangent: torch.Tensor) -> torch.Tensor:
        (x,) = ctx.saved_tensors
        return tangent * torch.cos(x) * (1 + 2.0**-20)


class BatchBiasedSin(NoJvpSin):
    """sin whose backward is 2**-20 relative off when it is handed more than one point."""

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> torch.Tensor:
        (x,) = ctx.saved_tensors
        off = 2.0**-20 if x.numel() > 1 else 0.0
        return grad * torch.cos(x) * (1 + off)


class AloneBiasedSin(NoJvpSin):
    """sin whose backward is 2**-20 relative off when it is handed one point alone."""

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> torch.Tensor:
        (x,) = ctx.saved_tensors
        off = 2.0**-20 if x.numel() == 1 else 0.0
        return grad * torch.cos(x) * (1 + off)
