"""The verdict-count benchmark (benchmarks/verdicts.py): its random corpus and a tiny run."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

from benchmark_scripts import load_benchmark
from slowness import SLOWNESS

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "benchmarks" / "verdicts.py"
FEYNMAN_TABLE = ROOT.parent / "shared" / "corpora" / "feynman" / "FeynmanEquations.csv"
TINY_RUN_TIMEOUT_S = 300 * SLOWNESS


def test_random_corpus_is_the_same_for_the_same_seed() -> None:
    benchmark = load_benchmark("verdicts")
    first = [benchmark.RandomExpressions(11).draw() for _ in range(50)]
    again = [benchmark.RandomExpressions(11).draw() for _ in range(50)]
    assert first == again


def test_random_expressions_name_exactly_the_variables_they_sample() -> None:
    benchmark = load_benchmark("verdicts")
    generator = benchmark.RandomExpressions(3)
    for _ in range(200):
        text, ranges = generator.draw()
        used = set(re.findall(r"\b[xyz]\b", text))
        assert used == set(ranges), (text, ranges)
        assert all(low < high for low, high in ranges.values())


def test_tiny_run_counts_every_check_of_every_row(tmp_path: Path) -> None:
    markdown = tmp_path / "verdicts.md"
    corpora = ["demo", "random", "dso"] + (["feynman"] if FEYNMAN_TABLE.is_file() else [])
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--points", "2", "--limit", "3", "--random-count", "3",
         "--corpus", ",".join(corpora), "--json", "--markdown", str(markdown)],
        cwd=ROOT, capture_output=True, text=True, timeout=TINY_RUN_TIMEOUT_S, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    document = json.loads(done.stdout)
    rows = {(row["corpus"], row["dtype"]): row for row in document["rows"]}
    # --limit 3: three demo checks (own dtypes), three equations, three DSO formulas and three
    # random expressions in each of the two default dtypes.
    expected = {(corpus, dtype) for corpus in corpora[1:] for dtype in ("float64", "float32")}
    assert set(rows) == {("demo", "own"), *expected}
    for row in rows.values():
        assert not row["crashed"], row["crashed"]
        assert sum(row["checks"].values()) + len(row["skipped"]) == 3
        assert sum(row["entries"].values()) > 0
    assert "| corpus | dtype | checks |" in markdown.read_text()


def test_listed_entries_name_their_blame_or_say_none_is_blamed() -> None:
    benchmark = load_benchmark("verdicts")
    tally = benchmark.Tally("dso", "float32")
    entry = {
        "point": {"x": 1.5},
        "entry": "gradient d/dx",
        "verdict": "fail",
        "autograd": 1.0,
        "reference": 2.0,
        "ulp_error": 3.0,
        "detail": "d",
        "blame": None,
        "phase": None,
    }
    blamed = {**entry, "blame": "exp(x)", "phase": "first backward"}
    tally.listed.append({"name": "f", "expression": "exp(x)", "dtype": "float32",
                         "verdict": "fail", "entries": [entry, blamed]})  # fmt: skip
    rows = benchmark.blame_rows([tally])
    assert [row[6:8] for row in rows] == [["none blamed", ""], ["exp(x)", "first backward"]]
