"""One verdict table (verifier/core/judge/verdict.py): the API's enums and the CLI's styles are
derived from it, and no module outside the core spells a list of verdicts of its own.

A verdict added to the table then reaches every layer; one spelled elsewhere fails here.
"""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Any

from verifier.api import create_app
from verifier.cli.style import UNKNOWN_VERDICT_STYLE, styled, verdict_style
from verifier.config import Settings
from verifier.core.judge.verdict import VERDICT_ORDER, VERDICTS

TABLE = [str(verdict) for verdict in VERDICT_ORDER]
ROOT = Path(__file__).resolve().parents[2]
# Verdict names that are also other words of the service: the sampling option "domain" of a
# check, and the job status "error".
ORDINARY_WORDS = {"domain", "error"}


def _enum(schema: dict[str, Any], node: dict[str, Any]) -> list[str] | None:
    """The enum a schema node allows, through $ref, anyOf (nullable) and array items."""
    if "$ref" in node:
        name = node["$ref"].rsplit("/", 1)[-1]
        return _enum(schema, schema["components"]["schemas"][name])
    if "enum" in node:
        return list(node["enum"])
    for part in node.get("anyOf", []):
        found = _enum(schema, part)
        if found is not None:
            return found
    if "items" in node:
        return _enum(schema, node["items"])
    return None


def test_the_openapi_verdict_enums_list_the_table_in_order(api_settings: Settings) -> None:
    schema = create_app(api_settings).openapi()
    for path in ("/reports", "/stats"):
        parameters = schema["paths"][path]["get"]["parameters"]
        (verdict,) = [p for p in parameters if p["name"] == "verdict"]
        assert _enum(schema, verdict["schema"]) == TABLE, path
    check_in = schema["components"]["schemas"]["CheckIn"]
    assert _enum(schema, check_in["properties"]["fail_on"]) == TABLE


def test_every_verdict_has_its_table_style_in_the_cli() -> None:
    for verdict in VERDICT_ORDER:
        assert verdict_style(verdict) == VERDICTS[verdict].style, verdict
        assert styled(verdict) == f"[{VERDICTS[verdict].style}]{verdict}[/]"
    assert verdict_style("no-such-verdict") == UNKNOWN_VERDICT_STYLE


def _verdict_spellings(source: str, name: str) -> list[str]:
    """Places in ``source`` that spell verdict names: a collection literal holding two or
    more, or any verdict name that is not also an ordinary word of the service."""
    names = set(TABLE)
    found: list[str] = []
    for node in ast.walk(ast.parse(source, filename=name)):
        if isinstance(node, ast.List | ast.Tuple | ast.Set | ast.Dict | ast.Subscript):
            values = node.keys if isinstance(node, ast.Dict) else ast.walk(node)
            spelled = {
                value.value
                for value in values
                if isinstance(value, ast.Constant) and value.value in names
            }
            if len(spelled) > 1:
                found.append(f"{name}:{node.lineno}: {sorted(spelled)}")
        elif isinstance(node, ast.Constant) and node.value in names - ORDINARY_WORDS:
            found.append(f"{name}:{node.lineno}: {node.value!r}")
    return found


def test_no_module_outside_the_core_spells_verdicts_of_its_own() -> None:
    service = [
        path
        for folder in ("verifier", "workers")
        for path in sorted((ROOT / folder).rglob("*.py"))
        if "core" not in path.relative_to(ROOT).parts
    ]
    assert len(service) > 20  # the service's modules were found
    spellings = [
        place
        for path in service
        for place in _verdict_spellings(path.read_text(), str(path.relative_to(ROOT)))
    ]
    assert spellings == []


def test_the_spelling_check_finds_the_duplicates_the_table_replaced() -> None:
    # The CLI's service commands and verifier/cli/render.py held these before the table.
    source = (
        'FAILING_JOB_VERDICTS = frozenset({"fail", "nonfinite"})\n'
        'VERDICT_STYLES = {"pass": "green", "error": "magenta"}\n'
    )
    assert sorted(_verdict_spellings(source, "probe.py")) == [
        "probe.py:1: 'fail'",
        "probe.py:1: 'nonfinite'",
        "probe.py:1: ['fail', 'nonfinite']",
        "probe.py:2: 'pass'",
        "probe.py:2: ['error', 'pass']",
    ]


def test_the_service_judges_a_stored_report_as_the_core_does() -> None:
    # verifier/store/outcome.py restates Report.passed for stored counts: the two must agree on
    # every pair of entry verdicts under every single-verdict, default and strict policy.
    from itertools import combinations_with_replacement

    from verifier.core.judge.report import Entry, Report
    from verifier.core.judge.verdict import DEFAULT_FAIL_ON, STRICT_FAIL_ON, worst
    from verifier.store.outcome import check_passed, entry_counts

    policies = [[v] for v in TABLE] + [sorted(DEFAULT_FAIL_ON), sorted(STRICT_FAIL_ON)]
    for pair in combinations_with_replacement(TABLE, 2):
        entries = [
            Entry("gradient", ("x",), None, 0, 1.0, 1.0, 0.0, 0.0, 0.0, 0.0, 1e-13, verdict)
            for verdict in pair
            if verdict != "error"  # an error report has no entries
        ]
        verdict = str(worst(pair))
        for fail_on in policies:
            core = Report("x", ["x"], "float64", "cpu", verdict, entries=entries, fail_on=fail_on)
            stored = core.to_dict()
            counts = entry_counts(verdict, stored["counts"], stored["entries"])
            assert counts == core.counts, pair
            # An old report has no counts: its entries are counted to the same numbers.
            assert entry_counts(verdict, None, stored["entries"]) == core.counts, pair
            assert check_passed(verdict, counts, fail_on) == core.passed, (pair, fail_on)
