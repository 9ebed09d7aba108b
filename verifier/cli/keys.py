"""``derivcheck keys create|list|revoke``: API keys, managed on the database directly.

Operators run these where the database is reachable (like ``db upgrade``); the key itself is
printed once, at creation, and only its hash is stored (verifier/store/keys.py).
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from verifier.cli.client import CliError
from verifier.cli.toolkit import JsonOption, console, friendly, load_settings, print_json

if TYPE_CHECKING:  # SQLAlchemy loads when a command runs, not for --help
    from sqlalchemy.orm import Session

keys_app = typer.Typer(
    help="API keys: create, list, revoke.", no_args_is_help=True, rich_markup_mode=None
)


@contextmanager
def _session() -> Iterator[Session]:
    from verifier.store.engine import make_engine, make_session_factory

    engine = make_engine(load_settings().database_url)
    try:
        with make_session_factory(engine)() as session:
            yield session
    finally:
        engine.dispose()


@keys_app.command("create", short_help="Make a key, printed once, stored hashed.")
@friendly
def create(
    name: Annotated[str, typer.Argument(help="who the key is for")],
    as_json: JsonOption = False,
) -> None:
    """Make a key; it is printed once and stored only as a hash."""
    from verifier.store.keys import create_key

    with _session() as session:
        try:
            key, secret = create_key(session, name)
        except ValueError as error:
            raise CliError(str(error)) from None
    if as_json:
        print_json({"name": key.name, "prefix": key.prefix, "key": secret})
        return
    console.print(f"API key for {key.name!r} (shown only now; keep it secret):", highlight=False)
    sys.stdout.write(secret + "\n")


@keys_app.command("list", short_help="List the keys, never the keys themselves.")
@friendly
def list_keys(as_json: JsonOption = False) -> None:
    """List keys: name, prefix, created, revoked (never the keys themselves)."""
    from verifier.store import keys

    with _session() as session:
        rows = [
            {
                "name": key.name,
                "prefix": key.prefix,
                "created_at": key.created_at.isoformat(),
                "revoked_at": key.revoked_at.isoformat() if key.revoked_at else None,
            }
            for key in keys.list_keys(session)
        ]
    if as_json:
        print_json(rows)
        return
    table = Table("name", "prefix", "created", "revoked")
    for row in rows:
        table.add_row(row["name"], row["prefix"], row["created_at"], row["revoked_at"] or "")
    console.print(table)


@keys_app.command("revoke", short_help="Revoke keys by name or prefix.")
@friendly
def revoke(name_or_prefix: Annotated[str, typer.Argument(help="a key's name or prefix")]) -> None:
    """Revoke keys by name or prefix; their requests get 401 from now on."""
    from verifier.store.keys import revoke_key

    with _session() as session:
        count = revoke_key(session, name_or_prefix)
    console.print(f"revoked {count} key(s)")
