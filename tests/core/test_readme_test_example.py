"""README.md's complete test file ("Checking your own torch code", "In your test suite") runs
as written, and ``pip install 'derivcheck[test]'`` brings every module it imports.

The example is taken from the README itself (the Python block after "A complete test file:"),
so an edit of the README is what these tests check. The distributions that provide each module
are the installed ones' own records (``importlib.metadata.packages_distributions``); what
``derivcheck`` and its ``test`` extra require is pyproject.toml's ``[project]`` table.
"""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from importlib import metadata
from pathlib import Path

import pytest

pytest_plugins = ["pytester"]

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
PYPROJECT = ROOT / "pyproject.toml"
EXAMPLE_LEAD = "A complete test file:"
"""The README's sentence just before the example test file."""
OWN_PACKAGES = {"verifier"}
"""Top-level modules that derivcheck itself provides."""
REQUIREMENT_NAME = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)")


def readme_test_example() -> str:
    """The Python block that follows :data:`EXAMPLE_LEAD` in README.md."""
    text = README.read_text()
    _, found, after = text.partition(EXAMPLE_LEAD)
    assert found, f"README.md no longer says {EXAMPLE_LEAD!r} before its example test file"
    block = re.search(r"```python\n(.*?)```", after, re.DOTALL)
    assert block is not None, "README.md: no ```python block after the example's lead"
    return block.group(1)


def _imported_top_level(source: str) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def _normalized(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _requirement_names(requirements: list[str]) -> set[str]:
    names = set()
    for requirement in requirements:
        match = REQUIREMENT_NAME.match(requirement)
        assert match is not None, requirement
        names.add(_normalized(match.group(1)))
    return names


def test_the_test_extra_brings_every_third_party_module_the_readme_example_imports() -> None:
    project = tomllib.loads(PYPROJECT.read_text())["project"]
    extras = project["optional-dependencies"]
    assert "test" in extras, "pyproject.toml has no [test] extra"
    installed = _requirement_names(project["dependencies"]) | _requirement_names(extras["test"])
    providers = metadata.packages_distributions()
    third_party = _imported_top_level(readme_test_example()) - OWN_PACKAGES
    third_party -= set(sys.stdlib_module_names)
    assert {"pytest", "hypothesis", "torch"} <= third_party  # what the example imports today
    missing = {
        module: providers.get(module, [module])
        for module in sorted(third_party)
        if not {_normalized(dist) for dist in providers.get(module, [module])} & installed
    }
    assert missing == {}, f"derivcheck[test] does not install: {missing}"


def test_the_test_extra_needs_nothing_of_the_service_or_the_tooling() -> None:
    # [test] is for a user's test suite: the test runner and the strategy library, not the
    # linters, type checker or API fuzzers of [dev].
    extras = tomllib.loads(PYPROJECT.read_text())["project"]["optional-dependencies"]
    assert _requirement_names(extras["test"]) == {"pytest", "hypothesis"}


def test_the_readme_example_test_file_passes_under_pytest(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_readme_example=readme_test_example())
    result = pytester.runpytest_subprocess("-v", "-p", "no:cacheprovider")
    # Two sampled tests, a Hypothesis test and the fixture test, one id per marked dtype.
    result.assert_outcomes(passed=5)
    result.stdout.fnmatch_lines(["*test_softplus_in_two_dtypes?float32? PASSED*"])
    result.stdout.fnmatch_lines(["*test_softplus_in_two_dtypes?float64? PASSED*"])
