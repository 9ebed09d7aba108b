"""The recipes of docs/architecture.md ("Where a change goes") list the files the code has.

Each recipe traces one thing that exists (the option ``compare_devices``, the function
``erfcx``, ...) and lists, as bullets of backticked paths, the files a new one of its kind
changes, the tests that spell it out by hand, and the files that name it but need no change.
Here each recipe's trace is searched for again in the source tree: every file it lists must
exist and name the traced thing, every searched file that names it must be listed, and the
count the recipe states must be the length of its list of files that change. A folder listed
(``verifier/delivery/``) stands for a new module there. Tests are listed only where a test
spells the thing out by hand; the tests are not searched, since most tests name what they test.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "architecture.md"
SEARCHED = ("verifier/**/*.py", "workers/**/*.py", "migrations/**/*.py", "docs/*.md", "README.md")
"""Where a trace is searched for (docs/architecture.md itself excepted: it names every trace)."""

CHANGE = "Files that change"
TESTS = "Tests written out by hand"
NAMED = "Files that name it"
COUNT = re.compile(r"^Files that change \((\d+) now; (\d+) before this week\)", re.MULTILINE)
BULLET = re.compile(r"^- `([^`]+)`", re.MULTILINE)


@dataclass(frozen=True)
class Trace:
    """What a recipe traces: a pattern in the text of the searched files."""

    pattern: re.Pattern[str]
    searched: tuple[str, ...] = SEARCHED


TRACES: dict[str, Trace] = {
    "An option": Trace(re.compile(r"\bcompare_devices\b")),
    "A function": Trace(re.compile(r"\berfcx\b")),
    "A verdict": Trace(re.compile(r"\bunverified\b|\bUNVERIFIED\b")),
    "An entry field": Trace(re.compile(r"\bcorrect_bits\b")),
    "An endpoint": Trace(
        re.compile(
            r"\bread_stats\b|\breport_stats\b|\bcount_verdicts\b|\bStatsGroup\b|\bstats_table\b"
            r'|\bjobs\.stats\b|\bclient\.stats\b|GET /stats\b|"/stats"'
        )
    ),
    "A broker": Trace(
        re.compile(
            r"\bSender\b|\bCelerySender\b|\bInMemorySender\b|\bmake_celery\b|\bbroker_url\b"
            r"|sqla\+|redis",
            re.IGNORECASE,
        ),
        (*SEARCHED, "docker-compose.yml"),
    ),
}
"""Each recipe's heading in docs/architecture.md and what it traces."""


@dataclass(frozen=True)
class Recipe:
    """One recipe as the document states it."""

    name: str
    changed: tuple[str, ...]
    tests: tuple[str, ...]
    named: tuple[str, ...]
    count_now: int


def _part(body: str, title: str) -> str:
    """The bullet lines under the paragraph of ``body`` that starts with ``title``, up to
    the next paragraph (empty when there is no such paragraph)."""
    start = body.find(title)
    if start < 0:
        return ""
    lines = body[start:].splitlines()[1:]
    taken: list[str] = []
    for line in lines:
        if line.startswith("- ") or (not line.strip() and not taken):
            taken.append(line)
        elif taken and not line.strip():
            continue
        else:
            break
    return "\n".join(taken)


def parse_recipes(text: str) -> dict[str, Recipe]:
    """The recipes under "## Where a change goes", one per "### " heading."""
    section = text.split("## Where a change goes\n", 1)[1].split("\n## ", 1)[0]
    recipes: dict[str, Recipe] = {}
    for chunk in section.split("\n### ")[1:]:
        name, body = chunk.split("\n", 1)
        count = COUNT.search(body)
        recipes[name.strip()] = Recipe(
            name=name.strip(),
            changed=tuple(BULLET.findall(_part(body, CHANGE))),
            tests=tuple(BULLET.findall(_part(body, TESTS))),
            named=tuple(BULLET.findall(_part(body, NAMED))),
            count_now=int(count.group(1)) if count else -1,
        )
    return recipes


def searched_files(trace: Trace) -> set[Path]:
    """Every file the trace searches, docs/architecture.md excepted."""
    found = {path for pattern in trace.searched for path in ROOT.glob(pattern) if path.is_file()}
    return found - {DOC}


