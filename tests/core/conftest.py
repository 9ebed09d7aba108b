"""Fixtures of the core tests: a sandbox of the test's own, and jobs it can run."""

from __future__ import annotations

import importlib
import os
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

from verifier.core.exact.sandbox import Sandbox

HERE = Path(__file__).parent


@pytest.fixture
def sandbox_jobs(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    """tests/core/sandbox_jobs.py, importable here and in a sandbox child started afterwards."""
    monkeypatch.syspath_prepend(str(HERE))
    inherited = os.environ.get("PYTHONPATH")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(HERE), inherited])))
    return importlib.import_module("sandbox_jobs")


@pytest.fixture
def sandbox() -> Iterator[Sandbox]:
    """A sandbox of the test's own (its child starts at the first call), stopped afterwards."""
    own = Sandbox()
    yield own
    own.close()
