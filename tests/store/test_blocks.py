"""Report entries in blocks (verifier/store/blocks.py): exact round trips, a bound on every
stored value whatever the report's size, and pages read across blocks on both databases.

Sources: [pg] PostgreSQL's limit of 1 GB for one field value ("Appendix K. PostgreSQL
Limits"); [limits] the parser's MAX_EXPRESSION_CHARS (2000) bounds every text an entry holds
(its node, its blame, and a detail that quotes at most the expression); the expected pages are
slices of the very list that was stored.
"""

from __future__ import annotations

import base64
import json
import random
import string
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy.orm import Session

from verifier import check
from verifier.config import Settings
from verifier.core.expression.syntax import MAX_EXPRESSION_CHARS
from verifier.delivery.execution import report_row
from verifier.service import jobs
from verifier.service.schemas import JobIn
from verifier.store import migrate, repository
from verifier.store.blocks import BLOCK_ENTRIES, blocks_of, decode, encode
from verifier.store.engine import make_engine, make_session_factory

POSTGRES_VALUE_LIMIT = 1024**3  # [pg]


def _as_stored(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [entry for block in blocks_of(entries) for entry in decode(block.data)]


def test_a_real_report_comes_back_exactly() -> None:
    report = check(
        "sin(x)*exp(y) + x*y*z**2 + log(1 + z**2)",
        samples=700,
        dtype="float32",
        domain={"x": (-3, 3), "y": (-3, 3), "z": (-3, 3)},
        nodes=True,
    )
    entries = json.loads(json.dumps(report.to_dict()["entries"]))
    assert len(entries) > 2 * BLOCK_ENTRIES  # several blocks, the last one partial
    assert json.dumps(_as_stored(entries)) == json.dumps(entries)


def test_entries_of_any_shape_come_back_as_they_were() -> None:
    odd: list[dict[str, Any]] = [
        {},
        {"kind": "gradient", "point": 1.5, "verdict": "pass", "future": [1, {"a": None}]},
        {"wrt": "x", "ratio": 3, "autograd": "inf", "abs_error": float("inf"), "point": True},
        {"wrt": ["x", "y"], "node": "sin(x)", "reference": -0.0, "rel_error": "nan"},
        {"point": 2**70, "detail": 5, "blame": ["n"], "correct_bits": None, "condition": 1e-310},
        {"autograd": "nan", "reference": None, "abs_error": None, "tolerance": 0.0},
    ]
    back = decode(encode(odd))
    assert [json.dumps(e, sort_keys=True) for e in back] == [
        json.dumps(e, sort_keys=True) for e in odd
    ]
    assert str(back[3]["reference"]) == "-0.0"


def test_no_stored_value_approaches_the_database_limit() -> None:
    # The worst legal block: every entry's texts as long as an expression may be, and all
    # different, from random letters that do not compress.
    rng = random.Random(7)

    def text() -> str:
        return "".join(rng.choices(string.ascii_letters, k=MAX_EXPRESSION_CHARS))

    worst = [
        {"kind": "node", "wrt": None, "node": text(), "point": n, "autograd": rng.random(),
         "verdict": "fail", "detail": text(), "blame": text(), "phase": "first backward"}
        for n in range(BLOCK_ENTRIES)
    ]  # fmt: skip
    (block,) = blocks_of(worst)
    assert block.entries == BLOCK_ENTRIES and block.failing == BLOCK_ENTRIES
    assert len(block.data) < 32 * 1024**2  # megabytes, against a limit of a gigabyte
    assert len(block.data) < POSTGRES_VALUE_LIMIT / 30
    assert decode(block.data) == worst


FORMAT_1_BLOCK = base64.b64decode(
    "AQMAAACVAAAAeJydjr1KA0EUhb/ExJ8HsLEatxDFDWhpEbOkiUTfIAmyZDfJQNiVnQWTyryE2IqPICJYCXa+gL21"
    "TVoLHWc2LmHBysNw75lz7p0zHWeY+IEMo9RxhTMKlZJ+ZGkUB6Hth6Im+rHanezZ24WvlO1yPK714yiQqYyjMLBS"
    "OgpFIIcyVcJPQjGOVSr8VBT3B3Fy6SfZfKfrTLpOb0ld0XWmVunBAG7gFu75xTVLGPcLXuA1V4Kiew4fsJ8r06zO"
    "c3cLvmE7d9/hCZq5a7ZOQebuFdTgLuM78AYnGbEQ9hufJm42w6XlsgkP0FpknYkqHMznj+02nsUzHIGXvUm9fmxC"
    "G42m51FEGUoFoVTWeqVSqWq9aojWa+sb2sA4WbF1cSz9j16M+ws/YiN8RQ=="
)
"""Three entries as format 1 (zlib, no predictions) wrote them: bytes made by the encoder of
commit dcff723, kept so that every format ever written stays readable."""
FORMAT_1_ENTRIES: list[dict[str, Any]] = [
    {"kind": "gradient", "wrt": ["x"], "node": None, "point": 0, "autograd": 14.0,
     "reference": 14.0, "reference_radius": 0.0, "abs_error": 0.0, "rel_error": 0.0,
     "ulp_error": 0.0, "tolerance": 1.9984014443252818e-13, "ratio": 0.0, "condition": 1.0,
     "correct_bits": 53.0, "verdict": "pass", "detail": None, "blame": None, "phase": None},
    {"kind": "hessian", "wrt": ["x", "y"], "node": None, "point": 0, "autograd": 2.0,
     "reference": 2.0, "reference_radius": 0.0, "abs_error": 0.0, "rel_error": 0.0,
     "ulp_error": 0.0, "tolerance": 2.842170943040401e-14, "ratio": 0.0, "condition": 1.0,
     "correct_bits": 53.0, "verdict": "pass", "detail": None, "blame": None, "phase": None},
    {"kind": "node", "wrt": None, "node": "1 - cos(x)", "point": 1, "autograd": 46.3,
     "reference": -8.33e-05, "reference_radius": 1e-30, "abs_error": 46.3000833,
     "rel_error": "inf", "ulp_error": None, "tolerance": 6.4e-10, "ratio": 7.29e10,
     "condition": 2.46e13, "correct_bits": 0.0, "verdict": "ill-conditioned",
     "detail": "the digits are lost at 1 - cos(x)", "blame": "1 - cos(x)", "phase": "forward"},
]  # fmt: skip


def test_blocks_written_in_format_1_still_read() -> None:
    assert FORMAT_1_BLOCK[0] == 1
    assert decode(FORMAT_1_BLOCK) == FORMAT_1_ENTRIES
    assert encode(FORMAT_1_ENTRIES)[0] == 2  # what is written now


def _report_entries(dtype: str) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    report = check(
        "sin(x)*exp(y) + x*y*z**2 + log(1 + z**2)",
        samples=400,
        dtype=dtype,
        domain={"x": (-3, 3), "y": (-3, 3), "z": (-3, 3)},
        nodes=True,
    )
    document = json.loads(json.dumps(report.to_dict()))
    return document["entries"], document


@pytest.mark.parametrize("dtype", ["float64", "float32", "bfloat16"])
def test_predicted_columns_come_back_exactly_with_any_hints(dtype: str) -> None:
    entries, document = _report_entries(dtype)
    wrong = {"rtol": 0.5, "atol": 3.0}
    for tolerance, hint in ((document["tolerance"], dtype), (None, None), (wrong, "float16")):
        stored = [e for b in blocks_of(entries, tolerance, hint) for e in decode(b.data)]
        assert json.dumps(stored) == json.dumps(entries)


def test_a_report_compared_across_devices_comes_back_exactly_and_typed() -> None:
    report = check(
        "sin(x)*exp(y)",
        samples=300,
        dtype="float32",
        nodes=True,
        device="cpu",
        compare_devices=["cpu", "cpu"],
    )
    entries = json.loads(json.dumps(report.to_dict()["entries"]))
    # The second device differing: a value off, one NaN, one infinite, one key missing.
    entries[0] = {**entries[0], "compared_autograd": 1.5, "device_difference": -0.25}
    entries[1] = {
        **entries[1],
        "compared_autograd": "nan",
        "compared_verdict": "nonfinite",
        "compared_detail": "autograd returned nan",
        "device_difference": "nan",
    }
    entries[2] = {**entries[2], "compared_autograd": "-inf", "device_difference": "inf"}
    del entries[3]["compared_detail"]
    blocks = blocks_of(entries, {"rtol": 1e-5, "atol": 0.0}, "float32")
    assert json.dumps([e for b in blocks for e in decode(b.data)]) == json.dumps(entries)
    # Typed columns, not JSON kept aside: the comparison costs a few bytes per entry.
    plain = [
        {k: v for k, v in e.items() if not k.startswith(("compared", "device"))} for e in entries
    ]
    extra = sum(len(b.data) for b in blocks) - sum(
        len(b.data) for b in blocks_of(plain, {"rtol": 1e-5, "atol": 0.0}, "float32")
    )
    assert extra / len(entries) < 4


@pytest.mark.parametrize(
    ("expression", "options"),
    [
        # W1 in float32 with node gradients: ill-conditioned entries among passing ones.
        (
            "sin(x)*exp(y) + x*y*z**2 + log(1 + z**2)",
            {"samples": 1500, "dtype": "float32", "nodes": True,
             "domain": {"x": (-3, 3), "y": (-3, 3), "z": (-3, 3)}},
        ),
        # Abs at 0 (undefined), log at -1 (domain), 1/x near 0 (overflow in float16), an
        # exact zero Hessian element (ulp_error null).
        ("Abs(x) + log(y) + 1/x", {"at": [{"x": 0, "y": -1}, {"x": 1e-6, "y": 2},
                                          {"x": 2, "y": 3}], "dtype": "float16"}),
    ],
)  # fmt: skip
def test_entries_held_as_columns_are_stored_as_their_dicts_would_be(
    expression: str, options: dict[str, Any]
) -> None:
    report = check(expression, device="cpu", **options)
    document = report.document()
    entries = document["entries"]
    assert not isinstance(entries, list)  # still columns
    expected = report.to_dict()["entries"]
    blocks = blocks_of(entries, document["tolerance"], document["dtype"])
    assert [e for b in blocks for e in decode(b.data)] == json.loads(json.dumps(expected))
    from_dicts = blocks_of(expected, document["tolerance"], document["dtype"])
    assert [(b.entries, b.failing) for b in blocks] == [(b.entries, b.failing) for b in from_dicts]


def test_a_compared_report_held_as_columns_is_stored_as_its_dicts_would_be(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from verifier.core import check as check_module

    real = check_module.run_autograd
    calls: list[object] = []

    def run(*args: Any, **kwargs: Any) -> Any:  # the second device: every gradient negated
        result = real(*args, **kwargs)
        calls.append(result)
        if len(calls) % 2 == 0:
            values = {k: -v if k[0] == "gradient" else v for k, v in result.values.items()}
            result = type(result)(values, result.device, result.seed_idiom)
        return result

    monkeypatch.setattr(check_module, "run_autograd", run)
    report = check(
        "sin(x)*exp(y)", samples=200, dtype="float32", device="cpu",
        compare_devices=["cpu", "cpu"],
    )  # fmt: skip
    document = report.document()
    expected = json.loads(json.dumps(report.to_dict()["entries"]))
    assert any(e["compared_verdict"] == "fail" for e in expected)
    blocks = blocks_of(document["entries"], document["tolerance"], document["dtype"])
    assert [e for b in blocks for e in decode(b.data)] == expected


def test_a_float32_report_takes_under_20_bytes_per_entry() -> None:
    # docs/performance.md, "Stored reports": format 1 took 32.9 bytes per float32 entry, the JSON
    # about 439; format 2's predictions and LZMA2 bring it to about 17 (16.9 for W1's entries).
    entries, document = _report_entries("float32")
    blocks = blocks_of(entries, document["tolerance"], document["dtype"])
    assert sum(len(block.data) for block in blocks) / len(entries) < 20
    without = blocks_of(entries)
    assert sum(len(b.data) for b in blocks) < sum(len(b.data) for b in without)


ENTRIES = 3 * BLOCK_ENTRIES + 123


def _synthetic() -> list[dict[str, Any]]:
    return [
        {"kind": "gradient", "wrt": ["x"], "node": None, "point": n, "autograd": n / 7,
         "verdict": "fail" if n % 7 == 3 else "pass", "detail": None}
        for n in range(ENTRIES)
    ]  # fmt: skip


@pytest.fixture(params=["sqlite", "postgres"])
def stored(request: pytest.FixtureRequest, tmp_path: Any) -> Iterator[tuple[Session, int]]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'blocks.sqlite3'}"
    else:
        url = request.getfixturevalue("postgres_url")
    migrate.upgrade(url)
    engine = make_engine(url)
    try:
        with make_session_factory(engine)() as session:
            job = jobs.submit_job(
                session,
                JobIn.model_validate({"checks": [{"expression": "x", "points": [{"x": 1}]}]}),
                Settings(database_url=url),
            )
            document = {"verdict": "fail", "dtype": "float64", "entries": _synthetic()}
            assert repository.insert_report(session, report_row(job.checks[0], document))
            session.commit()
            report_id = repository.reported_checks(session, job.id, from_position=0, limit=1)[
                0
            ].report_id
            assert report_id is not None
            yield session, report_id
    finally:
        engine.dispose()


@pytest.mark.parametrize("start", [0, 1, BLOCK_ENTRIES - 1, BLOCK_ENTRIES, 2 * BLOCK_ENTRIES + 5])
@pytest.mark.parametrize("failing", [False, True])
def test_pages_across_blocks_are_slices_of_what_was_stored(
    stored: tuple[Session, int], start: int, failing: bool
) -> None:
    session, report_id = stored
    expected = [
        (0, n, entry)
        for n, entry in enumerate(_synthetic())
        if n >= start and not (failing and entry["verdict"] == "pass")
    ][:3000]
    found = repository.report_entries(
        session, [report_id], after=(0, start), limit=3000, failing=failing
    )
    assert found == expected
    counts = repository.count_entries_by_verdict(session, [report_id])
    failures = sum(1 for n in range(ENTRIES) if n % 7 == 3)
    assert counts == {report_id: {"pass": ENTRIES - failures, "fail": failures}}
