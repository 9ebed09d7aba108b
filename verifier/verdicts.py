"""Verdict names and their order, worst last, as in docs/report-format.md."""

from __future__ import annotations

from collections.abc import Iterable

from verifier.core.report import VERDICT_ORDER

__all__ = ["VERDICT_ORDER", "worst_verdict"]

_RANK = {name: rank for rank, name in enumerate(VERDICT_ORDER)}


def worst_verdict(verdicts: Iterable[str]) -> str | None:
    """The worst of ``verdicts`` (an unknown name counts as ``error``); None when empty."""
    worst: str | None = None
    for verdict in verdicts:
        name = verdict if verdict in _RANK else "error"
        if worst is None or _RANK[name] > _RANK[worst]:
            worst = name
    return worst
