"""API keys: stored only as a hash, recognised by their prefix, revoked by name or prefix,
and managed with ``derivcheck keys create|list|revoke``."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from slowness import SLOWNESS
from sqlalchemy import select
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from verifier.cli import create_cli
from verifier.store import keys
from verifier.store.models import ApiKey


def test_a_key_is_stored_only_as_its_sha256(session: Session) -> None:
    key, secret = keys.create_key(session, "alice")
    assert secret.startswith("dck_") and len(secret) == 47  # marker + 43 characters
    stored = session.scalars(select(ApiKey).where(ApiKey.id == key.id)).one()
    assert stored.key_hash == hashlib.sha256(secret.encode()).hexdigest()
    assert secret not in {stored.name, stored.prefix, stored.key_hash}
    assert secret.startswith(stored.prefix)
    assert keys.authenticate(session, secret) == stored


def test_unknown_malformed_and_revoked_keys_do_not_authenticate(session: Session) -> None:
    _, secret = keys.create_key(session, "bob")
    assert keys.authenticate(session, secret[:-1] + ("A" if secret[-1] != "A" else "B")) is None
    assert keys.authenticate(session, "not-a-key") is None
    assert keys.authenticate(session, "dck_" + "x" * 500) is None
    assert keys.revoke_key(session, "bob") == 1
    assert keys.authenticate(session, secret) is None


def test_keys_commands_create_list_and_revoke(tmp_path: Path) -> None:
    env = {**os.environ, "VERIFIER_DATA_DIR": str(tmp_path / "data")}
    env.pop("VERIFIER_DATABASE_URL", None)

    def derivcheck(*arguments: str) -> subprocess.CompletedProcess[str]:
        command = [sys.executable, "-m", "verifier", *arguments]
        return subprocess.run(
            command, env=env, capture_output=True, text=True, timeout=120 * SLOWNESS
        )

    def in_this_process(*arguments: str) -> Any:
        # The same commands without a new process each (the real ones are the first two).
        only = {"VERIFIER_DATA_DIR": env["VERIFIER_DATA_DIR"], "VERIFIER_DATABASE_URL": None}
        return CliRunner().invoke(create_cli(), list(arguments), env=only)

    assert derivcheck("db", "upgrade").returncode == 0
    created = derivcheck("keys", "create", "ci robot", "--json")
    assert created.returncode == 0, created.stderr
    secret = json.loads(created.stdout)["key"]
    listed = json.loads(in_this_process("keys", "list", "--json").stdout)
    assert [(row["name"], row["revoked_at"]) for row in listed] == [("ci robot", None)]
    assert secret not in in_this_process("keys", "list").stdout  # only the prefix is shown
    assert in_this_process("keys", "revoke", secret[:12]).exit_code == 0
    listed = json.loads(in_this_process("keys", "list", "--json").stdout)
    assert listed[0]["revoked_at"] is not None
    again = in_this_process("keys", "revoke", "ci robot")
    assert again.exit_code == 2
    assert "no live API key" in again.stderr
