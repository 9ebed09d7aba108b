"""The check page of a report of any size reads a bounded sample, over real HTTP.

docs/hostile-load.md: the check page of a report of 1,121,000 entries (a 1,000-point,
32-variable check) took 49 s, answered 20 MB of HTML and grew the API by 736 MB: it decoded
100,000 entries and drew 32 scatter plots of 4,000 marks each. Here a report of that size is
stored directly through the store's block writer (``blocks.encode``, one block written once
and stored again under every block number, as a worker's blocks would be), not by running
checks.
"""

from __future__ import annotations

import re
import time
import tracemalloc
import uuid
from collections.abc import Callable
from typing import Any

import httpx
from slowness import SLOWNESS
from sqlalchemy.orm import Session

from verifier.config import MAX_REPORT_PAGE_ENTRIES
from verifier.service import pages
from verifier.service.reports import ENTRY_PLACES, decode_cursor
from verifier.store import blocks, repository
from verifier.store.documents import report_row
from verifier.store.models import ReportBlock

VARIABLES = [f"x{n}" for n in range(32)]
POINTS = 1000
BIG_BLOCKS = 274  # 274 blocks of 4,096: 1,122,304 entries, the size measured before
FAILING_EVERY = 97  # in the blocks that fail, every 97th entry fails
FAILING_BLOCKS = (0, 5, 6, 100, 150, 273)  # their counts: see _block below
PAGE_BYTES = 3_000_000
"""A bounded page: 8,000 scatter marks of about 230 bytes, 100 table rows, a 12 x 12 matrix."""


