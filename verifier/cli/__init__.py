"""The ``derivcheck`` command line: every command is registered here, in ``create_cli``.

Every command prints a readable table by default and JSON with ``--json``; bad input ends with
a one-line message on stderr and exit code 2, never a traceback (verifier/cli/toolkit.py).

Help is plain text (click's), not rich markup: markup would eat a help text's brackets
(``[default: VERIFIER_API_URL]``). Building it imports no numpy, SymPy, SQLAlchemy or torch;
each command imports what it needs when it runs (tests/cli/test_help.py).

Each command's line in ``derivcheck --help`` is its ``short_help``, a whole short phrase, which
click prints as it is: without one, click cuts the docstring's first sentence to the width left
beside the names (45 characters at 60 columns) and ends it with "...".
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
    for name, command, short_help in (
        ("check", check.check, "Check an expression's derivatives at points."),
        ("survey", survey.survey, "Survey torch's derivatives per operation."),
        ("functions", functions.functions, "List the functions expressions may call."),
        ("serve", server.serve, "Run the HTTP API server."),
        ("worker", server.worker, "Run a worker that runs queued checks."),
        ("reconcile", reconcile, "Re-publish checks that nobody will run."),
        ("submit", jobs.submit, "Submit a file of checks as one job."),
        ("status", jobs.status, "Show a job's status, verdict and progress."),
        ("jobs", jobs.jobs, "List your jobs, newest first."),
        ("cancel", jobs.cancel, "Cancel a job: its queued checks never run."),
        ("reports", jobs.reports, "List stored reports, with filters."),
        ("stats", jobs.stats, "Count reports by verdict, grouped."),
        ("demo", server.demo, "Run the whole service locally, then stop."),
    ):
        app.command(name, short_help=short_help)(command)
    app.add_typer(server.db_app, name="db")
    app.add_typer(keys_app, name="keys")
    return app


def _root() -> None:
    """Check PyTorch autograd's derivatives against exact mathematics."""


def main() -> None:
    """Entry point of the ``derivcheck`` console script and of ``python -m verifier``."""
    create_cli()()
