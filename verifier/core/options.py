"""A check's options: one frozen object, validated and resolved once where a request enters.

``check()``, ``check_function()``, the pytest plugin, the CLI and the worker build a
:class:`CheckOptions` with :meth:`CheckOptions.of` from the options a user gave by name
(:class:`OptionFields`); the rest of the core takes it resolved: the dtype object, the
tolerance, the set of failing verdicts (``strict`` folded in) and the devices a compared check
runs on. The service's request schema and its stored columns carry :data:`STORED_OPTIONS`
by these same names (a test compares them name by name), and :meth:`CheckOptions.stored` is
what it stores. Torch-free: the API validates with it.

>>> options = CheckOptions.of(dtype="float32", strict=True)
>>> options.dtype.name, options.tolerance.ulps, options.failing_names[:2]
('float32', 64.0, ['fail', 'ill-conditioned'])
>>> CheckOptions.of(device="tpu")
Traceback (most recent call last):
...
verifier.errors.OptionError: unknown device 'tpu': choose one of auto, cpu, cuda

``rtol`` is relative; a tolerance in units in the last place is ``rtol_ulps``, resolved here
into the relative ``rtol`` (ulps x the dtype's epsilon) and never stored as such:

>>> CheckOptions.of(dtype="float32", rtol_ulps=64).rtol == 64 * 2.0**-23
True
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import Any, TypedDict

from verifier.core.exact.sandbox import DEFAULT_SYMBOLIC_TIMEOUT_S
from verifier.core.floats.dtypes import CONCRETE, DEVICES, DTYPES, DType, get_dtype, is_device
from verifier.core.floats.points import check_samples
from verifier.core.judge.tolerance import Tolerance, make_tolerance
from verifier.core.judge.verdict import DEFAULT_FAIL_ON, Verdict, fail_on_set
from verifier.core.program.modes import DEFAULT_MODES, parse_modes
from verifier.errors import OptionError

DEFAULT_PAIR = ("cuda", "cpu")
"""What ``compare_devices=True`` compares: the GPU under test, then the CPU."""
CompareDevices = bool | Sequence[str] | None
"""``compare_devices`` as given: False or None (one device), True (:data:`DEFAULT_PAIR`),
or the two devices, the report's first."""
MAX_RTOL = 1.0
"""``rtol`` is below this: a relative tolerance of 1 allows any value of the right sign."""
MAX_SEED = 2**31 - 1
"""Largest seed of the sampler (the service stores seeds in a 32-bit integer column)."""
STORED_OPTIONS = (
    "dtype",
    "device",
    "nodes",
    "hessian",
    "samples",
    "domain",
    "seed",
    "rtol",
    "atol",
    "strict",
    "fail_on",
    "compare_devices",
    "modes",
    "compare_batch",
)
"""The options a request to the service may carry and a stored check keeps, by name; the two
time budgets are the runner's, not the request's, and ``rtol_ulps`` is resolved into ``rtol``."""
GIVEN_ONLY = {"rtol_ulps": "rtol"}
"""Options a user may give that :meth:`CheckOptions.of` resolves into another field (the key
into its value), so no :class:`CheckOptions` field holds them."""


class OptionFields(TypedDict, total=False):
    """The options of a check by name, as a user gives them (each optional)."""

    dtype: str | DType
    device: str
    nodes: bool
    hessian: bool
    samples: int | None
    domain: Mapping[str, tuple[float, float]] | None
    seed: int
    rtol: float | None
    rtol_ulps: float | None
    atol: float | None
    strict: bool
    fail_on: Iterable[str] | None
    compare_devices: CompareDevices
    modes: str | Sequence[str] | None
    compare_batch: bool
    symbolic_timeout_s: float
    reference_timeout_s: float | None


