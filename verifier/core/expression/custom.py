"""A custom function in SymPy: its declaration and the class whose value and derivatives are
those of its definition. The registry (:mod:`verifier.core.expression.registry`) makes one
class per declared name; the parser, the translator and the audit recognise them here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import sympy

from verifier.core.expression import special

REGISTERED = "registered"
"""The origin of a function registered in this process by ``register_function``."""


@dataclass(frozen=True)
class Declaration:
    """The torch-free half of a custom function.

    Attributes:
        name: how expressions call it.
        args: its argument names, in call order.
        definition: its exact value, in the expression syntax over ``args``.
        implementation: ``module:attribute`` of the torch callable, for a plugin; None for a
            function registered in this process (its callable is held here).
        origin: ``registered``, or ``plugin DIST (entry point NAME)``.
    """

    name: str
    args: tuple[str, ...]
    definition: str
    implementation: str | None = None
    origin: str = REGISTERED


class CustomFunction(special.TorchFunction):
    """A custom function in SymPy: its value and derivatives are those of its definition."""

    declaration: ClassVar[Declaration]
    body: ClassVar[sympy.Expr]
    symbols: ClassVar[tuple[sympy.Symbol, ...]]

    def definition(self) -> sympy.Expr:
        return self.body.xreplace(dict(zip(self.symbols, self.args, strict=True)))

    def _derivative(self, index: int) -> sympy.Expr:
        derivative = sympy.diff(self.body, self.symbols[index - 1])
        return derivative.xreplace(dict(zip(self.symbols, self.args, strict=True)))
