"""CheckOptions: a check's options validated and resolved once (verifier/core/options.py).

Sources: the default tolerances per dtype are docs/report-format.md's table (64 ulps for float64
and float32, with atol the dtype's smallest normal number); IEEE 754 gives float32's
epsilon 2**-23 and smallest normal 2**-126; the default and strict fail-on sets are
verifier/core/judge/verdict.py's table, as docs/report-format.md states them.
"""

from __future__ import annotations

import inspect
import pickle
from typing import get_type_hints

import pytest

from verifier.core.options import (
    STORED_OPTIONS,
    CheckOptions,
    OptionFields,
    compared_names,
    option_names,
)
from verifier.errors import OptionError


def test_the_defaults_are_float64_auto_gradient_and_hessian_failing_on_fail_and_nonfinite() -> None:
    options = CheckOptions.of()
    assert options.dtype.name == "float64"
    assert options.device == "auto"
    assert (options.hessian, options.nodes, options.strict) == (True, False, False)
    assert options.failing_names == ["fail", "nonfinite"]
    assert options.compare_devices is None
    assert options == CheckOptions()  # the dataclass's defaults are the same


def test_the_dtype_is_resolved_to_its_format_and_tolerance() -> None:
    options = CheckOptions.of(dtype="float32")
    assert options.dtype.mantissa_bits == 24  # IEEE 754 binary32
    # 64 ulps of float32: 64 * 2**-23 = 2**-17; atol the smallest normal, 2**-126.
    assert options.tolerance.rtol == 2.0**-17
    assert options.tolerance.atol == 2.0**-126


def test_a_given_rtol_overrides_the_dtypes_and_is_kept_as_given() -> None:
    options = CheckOptions.of(dtype="float32", rtol=1e-3)
    assert options.rtol == 1e-3 and options.tolerance.rtol == 1e-3
    assert options.tolerance.atol == 2.0**-126  # atol keeps the dtype's default


def test_rtol_ulps_is_resolved_to_the_relative_rtol_of_the_dtype() -> None:
    # 64 ulps of float32 at 1.0: 64 * 2**-23 = 2**-17 (IEEE 754 binary32's epsilon 2**-23).
    options = CheckOptions.of(dtype="float32", rtol_ulps=64)
    assert options.rtol == 2.0**-17 and options.tolerance.rtol == 2.0**-17
    assert options.tolerance.ulps == 64
    # Resolved once: what is stored is the relative rtol, and it comes back the same.
    assert options.stored()["rtol"] == 2.0**-17
    assert CheckOptions.from_stored(options.stored()) == options
    assert CheckOptions.of(rtol_ulps=0).tolerance.rtol == 0.0


def test_strict_is_folded_into_fail_on_once() -> None:
    assert CheckOptions.of(strict=True).failing_names == [
        "fail",
        "ill-conditioned",
        "nonfinite",
        "range",
        "undefined",
        "unverified",
    ]
    # strict adds to a given fail_on
    assert set(CheckOptions.of(fail_on=["range"], strict=True).failing_names) >= {"range", "fail"}
    assert CheckOptions.of(fail_on=["range"]).failing_names == ["range"]


def test_compare_devices_true_is_cuda_against_the_cpu() -> None:
    assert CheckOptions.of(compare_devices=True).compare_devices == ("cuda", "cpu")
    assert CheckOptions.of(compare_devices=["cpu", "cpu"]).compare_devices == ("cpu", "cpu")
    assert compared_names(True, "cuda:1") == ["cuda:1", "cpu"]