@dataclass(frozen=True)
class CheckOptions:
    """Every option of one check, validated and resolved.

    Attributes:
        dtype: the floating-point format autograd runs in (``float64`` by default).
        device: ``auto`` (CUDA when available), ``cpu``, ``cuda`` or ``cuda:N``; resolved to a
            torch device only where the check runs.
        nodes: also compare the gradient of every non-leaf node.
        hessian: also compare all second derivatives.
        samples: also draw this many points uniformly from ``domain``.
        domain: variable to (low, high) for sampling; default -1..1 per variable.
        seed: seed of the sampler.
        rtol, atol: the tolerance as given (None: the dtype's default), ``rtol`` relative
            (below 1; given as ``rtol_ulps``, that many ulps of the dtype at 1.0);
            :attr:`tolerance` is the resolved one.
        strict: fail on every verdict but ``pass`` and ``domain``.
        fail_on: the verdicts that make a check fail, ``strict`` included (default ``fail``
            and ``nonfinite``).
        compare_devices: the report's device and a second one that autograd also runs on,
            both judged against the same references; None for one device.
        modes: the derivative paths judged, by name (:mod:`verifier.core.program.modes`);
            the default ones always run (the value, node gradients and the local audit rest
            on them), each further one adds an item to the report's ``paths``.
        compare_batch: also run the default paths one point at a time, each an item of the
            report's ``paths`` (torch's vectorised and scalar kernels can round differently).
        symbolic_timeout_s: budget of SymPy's derivatives; past it the verdict is ``error``.
        reference_timeout_s: the most the certified references may take (None: growing with
            the values).
        tolerance: the resolved tolerance of :attr:`dtype` with ``rtol``/``atol``.
    """

    dtype: DType = DTYPES["float64"]
    device: str = "auto"
    nodes: bool = False
    hessian: bool = True
    samples: int | None = None
    domain: Mapping[str, tuple[float, float]] | None = None
    seed: int = 0
    rtol: float | None = None
    atol: float | None = None
    strict: bool = False
    fail_on: frozenset[Verdict] = DEFAULT_FAIL_ON
    compare_devices: tuple[str, str] | None = None
    modes: tuple[str, ...] = DEFAULT_MODES
    compare_batch: bool = False
    symbolic_timeout_s: float = DEFAULT_SYMBOLIC_TIMEOUT_S
    reference_timeout_s: float | None = None
    tolerance: Tolerance = field(init=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "tolerance", make_tolerance(self.dtype, self.rtol, self.atol))

    @classmethod
    def of(
        cls,
        *,
        dtype: str | DType = "float64",
        device: str = "auto",
        nodes: bool = False,
        hessian: bool = True,
        samples: int | None = None,
        domain: Mapping[str, tuple[float, float]] | None = None,
        seed: int = 0,
        rtol: float | None = None,
        rtol_ulps: float | None = None,
        atol: float | None = None,
        strict: bool = False,
        fail_on: Iterable[str] | None = None,
        compare_devices: CompareDevices = False,
        modes: str | Sequence[str] | None = None,
        compare_batch: bool = False,
        symbolic_timeout_s: float = DEFAULT_SYMBOLIC_TIMEOUT_S,
        reference_timeout_s: float | None = None,
    ) -> CheckOptions:
        """Validate and resolve the options given by name (:class:`OptionFields`).

        ``rtol`` is a relative tolerance, from 0 to below 1; ``rtol_ulps`` the same tolerance
        in units in the last place of ``dtype`` at 1.0, resolved to ``rtol`` here (at most
        one of the two).

        Raises:
            OptionError: an option is invalid; the message names it and ``error.option`` is
                its name.
        """
        fmt = dtype if isinstance(dtype, DType) else _option("dtype", get_dtype, dtype)
        if not isinstance(device, str) or not (device == "auto" or is_device(device)):
            raise OptionError(
                f"unknown device {device!r}: choose one of {', '.join(DEVICES)}", option="device"
            )
        flags = (("nodes", nodes), ("hessian", hessian), ("strict", strict))
        for name, flag in (*flags, ("compare_batch", compare_batch)):
            if not isinstance(flag, bool):
                raise OptionError(f"{name} must be true or false, not {flag!r}", option=name)
        if samples is not None:
            _option("samples", check_samples, samples)
        elif domain is not None:
            raise OptionError("domain is given without samples", option="domain")
        if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= MAX_SEED:
            raise OptionError(f"seed must be an integer from 0 to {MAX_SEED}", option="seed")
        rtol = relative_tolerance(fmt, rtol, rtol_ulps)
        for name, tolerance in (("rtol", {"rtol": rtol}), ("atol", {"atol": atol})):
            _option(name, lambda given: make_tolerance(fmt, **given), tolerance)
        if isinstance(fail_on, str):
            fail_on = [fail_on]
        try:
            failing = fail_on_set(fail_on, strict=strict)
        except ValueError as error:
            raise OptionError(f"fail_on: {error}", option="fail_on") from None
        pair = _option(
            "compare_devices", lambda given: compared_names(given, device), compare_devices
        )
        chosen_modes = DEFAULT_MODES if modes is None else tuple(m.name for m in parse_modes(modes))
        for name, budget in (
            ("symbolic_timeout_s", symbolic_timeout_s),
            ("reference_timeout_s", reference_timeout_s),
        ):
            if budget is not None and not (isinstance(budget, int | float) and budget > 0):
                raise OptionError(f"{name} must be a positive number of seconds", option=name)
        return cls(
            dtype=fmt,
            device=device,
            nodes=nodes,
            hessian=hessian,
            samples=samples,
            domain=None if domain is None else dict(domain),
            seed=seed,
            rtol=None if rtol is None else float(rtol),
            atol=None if atol is None else float(atol),
            strict=strict,
            fail_on=failing,
            compare_devices=None if pair is None else (pair[0], pair[1]),
            modes=chosen_modes,
            compare_batch=compare_batch,
            symbolic_timeout_s=float(symbolic_timeout_s),
            reference_timeout_s=None if reference_timeout_s is None else float(reference_timeout_s),
        )

    @classmethod
    def from_stored(
        cls,
        stored: Mapping[str, Any],
        *,
        symbolic_timeout_s: float = DEFAULT_SYMBOLIC_TIMEOUT_S,
        reference_timeout_s: float | None = None,
    ) -> CheckOptions:
        """The options of a stored check (:data:`STORED_OPTIONS`; a missing or null one is
        its default), with the runner's time budgets."""
        given: dict[str, Any] = {
            name: stored[name] for name in STORED_OPTIONS if stored.get(name) is not None
        }
        if "domain" in given:
            domain = {
                name: (float(low), float(high)) for name, (low, high) in given["domain"].items()
            }
            given["domain"] = domain or None
        return cls.of(
            **given,
            symbolic_timeout_s=symbolic_timeout_s,
            reference_timeout_s=reference_timeout_s,
        )

    def stored(self) -> dict[str, Any]:
        """The options as the service stores them (JSON values, :data:`STORED_OPTIONS`)."""
        return {
            "dtype": self.dtype.name,
            "device": self.device,
            "nodes": self.nodes,
            "hessian": self.hessian,
            "samples": self.samples,
            "domain": None
            if self.domain is None
            else {name: [low, high] for name, (low, high) in self.domain.items()},
            "seed": self.seed,
            "rtol": self.rtol,
            "atol": self.atol,
            "strict": self.strict,
            "fail_on": sorted(str(verdict) for verdict in self.fail_on),
            "compare_devices": None if self.compare_devices is None else list(self.compare_devices),
            "modes": list(self.modes),
            "compare_batch": self.compare_batch,
        }

    @property
    def failing_names(self) -> list[str]:
        """The names of :attr:`fail_on`, sorted (as reports list them)."""
        return sorted(str(verdict) for verdict in self.fail_on)


