"""The CLI's tables show what a user wrote as text, never as Rich markup."""

from __future__ import annotations

import io

from rich.console import Console

from verifier.cli.render import job_table

JOB = {
    "id": "0b7d5f2e-0000-0000-0000-000000000000",
    "status": "done",
    "verdict": "pass",
    "passed": True,
    "progress": {"done": 1, "total": 1},
    "created_at": "2026-12-07T16:00:00Z",
    "finished_at": "2026-12-07T16:00:01Z",
}


def _shown(job: dict[str, object]) -> str:
    out = io.StringIO()
    Console(file=out, width=120, color_system=None).print(job_table(job))
    return out.getvalue()


def test_a_label_that_looks_like_markup_is_shown_as_written() -> None:
    # "[/bold]" closes a tag that was never opened: as markup, Rich raises MarkupError.
    label = "[/bold] nightly [red]run[/red]"
    assert label in _shown({**JOB, "label": label})


def test_a_job_without_a_label_shows_a_dash() -> None:
    assert "label" in _shown({**JOB, "label": None})
