"""The packages' one-way dependencies (docs/architecture.md), read from every module's imports.

Imports inside functions count too: a lazy import is still a dependency.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

SHARED = {"verifier.config", "verifier.errors"}
ALLOWED: dict[str, set[str]] = {
    "verifier.core": {"verifier.core", "verifier.errors"},
    "verifier.config": {"verifier.core", "verifier.errors"},
    "verifier.errors": set(),
    "verifier.store": {"verifier.store", "verifier.core", *SHARED},
    "verifier.delivery": {"verifier.delivery", "verifier.store", "verifier.core", *SHARED},
    "verifier.service": {
        "verifier.service",
        "verifier.delivery",
        "verifier.store",
        "verifier.core",
        *SHARED,
    },
    "verifier.api": {
        "verifier.api",
        "verifier.service",
        "verifier.delivery",
        "verifier.store",
        "verifier.core",
        *SHARED,
    },
    "workers": {"workers", "verifier.delivery", "verifier.store", "verifier.core", *SHARED},
}
"""For each layer, the layers it may import (verifier.cli may import any)."""


def _layer(module: str) -> str | None:
    for layer in sorted(ALLOWED, key=len, reverse=True):
        if module == layer or module.startswith(layer + "."):
            return layer
    if module == "verifier.cli" or module.startswith("verifier.cli."):
        return "verifier.cli"
    if module in {"verifier", "verifier.__main__"}:
        return "verifier"
    return None


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports(path: Path) -> list[tuple[int, str]]:
    """(line, module) of every import of a project module in ``path``."""
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.extend((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module == "verifier":  # from verifier import store: the submodule
                found.extend((node.lineno, f"verifier.{alias.name}") for alias in node.names)
            else:
                found.append((node.lineno, node.module))
    return [(line, name) for line, name in found if name.split(".")[0] in {"verifier", "workers"}]


def _violations() -> list[str]:
    found: list[str] = []
    for path in sorted([*ROOT.glob("verifier/**/*.py"), *ROOT.glob("workers/**/*.py")]):
        layer = _layer(_module_name(path))
        if layer is None or layer in {"verifier.cli", "verifier"}:
            continue
        for line, name in _imports(path):
            target = _layer(name)
            if target is not None and target not in ALLOWED[layer]:
                found.append(f"{path.relative_to(ROOT)}:{line} ({layer}) imports {name}")
    return found


def test_every_import_follows_the_layers() -> None:
    assert _violations() == []


def test_every_module_belongs_to_a_layer() -> None:
    stray = [
        str(path.relative_to(ROOT))
        for path in ROOT.glob("verifier/**/*.py")
        if _layer(_module_name(path)) is None
    ]
    assert stray == []


def test_the_check_finds_an_import_against_the_layers(tmp_path: Path) -> None:
    source = "def f():\n    from verifier.store import repository\n"
    probe = tmp_path / "probe.py"
    probe.write_text(source)
    assert _imports(probe) == [(2, "verifier.store")]
    assert "verifier.store" not in ALLOWED["verifier.core"]


@pytest.mark.parametrize(
    "module", ["verifier.api.app", "verifier.service.jobs", "verifier.store.repository"]
)
def test_the_service_tier_never_loads_torch(module: str) -> None:
    code = f"import sys, {module}; print('torch' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False"