def option_names() -> tuple[str, ...]:
    """Every option's name, in the order of :class:`CheckOptions`, each of
    :data:`GIVEN_ONLY` after the field it is resolved into."""
    names: list[str] = []
    for f in fields(CheckOptions):
        if f.init:
            names.append(f.name)
            names.extend(given for given, into in GIVEN_ONLY.items() if into == f.name)
    return tuple(names)


def relative_tolerance(dtype: DType, rtol: Any, rtol_ulps: Any) -> float | None:
    """The relative tolerance given as ``rtol`` or as ``rtol_ulps`` (units in the last place
    of ``dtype`` at 1.0, times its epsilon), or None for the dtype's default.

    ``rtol`` and ``rtol_ulps`` are two units for one thing: the tolerance itself
    (:func:`verifier.core.judge.tolerance.make_tolerance`) takes the relative value.

    Raises:
        OptionError: both are given, or one is not a number in its range (negative, NaN,
            ``rtol`` 1 or more, ``rtol_ulps`` as many ulps as 1); ``error.option`` names it.
    """
    if rtol is not None and rtol_ulps is not None:
        raise OptionError(
            f"give rtol or rtol_ulps, not both (rtol={rtol!r}, rtol_ulps={rtol_ulps!r})",
            option="rtol_ulps",
        )
    if rtol is not None:
        if not _number_in(rtol, MAX_RTOL):
            raise OptionError(
                f"rtol must be a non-negative number below {MAX_RTOL:g}, a relative tolerance "
                f"(e.g. 1e-12), not {rtol!r}; for a tolerance in units in the last place of the "
                "dtype give rtol_ulps",
                option="rtol",
            )
        return float(rtol)
    if rtol_ulps is not None:
        most = MAX_RTOL / dtype.epsilon
        if not _number_in(rtol_ulps, most):
            raise OptionError(
                f"rtol_ulps must be a non-negative number below {most:g} (the ulps of "
                f"{dtype.name} at 1.0 in a relative tolerance of {MAX_RTOL:g}), "
                f"not {rtol_ulps!r}",
                option="rtol_ulps",
            )
        return float(rtol_ulps) * dtype.epsilon
    return None


