"""``derivcheck check`` as a user runs it: a real process, its output and exit code."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

DERIVCHECK = Path(sys.executable).with_name("derivcheck")


def run(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": "160"}
    return subprocess.run(
        [str(DERIVCHECK), "check", *args], capture_output=True, text=True, env=env, timeout=120
    )


def test_seed_example_prints_a_table_and_exits_zero() -> None:
    result = run("3*x**2 + 2*x*y + y**2", "--at", "x=2,y=1", "--nodes")
    assert result.returncode == 0, result.stderr
    assert "verdict=pass" in result.stdout
    assert "d2/dxdy" in result.stdout and "x.grad.grad" in result.stdout
    assert "d/d[x**2]" in result.stdout  # node labels are shown, not taken as markup


def test_json_output_is_the_report_and_a_failure_exits_one() -> None:
    result = run("(1 - cos(x))/x**2", "--at", "x=0.001", "--dtype", "float32", "--json")
    assert result.returncode == 1
    report = json.loads(result.stdout)
    assert report["verdict"] == "fail"
    assert report["points"] == [{"x": 0.0010000000474974513}]  # float32(0.001), IEEE 754


def test_sampling_summarises_many_points() -> None:
    result = run("sin(x)*exp(y)", "--samples", "200", "--domain", "x=-3:3,y=-1:1", "--seed", "7")
    assert result.returncode == 0, result.stderr
    assert "points=200" in result.stdout and "summary over all points" in result.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("__import__(os)", "--at", "x=1"), "names may not start with '_'"),
        (("x+y", "--at", "x=1"), "no value for variable(s) y"),
        (("x", "--at", "x=abc"), "is not a decimal number"),
        (("x", "--at", "x=1", "--dtype", "float8"), "unknown dtype"),
        (("x", "--samples", "5", "--domain", "x=1"), "must be low:high"),
        (("x",), "no points"),
    ],
)
def test_bad_input_gets_one_line_on_stderr_and_exit_two(
    args: tuple[str, ...], message: str
) -> None:
    result = run(*args)
    assert result.returncode == 2
    assert result.stdout == ""
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert "Traceback" not in result.stderr


def test_undefined_exits_zero_and_strict_exits_one() -> None:
    assert run("Abs(x)", "--at", "x=0").returncode == 0
    assert run("Abs(x)", "--at", "x=0", "--strict").returncode == 1
