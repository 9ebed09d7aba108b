"""derivcheck: checks PyTorch autograd's derivatives against exact mathematics.

``from verifier import check`` runs one check inline; ``check_function`` checks a torch
function against an exact spec, ``register_function`` adds a function to expressions, and
``CheckOptions`` holds a check's options resolved once. The imports are lazy so that the
service's API process, which imports this package, never loads torch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from verifier.core.check import check as check
    from verifier.core.expression.registry import register_function as register_function
    from verifier.core.function_check import check_function as check_function
    from verifier.core.options import CheckOptions as CheckOptions

__all__ = ["CheckOptions", "check", "check_function", "register_function"]

_HOMES = {
    "CheckOptions": "verifier.core.options",
    "check": "verifier.core.check",
    "check_function": "verifier.core.function_check",
    "register_function": "verifier.core.expression.registry",
}
"""Where each public name lives (imported on first use)."""


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'verifier' has no attribute {name!r}")
    return getattr(importlib.import_module(home), name)
