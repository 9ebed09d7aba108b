"""derivcheck: checks PyTorch autograd's derivatives against exact mathematics.

``from verifier import check`` runs one check inline; ``check_function`` checks a torch
function against an exact spec, and ``register_function`` adds a function to expressions.
The imports are lazy so that the service's API process, which imports this package, never
loads torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from verifier.core.check import check as check
    from verifier.core.expression.registry import register_function as register_function
    from verifier.core.function_check import check_function as check_function

__all__ = ["check", "check_function", "register_function"]


def __getattr__(name: str) -> Any:
    if name == "check":
        from verifier.core.check import check

        return check
    if name == "check_function":
        from verifier.core.function_check import check_function

        return check_function
    if name == "register_function":
        from verifier.core.expression.registry import register_function

        return register_function
    raise AttributeError(f"module 'verifier' has no attribute {name!r}")
