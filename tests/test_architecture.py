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

SHARED = {"verifier.config", "verifier.errors", "verifier.ids"}
ALLOWED: dict[str, set[str]] = {
    "verifier.core": {"verifier.core", "verifier.errors"},
    "verifier.config": {"verifier.core", "verifier.errors"},
    "verifier.errors": set(),
    "verifier.ids": set(),
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


CORE_ROOMS: dict[str, set[str]] = {
    "verifier.core.floats": set(),
    "verifier.core.expression": {"verifier.core.floats"},
    "verifier.core.exact": {"verifier.core.floats", "verifier.core.expression"},
    "verifier.core.program": {"verifier.core.floats", "verifier.core.expression"},
    "verifier.core.judge": {
        "verifier.core.floats",
        "verifier.core.expression",
        "verifier.core.exact",
        "verifier.core.program",
    },
}
"""For each room of the core, the other rooms it may import; the modules at the top of the
core (``check``, ``options``, ``function_check``, ``testing``, ``guard``, ``survey``, ``ops``)
conduct the rooms and may import any of them, and no room imports them."""


def _room(module: str) -> str | None:
    """The core's room of ``module``, ``verifier.core`` for the modules above the rooms."""
    for room in CORE_ROOMS:
        if module == room or module.startswith(room + "."):
            return room
    if module.startswith("verifier.core."):
        return "verifier.core"
    return None


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


def _core_imports() -> dict[str, set[str]]:
    """Each module of the core and the core modules it imports (lazy imports included)."""
    graph: dict[str, set[str]] = {}
    for path in sorted(ROOT.glob("verifier/core/**/*.py")):
        graph[_module_name(path)] = {
            name for _, name in _imports(path) if name.startswith("verifier.core.")
        }
    return graph


def test_every_import_in_the_core_follows_its_rooms() -> None:
    found = []
    for module, imported in _core_imports().items():
        room = _room(module)
        if room is None or room == "verifier.core":
            continue
        for name in sorted(imported):
            target = _room(name)
            if target not in {room, *CORE_ROOMS[room]}:
                found.append(f"{module} ({room}) imports {name}")
    assert found == []


def test_the_core_has_no_import_circles() -> None:
    graph = _core_imports()
    circles = []
    for start in graph:
        stack = [(start, [start])]
        seen = set()
        while stack:
            module, path = stack.pop()
            for name in graph.get(module, set()):
                if name == start:
                    circles.append(" -> ".join([*path, name]))
                elif name not in seen:
                    seen.add(name)
                    stack.append((name, [*path, name]))
    assert circles == []


def test_the_room_check_finds_an_import_running_back_up(tmp_path: Path) -> None:
    # The control: a room importing the room above it, or the conductor, is refused.
    assert _room("verifier.core.judge.report") == "verifier.core.judge"
    assert _room("verifier.core.check") == "verifier.core"
    assert "verifier.core.judge" not in CORE_ROOMS["verifier.core.program"]
    assert "verifier.core" not in CORE_ROOMS["verifier.core.judge"]


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
