"""Verdict counts: how many checks and entries end in each verdict, per corpus and dtype.

    .venv/bin/python benchmarks/verdicts.py [--points N] [--dtypes float64,float32]
        [--corpus demo,feynman,random,dso] [--random-count K] [--seed S] [--json]
        [--markdown FILE]

Every check runs inline through ``verifier.check`` (gradient and Hessian). Corpora:

- demo: the built-in suite (``verifier.service.suite``), each check in its own dtype, one row;
- feynman: the AI Feynman equations in ../shared/corpora/feynman, ``--points`` points drawn
  uniformly inside each variable's published range; an equation the parser refuses is
  counted as skipped, with the reason;
- random: ``--random-count`` seeded random smooth expressions of one to three variables, each
  with a box where it is real; some grow past float32's range on purpose (``exp(5*x)`` with
  x up to 30);
- dso: the 268 symbolic-regression benchmark formulas of Deep Symbolic Optimization (Nguyen,
  Keijzer, Korns, Livermore, Livermore2, Jin, Constant, R, Vladislavleva, Koza, Meier, Neat,
  Pagie, Poly, Sine ...) in benchmarks/corpora/dso.csv, whose header cites the papers and the
  repository they come from; ``--points`` points drawn uniformly inside each formula's
  published training range, node gradients compared too (``nodes=True``).

Prints, per row, checks per check verdict and entries per entry verdict, the seconds taken,
every check with a ``fail`` or ``nonfinite`` entry, and each such entry with the operation its
verdict blames (or ``none blamed``). A progress bar goes to stderr. The counts of a whole run
of the DSO corpus are in docs/performance.md.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import random
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from verifier.errors import InputError

FEYNMAN = Path(__file__).resolve().parents[2] / "shared" / "corpora" / "feynman"
FEYNMAN_TABLES = ("FeynmanEquations.csv", "BonusEquations.csv")
DSO = Path(__file__).resolve().parent / "corpora" / "dso.csv"
DSO_COMMENT = "#"  # the table's header lines: its provenance and columns
MAX_TABLE_VARIABLES = 10
DEFAULT_SEED = 2020
DEFAULT_POINTS = 20
DEFAULT_RANDOM_COUNT = 200
# The verdicts of verifier/core/judge/verdict.py, for code that predates that table.
FALLBACK_VERDICTS = (
    "pass", "domain", "undefined", "ill-conditioned", "range", "unverified", "nonfinite",
    "fail", "error",
)  # fmt: skip
LISTED_VERDICTS = ("fail", "nonfinite")
CORPORA = ("demo", "feynman", "random", "dso")
NONE_BLAMED = "none blamed"
NAME_COLUMNS = ("corpus", "dtype", "name", "entry", "verdict", "phase")
PIPED_WIDTH = 200  # columns of the tables when stdout is a pipe or a file

# The random corpus. Bounds are interval hulls, so they over-estimate; an ordinary expression
# whose hull leaves MAX_ORDINARY_MAGNITUDE is drawn again, and exp's argument stays within
# MAX_EXP_ARGUMENT, so only the large templates leave float32's range.
VARIABLES = ("x", "y", "z")
RANGES = ((-2.0, 2.0), (-1.0, 1.0), (0.5, 3.0), (0.1, 5.0), (1.0, 10.0), (-5.0, -0.5))
CONSTANTS = {"0.1": 0.1, "0.5": 0.5, "2": 2.0, "2.5": 2.5, "3": 3.0, "10": 10.0, "pi": math.pi}
MAX_DEPTH = 3
MAX_EXP_ARGUMENT = 20.0
MAX_ORDINARY_MAGNITUDE = 1e8
LARGE_FRACTION = 0.15
LARGE_TEMPLATES = (  # one variable, x, and a range where an intermediate passes 3.4e38
    ("exp(5*x)", (0.0, 30.0)),
    ("log(1 + exp(4*x))", (0.0, 30.0)),
    ("sqrt(exp(3*x) + 1)", (0.0, 30.0)),
    ("exp(x)/(1 + exp(x))", (0.0, 100.0)),
    ("x**12", (1.0, 2000.0)),
    ("(exp(x) + exp(-x))/2", (0.0, 95.0)),
    ("exp(x**2/20)", (0.0, 40.0)),
)


TableRows = tuple[str, list[str], list[list[str]]]


@dataclass(frozen=True)
class Term:
    """A generated subexpression, the variables in it, and a bound on its values."""

    text: str
    names: frozenset[str]
    low: float
    high: float

    @property
    def magnitude(self) -> float:
        return max(abs(self.low), abs(self.high))


def _hull(text: str, names: frozenset[str], values: list[float]) -> Term:
    return Term(text, names, min(values), max(values))


class RandomExpressions:
    """Seeded random smooth expressions, each with a box of ranges where it is real."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.ranges: dict[str, tuple[float, float]] = {}

    def draw(self) -> tuple[str, dict[str, tuple[float, float]]]:
        """One expression and the ranges of the variables it uses."""
        if self.rng.random() < LARGE_FRACTION:
            return self._large()
        while True:
            term = self._ordinary(self.rng.sample(VARIABLES, self.rng.randint(1, 3)))
            if term.names and term.magnitude <= MAX_ORDINARY_MAGNITUDE:
                return term.text, {name: self.ranges[name] for name in sorted(term.names)}

    def _large(self) -> tuple[str, dict[str, tuple[float, float]]]:
        text, box = self.rng.choice(LARGE_TEMPLATES)
        shape = self.rng.choice(("alone", "times", "plus"))
        if shape == "alone":
            return text, {"x": box}
        while True:
            other = self._ordinary(self.rng.sample(VARIABLES[1:], self.rng.randint(1, 2)))
            if other.names and other.magnitude <= MAX_ORDINARY_MAGNITUDE:
                break
        ranges = {"x": box, **{name: self.ranges[name] for name in sorted(other.names)}}
        return f"({text}) {'*' if shape == 'times' else '+'} ({other.text})", ranges

    def _ordinary(self, names: list[str]) -> Term:
        self.ranges = {name: self.rng.choice(RANGES) for name in names}
        while True:  # a bare variable or constant checks nothing worth counting
            term = self._term(names, self.rng.randint(2, MAX_DEPTH))
            if "(" in term.text:
                return term

    def _leaf(self, names: list[str]) -> Term:
        if self.rng.random() < 0.75:
            name = self.rng.choice(names)
            low, high = self.ranges[name]
            return Term(name, frozenset({name}), low, high)
        return self._constant()

    def _constant(self) -> Term:
        text, value = self.rng.choice(list(CONSTANTS.items()))
        return Term(text, frozenset(), value, value)

    def _positive(self, term: Term) -> Term:
        """``term`` if it is positive, else ``term**2 + c`` (positive, and still smooth)."""
        if term.low > 0:
            return term
        text, c = self.rng.choice([("0.1", 0.1), ("1", 1.0), ("2.5", 2.5)])
        return Term(f"(({term.text})**2 + {text})", term.names, c, term.magnitude**2 + c)

    def _term(self, names: list[str], depth: int) -> Term:
        if depth == 0 or self.rng.random() < 0.2:
            return self._leaf(names)
        a = self._term(names, depth - 1)
        op = self.rng.choice(("+", "-", "*", "/", "**", "sqrt", "exp", "log", "sin", "cos",
                              "tanh", "atan"))  # fmt: skip
        if op in ("+", "-", "*", "/"):
            b = self._term(names, depth - 1)
            if b.text == a.text:  # x - x or x / x: SymPy folds it to a constant
                b = self._constant()
            if op == "/":
                b = self._positive(b)
                bounds = [a.low / b.low, a.low / b.high, a.high / b.low, a.high / b.high]
            elif op == "*":
                bounds = [a.low * b.low, a.low * b.high, a.high * b.low, a.high * b.high]
            elif op == "+":
                bounds = [a.low + b.low, a.high + b.high]
            else:
                bounds = [a.low - b.high, a.high - b.low]
            return _hull(f"({a.text} {op} {b.text})", a.names | b.names, bounds)
        if op == "**":
            k = self.rng.choice((2, 3, 4, -1, -2))
            if k < 0:
                a = self._positive(a)
            bounds = [a.low**k, a.high**k] + ([0.0] if a.low < 0 < a.high else [])
            return _hull(f"({a.text})**{k}", a.names, bounds)
        if op in ("sqrt", "log"):
            a = self._positive(a)
        if op == "exp" and a.magnitude > MAX_EXP_ARGUMENT:
            a = _hull(f"tanh({a.text})", a.names, [math.tanh(a.low), math.tanh(a.high)])
        text = f"{op}({a.text})"
        if op in ("sin", "cos"):
            return Term(text, a.names, -1.0, 1.0)
        function = getattr(math, op)
        return _hull(text, a.names, [function(a.low), function(a.high)])