def traced_files(trace: Trace) -> set[str]:
    """The searched files whose text names the traced thing, relative to the root."""
    return {
        path.relative_to(ROOT).as_posix()
        for path in searched_files(trace)
        if trace.pattern.search(path.read_text(encoding="utf-8"))
    }


def problems(recipe: Recipe, trace: Trace) -> list[str]:
    """Where ``recipe`` and the source tree disagree; empty when they agree."""
    found: list[str] = []
    listed = [*recipe.changed, *recipe.tests, *recipe.named]
    if not recipe.changed:
        found.append("no files that change are listed")
    if recipe.count_now != len(recipe.changed):
        found.append(f"the recipe says {recipe.count_now} files, and lists {len(recipe.changed)}")
    duplicates = sorted({name for name in listed if listed.count(name) > 1})
    if duplicates:
        found.append(f"listed twice: {duplicates}")
    files: set[str] = set()
    for name in listed:
        path = ROOT / name
        if name.endswith("/"):  # a new module in that folder
            if not path.is_dir():
                found.append(f"{name} is no folder")
        elif not path.is_file():
            found.append(f"{name} does not exist")
        elif not trace.pattern.search(path.read_text(encoding="utf-8")):
            found.append(f"{name} does not name the traced thing")
        else:
            files.add(name)
    for test in recipe.tests:
        if not test.startswith("tests/"):
            found.append(f"{test} is listed as a test")
    unlisted = sorted(traced_files(trace) - files)
    if unlisted:
        found.append(f"named in files the recipe does not list: {unlisted}")
    return found


RECIPES = parse_recipes(DOC.read_text(encoding="utf-8"))


def test_the_document_has_the_six_recipes_and_each_has_a_trace() -> None:
    assert set(RECIPES) == set(TRACES)


@pytest.mark.parametrize("name", sorted(TRACES))
def test_each_recipes_files_are_the_files_that_name_its_traced_thing(name: str) -> None:
    assert problems(RECIPES[name], TRACES[name]) == []


def test_a_made_up_name_is_found_in_no_file() -> None:
    # The control of the search itself: it finds nothing that is not there.
    made_up = Trace(re.compile(r"\bcompare_planets_xq\b"))
    assert traced_files(made_up) == set()
    assert traced_files(TRACES["An option"]) != set()


def test_a_file_left_out_of_a_recipe_is_reported() -> None:
    recipe = RECIPES["An option"]
    shorter = Recipe(
        recipe.name, recipe.changed[1:], recipe.tests, recipe.named, recipe.count_now - 1
    )
    assert problems(shorter, TRACES["An option"]) == [
        f"named in files the recipe does not list: {[recipe.changed[0]]}"
    ]


def test_a_listed_file_that_does_not_name_the_thing_or_a_wrong_count_is_reported() -> None:
    recipe = RECIPES["A verdict"]
    wrong = Recipe(
        recipe.name,
        (*recipe.changed, "verifier/errors.py"),
        recipe.tests,
        recipe.named,
        recipe.count_now,
    )
    assert problems(wrong, TRACES["A verdict"]) == [
        f"the recipe says {recipe.count_now} files, and lists {recipe.count_now + 1}",
        "verifier/errors.py does not name the traced thing",
    ]


def test_the_parser_reads_the_lists_and_the_count_of_a_recipe() -> None:
    text = (
        "## Where a change goes\n\n### A thing\n\nTraced: `x`.\n\n"
        "Files that change (2 now; 3 before this week):\n\n"
        "- `verifier/a.py`: why\n- `verifier/b/`: a new module\n\n"
        "Tests written out by hand that fail until they name the new one:\n\n"
        "- `checks/t.py`\n\n"
        "Files that name it and need no change for a new thing:\n\n- `notes/c.md`: why\n\n"
        "Before this week: `verifier/old.py`.\n\n## Next\n\n- `verifier/not_a_recipe.py`\n"
    )
    assert parse_recipes(text) == {
        "A thing": Recipe(
            "A thing", ("verifier/a.py", "verifier/b/"), ("checks/t.py",), ("notes/c.md",), 2
        )
    }
