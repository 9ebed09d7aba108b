"""Checks on CUDA: the seed examples in every dtype, an out-of-memory on the device, and CPU and
CUDA judged against one exact reference. Marked ``gpu``: without CUDA they are skipped (and
counted as skipped); ``scripts/gpu-check`` runs them on a GPU machine.

Expected values: the seed document's examples by hand (d/dx (3x^2 + 2xy + y^2) = 6x + 2y, ...);
the reference is the same exact value whatever device autograd ran on.
"""

from __future__ import annotations

import pytest
import torch

from verifier import check

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA is not available here"),
]

DTYPES = ["float64", "float32", "float16", "bfloat16"]


@pytest.mark.parametrize("dtype", DTYPES)
def test_the_seed_example_runs_on_cuda_in_every_dtype(dtype: str) -> None:
    report = check("3*x**2 + 2*x*y + y**2", at={"x": 2, "y": 1}, dtype=dtype, device="cuda")
    assert report.device.startswith("cuda")
    assert report.verdict != "error", report.reason
    # 6x + 2y = 14 and 2x + 2y = 6 at (2, 1) (hand), exact in every dtype.
    assert report.gradient == [[14.0, 6.0]]


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_cpu_and_cuda_are_judged_against_the_same_reference(dtype: str) -> None:
    expression = "sin(x)*exp(y) + x*y*z**2 + log(1 + z**2)"
    options = {"samples": 200, "dtype": dtype, "seed": 3}
    on_cpu = check(expression, device="cpu", **options)
    on_cuda = check(expression, device="cuda", **options)
    assert on_cpu.points == on_cuda.points
    references = [(e.kind, e.wrt, e.point, e.reference) for e in on_cpu.entries]
    assert references == [(e.kind, e.wrt, e.point, e.reference) for e in on_cuda.entries]
    for cpu, cuda in zip(on_cpu.entries, on_cuda.entries, strict=True):
        if cpu.autograd != cuda.autograd:
            print(f"{dtype} {cpu.kind} {cpu.wrt} point {cpu.point}: cpu {cpu.autograd!r}, "
                  f"cuda {cuda.autograd!r}, exact {cpu.reference!r}")  # fmt: skip


def test_an_out_of_memory_on_cuda_ends_the_check_and_not_the_next() -> None:
    torch.cuda.set_per_process_memory_fraction(1e-9)
    try:
        failed = check("sin(x)*y", samples=10_000, device="cuda")
    finally:
        torch.cuda.set_per_process_memory_fraction(1.0)
    assert failed.verdict == "error"
    assert failed.reason is not None and failed.reason.startswith(
        "resource limit: out of memory on cuda"
    )
    report = check("sin(x)*y", at={"x": 0.5, "y": 2}, device="cuda")
    assert report.verdict == "pass"


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_compare_devices_judges_cuda_and_cpu_in_one_report(dtype: str) -> None:
    expression = "sin(x)*exp(y) + x*y*z**2 + log(1 + z**2)"
    options = {"samples": 200, "dtype": dtype, "seed": 3, "nodes": True}
    report = check(expression, compare_devices=True, **options)
    on_cpu = check(expression, device="cpu", **options)
    assert report.device.startswith("cuda") and report.compared is not None
    assert report.compared["device"] == "cpu"
    # The compared side is the CPU's own check: the same values and verdicts entry by entry.
    for entry, cpu in zip(report.entries, on_cpu.entries, strict=True):
        assert entry.reference == cpu.reference
        assert entry.compared_autograd == cpu.autograd
        assert entry.compared_verdict == cpu.verdict
        assert entry.device_difference == (
            0.0 if entry.autograd == cpu.autograd else entry.autograd - cpu.autograd
        )
    assert report.compared["counts"] == on_cpu.counts
    print(f"{dtype}: {report.compared}")
