"""The ``derivcheck`` command line.

Every command prints a readable table by default and JSON with ``--json``; bad input ends with
a one-line message on stderr and exit code 2, never a traceback.
"""

from __future__ import annotations

import typer

from verifier.cli import check as check_command
from verifier.cli import service


def create_cli() -> typer.Typer:
    """The ``derivcheck`` application with every command registered."""
    app = typer.Typer(
        name="derivcheck",
        help="Check PyTorch autograd's derivatives against exact mathematics.",
        no_args_is_help=True,
        add_completion=False,
        pretty_exceptions_enable=False,
    )
    app.callback()(_root)
    check_command.register(app)
    service.register(app)
    return app


def _root() -> None:
    """Check PyTorch autograd's derivatives against exact mathematics."""


def main() -> None:
    """Entry point of the ``derivcheck`` console script."""
    create_cli()()