def _number_in(value: Any, below: float) -> bool:
    """Whether ``value`` is a real number (not a bool) in ``[0, below)``; NaN is not."""
    return isinstance(value, int | float) and not isinstance(value, bool) and 0 <= value < below


def _option(name: str, resolve: Callable[[Any], Any], value: Any) -> Any:
    """``resolve(value)``; its OptionError (or a bad type's) says that option ``name`` is
    the one at fault (``error.option``)."""
    try:
        return resolve(value)
    except OptionError as error:
        error.option = name
        raise
    except (TypeError, ValueError) as error:
        raise OptionError(f"{name}: {error}", option=name) from None


def compared_names(compare_devices: CompareDevices, device: str = "auto") -> list[str] | None:
    """The two device names a check compares (the report's device first), or None.

    ``True`` is :data:`DEFAULT_PAIR` (with ``device`` first when it names one CUDA device);
    a pair of names is taken as given. The names are validated, not resolved: the API stores
    them and only a worker learns whether it has CUDA.
    """
    if compare_devices is None or compare_devices is False:
        return None
    if compare_devices is True:
        first = device if device.startswith("cuda") else DEFAULT_PAIR[0]
        names = [first, DEFAULT_PAIR[1]]
    elif isinstance(compare_devices, str):
        raise OptionError(
            f"compare_devices: give true or a list of two devices, not the text {compare_devices!r}"
        )
    else:
        names = [str(name) for name in compare_devices]
    if len(names) != 2:
        raise OptionError(f"compare_devices: give two devices (e.g. cuda, cpu), not {names}")
    for name in names:
        if not is_device(name):
            raise OptionError(
                f"compare_devices: unknown device {name!r}: choose two of {', '.join(CONCRETE)}"
            )
    if device not in ("auto", names[0]):
        raise OptionError(
            f"device {device!r} and compare_devices {names} disagree: the report's device is "
            "the first of compare_devices (or give device auto)"
        )
    return names
