"""What every ``derivcheck`` command shares: consoles, exit statuses, errors, settings, JSON.

Bad input or an unreachable service ends a command with one line on stderr and exit status
``EXIT_BAD_INPUT``, never a traceback; ``--json`` prints JSON for programs.
"""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated, Any, NoReturn, TypeVar

import typer
from rich.console import Console
from rich.markup import escape

from verifier.cli.client import ApiClient, CliError
from verifier.core.judge.verdict import VERDICT_ORDER
from verifier.errors import VerifierError

if TYPE_CHECKING:  # the settings import the core's limits (SymPy): loaded when a command runs
    from verifier.config import Settings

F = TypeVar("F", bound=Callable[..., Any])

EXIT_OK = 0
EXIT_FAILED = 1
"""A check or job that did not pass its fail-on policy."""
EXIT_BAD_INPUT = 2
"""Bad input, an unreachable service, or a check that could not run."""
PIPED_WIDTH = 160
"""Columns of tables written to a pipe or file (rich would cut them to 80)."""

VERDICT_HELP = ", ".join(VERDICT_ORDER)
FAIL_ON_HELP = (
    "Verdicts that fail the check, comma-separated (default: fail,nonfinite); choose from "
    + VERDICT_HELP
    + "."
)
STRICT_HELP = "Fail on every verdict but pass and domain (with --fail-on: added to it)."

console = Console(width=None if sys.stdout.isatty() else PIPED_WIDTH)
errors = Console(stderr=True)

UrlOption = Annotated[
    str | None,
    typer.Option("--url", help="API address [default: VERIFIER_API_URL]"),
]
JsonOption = Annotated[bool, typer.Option("--json", help="print JSON for programs")]


def fail(message: str) -> NoReturn:
    """Print the first line of ``message`` as an error on stderr and exit ``EXIT_BAD_INPUT``."""
    first = message.splitlines()[0] if message else "error"
    errors.print(f"[red]error:[/] {escape(first)}", highlight=False, soft_wrap=True)
    raise typer.Exit(EXIT_BAD_INPUT)


def friendly(command: F) -> F:
    """Turn the project's errors into one line on stderr and exit status 2."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except VerifierError as error:
            fail(str(error))

    return wrapper  # type: ignore[return-value]


def load_settings() -> Settings:
    """Settings from the environment; a bad variable is a one-line error."""
    from pydantic import ValidationError

    from verifier.config import Settings

    try:
        return Settings()
    except ValidationError as error:
        first = error.errors()[0]
        name = "VERIFIER_" + str(first["loc"][0]).upper() if first["loc"] else "VERIFIER_*"
        raise CliError(f"invalid configuration {name}: {first['msg']}") from None


def api_client(url: str | None) -> ApiClient:
    """A client of the API at ``url`` (default: the settings'), with the settings' key."""
    settings = load_settings()
    return ApiClient(
        url or settings.api_url,
        api_key=settings.api_key or None,
        on_retry=lambda note: errors.print(f"[yellow]note:[/] {escape(note)}", highlight=False),
    )


def print_json(data: Any) -> None:
    """Write ``data`` to stdout as indented JSON."""
    sys.stdout.write(json.dumps(data, indent=2) + "\n")