@dataclass(frozen=True)
class Task:
    """One check to run: which row it counts in, and ``check()``'s arguments."""

    corpus: str
    dtype: str
    name: str
    expression: str
    options: dict[str, Any]


def demo_tasks() -> list[Task]:
    """The built-in suite, each check in its own dtype."""
    from verifier.service.suite import OWN_CHECKS, SEED_EXAMPLES

    tasks = []
    for index, spec in enumerate((*SEED_EXAMPLES, *OWN_CHECKS)):
        options = {k: v for k, v in spec.items() if k not in ("expression", "points")}
        if "points" in spec:
            options["at"] = spec["points"]
        tasks.append(Task("demo", "own", f"demo {index}", spec["expression"], options))
    return tasks


def feynman_rows(folder: Path) -> Iterator[tuple[str, str, dict[str, tuple[float, float]]]]:
    """Each equation of the AI Feynman tables: its name, formula and variable ranges."""
    for table in FEYNMAN_TABLES:
        with open(folder / table, encoding="utf-8-sig", newline="") as handle:
            for row in csv.DictReader(handle):
                if not row.get("Filename") or not (row.get("Formula") or "").strip():
                    continue
                ranges = {
                    row[f"v{i}_name"].strip(): (float(row[f"v{i}_low"]), float(row[f"v{i}_high"]))
                    for i in range(1, MAX_TABLE_VARIABLES + 1)
                    if (row.get(f"v{i}_name") or "").strip()
                }
                yield row["Filename"], row["Formula"].strip(), ranges


