"""How verdicts look on a terminal: in their style from the verdict table
(verifier/core/judge/verdict.py), counted per verdict, and the nodes they blame.

Also the one parser of ``--fail-on``, shared by ``check`` and ``submit``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from rich.markup import escape
from rich.table import Table

from verifier.core.judge.verdict import VERDICTS, Verdict, parse_verdict
from verifier.errors import OptionError

UNKNOWN_VERDICT_STYLE = "white"


def verdict_style(verdict: str) -> str:
    """The table's style of ``verdict`` (a name outside the table gets a plain one)."""
    try:
        return VERDICTS[Verdict(verdict)].style
    except ValueError:
        return UNKNOWN_VERDICT_STYLE


def styled(verdict: str | None) -> str:
    """``verdict`` as rich markup in its style; ``-`` for none."""
    if verdict is None:
        return "-"
    return f"[{verdict_style(verdict)}]{escape(verdict)}[/]"


def counts_text(counts: Mapping[str, int]) -> str:
    """Entries per verdict, e.g. ``12 pass, 2 ill-conditioned`` (``no entries`` for none)."""
    parts = [f"{count} {styled(verdict)}" for verdict, count in counts.items() if count]
    return ", ".join(parts) if parts else "no entries"


def blamed_table(
    rows: Iterable[Mapping[str, Any]], *, title: str, check_column: str | None = None
) -> Table:
    """One row per blamed node: node, phase, verdict and how many entries blame it; with
    ``check_column``, first the row's ``check`` under that heading."""
    table = Table(title=title, title_justify="left")
    if check_column is not None:
        table.add_column(check_column, justify="right", no_wrap=True)
    table.add_column("node", overflow="fold")
    table.add_column("phase", no_wrap=True)
    table.add_column("verdict", no_wrap=True)
    table.add_column("entries", justify="right", no_wrap=True)
    for row in rows:
        cells = [
            escape(str(row.get("node") or "-")),
            str(row.get("phase") or "-"),
            styled(row.get("verdict")),
            str(row.get("entries", "-")),
        ]
        checks = [str(row.get("check", "-"))] if check_column is not None else []
        table.add_row(*checks, *cells)
    return table


def parse_fail_on(text: str | None) -> list[str] | None:
    """The verdict names of a ``--fail-on`` value (comma-separated); None when not given.

    An unknown name is an OptionError naming it and the choices.
    """
    if text is None:
        return None
    names = [name.strip() for name in text.split(",") if name.strip()]
    try:
        return [str(parse_verdict(name)) for name in names]
    except ValueError as error:
        raise OptionError(f"--fail-on: {error}") from None
