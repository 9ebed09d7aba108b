"""A check that runs out of device memory ends as ``error`` saying so, and the next check runs
normally. torch raises ``torch.OutOfMemoryError`` for CUDA (and other accelerators); on a
machine without one the error is raised by a stand-in for the autograd side, the part of
``check()`` that allocates on the device."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from verifier import check
from verifier.core import check as core_check

OOM_MESSAGE = "CUDA out of memory. Tried to allocate 20.00 GiB (GPU 0; 79.11 GiB total capacity)"


def test_out_of_memory_is_an_error_and_the_next_check_runs(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    real = core_check.run_autograd

    def exhausted(*args: Any, **kwargs: Any) -> Any:
        raise torch.OutOfMemoryError(OOM_MESSAGE)

    monkeypatch.setattr(core_check, "run_autograd", exhausted)
    failed = check("sin(x)*y", at={"x": 0.5, "y": 2}, device="cpu")
    assert failed.verdict == "error"
    assert failed.reason == f"resource limit: out of memory on cpu: {OOM_MESSAGE}"
    assert failed.entries == []

    monkeypatch.setattr(core_check, "run_autograd", real)
    # d/dx sin(x) y = y cos(x), d/dy = sin(x) (hand); the check after it is whole again.
    report = check("sin(x)*y", at={"x": 0.5, "y": 2}, device="cpu")
    assert report.verdict == "pass"
    assert report.gradient[0] == pytest.approx([2 * 0.8775825618903728, 0.479425538604203])
