"""Every document the code, tests and docs point to is in the repository."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MENTION = re.compile(r"(?<![\w./-])((?:docs|migrations|tests|benchmarks)/[\w./-]+\.(?:md|py))\b")
LINK = re.compile(r"\]\(([\w./-]+\.md)(?:#[\w-]*)?\)")


def _sources() -> list[Path]:
    found: list[Path] = [ROOT / "README.md"]
    for folder in ("verifier", "workers", "migrations", "tests", "benchmarks", "docs"):
        found.extend(path for path in (ROOT / folder).rglob("*") if path.suffix in {".py", ".md"})
    return [path for path in found if path.resolve() != Path(__file__).resolve()]


def test_every_mentioned_file_exists() -> None:
    missing = [
        f"{path.relative_to(ROOT)}: {name}"
        for path in _sources()
        for name in MENTION.findall(path.read_text())
        if not (ROOT / name).exists()
    ]
    assert missing == []


def test_every_markdown_link_resolves() -> None:
    missing = [
        f"{path.relative_to(ROOT)}: {name}"
        for path in _sources()
        if path.suffix == ".md"
        for name in LINK.findall(path.read_text())
        if not (path.parent / name).exists()
    ]
    assert missing == []


def test_the_check_finds_a_missing_document(tmp_path: Path) -> None:
    assert MENTION.findall("see docs/nowhere.md, and tests/core/test_x.py") == [
        "docs/nowhere.md",
        "tests/core/test_x.py",
    ]
    assert LINK.findall("[x](nowhere.md#part)") == ["nowhere.md"]
