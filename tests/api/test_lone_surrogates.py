"""Text with a lone surrogate (a UTF-16 half, e.g. the JSON escape "\\ud800") is not text:
every field that takes text answers 422 naming the field, and nothing is stored.

Source: RFC 8259 section 8.2 allows such escapes in JSON but says their behaviour is
unpredictable; UTF-8 (RFC 3629) cannot encode them, so PostgreSQL and SQLite could not store
them either.
"""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

LONE = "\\ud800"
"""A lone high surrogate, as JSON escapes it (the raw text of the request body)."""

BODIES = {
    "label": '{"checks": [{"expression": "x", "points": [{"x": 1}]}], "label": "a%sb"}',
    "expression": '{"checks": [{"expression": "x%s", "points": [{"x": 1}]}]}',
    "point value": '{"checks": [{"expression": "x", "points": [{"x": "1%s"}]}]}',
    "point name": '{"checks": [{"expression": "x", "points": [{"x%s": 1}]}]}',
    "domain name": ('{"checks": [{"expression": "x", "samples": 2, "domain": {"x%s": [0, 1]}}]}'),
    "fail_on": '{"checks": [{"expression": "x", "points": [{"x": 1}], "fail_on": ["f%s"]}]}',
    "compare_devices": (
        '{"checks": [{"expression": "x", "points": [{"x": 1}], "compare_devices": ["cpu", "c%s"]}]}'
    ),
}


@pytest.mark.parametrize("field", sorted(BODIES))
def test_a_lone_surrogate_in_any_text_field_is_a_422(client: httpx.Client, field: str) -> None:
    body = BODIES[field] % LONE
    json.loads(body)  # the control: valid JSON, which Python decodes to a lone surrogate
    response = client.post(
        "/jobs", content=body.encode(), headers={"content-type": "application/json"}
    )
    assert response.status_code == 422, response.text
    detail: Any = response.json()["detail"]
    assert detail and all("msg" in problem for problem in detail)


def test_the_same_body_without_the_surrogate_is_accepted(client: httpx.Client) -> None:
    body = BODIES["label"] % "-"
    response = client.post(
        "/jobs", content=body.encode(), headers={"content-type": "application/json"}
    )
    assert response.status_code == 202, response.text
