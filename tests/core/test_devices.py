"""``check(..., compare_devices=...)``: autograd on two devices against one truth.

CI has no GPU, so the pair here is the CPU twice (a real run of both sides through the whole
check) or the CPU against a CPU whose autograd is made wrong on purpose (the one place the
second device is replaced: it stands for a device whose kernels compute another derivative).
The CUDA pair itself runs in tests/gpu/test_cuda.py.
"""

from __future__ import annotations

import math
from dataclasses import replace

import pytest
import torch

from verifier.core import check as check_module
from verifier.core.check import check
from verifier.core.options import compared_names
from verifier.core.program.autograd import AutogradResult
from verifier.errors import OptionError

SEED = "3*x**2 + 2*x*y + y**2"
"""The seed document's example: gradient (6x + 2y, 2x + 2y), Hessian [[6, 2], [2, 2]]."""


def test_the_same_device_twice_agrees_entry_for_entry() -> None:
    report = check(
        SEED, at=[{"x": 2, "y": 1}, {"x": -1, "y": 3}], device="cpu", compare_devices=["cpu", "cpu"]
    )
    assert report.verdict == "pass" and report.passed
    assert report.compared == {
        "device": "cpu",
        "verdict": "pass",
        "counts": {"pass": 12},
        "passed": True,
        "differing": 0,
        "max_abs_difference": 0.0,
        "verdicts_differ": 0,
    }
    for entry in report.to_dict()["entries"]:
        assert entry["compared_autograd"] == entry["autograd"]
        assert entry["compared_verdict"] == entry["verdict"] == "pass"
        assert entry["device_difference"] == 0.0
    # At (2, 1) the gradient is (14, 6), by hand.
    assert report.gradient[0] == [14.0, 6.0]


def test_a_report_without_a_comparison_keeps_its_format() -> None:
    report = check(SEED, at={"x": 2, "y": 1}, device="cpu")
    shown = report.to_dict()
    assert report.compared is None and "compared" not in shown
    assert not any(key.startswith("compared") for key in shown["entries"][0])
    assert "device_difference" not in shown["entries"][0]


def _wrong_second_device(monkeypatch: pytest.MonkeyPatch, factor: float) -> None:
    """The second autograd run of each check (the compared device) returns every gradient
    entry times ``factor``: a device whose kernels compute another derivative."""
    real = check_module.run_autograd
    calls = []

    def run(*args: object, **kwargs: object) -> AutogradResult:
        result = real(*args, **kwargs)  # type: ignore[arg-type]
        calls.append(result)
        if len(calls) % 2 == 0:
            values = {
                key: found * factor if key[0] == "gradient" else found
                for key, found in result.values.items()
            }
            result = replace(result, values=values)
        return result

    monkeypatch.setattr(check_module, "run_autograd", run)


def test_a_device_with_a_wrong_derivative_fails_on_that_device_alone(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _wrong_second_device(monkeypatch, 1.001)
    report = check(SEED, at={"x": 2, "y": 1}, device="cpu", compare_devices=["cpu", "cpu"])
    # The report's own device is right: its verdict stays pass ...
    assert report.verdict == "pass" and report.counts == {"pass": 6}
    # ... the compared device fails both gradient entries (0.1 % off in float64), so the
    # check does not pass.
    assert report.compared is not None
    assert report.compared["verdict"] == "fail"
    assert report.compared["counts"] == {"pass": 4, "fail": 2}
    assert report.compared["differing"] == 2 and report.compared["verdicts_differ"] == 2
    assert report.compared["max_abs_difference"] == pytest.approx(14 * 0.001, rel=1e-9)
    assert not report.passed and not report.to_dict()["passed"]
    gradient = [e for e in report.entries if e.kind == "gradient"]
    for entry, exact in zip(gradient, (14.0, 6.0), strict=True):
        assert entry.verdict == "pass" and entry.autograd == exact
        assert entry.compared_verdict == "fail"
        assert entry.compared_autograd == pytest.approx(exact * 1.001, rel=1e-15)
        assert entry.device_difference == pytest.approx(-exact * 0.001, rel=1e-9)
        assert entry.compared_detail
    hessian = [e for e in report.entries if e.kind == "hessian"]
    assert all(e.compared_verdict == "pass" and e.device_difference == 0.0 for e in hessian)


def test_entries_read_the_same_from_columns_and_from_objects(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _wrong_second_device(monkeypatch, -1.0)
    report = check(
        "sin(x)*exp(y)",
        samples=50,
        dtype="float32",
        device="cpu",
        nodes=True,
        compare_devices=["cpu", "cpu"],
    )
    from_columns = report.to_dict()["entries"]
    assert [entry.to_dict() for entry in report.entries] == from_columns
    flipped = [e for e in from_columns if e["kind"] == "gradient" and e["autograd"] != 0]
    assert flipped and all(e["compared_verdict"] == "fail" for e in flipped)
    assert all(e["device_difference"] == 2 * e["autograd"] for e in flipped)


def test_nan_on_one_device_is_a_difference(monkeypatch: pytest.MonkeyPatch) -> None:
    _wrong_second_device(monkeypatch, math.nan)
    report = check(SEED, at={"x": 2, "y": 1}, device="cpu", compare_devices=["cpu", "cpu"])
    assert report.compared is not None
    assert report.compared["counts"] == {"pass": 4, "nonfinite": 2}
    assert report.compared["differing"] == 2
    # The largest difference is over the entries where both devices computed a number.
    assert report.compared["max_abs_difference"] == 0.0
    assert report.to_dict()["entries"][0]["device_difference"] == "nan"


def test_compared_names() -> None:
    assert compared_names(False) is None and compared_names(None) is None
    assert compared_names(True) == ["cuda", "cpu"]
    assert compared_names(True, "cuda:1") == ["cuda:1", "cpu"]
    assert compared_names(["cpu", "cuda"], "cpu") == ["cpu", "cuda"]
    assert compared_names(("cuda:0", "cuda:1")) == ["cuda:0", "cuda:1"]


@pytest.mark.parametrize(
    ("devices", "device", "message"),
    [
        ("cuda", "auto", "not the text 'cuda'"),
        (["cuda"], "auto", "give two devices"),
        (["cuda", "cpu", "cpu"], "auto", "give two devices"),
        (["cuda", "tpu"], "auto", "unknown device 'tpu'"),
        (["auto", "cpu"], "auto", "unknown device 'auto'"),
        (True, "cpu", "device 'cpu' and compare_devices ['cuda', 'cpu'] disagree"),
    ],
)
def test_bad_device_pairs_are_refused(devices: object, device: str, message: str) -> None:
    with pytest.raises(OptionError, match=message.replace("[", r"\[").replace("]", r"\]")):
        check(SEED, at={"x": 1, "y": 1}, device=device, compare_devices=devices)  # type: ignore[arg-type]


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_without_cuda_a_comparison_with_cuda_says_so() -> None:
    with pytest.raises(OptionError, match="compare_devices: .*CUDA is not available here"):
        check(SEED, at={"x": 1, "y": 1}, compare_devices=True)