@dataclass(frozen=True)
class Formula:
    """One formula of the DSO corpus (benchmarks/corpora/dso.csv): its row in the table, the
    published variable count, the expression in this project's syntax, the published range of
    each variable and DSO's design of its training set."""

    index: int
    name: str
    family: str
    variables: int
    expression: str
    domain: dict[str, tuple[float, float]]
    design: str

    def used_domain(self) -> dict[str, tuple[float, float]]:
        """The ranges of the variables the expression uses (a check refuses the others)."""
        from verifier.core.expression.parse import parse_expression

        used = parse_expression(self.expression).variables
        return {name: box for name, box in self.domain.items() if name in used}


def dso_rows(path: Path = DSO) -> list[Formula]:
    """Every formula of the DSO corpus, in the table's order."""
    from verifier.core.floats.points import parse_domain

    with open(path, encoding="utf-8", newline="") as handle:
        lines = [line for line in handle if not line.startswith(DSO_COMMENT)]
    return [
        Formula(index, row["name"], row["family"], int(row["variables"]), row["expression"],
                parse_domain(row["domain"]), row["design"])
        for index, row in enumerate(csv.DictReader(lines))
    ]  # fmt: skip


def sampled_tasks(
    corpus: str,
    equations: list[tuple[str, str, dict[str, tuple[float, float]]]],
    dtypes: list[str],
    points: int,
    seed: int,
) -> list[Task]:
    """``points`` sampled points per equation, in each dtype (gradient and Hessian)."""
    return [
        Task(corpus, dtype, name, formula,
             {"samples": points, "domain": ranges, "seed": seed + index, "dtype": dtype})
        for dtype in dtypes
        for index, (name, formula, ranges) in enumerate(equations)
    ]  # fmt: skip