def _entry(n: int, failing: bool) -> dict[str, Any]:
    """Entry ``n`` of a block: a gradient or a Hessian element of the 32 variables, at point
    n mod 1000, shaped like the core's entries (docs/report-format.md)."""
    first = VARIABLES[n % len(VARIABLES)]
    hessian = n % 3 == 0
    error = 4.0 + n % 50 if failing else 0.25 * (n % 4)
    return {
        "kind": "hessian" if hessian else "gradient",
        "wrt": [first, VARIABLES[(n // 3) % len(VARIABLES)]] if hessian else [first],
        "node": None,
        "point": n % POINTS,
        "autograd": 6.0,
        "reference": 6.0,
        "reference_radius": 0.0,
        "abs_error": error * 8.9e-16,
        "rel_error": error * 1.5e-16,
        "ulp_error": error,
        "tolerance": 6e-14,
        "verdict": "fail" if failing else "pass",
        "ratio": error / 64,
        "condition": 1.0,
        "correct_bits": 50.0,
        "blame": "mul" if failing else None,
        "phase": "backward" if failing else None,
        "detail": None,
    }


def _block(failing_every: int | None) -> tuple[bytes, int]:
    """One block's bytes through the store's block writer, and its failing entries."""
    entries = [
        _entry(n, failing_every is not None and n % failing_every == 0)
        for n in range(blocks.BLOCK_ENTRIES)
    ]
    failing = sum(entry["verdict"] != "pass" for entry in entries)
    return blocks.encode(entries, {"rtol": 1e-14, "atol": 0.0}, "float64"), failing


def _store_big_report(
    client: httpx.Client, session: Session, make_report_document: Callable[..., Any]
) -> tuple[str, str, int, int]:
    """A job with one check whose report holds BIG_BLOCKS blocks; its job id, check id, and
    the report's entries and failing entries."""
    accepted = client.post(
        "/jobs", json={"checks": [{"expression": "sin(x)", "points": [{"x": 1}]}]}
    )
    assert accepted.status_code == 202, accepted.text
    job_id = accepted.json()["id"]
    (check,) = repository.checks_of_job(session, uuid.UUID(job_id))
    document = make_report_document("sin(x)", "fail")
    document["entries"] = []
    document["variables"] = VARIABLES
    document["points"] = [
        {name: float(n + index) / 7 for index, name in enumerate(VARIABLES)} for n in range(POINTS)
    ]
    passing, _ = _block(None)
    failing, failing_count = _block(FAILING_EVERY)
    row = report_row(check, document)
    row.blocks = [
        ReportBlock(
            number=number,
            first_entry=number * blocks.BLOCK_ENTRIES,
            entries=blocks.BLOCK_ENTRIES,
            failing=failing_count if number in FAILING_BLOCKS else 0,
            data=failing if number in FAILING_BLOCKS else passing,
        )
        for number in range(BIG_BLOCKS)
    ]
    total = BIG_BLOCKS * blocks.BLOCK_ENTRIES
    row.document = {
        **row.document,
        "counts": {
            "pass": total - failing_count * len(FAILING_BLOCKS),
            "fail": failing_count * len(FAILING_BLOCKS),
        },
    }
    assert repository.insert_report(session, row)
    session.commit()
    return job_id, str(check.id), total, failing_count * len(FAILING_BLOCKS)


def test_the_check_page_of_a_million_entry_report_reads_a_bounded_sample_and_says_so(
    client: httpx.Client,
    session: Session,
    make_report_document: Callable[..., Any],
    monkeypatch: Any,
) -> None:
    job_id, check_id, total, failing = _store_big_report(client, session, make_report_document)
    decoded: list[int] = []
    real_decode = blocks.decode

    def counting(data: bytes) -> list[dict[str, Any]]:
        found = real_decode(data)
        decoded.append(len(found))
        return found

    # Every reader of stored blocks decodes through blocks.decode (the pages by name).
    monkeypatch.setattr(blocks, "decode", counting)
    monkeypatch.setattr(pages, "decode", counting, raising=False)
    tracemalloc.start()
    started = time.monotonic()
    answer = client.get(f"/ui/checks/{check_id}")
    elapsed = time.monotonic() - started
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert answer.status_code == 200, answer.text[:2000]
    html = answer.text

    # Bounded: the first block and the three with the most failing entries (all equal here,
    # so the earliest: 5, 6 and 100), and nothing else of the report's 274.
    assert len(decoded) <= pages.SAMPLE_BLOCKS == 4
    assert sum(decoded) <= pages.MAX_PAGE_ENTRIES == 4 * 4096
    assert len(answer.content) < PAGE_BYTES, f"the page is {len(answer.content) / 1e6:.1f} MB"
    assert peak < 200_000_000, f"the API allocated {peak / 1e6:.0f} MB at its peak"
    # Before: 49 s on the development machine; the sample is a few blocks' work, scaled
    # (13.8 s was seen with the suite's other process and its fault workers on the same 2
    # cores against a bound of 11: the bound leaves that room and stays far below 49 s).
    assert elapsed < 20.0 * SLOWNESS, f"the page took {elapsed:.1f} s"

    # The page says how many entries exist (1,122,304, from BIG_BLOCKS) and how many it read.
    assert total == 1_122_304
    assert re.search(r'id="entries-total">1,122,304<', html)
    assert re.search(r'id="entries-read">16,384<', html)
    assert f"{failing:,} not passing" in html
    # Plots against the first 8 of the 32 variables only, and a 12 x 12 Hessian at most.
    assert html.count('class="scatter"') == pages.MAX_PLOTTED_VARIABLES
    assert "the first 8 of\nthe 32 input variables" in html
    assert html.count("data-row=") <= pages.MAX_HESSIAN_VARIABLES**2
    # The worst entries are the sampled failing ones, worst first.
    rows = re.findall(r'<tr class="entry" data-verdict="(\w+)"', html)
    assert rows == ["fail"] * pages.WORST_ENTRIES_SHOWN

    # The links lead to the paged JSON report of this check, every entry or the failing ones.
    links = dict(re.findall(r'<a id="(every-entry|failing-entries)" href="([^"]+)"', html))
    expected = {"all": MAX_REPORT_PAGE_ENTRIES, "failing": failing}  # every failing one: 258
    for name, selection in (("every-entry", "all"), ("failing-entries", "failing")):
        url = links[name].replace("&amp;", "&")
        assert url.startswith(f"/jobs/{job_id}/report?entries={selection}&")
        report = client.get(url)
        assert report.status_code == 200, report.text[:500]
        page = report.json()
        assert page["checks"][0]["check"] == check_id
        assert len(page["checks"][0]["entries"]) == expected[selection]
        cursor = httpx.URL(url).params["cursor"]
        assert divmod(decode_cursor(cursor, "e", ENTRY_PLACES**2), ENTRY_PLACES) == (0, 0)
    monkeypatch.undo()


def test_a_small_report_is_shown_whole_without_a_sampling_note(
    client: httpx.Client, session: Session, make_report_document: Callable[..., Any]
) -> None:
    accepted = client.post(
        "/jobs", json={"checks": [{"expression": "sin(x)", "points": [{"x": 1}]}]}
    )
    job_id = accepted.json()["id"]
    (check,) = repository.checks_of_job(session, uuid.UUID(job_id))
    assert repository.insert_report(
        session, report_row(check, make_report_document("sin(x)", "pass"))
    )
    session.commit()
    html = client.get(f"/ui/checks/{check.id}").text
    assert re.search(r'id="entries-total">1<', html)
    assert 'id="entries-read"' not in html and 'id="every-entry"' not in html
    assert html.count('class="scatter"') == 1
