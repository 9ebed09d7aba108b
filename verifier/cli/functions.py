"""``derivcheck functions``: every function an expression may call, built-in and from plugins.

Lists each function's name, arity, definition and origin; plugins are the packages that
declare functions under the entry-point group ``derivcheck.functions``
(docs/custom-functions.md). With ``--load`` it also imports each plugin's torch
implementation, as a worker does at start, and says which could not be imported. A plugin that
could not be declared or loaded is reported, and the command still lists everything else (exit
status 0); ``--strict`` makes such problems exit 1.
"""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from verifier.cli.toolkit import EXIT_FAILED, JsonOption, console, errors, print_json

BUILT_IN = "built-in"


def functions(
    load: Annotated[
        bool,
        typer.Option("--load", help="Also import the plugins' torch implementations."),
    ] = False,
    strict: Annotated[
        bool, typer.Option("--strict", help="Exit 1 when a plugin could not be used.")
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """List the functions expressions may call: built-in ones and those of plugins."""
    from verifier.core.expression import registry

    rows = _rows()
    problems = [
        {"entry_point": p.entry_point, "problem": p.reason} for p in registry.plugin_problems()
    ]
    if load:
        for name, reason in registry.load_implementations().items():
            problems.append({"function": name, "problem": reason})
    if as_json:
        print_json({"functions": rows, "problems": problems})
    else:
        _print(rows, problems)
    if strict and problems:
        raise typer.Exit(EXIT_FAILED)


def _rows() -> list[dict[str, Any]]:
    from verifier.core.expression import registry
    from verifier.core.expression.functions import ALIASES, FUNCTIONS

    aliases: dict[str, list[str]] = {}
    for alias, name in ALIASES.items():
        aliases.setdefault(name, []).append(alias)
    rows: list[dict[str, Any]] = []
    for spec in FUNCTIONS.values():
        params = [p.name for p in spec.params]
        rows.append(
            {
                "name": spec.name,
                "arity": spec.arity,
                "parameters": params,
                "definition": spec.summary,
                "origin": BUILT_IN,
                "implementation": None,
                "aliases": sorted(aliases.get(spec.name, [])),
            }
        )
    for declaration in registry.declarations():
        rows.append(
            {
                "name": declaration.name,
                "arity": len(declaration.args),
                "parameters": [],
                "definition": (
                    f"{declaration.name}({', '.join(declaration.args)}) = {declaration.definition}"
                ),
                "origin": declaration.origin,
                "implementation": declaration.implementation,
                "aliases": [],
            }
        )
    return rows


def _print(rows: list[dict[str, Any]], problems: list[dict[str, str]]) -> None:
    table = Table(title="functions", title_justify="left")
    for column in ("name", "arity", "definition", "origin"):
        table.add_column(column, overflow="fold")
    for row in rows:
        arity = "2+" if row["arity"] is None else str(row["arity"])
        if row["parameters"]:
            arity += f" (+ {', '.join(row['parameters'])})"
        table.add_row(escape(row["name"]), arity, escape(row["definition"]), escape(row["origin"]))
    console.print(table)
    custom = sum(1 for row in rows if row["origin"] != BUILT_IN)
    console.print(f"{len(rows) - custom} built-in, {custom} from plugins", highlight=False)
    for problem in problems:
        where = problem.get("entry_point") or f"function {problem.get('function')}"
        errors.print(
            f"[yellow]plugin problem:[/] {escape(where)}: {escape(problem['problem'])}",
            highlight=False,
            soft_wrap=True,
        )
