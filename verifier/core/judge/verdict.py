"""Verdicts: their names, their order, what each means, how each is shown, and which fail.

This table is the one place these facts live; the report, the CLI, the API's query schema and
the service's job verdict all derive from it (``docs/report-format.md`` explains each verdict).

>>> worst([Verdict.PASS, Verdict.RANGE, Verdict.ILL_CONDITIONED])
<Verdict.RANGE: 'range'>
>>> sorted(v.value for v in DEFAULT_FAIL_ON)
['fail', 'nonfinite']
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum


class Verdict(StrEnum):
    """One entry's verdict (``error`` is for a check that could not run)."""

    PASS = "pass"
    DOMAIN = "domain"
    UNDEFINED = "undefined"
    ILL_CONDITIONED = "ill-conditioned"
    RANGE = "range"
    UNVERIFIED = "unverified"
    NONFINITE = "nonfinite"
    FAIL = "fail"
    ERROR = "error"


@dataclass(frozen=True)
class VerdictInfo:
    """How a verdict is explained and shown."""

    meaning: str
    style: str
    colour: str
    """The verdict's colour on the report pages' charts (CSS hex)."""


VERDICTS: dict[Verdict, VerdictInfo] = {
    Verdict.PASS: VerdictInfo(
        "within the dtype's tolerance of the exact value", "green", "#2f9e44"
    ),
    Verdict.DOMAIN: VerdictInfo(
        "the expression itself is undefined or not real at the point", "dim", "#868e96"
    ),
    Verdict.UNDEFINED: VerdictInfo(
        "the derivative does not exist at the point (kink, jump, branch cut, pole)",
        "cyan",
        "#15aabf",
    ),
    Verdict.ILL_CONDITIONED: VerdictInfo(
        "outside the tolerance, explained by the rounding of the expression as written in this "
        "dtype, every operation being accurate",
        "yellow",
        "#f59f00",
    ),
    Verdict.RANGE: VerdictInfo(
        "an intermediate overflowed or underflowed, or the exact value is outside the dtype's "
        "range",
        "magenta",
        "#ae3ec9",
    ),
    Verdict.UNVERIFIED: VerdictInfo(
        "the exact value could not be certified; only a bound is known", "blue", "#4263eb"
    ),
    Verdict.NONFINITE: VerdictInfo(
        "autograd gave nan or inf where the exact value is finite and no range event explains it",
        "bold red",
        "#e8590c",
    ),
    Verdict.FAIL: VerdictInfo(
        "wrong beyond what rounding explains: a locally inaccurate operation or derivative rule",
        "bold red",
        "#e03131",
    ),
    Verdict.ERROR: VerdictInfo("the check could not run; the reason says why", "red", "#862e2e"),
}
"""Every verdict, best first: a check's verdict is the worst of its entries."""

VERDICT_ORDER: tuple[Verdict, ...] = tuple(VERDICTS)
_RANK: dict[str, int] = {str(verdict): place for place, verdict in enumerate(VERDICT_ORDER)}

DEFAULT_FAIL_ON: frozenset[Verdict] = frozenset({Verdict.FAIL, Verdict.NONFINITE})
"""Verdicts that make an exit code 1 unless ``--fail-on`` says otherwise."""

STRICT_FAIL_ON: frozenset[Verdict] = frozenset(
    set(VERDICT_ORDER) - {Verdict.PASS, Verdict.DOMAIN, Verdict.ERROR}
)
"""``--strict``: everything but ``pass`` and ``domain`` fails (``error`` is exit code 2)."""


def parse_verdict(name: object) -> Verdict:
    """The verdict called ``name``; a ValueError naming the choices otherwise."""
    try:
        return Verdict(str(name).strip())
    except ValueError:
        choices = ", ".join(VERDICT_ORDER)
        raise ValueError(f"unknown verdict {name!r}: choose from {choices}") from None


def fail_on_set(names: Iterable[str] | None = None, *, strict: bool = False) -> frozenset[Verdict]:
    """The verdicts that fail: ``names`` if given, else the strict or default set."""
    if names is not None:
        chosen = frozenset(parse_verdict(name) for name in names)
        return chosen | (STRICT_FAIL_ON if strict else frozenset())
    return STRICT_FAIL_ON if strict else DEFAULT_FAIL_ON


def worst(verdicts: Iterable[str]) -> Verdict:
    """The worst of ``verdicts`` (``pass`` for none; an unknown name counts as ``error``)."""
    result = Verdict.PASS
    for name in verdicts:
        verdict = Verdict(name) if name in _RANK else Verdict.ERROR
        if rank(verdict) > rank(result):
            result = verdict
    return result


def rank(name: str) -> int:
    """The place of verdict ``name`` from best (0) to worst (an unknown name ranks as error)."""
    return _RANK.get(str(name), _RANK[Verdict.ERROR])


def passes(verdict: str, entry_verdicts: Iterable[str], fail_on: Iterable[str]) -> bool:
    """Whether a check passed: it ran (its ``verdict`` is not ``error``, nor unknown) and none
    of its entries has a verdict of ``fail_on``."""
    if worst([verdict]) is Verdict.ERROR:
        return False
    failing = {str(v) for v in fail_on}
    return not any(str(v) in failing for v in entry_verdicts)


def ordered_counts(found: Mapping[str, int]) -> dict[str, int]:
    """Counts per verdict in table order, zeros left out; a name outside the table (never
    written by this code) is kept, last, rather than lost."""
    ordered = {str(v): found[v] for v in VERDICT_ORDER if found.get(v)}
    ordered.update({str(k): n for k, n in found.items() if n and str(k) not in ordered})
    return ordered
