"""The built wheel is the whole project: every package, and the migrations inside the package,
so that an installed derivcheck (not only a source checkout) can create its schema."""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest
from slowness import SLOWNESS

ROOT = Path(__file__).resolve().parents[2]
VERSIONS = sorted(path.name for path in (ROOT / "migrations" / "versions").glob("0*.py"))


def _declared_packages() -> set[str]:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    return set(pyproject["tool"]["setuptools"]["packages"])


def test_every_package_of_the_source_tree_is_declared() -> None:
    found = {
        ".".join(path.parent.relative_to(ROOT).parts)
        for top in ("verifier", "workers")
        for path in (ROOT / top).rglob("__init__.py")
    }
    assert found | {"verifier.migrations", "verifier.migrations.versions"} == (_declared_packages())


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", str(ROOT), "--no-deps", "--quiet", "-w", str(out)],
        capture_output=True,
        text=True,
        timeout=300 * SLOWNESS,
    )
    assert built.returncode == 0, built.stderr
    (path,) = out.glob("derivcheck-*.whl")
    return path


def test_the_wheel_carries_the_migrations(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    assert "verifier/migrations/env.py" in names
    assert "verifier/migrations/script.py.mako" in names
    assert {f"verifier/migrations/versions/{name}" for name in VERSIONS} <= names


def test_an_installed_wheel_migrates_a_new_database(wheel: Path, tmp_path: Path) -> None:
    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)  # what installing the wheel puts in site-packages
    env = {
        **os.environ,
        "PYTHONPATH": str(site),  # ahead of the editable install of the source tree
        "VERIFIER_DATABASE_URL": f"sqlite:///{tmp_path / 'new.sqlite3'}",
    }
    where = subprocess.run(
        [sys.executable, "-c", "import verifier.store.migrate as m; print(m.migrations_dir())"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
    )
    assert Path(where.stdout.strip()) == site / "verifier" / "migrations", where.stderr
    upgraded = subprocess.run(
        [sys.executable, "-m", "verifier", "db", "upgrade"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120 * SLOWNESS,
    )
    assert upgraded.returncode == 0, upgraded.stderr
    assert f"is at revision {VERSIONS[-1][:4]}" in upgraded.stdout
