"""``derivcheck --help``: fast (no numpy, SymPy, SQLAlchemy or torch imported to build it),
plain text that keeps its brackets, and the survey's operation names listed."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from slowness import SLOWNESS
from typer.testing import CliRunner

from verifier.cli import create_cli
from verifier.cli import survey as survey_command
from verifier.core.ops import OPERATIONS
from verifier.core.survey import DEFAULT_SURVEY_POINTS
from verifier.core.survey_points import DEFAULT_REGION_POINTS

HEAVY_MODULES = ("numpy", "sympy", "torch", "sqlalchemy")
"""What made --help take 1.6 to 2.4 s: the settings and the survey imported the core's SymPy
and numpy to build the help text."""
HELP_SCRIPT = f"""
import sys
from typer.testing import CliRunner
from verifier.cli import create_cli
app = create_cli()
for command in ([], ["check"], ["submit"], ["survey"], ["status"], ["jobs"], ["keys"]):
    result = CliRunner().invoke(app, [*command, "--help"])
    assert result.exit_code == 0, result.output
print(sorted(name for name in {HEAVY_MODULES!r} if name in sys.modules))
"""


def test_building_every_help_imports_none_of_the_heavy_modules() -> None:
    result = subprocess.run(
        [sys.executable, "-c", HELP_SCRIPT],
        capture_output=True,
        text=True,
        timeout=60 * SLOWNESS,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_help_keeps_its_brackets_and_shows_no_bool_metavar() -> None:
    result = CliRunner().invoke(create_cli(), ["submit", "--help"])
    assert result.exit_code == 0
    assert "[default: VERIFIER_API_URL]" in result.output  # rich markup ate it
    assert "<bool>" not in result.output
    assert ".py" not in result.output  # no pointers into the source


@pytest.mark.parametrize("command", ["serve", "worker", "submit", "status", "survey", "check"])
def test_no_help_points_into_the_source(command: str) -> None:
    result = CliRunner().invoke(create_cli(), [command, "--help"])
    assert result.exit_code == 0, result.output
    assert ".py" not in result.output  # a user reads docs, not verifier/api/auth.py


def test_the_survey_defaults_written_for_help_are_the_cores() -> None:
    assert survey_command.SURVEY_POINTS == DEFAULT_SURVEY_POINTS
    assert survey_command.REGION_POINTS == DEFAULT_REGION_POINTS


def test_survey_lists_the_names_op_takes_and_suggests_a_close_one() -> None:
    listed = CliRunner().invoke(create_cli(), ["survey", "--list-ops", "--json"])
    assert listed.exit_code == 0, listed.output
    names = [row["op"] for row in json.loads(listed.output)]
    assert names == [op.name for op in OPERATIONS]
    assert "polygamma_n1" in names

    wrong = CliRunner().invoke(create_cli(), ["survey", "--op", "polygamma1"])
    assert wrong.exit_code == 2
    assert "did you mean polygamma_n1" in wrong.output
    assert "derivcheck survey --list-ops" in wrong.output


def _listed(output: str) -> dict[str, str]:
    """The commands a help lists, each with its description (wrapped lines joined)."""
    listed: dict[str, str] = {}
    name = ""
    for line in output.split("Commands:", 1)[1].splitlines():
        if line.startswith("  ") and not line.startswith("   "):
            name, _, text = line.strip().partition(" ")
            listed[name] = text.strip()
        elif line.strip() and name:
            listed[name] += " " + line.strip()
    return listed


@pytest.mark.parametrize("columns", [50, 60, 80])
@pytest.mark.parametrize("group", [[], ["keys"], ["db"]], ids=["derivcheck", "keys", "db"])
def test_every_listed_command_has_a_whole_phrase_not_a_cut_one(
    group: list[str], columns: int
) -> None:
    # click's make_default_short_help cuts a docstring's first sentence to the room beside
    # the names and ends it with "..." (45 characters at 60 columns); a sentence it keeps
    # whole ends with its full stop, as every description here is written.
    result = CliRunner().invoke(create_cli(), [*group, "--help"], terminal_width=columns)
    assert result.exit_code == 0, result.output
    listed = _listed(result.output)
    assert listed, result.output
    for name, text in listed.items():
        assert not text.endswith("..."), (name, text)
        assert text[:1].isupper() and text.endswith("."), (name, text)