def dso_tasks(formulas: list[Formula], dtypes: list[str], points: int, seed: int) -> list[Task]:
    """The DSO corpus's checks: ``points`` points in each formula's published box, node
    gradients compared too. A formula's seed follows its row in the table, so a sample of the
    corpus checks the same points as the whole (fewer points: the first of them)."""
    return [
        Task("dso", dtype, f.name, f.expression,
             {"samples": points, "domain": f.used_domain(), "seed": seed + f.index,
              "dtype": dtype, "nodes": True})
        for dtype in dtypes
        for f in formulas
    ]  # fmt: skip


@dataclass
class Tally:
    """The outcome of one row: verdict counts, time, and the checks worth reading."""

    corpus: str
    dtype: str
    checks: Counter[str] = field(default_factory=Counter)
    entries: Counter[str] = field(default_factory=Counter)
    seconds: float = 0.0
    skipped: list[dict[str, str]] = field(default_factory=list)
    crashed: list[dict[str, str]] = field(default_factory=list)
    errors: list[dict[str, str]] = field(default_factory=list)
    listed: list[dict[str, Any]] = field(default_factory=list)


def _number(value: float | None) -> float | str | None:
    if value is None or math.isfinite(value):
        return value
    return str(value)


def _entry_label(entry: Any) -> str:
    if entry.node is not None:
        return f"node {entry.node}"
    return f"{entry.kind} d/d{' d'.join(entry.wrt or ())}"


def run_task(run: Callable[..., Any], accepted: set[str], task: Task, tally: Tally) -> None:
    """Run one check and count it in ``tally``."""
    options = {k: v for k, v in task.options.items() if k in accepted}
    where = {"name": task.name, "expression": task.expression}
    started = time.perf_counter()
    try:
        report = run(task.expression, **options)
    except InputError as error:
        tally.skipped.append({**where, "reason": str(error)})
        return
    except Exception as error:  # noqa: BLE001  (a crash is a row of the benchmark, not its end)
        tally.crashed.append({**where, "reason": f"{type(error).__name__}: {error}"})
        return
    finally:
        tally.seconds += time.perf_counter() - started
    tally.checks[report.verdict] += 1
    tally.entries.update(entry.verdict for entry in report.entries)
    if report.verdict == "error":
        tally.errors.append({**where, "reason": report.reason or ""})
    listed = [e for e in report.entries if e.verdict in LISTED_VERDICTS]
    if listed:
        tally.listed.append(
            {**where, "dtype": report.dtype, "verdict": report.verdict, "entries": [
                {"point": report.points[e.point], "entry": _entry_label(e), "verdict": e.verdict,
                 "autograd": _number(e.autograd), "reference": _number(e.reference),
                 "ulp_error": _number(e.ulp_error), "detail": e.detail, "blame": e.blame,
                 "phase": e.phase}
                for e in listed
            ]}
        )  # fmt: skip


def verdict_columns(tallies: list[Tally]) -> list[str]:
    """The core's verdict order, or the fixed list; verdicts seen outside it go last."""
    try:
        from verifier.core.judge.verdict import VERDICT_ORDER

        columns = [str(verdict) for verdict in VERDICT_ORDER]
    except ImportError:  # code from before the verdict table
        columns = list(FALLBACK_VERDICTS)
    seen = {v for t in tallies for v in (*t.checks, *t.entries)}
    return columns + sorted(seen - set(columns))


def check_rows(tallies: list[Tally], columns: list[str]) -> list[list[str]]:
    """One line per row: checks that ran, skipped and crashed, checks per verdict, seconds."""
    return [
        [t.corpus, t.dtype, str(t.checks.total()), str(len(t.skipped)), str(len(t.crashed)),
         *(str(t.checks[c]) for c in columns), f"{t.seconds:.1f}"]
        for t in tallies
    ]  # fmt: skip


def entry_rows(tallies: list[Tally], columns: list[str]) -> list[list[str]]:
    """One line per row: entries compared, entries per verdict."""
    return [
        [t.corpus, t.dtype, str(t.entries.total()), *(str(t.entries[c]) for c in columns)]
        for t in tallies
    ]


