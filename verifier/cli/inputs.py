"""Reading check files for ``derivcheck submit``: JSON lines, or an AI Feynman equation table.

The AI Feynman table (``FeynmanEquations.csv``) has one equation a row: ``Formula`` and, for
each variable ``i``, ``vi_name``, ``vi_low`` and ``vi_high``. Each row becomes one check whose
points are ``samples`` random draws from those ranges.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

from verifier.cli.client import CliError

MAX_TABLE_VARIABLES = 10


def read_checks(
    path: Path,
    *,
    file_format: str,
    samples: int,
    dtype: str | None,
    seed: int,
    lines: list[int] | None = None,
) -> list[dict[str, Any]]:
    """The checks in ``path`` (``jsonl``, ``csv`` or ``auto`` by extension); with ``lines``,
    each check's line in the file (1-based) is appended to it, in the checks' order."""
    if file_format == "auto":
        file_format = "csv" if path.suffix.lower() == ".csv" else "jsonl"
    try:
        text = path.read_text(encoding="utf-8-sig")
    except OSError as error:
        raise CliError(f"cannot read {path}: {error.strerror or error}") from None
    if file_format == "csv":
        checks = read_feynman_table(text, path=path, samples=samples, seed=seed, lines=lines)
    elif file_format == "jsonl":
        checks = read_json_lines(text, path=path, lines=lines)
    else:
        raise CliError(f"unknown --format {file_format!r}: use auto, jsonl or csv")
    if dtype is not None:
        checks = [{**check, "dtype": dtype} for check in checks]
    if not checks:
        raise CliError(f"{path}: no checks in the file")
    return checks


def read_json_lines(
    text: str, *, path: Path, lines: list[int] | None = None
) -> list[dict[str, Any]]:
    """One check object per non-blank line (with ``lines``, their numbers appended)."""
    checks: list[dict[str, Any]] = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            check = json.loads(line)
        except json.JSONDecodeError as error:
            raise CliError(
                f"{path}:{number}: not valid JSON ({error.msg} at column {error.colno})"
            ) from None
        if not isinstance(check, dict) or "expression" not in check:
            raise CliError(f"{path}:{number}: expected an object with an 'expression' key")
        checks.append(check)
        if lines is not None:
            lines.append(number)
    return checks


def read_feynman_table(
    text: str, *, path: Path, samples: int, seed: int, lines: list[int] | None = None
) -> list[dict[str, Any]]:
    """One sampled check per equation row of an AI Feynman table (with ``lines``, the rows'
    line numbers appended)."""
    reader = csv.DictReader(text.splitlines())
    if reader.fieldnames is None or "Formula" not in reader.fieldnames:
        raise CliError(f"{path}: not an AI Feynman table (no 'Formula' column)")
    checks: list[dict[str, Any]] = []
    for number, row in enumerate(reader, start=2):
        formula = (row.get("Formula") or "").strip()
        if not formula:
            continue
        domain: dict[str, list[float]] = {}
        for index in range(1, MAX_TABLE_VARIABLES + 1):
            name = (row.get(f"v{index}_name") or "").strip()
            if not name:
                continue
            try:
                low = float(row.get(f"v{index}_low") or "")
                high = float(row.get(f"v{index}_high") or "")
            except ValueError:
                raise CliError(
                    f"{path}:{number}: range of variable {name!r} is not a pair of numbers"
                ) from None
            domain[name] = [low, high]
        checks.append({"expression": formula, "samples": samples, "domain": domain, "seed": seed})
        if lines is not None:
            lines.append(number)
    return checks
