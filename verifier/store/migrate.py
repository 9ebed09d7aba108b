"""Schema migrations through Alembic, configured in code so they run from any folder."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config

from verifier.errors import UnavailableError

_PACKAGE = Path(__file__).resolve().parent.parent
MIGRATION_FOLDERS = (_PACKAGE / "migrations", _PACKAGE.parent / "migrations")
"""Where the Alembic folder is: inside the package in a built wheel (pyproject.toml maps the
top-level ``migrations/`` to ``verifier.migrations``), beside it in a source tree."""


def migrations_dir() -> Path:
    """The Alembic folder of this installation; UnavailableError if it has none."""
    for folder in MIGRATION_FOLDERS:
        if (folder / "env.py").is_file():
            return folder
    raise UnavailableError(
        f"migrations folder not found (looked in {', '.join(map(str, MIGRATION_FOLDERS))}); "
        "reinstall derivcheck from its source tree or a wheel built from it"
    )


def alembic_config(database_url: str, *, configure_logging: bool = False) -> Config:
    """An Alembic configuration for ``database_url`` and this project's migrations folder."""
    config = Config()
    config.set_main_option("script_location", str(migrations_dir()))
    # "%" is ConfigParser's interpolation character and may occur in passwords.
    config.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    config.attributes["configure_logging"] = configure_logging
    return config


def upgrade(database_url: str, revision: str = "head") -> None:
    """Bring the database at ``database_url`` up to ``revision``."""
    command.upgrade(alembic_config(database_url), revision)


def downgrade(database_url: str, revision: str = "base") -> None:
    """Take the database at ``database_url`` down to ``revision``."""
    command.downgrade(alembic_config(database_url), revision)


def check(database_url: str) -> None:
    """Raise if the models and the migrations disagree (``alembic check``)."""
    command.check(alembic_config(database_url))


def current(database_url: str) -> str | None:
    """The revision the database is at, or None before the first upgrade."""
    from alembic.runtime.migration import MigrationContext

    from verifier.store.engine import make_engine

    engine = make_engine(database_url)
    try:
        with engine.connect() as connection:
            return MigrationContext.configure(connection).get_current_revision()
    finally:
        engine.dispose()