def _short(value: object) -> str:
    return f"{value:.6g}" if isinstance(value, float) else str(value)


def listed_rows(tallies: list[Tally]) -> list[list[str]]:
    """One line per listed check: its first fail (else nonfinite) entry, and how many."""
    rows = []
    for t in tallies:
        for item in t.listed:
            first = next((e for e in item["entries"] if e["verdict"] == "fail"), item["entries"][0])
            point = ", ".join(f"{k}={v:.6g}" for k, v in first["point"].items())
            rows.append(
                [t.corpus, item["dtype"], item["name"], item["expression"], point, first["entry"],
                 first["verdict"], str(len(item["entries"])), _short(first["autograd"]),
                 _short(first["reference"]), _short(first["ulp_error"]), first["detail"] or ""]
            )  # fmt: skip
    return rows


def blame_rows(tallies: list[Tally]) -> list[list[str]]:
    """One line per fail or nonfinite entry: the operation its verdict blames, and where."""
    return [
        [t.corpus, item["dtype"], item["name"],
         ", ".join(f"{k}={v:.6g}" for k, v in e["point"].items()), e["entry"], e["verdict"],
         e.get("blame") or NONE_BLAMED, e.get("phase") or "", _short(e["ulp_error"]),
         e["detail"] or ""]
        for t in tallies
        for item in t.listed
        for e in item["entries"]
    ]  # fmt: skip


def problem_rows(tallies: list[Tally]) -> list[list[str]]:
    """Skipped, crashed and error checks, with their reasons."""
    return [
        [t.corpus, t.dtype, kind, item["name"], item["expression"], item["reason"]]
        for t in tallies
        for kind, items in (("skipped", t.skipped), ("crashed", t.crashed), ("error", t.errors))
        for item in items
    ]


def report_tables(tallies: list[Tally], columns: list[str]) -> list[TableRows]:
    """Every table the command prints: title, headers and rows."""
    return [
        ("Checks per check verdict",
         ["corpus", "dtype", "checks", "skipped", "crashed", *columns, "seconds"],
         check_rows(tallies, columns)),
        ("Entries per entry verdict", ["corpus", "dtype", "entries", *columns],
         entry_rows(tallies, columns)),
        ("Checks with a fail or nonfinite entry (the first such entry; 'of': how many)",
         ["corpus", "dtype", "name", "expression", "point", "entry", "verdict", "of",
          "autograd", "reference", "ulps", "detail"],
         listed_rows(tallies)),
        ("Fail and nonfinite entries, each with the operation it blames",
         ["corpus", "dtype", "name", "point", "entry", "verdict", "blame", "phase", "ulps",
          "detail"],
         blame_rows(tallies)),
        ("Checks skipped, crashed or in error",
         ["corpus", "dtype", "kind", "name", "expression", "reason"], problem_rows(tallies)),
    ]  # fmt: skip


def markdown(tables: list[TableRows], command: str, total_s: float) -> str:
    """The tables as Markdown, with the command that produced them."""
    lines = ["# Verdict counts", "", f"Produced by `{command}` in {total_s:.1f} s.", ""]
    for title, headers, rows in tables:
        lines += [f"## {title}", ""]
        if not rows:
            lines += ["none", ""]
            continue
        lines += ["| " + " | ".join(headers) + " |", "|" + " --- |" * len(headers)]
        lines += ["| " + " | ".join(c.replace("|", "\\|") for c in row) + " |" for row in rows]
        lines.append("")
    return "\n".join(lines)


