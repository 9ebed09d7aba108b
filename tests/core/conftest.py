"""Fixtures of the core tests: a sandbox of the test's own, and jobs it can run."""

from __future__ import annotations

import importlib
import os
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest
from slowness import ENVIRONMENT_VARIABLE, SLOWNESS

from verifier.core.exact.sandbox import Sandbox

HERE = Path(__file__).parent


@pytest.fixture
def sandbox_jobs(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    """tests/core/sandbox_jobs.py, importable here and in a sandbox child started afterwards
    (with tests/slowness.py, and this process's slowness factor rather than a new measure)."""
    monkeypatch.syspath_prepend(str(HERE))
    inherited = os.environ.get("PYTHONPATH")
    paths = [str(HERE), str(HERE.parent), inherited]
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, paths)))
    monkeypatch.setenv(ENVIRONMENT_VARIABLE, repr(SLOWNESS))
    return importlib.import_module("sandbox_jobs")


@pytest.fixture
def sandbox() -> Iterator[Sandbox]:
    """A sandbox of the test's own (its child starts at the first call), stopped afterwards."""
    own = Sandbox()
    yield own
    own.close()
