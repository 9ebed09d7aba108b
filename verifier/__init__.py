"""derivcheck: checks PyTorch autograd's derivatives against exact mathematics.

``from verifier import check`` runs one check inline. The import is lazy so that the service's
API process, which imports this package, never loads torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from verifier.core.check import check as check

__all__ = ["check"]


def __getattr__(name: str) -> Any:
    if name == "check":
        from verifier.core.check import check

        return check
    raise AttributeError(f"module 'verifier' has no attribute {name!r}")
