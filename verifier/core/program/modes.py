"""The derivative paths (modes) a check can take through torch: one table, names to torch calls.

A mode is named ``<api>:<path>``: api ``autograd`` (``torch.autograd.grad`` and
``torch.autograd.forward_ad``) or ``func`` (``torch.func``, vmapped over the points); path
``reverse`` or ``forward`` for first derivatives, ``reverse-over-reverse``,
``forward-over-reverse``, ``reverse-over-forward`` or ``forward-over-forward`` for second
derivatives (the outer mode differentiates what the inner one computed). The table here is the
one source of the names, their order and the torch calls each makes; ``docs/report-format.md``
("Derivative paths") shows it, and :mod:`verifier.core.program.paths` runs it. This module
imports no torch, so the service can validate a check's modes without loading it.

>>> [mode.name for mode in parse_modes("autograd:reverse, func:forward-over-reverse")]
['autograd:reverse', 'func:forward-over-reverse']
>>> MODES["func:forward-over-reverse"].order
2
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from verifier.errors import OptionError

AUTOGRAD = "autograd"
FUNC = "func"
APIS = (AUTOGRAD, FUNC)
"""The torch APIs a path goes through."""

REVERSE = "reverse"
FORWARD = "forward"
FIRST_ORDER_PATHS = (REVERSE, FORWARD)
SECOND_ORDER_PATHS = (
    "reverse-over-reverse",
    "forward-over-reverse",
    "reverse-over-forward",
    "forward-over-forward",
)
"""``<outer>-over-<inner>``: the inner mode computes the gradient, the outer differentiates it."""

ALL_MODES = "all"
"""The word that asks for every mode of the table."""

OPTION = "modes"
"""The option's name, as errors name it."""


@dataclass(frozen=True)
class Mode:
    """One derivative path.

    Attributes:
        name: ``<api>:<path>``, as options and reports spell it.
        api: ``autograd`` or ``func``.
        path: ``reverse``, ``forward`` or ``<outer>-over-<inner>``.
        calls: the torch calls it makes, as a user would write them: ``grad`` is
            ``torch.autograd.grad``, ``make_dual``, ``unpack_dual`` and ``dual_level`` are
            ``torch.autograd.forward_ad``'s, ``vmap``, ``grad``, ``jacrev``, ``jacfwd`` and
            ``hessian`` in a ``func`` mode are ``torch.func``'s; ``f`` is the program, ``xs``
            its variables, ``i`` and ``j`` run over them.
    """

    name: str
    api: str
    path: str
    calls: str

    @property
    def order(self) -> int:
        """1 for gradients, 2 for Hessians."""
        return 1 if self.path in FIRST_ORDER_PATHS else 2

    @property
    def forward(self) -> bool:
        """Whether forward-mode AD (a ``jvp``) is part of the path."""
        return FORWARD in self.path.split("-")


_CALLS: dict[str, str] = {
    "autograd:reverse": "grad(f(xs).sum(), xs)",
    "autograd:forward": "unpack_dual(f(make_dual(x_i, ones))).tangent",
    "autograd:reverse-over-reverse": (
        "g = grad(f(xs).sum(), xs, create_graph=True); grad(g[i].sum(), xs)"
    ),
    "autograd:forward-over-reverse": (
        "g = grad(f(make_dual(x_j, ones)).sum(), xs, create_graph=True); unpack_dual(g[i]).tangent"
    ),
    "autograd:reverse-over-forward": (
        "t = unpack_dual(f(make_dual(x_i, ones))).tangent; grad(t.sum(), xs)"
    ),
    "autograd:forward-over-forward": (
        "make_dual(x_j, ones, level=outer); make_dual(x_i, ones, level=inner), nested dual_levels"
    ),
    "func:reverse": "vmap(grad(f, argnums))",
    "func:forward": "vmap(jacfwd(f, argnums))",
    "func:reverse-over-reverse": "vmap(jacrev(jacrev(f, argnums), argnums))",
    "func:forward-over-reverse": "vmap(hessian(f, argnums))",
    "func:reverse-over-forward": "vmap(jacrev(jacfwd(f, argnums), argnums))",
    "func:forward-over-forward": "vmap(jacfwd(jacfwd(f, argnums), argnums))",
}

MODES: dict[str, Mode] = {
    f"{api}:{path}": Mode(f"{api}:{path}", api, path, _CALLS[f"{api}:{path}"])
    for api in APIS
    for path in (*FIRST_ORDER_PATHS, *SECOND_ORDER_PATHS)
}
"""Every mode, by name: autograd's first, first order before second."""

DEFAULT_MODES = ("autograd:reverse", "autograd:reverse-over-reverse")
"""What a check runs unless it names its modes: plain reverse and reverse-over-reverse."""


def parse_modes(value: str | Sequence[str]) -> tuple[Mode, ...]:
    """The modes named by ``value``, each once, in the order given.

    Args:
        value: ``"all"``, one name, names separated by commas, or a list of names (which may
            hold ``"all"``).

    Returns:
        The modes, first occurrence first.

    Raises:
        OptionError: a name that is no mode (the error lists the known ones), or no name.

    >>> [mode.name for mode in parse_modes(["autograd:forward", "autograd:forward"])]
    ['autograd:forward']
    >>> len(parse_modes("all"))
    12
    """
    if isinstance(value, str):
        names = [part.strip() for part in value.split(",")]
    elif isinstance(value, Sequence) and all(isinstance(item, str) for item in value):
        names = [item.strip() for item in value]
    else:
        raise OptionError(
            f"modes must be {ALL_MODES!r} or a list of mode names, not {type(value).__name__}",
            option=OPTION,
        )
    chosen: dict[str, Mode] = {}
    for name in names:
        if name == ALL_MODES:
            chosen.update((key, mode) for key, mode in MODES.items() if key not in chosen)
            continue
        chosen.setdefault(name, mode_named(name))
    if not chosen:
        raise OptionError(
            f"modes names no mode: choose {ALL_MODES!r} or any of {', '.join(MODES)}",
            option=OPTION,
        )
    return tuple(chosen.values())


def mode_named(name: str) -> Mode:
    """The mode called ``name``; an unknown name is an OptionError listing the known ones.

    >>> mode_named("autograd:forward").forward
    True
    """
    mode = MODES.get(name)
    if mode is None:
        raise OptionError(
            f"unknown mode {name!r} in modes: choose {ALL_MODES!r} or any of {', '.join(MODES)}",
            option=OPTION,
        )
    return mode
