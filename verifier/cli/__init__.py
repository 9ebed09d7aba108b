"""The ``derivcheck`` command line: every command is registered here, in ``create_cli``.

Every command prints a readable table by default and JSON with ``--json``; bad input ends with
a one-line message on stderr and exit code 2, never a traceback (verifier/cli/toolkit.py).

Help is plain text (click's), not rich markup: markup would eat a help text's brackets
(``[default: VERIFIER_API_URL]``). Building it imports no numpy, SymPy, SQLAlchemy or torch;
each command imports what it needs when it runs (tests/cli/test_help.py).
"""

from __future__ import annotations

import typer

from verifier.cli import check, functions, jobs, server, survey
from verifier.cli.keys import keys_app
from verifier.cli.reconcile import reconcile


def create_cli() -> typer.Typer:
    """The ``derivcheck`` application with every command registered."""
    app = typer.Typer(
        name="derivcheck",
        help="Check PyTorch autograd's derivatives against exact mathematics.",
        no_args_is_help=True,
        add_completion=False,
        pretty_exceptions_enable=False,
        rich_markup_mode=None,
    )
    app.callback()(_root)
    app.command("check")(check.check)
    app.command("survey")(survey.survey)
    app.command("functions")(functions.functions)
    app.command("serve")(server.serve)
    app.command("worker")(server.worker)
    app.command("reconcile")(reconcile)
    app.command("submit")(jobs.submit)
    app.command("status")(jobs.status)
    app.command("jobs")(jobs.jobs)
    app.command("cancel")(jobs.cancel)
    app.command("reports")(jobs.reports)
    app.command("stats")(jobs.stats)
    app.command("demo")(server.demo)
    app.add_typer(server.db_app, name="db")
    app.add_typer(keys_app, name="keys")
    return app


def _root() -> None:
    """Check PyTorch autograd's derivatives against exact mathematics."""


def main() -> None:
    """Entry point of the ``derivcheck`` console script and of ``python -m verifier``."""
    create_cli()()
