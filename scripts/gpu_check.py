"""Every GPU check of derivcheck in one command, for a machine with CUDA (``scripts/gpu-check``).

Runs, and prints as a table at the end: the tests marked ``gpu`` (the seed example on CUDA in
all four dtypes, CPU and CUDA against one reference, a provoked out-of-memory, a real worker
on the ``gpu`` queue running a submitted job); the demo suite on CUDA in all four dtypes
against the same suite on CPU; the AI Feynman corpus in float32 and float64 with
``compare_devices`` (CUDA and CPU judged in one report against one reference);
W1 (one check, 3 variables, 10,000 points, gradient + Hessian, float32) on CUDA and on CPU.
Every verdict that differs between the devices is listed in ``gpu-check.log``. Without CUDA it
says so, runs what it can (the ``gpu`` tests then skip), and exits 0.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

ROOT = Path(__file__).resolve().parent.parent
FEYNMAN = ROOT.parent / "shared" / "corpora" / "feynman" / "FeynmanEquations.csv"
LOG = ROOT / "gpu-check.log"
DTYPES = ("float64", "float32", "float16", "bfloat16")
W1 = "sin(x)*exp(y) + x*y*z**2 + log(1 + z**2)"
W1_DOMAIN = {"x": (-3.0, 3.0), "y": (-3.0, 3.0), "z": (-3.0, 3.0)}
FEYNMAN_POINTS = 20

rows: list[tuple[str, str, float]] = []


def step(name: str, run: Callable[[], str]) -> None:
    """Run one step, recording its result (or its failure) and its seconds."""
    started = time.perf_counter()
    try:
        result = run()
    except Exception as error:  # a step that fails is a row, not the end of the run
        result = f"FAILED: {type(error).__name__}: {str(error).splitlines()[0][:200]}"
    rows.append((name, result, time.perf_counter() - started))
    print(f"{name}: {result}", flush=True)


def gpu_tests() -> str:
    tests = ["tests/gpu", "tests/e2e/test_gpu_worker.py"]
    command = [sys.executable, "-m", "pytest", "-m", "gpu", "-q", "-s", "-rs", *tests]
    run = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=600)
    with LOG.open("a") as log:
        log.write(run.stdout + run.stderr)
    return run.stdout.strip().splitlines()[-1] if run.stdout.strip() else "no output"


def differences(specs: list[dict[str, Any]], dtype: str, log_label: str) -> str:
    """Run ``specs`` on CPU and CUDA in ``dtype``; the entries whose verdicts differ."""
    from verifier import check

    differ = entries = errors = 0
    with LOG.open("a") as log:
        for spec in specs:
            options = {k: v for k, v in spec.items() if k not in ("expression", "points")}
            options["dtype"] = dtype
            found = [
                check(spec["expression"], spec.get("points"), device=device, **options)
                for device in ("cpu", "cuda")
            ]
            errors += sum(1 for report in found if report.verdict == "error")
            for cpu, cuda in zip(found[0].entries, found[1].entries, strict=False):
                entries += 1
                if cpu.verdict != cuda.verdict:
                    differ += 1
                    log.write(
                        f"{log_label} {dtype} {spec['expression']} {cpu.kind} {cpu.wrt} "
                        f"point {cpu.point}: cpu {cpu.verdict} {cpu.autograd!r}, cuda "
                        f"{cuda.verdict} {cuda.autograd!r}, exact {cpu.reference!r}\n"
                    )
    return f"{entries} entries, {differ} verdicts differ, {errors} error reports"


def demo_suite(dtype: str) -> str:
    from verifier.service.suite import demo_suite as suite

    return differences([{**spec, "dtype": dtype} for spec in suite()], dtype, "suite")


def feynman(dtype: str) -> str:
    """The corpus with ``compare_devices``: values and verdicts that differ between CUDA and
    the CPU, and the largest difference."""
    from verifier import check
    from verifier.cli.inputs import read_checks

    specs = read_checks(FEYNMAN, file_format="csv", samples=FEYNMAN_POINTS, dtype=None, seed=0)
    entries = differing = verdicts = errors = 0
    largest = 0.0
    with LOG.open("a") as log:
        for spec in specs:
            options = {k: v for k, v in spec.items() if k not in ("expression", "points", "dtype")}
            report = check(
                spec["expression"], spec.get("points"), dtype=dtype, compare_devices=True, **options
            )
            if report.verdict == "error" or report.compared is None:
                errors += 1
                log.write(f"feynman {dtype} {spec['expression']}: error {report.reason}\n")
                continue
            entries += len(report.entries)
            differing += report.compared["differing"]
            verdicts += report.compared["verdicts_differ"]
            found = report.compared["max_abs_difference"]
            largest = max(largest, float(found) if isinstance(found, str) else found)
            for entry in report.entries:
                if entry.compared_verdict != entry.verdict:
                    log.write(
                        f"feynman {dtype} {spec['expression']} {entry.kind} {entry.wrt} point "
                        f"{entry.point}: cuda {entry.verdict} {entry.autograd!r}, cpu "
                        f"{entry.compared_verdict} {entry.compared_autograd!r}, exact "
                        f"{entry.reference!r}\n"
                    )
    return (
        f"{entries} entries, {differing} values differ (largest {largest:.3g}), "
        f"{verdicts} verdicts differ, {errors} error reports"
    )


def w1() -> str:
    from verifier import check

    best: dict[str, float] = {}
    for device in ("cpu", "cuda"):
        check(W1, samples=100, dtype="float32", domain=W1_DOMAIN, device=device)  # warm
        times = []
        for _ in range(3):
            started = time.perf_counter()
            check(W1, samples=10_000, dtype="float32", domain=W1_DOMAIN, device=device)
            times.append(time.perf_counter() - started)
        best[device] = min(times)
    return f"cpu {best['cpu']:.3f} s, cuda {best['cuda']:.3f} s"


def main() -> int:
    LOG.write_text("")
    cuda = torch.cuda.is_available()
    device = torch.cuda.get_device_name(0) if cuda else "none"
    rows.append(("torch, CUDA device", f"{torch.__version__}, {device}", 0.0))
    if not cuda:
        print("CUDA is absent here: the GPU steps are skipped; the gpu tests run and skip")
    step("tests marked gpu", gpu_tests)
    if cuda:
        for dtype in DTYPES:
            step(f"demo suite, {dtype}, cpu vs cuda", lambda dtype=dtype: demo_suite(dtype))
        for dtype in ("float32", "float64"):
            step(
                f"Feynman x {FEYNMAN_POINTS} points, {dtype}, compare_devices",
                lambda dtype=dtype: feynman(dtype),
            )
        step("W1, 10,000 points, float32", w1)
    width = max(len(name) for name, _, _ in rows)
    print("\n" + "step".ljust(width) + "  seconds  result")
    for name, result, seconds in rows:
        print(f"{name.ljust(width)}  {seconds:7.1f}  {result}")
    print(f"details: {LOG}")
    failed = any(result.startswith("FAILED") for _, result, _ in rows)
    return 1 if cuda and failed else 0


if __name__ == "__main__":
    sys.exit(main())
