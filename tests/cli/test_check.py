"""``derivcheck check`` as a user runs it: a real process, its output and exit code; the same
command in this process (typer's runner) where only its answers to many inputs are tested, not
the process around them; and its tables and exit rule on reports built by hand (no core
needed)."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import Result
from rich.console import Console
from slowness import SLOWNESS
from typer.testing import CliRunner

from verifier.cli import create_cli
from verifier.cli.check import exit_code, render
from verifier.core.judge.report import Entry, Report
from verifier.core.judge.verdict import VERDICT_ORDER

DERIVCHECK = Path(sys.executable).with_name("derivcheck")


def run(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": "160"}
    return subprocess.run(
        [str(DERIVCHECK), "check", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120 * SLOWNESS,
    )


def invoke(*args: str) -> Result:
    """``derivcheck check ARGS`` in this process: the command's own code and answers, without
    the cost of a new process importing torch (a few seconds each)."""
    return CliRunner().invoke(create_cli(), ["check", *args], env={"COLUMNS": "160"})


def test_seed_example_prints_a_table_and_exits_zero() -> None:
    result = run("3*x**2 + 2*x*y + y**2", "--at", "x=2,y=1", "--nodes")
    assert result.returncode == 0, result.stderr
    assert "verdict=pass" in result.stdout
    assert "d2/dxdy" in result.stdout and "x.grad.grad" in result.stdout
    assert "d/d[x**2]" in result.stdout  # node labels are shown, not taken as markup


def test_json_output_is_the_report_and_strict_fails_an_ill_conditioned_check() -> None:
    # The cancellation example: 1 - cos(x) loses every digit in float32 at 0.001 while each
    # operation is accurate, which docs/report-format.md calls ill-conditioned, not in the default
    # fail-on (fail, nonfinite) and in the strict one (verifier/core/judge/verdict.py).
    arguments = ("(1 - cos(x))/x**2", "--at", "x=0.001", "--dtype", "float32", "--json")
    result = run(*arguments)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert set(report) == set(_report([]).to_dict())  # Report.to_dict(), nothing else
    assert report["verdict"] == "ill-conditioned"
    assert report["points"] == [{"x": 0.0010000000474974513}]  # float32(0.001), IEEE 754
    assert (report["fail_on"], report["passed"]) == (["fail", "nonfinite"], True)
    strict = run(*arguments, "--strict")
    assert strict.returncode == 1
    assert json.loads(strict.stdout)["passed"] is False


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
        (
            ("x", "--at", "x=1", "--fail-on", "fail,great"),
            "--fail-on: unknown verdict 'great': choose from pass, domain, undefined, "
            "ill-conditioned, range, unverified, nonfinite, fail, error",
        ),
    ],
)
def test_bad_input_gets_one_line_on_stderr_and_exit_two(
    args: tuple[str, ...], message: str
) -> None:
    # In this process: each message is the command's own (the real process around one of
    # them is the test below).
    result = invoke(*args)
    assert result.exit_code == 2
    assert result.stdout == ""
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert "Traceback" not in result.stderr


def test_bad_input_in_a_real_process_is_one_line_on_stderr_and_exit_two() -> None:
    # What the in-process cases above cannot show: the process's own exit status and streams.
    result = run("x+y", "--at", "x=1")
    assert result.returncode == 2
    assert result.stdout == ""
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("error: ") and "no value for variable(s) y" in line


def test_undefined_exits_zero_and_strict_or_fail_on_undefined_exits_one() -> None:
    # |x| has no derivative at 0 (a kink): undefined, which only --strict or --fail-on
    # undefined make a failure (verifier/core/judge/verdict.py). The exit status of a real
    # process is the seed example's and the cancellation example's tests'; here the command's.
    assert invoke("Abs(x)", "--at", "x=0").exit_code == 0
    assert invoke("Abs(x)", "--at", "x=0", "--strict").exit_code == 1
    assert invoke("Abs(x)", "--at", "x=0", "--fail-on", "undefined").exit_code == 1
    assert invoke("Abs(x)", "--at", "x=0", "--fail-on", "fail,nonfinite").exit_code == 0
    assert invoke("Abs(x)", "--at", "x=0", "--fail-on", "fail", "--strict").exit_code == 1


def _entry(point: int, verdict: str, **fields: object) -> Entry:
    values: dict[str, object] = {
        "kind": "gradient",
        "wrt": ("x",),
        "node": None,
        "point": point,
        "autograd": 2.0,
        "reference": 2.0,
        "reference_radius": 0.0,
        "abs_error": 0.0,
        "rel_error": 0.0,
        "ulp_error": 0.0,
        "tolerance": 1e-13,
        "verdict": verdict,
        "ratio": 0.0,
        "condition": 1.0,
        "correct_bits": 53.0,
    }
    values.update(fields)
    return Entry(**values)  # type: ignore[arg-type]


def _report(entries: list[Entry], points: int = 1, **fields: object) -> Report:
    verdict = max((e.verdict for e in entries), key=VERDICT_ORDER.index, default="pass")
    values: dict[str, object] = {
        "expression": "(1 - cos(x))/x**2",
        "variables": ["x"],
        "dtype": "float32",
        "device": "cpu",
        "verdict": verdict,
        "points": [{"x": 0.5 * p} for p in range(points)],
        "entries": entries,
        "reference_method": "hand-built",
        "tolerance": {"rtol": 7.63e-06, "atol": 0.0},
    }
    values.update(fields)
    return Report(**values)  # type: ignore[arg-type]


def _shown(report: Report, width: int = 160) -> str:
    console = Console(file=io.StringIO(), width=width, record=True)
    render(report, console)
    return console.export_text()


# Two non-passing entries among seven points: one ill-conditioned, blamed on 1 - cos(x) in the
# forward pass, and one against a zero reference (where an ulp count says nothing).
LOST = _entry(
    3,
    "ill-conditioned",
    autograd=46.3,
    reference=-8.33e-05,
    ratio=7.29e10,
    condition=2.46e13,
    correct_bits=0.0,
    ulp_error=6.37e12,
    blame="1 - cos(x)",
    phase="forward",
    detail="the digits are lost at 1 - cos(x)",
)
AT_ZERO = _entry(5, "range", autograd=1e-30, reference=0.0, ulp_error=None, ratio=3.0)
MANY = _report([_entry(p, "pass") for p in range(7) if p not in (3, 5)] + [LOST, AT_ZERO], 7)


def test_entries_not_passing_show_error_over_allowed_condition_bits_blame_and_detail() -> None:
    text = _shown(MANY)
    (row,) = [line for line in text.splitlines() if "ill-conditioned" in line and "46.3" in line]
    # err/allowed, cond (.3g), correct bits (.1f), ulps, then blame with phase, and detail.
    for cell in ("7.29e+10", "2.46e+13", "0.0", "6.37e+12", "1 - cos(x) (forward)"):
        assert cell in row, cell
    assert "the digits are lost at 1 - cos(x)" in row
    (zero,) = [line for line in text.splitlines() if "range" in line and "1e-30" in line]
    # err/allowed, cond, bits, then no ulp count against the zero reference.
    assert zero.split()[4:9] == ["3", "1", "53.0", "-", "range"]
    # Worst first: range ranks below ill-conditioned in the table (verifier/core/judge/verdict.py).
    assert text.index(zero) < text.index(row)


def test_summary_counts_every_verdict_that_occurs_and_lists_the_blamed_nodes() -> None:
    text = _shown(MANY)
    header = next(line for line in text.splitlines() if line.lstrip("┃ ").startswith("entry"))
    assert header.split("┃")[2:5] == [" pass ", " ill-conditioned ", " range "]  # table order
    assert "entries: 5 pass, 1 ill-conditioned, 1 range" in text
    (blamed,) = [line for line in text.splitlines() if line.startswith("│ 1 - cos(x)")]
    assert blamed.split("│")[2:5] == [" forward ", " ill-conditioned ", "       1 "]
    assert "passed (fails on: fail, nonfinite)" in text


def test_a_narrow_terminal_puts_blame_and_detail_below_the_table() -> None:
    text = _shown(MANY, width=90)
    assert "d/dx at x=1.5: 1 - cos(x) (forward); the digits are lost at 1 - cos(x)" in text
    assert "7.29e+10" in text


def test_exit_code_follows_the_reports_fail_on() -> None:
    # verifier/core/judge/verdict.py: undefined fails only a policy naming it; error is exit 2.
    undefined = [_entry(0, "undefined", ratio=None)]
    assert exit_code(_report(undefined)) == 0
    assert exit_code(_report(undefined, fail_on=["undefined"])) == 1
    assert exit_code(_report([], verdict="error", reason="symbolic timeout")) == 2
    failed = _shown(_report(undefined, fail_on=["undefined"]))
    assert "failed: 1 undefined (fails on: undefined)" in failed


def test_compare_devices_adds_the_second_device_to_the_json_and_the_tables() -> None:
    # CI has no GPU: the CPU against itself runs both sides for real and must agree exactly.
    seed = ("3*x**2 + 2*x*y + y**2", "--at", "x=2,y=1", "--device", "cpu", "--compare-devices")
    result = run(*seed, "cpu,cpu", "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["compared"]["device"] == "cpu" and report["compared"]["differing"] == 0
    # d/dx of the seed example at (2, 1) is 6*2 + 2*1 = 14, by hand.
    first = report["entries"][0]
    assert (first["autograd"], first["compared_autograd"], first["device_difference"]) == (
        14.0,
        14.0,
        0.0,
    )
    text = invoke(*seed, "cpu, cpu").stdout
    assert "on cpu: verdict=pass  entries: 6 pass; 0 of 6 values differ" in text


def test_a_table_lists_the_entries_where_the_devices_differ() -> None:
    differ = _entry(
        0,
        "pass",
        compared_autograd=2.5,
        compared_verdict="fail",
        compared_detail="off",
        device_difference=-0.5,
    )
    same = _entry(
        0, "pass", wrt=("y",), compared_autograd=2.0, compared_verdict="pass", device_difference=0.0
    )
    compared = {
        "device": "cuda",
        "verdict": "fail",
        "counts": {"pass": 1, "fail": 1},
        "passed": False,
        "differing": 1,
        "max_abs_difference": 0.5,
        "verdicts_differ": 1,
    }
    report = _report([differ, same], device="cpu", compared=compared)
    text = _shown(report)
    assert "on cuda: verdict=fail  entries: 1 pass, 1 fail; 1 of 2 values differ from cpu" in text
    (row,) = [line for line in text.splitlines() if "2.5" in line]
    assert row.split() == ["d/dx", "0", "2", "pass", "2.5", "fail", "-0.5"]
    assert "d/dy" not in text.split("differ, largest first")[1]
    assert exit_code(report) == 1  # the compared device failed: the check did not pass


@pytest.mark.parametrize(
    ("pair", "message"),
    [("cpu", "give two devices"), ("cpu,tpu", "unknown device 'tpu'")],
)
def test_a_bad_device_pair_is_one_line_and_exit_two(pair: str, message: str) -> None:
    result = invoke("x", "--at", "x=1", "--compare-devices", pair)
    assert result.exit_code == 2
    assert message in result.stderr and "Traceback" not in result.stderr


def test_rtol_64_is_refused_and_rtol_ulps_64_is_the_same_tolerance_in_ulps() -> None:
    refused = invoke("x**2", "--at", "x=3", "--rtol", "64")
    assert refused.exit_code == 2
    assert "rtol" in refused.output and "rtol_ulps" in refused.output
    # 64 ulps of float32 are 64 * 2**-23 relative (IEEE 754 binary32: 23 fraction bits).
    given = invoke("x**2", "--at", "x=3", "--dtype", "float32", "--rtol-ulps", "64", "--json")
    assert given.exit_code == 0, given.output
    assert json.loads(given.output)["tolerance"]["rtol"] == 64 * 2.0**-23