def print_tables(console: Console, tables: list[TableRows]) -> None:
    """The tables for people: counts right-aligned, long text folded."""
    for title, headers, rows in tables:
        if not rows:
            console.print(f"{title}: none")
            continue
        table = Table(title=title, title_justify="left")
        for header in headers:
            text = header in ("expression", "detail", "reason", "point", "blame")
            table.add_column(
                header, justify="left" if text or header in NAME_COLUMNS else "right",
                overflow="fold", max_width=40 if text else None, no_wrap=not text,
            )  # fmt: skip
        for row in rows:
            table.add_row(*row)
        console.print(table)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=DEFAULT_POINTS)
    parser.add_argument("--dtypes", default="float64,float32")
    parser.add_argument("--corpus", default="demo,feynman,random")
    parser.add_argument("--random-count", type=int, default=DEFAULT_RANDOM_COUNT)
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    parser.add_argument("--feynman-dir", type=Path, default=FEYNMAN)
    parser.add_argument("--dso-table", type=Path, default=DSO)
    parser.add_argument("--limit", type=int, default=None, help="at most this many per corpus")
    parser.add_argument("--json", action="store_true", help="print JSON instead of tables")
    parser.add_argument("--markdown", type=Path, default=None)
    arguments = parser.parse_args()
    dtypes = [d.strip() for d in arguments.dtypes.split(",") if d.strip()]
    corpora = [c.strip() for c in arguments.corpus.split(",") if c.strip()]
    unknown = set(corpora) - set(CORPORA)
    if unknown:
        parser.error(f"unknown corpus {', '.join(sorted(unknown))}: use {', '.join(CORPORA)}")

    tasks: list[Task] = []
    for corpus in corpora:
        if corpus == "demo":
            tasks += demo_tasks()[: arguments.limit]
        elif corpus == "dso":
            formulas = dso_rows(arguments.dso_table)[: arguments.limit]
            tasks += dso_tasks(formulas, dtypes, arguments.points, arguments.seed)
        elif corpus == "feynman":
            equations = list(feynman_rows(arguments.feynman_dir))[: arguments.limit]
            tasks += sampled_tasks("feynman", equations, dtypes, arguments.points, arguments.seed)
        else:
            generator = RandomExpressions(arguments.seed)
            count = min(arguments.random_count, arguments.limit or arguments.random_count)
            drawn = [generator.draw() for _ in range(count)]
            equations = [(f"random {i}", text, box) for i, (text, box) in enumerate(drawn)]
            tasks += sampled_tasks("random", equations, dtypes, arguments.points, arguments.seed)

    from verifier import check  # loads torch and starts nothing else
    from verifier.core.options import option_names

    tallies: dict[tuple[str, str], Tally] = {}
    # The point, and every option a check takes by name.
    accepted = {"at", *option_names()}
    started = time.perf_counter()
    with Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
        console=Console(stderr=True),
    ) as progress:  # fmt: skip
        bars = {}
        for key, size in Counter((t.corpus, t.dtype) for t in tasks).items():
            bars[key] = progress.add_task(f"{key[0]} {key[1]}", total=size, start=False)
            tallies[key] = Tally(*key)
        for task in tasks:
            key = (task.corpus, task.dtype)
            progress.start_task(bars[key])  # the clock of a row starts at its first check
            run_task(check, accepted, task, tallies[key])
            progress.advance(bars[key])
    total_s = time.perf_counter() - started

    rows = list(tallies.values())
    columns = verdict_columns(rows)
    tables = report_tables(rows, columns)
    if arguments.json:
        document = {
            "settings": {k: str(v) for k, v in vars(arguments).items()},
            "verdicts": columns,
            "seconds": total_s,
            "rows": [
                {"corpus": t.corpus, "dtype": t.dtype, "seconds": t.seconds,
                 "checks": {c: t.checks[c] for c in columns},
                 "entries": {c: t.entries[c] for c in columns},
                 "skipped": t.skipped, "crashed": t.crashed, "errors": t.errors,
                 "listed": t.listed}
                for t in rows
            ],
        }  # fmt: skip
        json.dump(document, sys.stdout, indent=1)
        sys.stdout.write("\n")
    else:
        console = Console(width=None if sys.stdout.isatty() else PIPED_WIDTH)
        print_tables(console, tables)
        console.print(f"total {total_s:.1f} s for {len(tasks)} checks")
    if arguments.markdown:
        command = "python benchmarks/verdicts.py " + " ".join(sys.argv[1:])
        arguments.markdown.write_text(markdown(tables, command.strip(), total_s))


if __name__ == "__main__":
    main()
