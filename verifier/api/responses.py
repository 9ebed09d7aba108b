"""Error responses that every protected route may give, for the OpenAPI schema."""

from __future__ import annotations

from typing import Any

ACCESS_RESPONSES: dict[int | str, dict[str, Any]] = {
    401: {"description": "no API key, or an unknown or revoked one"},
    413: {"description": "request body too large"},
    429: {"description": "rate limit exceeded; the Retry-After header says when to retry"},
    503: {"description": "the database cannot be reached"},
}