@pytest.mark.parametrize(
    ("given", "option", "words"),
    [
        ({"dtype": "float8"}, "dtype", "unknown dtype 'float8'"),
        ({"device": "tpu"}, "device", "unknown device 'tpu'"),
        ({"nodes": "yes"}, "nodes", "true or false"),
        ({"samples": 0}, "samples", "positive integer"),
        ({"domain": {"x": (0, 1)}}, "domain", "without samples"),
        ({"seed": -1}, "seed", "seed must be an integer"),
        ({"rtol": -1.0}, "rtol", "rtol must be a non-negative number below 1"),
        ({"rtol": 64}, "rtol", "rtol must be a non-negative number below 1, .* give rtol_ulps"),
        ({"rtol": 1.0}, "rtol", "rtol must be a non-negative number below 1"),
        ({"rtol": float("nan")}, "rtol", "rtol must be a non-negative number below 1"),
        ({"rtol": "1e-3"}, "rtol", "rtol must be a non-negative number below 1"),
        ({"rtol_ulps": -1}, "rtol_ulps", "rtol_ulps must be a non-negative number below"),
        ({"rtol_ulps": float("nan")}, "rtol_ulps", "rtol_ulps must be"),
        # float16's unit at 1.0 is 2**-10 (IEEE 754 binary16): 1024 ulps would be rtol 1.
        ({"dtype": "float16", "rtol_ulps": 1024}, "rtol_ulps", "below 1024 .*float16"),
        ({"rtol": 1e-3, "rtol_ulps": 64}, "rtol_ulps", "rtol or rtol_ulps, not both"),
        ({"atol": float("inf")}, "atol", "atol must be"),
        ({"fail_on": ["wrong"]}, "fail_on", "wrong"),
        ({"compare_devices": ["cuda"]}, "compare_devices", "give two devices"),
        ({"device": "cpu", "compare_devices": ["cuda", "cpu"]}, "compare_devices", "disagree"),
        ({"symbolic_timeout_s": 0}, "symbolic_timeout_s", "positive number of seconds"),
    ],
)
def test_a_bad_option_is_refused_naming_it(given: OptionFields, option: str, words: str) -> None:
    with pytest.raises(OptionError, match=words) as refused:
        CheckOptions.of(**given)
    assert refused.value.option == option


def test_an_option_error_pickles_with_the_option_it_names() -> None:
    # Errors cross from the sandbox process to the check's as pickles.
    error = OptionError("rtol must be a non-negative number", option="rtol")
    assert pickle.loads(pickle.dumps(error)).option == "rtol"


def test_stored_options_come_back_the_same() -> None:
    options = CheckOptions.of(
        dtype="bfloat16",
        device="cpu",
        nodes=True,
        hessian=False,
        samples=3,
        domain={"x": (-2.0, 2.0)},
        seed=7,
        rtol=1e-2,
        strict=True,
        compare_devices=["cpu", "cpu"],
    )
    stored = options.stored()
    assert list(stored) == list(STORED_OPTIONS)
    assert CheckOptions.from_stored(stored) == options


def test_a_stored_row_from_before_an_option_existed_gets_its_default() -> None:
    # Rows stored before fail_on and compare_devices existed hold NULL for them.
    stored = {**CheckOptions.of(strict=True).stored(), "fail_on": None, "compare_devices": None}
    options = CheckOptions.from_stored(stored)
    assert options.failing_names == CheckOptions.of(strict=True).failing_names
    assert options.compare_devices is None


def test_every_way_to_give_options_names_the_same_options() -> None:
    names = option_names()
    assert set(get_type_hints(OptionFields)) == set(names)
    parameters = inspect.signature(CheckOptions.of).parameters
    assert list(parameters) == list(names)
    assert set(STORED_OPTIONS) <= set(names)
    # rtol_ulps is resolved into rtol where the options are built: it is never stored.
    assert set(names) - set(STORED_OPTIONS) == {
        "rtol_ulps",
        "symbolic_timeout_s",
        "reference_timeout_s",
    }


def test_options_and_options_by_name_together_are_refused() -> None:
    from verifier.core.check import check

    with pytest.raises(OptionError, match="not both"):
        check("x**2", {"x": 1}, options=CheckOptions.of(), dtype="float32")


@pytest.mark.parametrize("name", ["cuda:٣", "cuda:128", "cuda:" + "9" * 38, "cuda:", "cuda:-1"])
def test_a_device_index_torch_would_refuse_or_wrap_is_refused(name: str) -> None:
    # torch refuses non-ASCII digits ("Invalid device string") and keeps the index in an
    # 8-bit signed integer: torch.device("cuda:128") is cuda:-128.
    with pytest.raises(OptionError, match="compare_devices: unknown device") as refused:
        CheckOptions.of(compare_devices=[name, "cpu"])
    assert refused.value.option == "compare_devices"
    with pytest.raises(OptionError, match="unknown device"):
        CheckOptions.of(device=name)


def test_the_largest_cuda_index_torch_holds_is_a_device() -> None:
    assert CheckOptions.of(device="cuda:127").device == "cuda:127"
