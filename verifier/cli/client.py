"""A small HTTP client of the API for the CLI; failures become one-line ``CliError``s.

A request answered 429 (rate limited) or 503 with ``Retry-After`` (the API is busy) is sent
again after the time the header asks for (at most ``MAX_RETRY_WAIT_S``; without the header,
after an exponential backoff), up to ``MAX_RETRIES`` times: a job that runs on is not given up
because one poll was refused. A submission carries an ``Idempotency-Key``, so that sending it
again cannot make a second job. A job id may be given as a prefix of at least
``MIN_PREFIX_DIGITS`` hex digits, as the CLI prints them, and is resolved through
``GET /jobs?prefix=``.
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Callable
from email.utils import parsedate_to_datetime
from typing import Any

import httpx

from verifier.errors import VerifierError
from verifier.ids import SHORT_ID_CHARS

DEFAULT_TIMEOUT_S = 30.0
MAX_PROBLEMS_SHOWN = 5
MAX_RETRIES = 6
"""Times a refused request (429, or 503 with Retry-After) is sent again before giving up."""
FIRST_BACKOFF_S = 0.5
"""The wait before the first retry when the answer has no Retry-After; doubled each time."""
MAX_RETRY_WAIT_S = 60.0
"""The longest wait before one retry, whatever Retry-After asks."""
MAX_TOTAL_RETRY_WAIT_S = 180.0
"""The longest time one request spends waiting to be sent again, all retries together."""
RETRIED_STATUSES = frozenset({429, 503})
MIN_PREFIX_DIGITS = SHORT_ID_CHARS
"""The fewest hex digits of a job id prefix."""
CANDIDATES_SHOWN = 10
FULL_ID = re.compile(r"[0-9a-fA-F]{8}-?([0-9a-fA-F]{4}-?){3}[0-9a-fA-F]{12}")


class CliError(VerifierError):
    """A failure to show the user as one line (exit status 2); ``problems``: the API's
    structured refusal (its ``detail`` list: ``loc``, ``msg``), when it gave one."""

    def __init__(self, message: str, problems: list[dict[str, Any]] | None = None):
        super().__init__(message)
        self.problems = problems or []


class ApiClient:
    """Calls the API at ``url`` and returns decoded JSON."""

    def __init__(
        self,
        url: str,
        *,
        timeout: float = DEFAULT_TIMEOUT_S,
        api_key: str | None = None,
        on_retry: Callable[[str], None] | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ):
        self.url = url.rstrip("/")
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._client = httpx.Client(base_url=self.url, timeout=timeout, headers=headers)
        self._on_retry = on_retry
        self._sleep = sleep

    def __enter__(self) -> ApiClient:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the connections."""
        self._client.close()

    def _request(self, method: str, path: str, **kwargs: Any) -> Any:
        waited_s = 0.0
        for attempt in range(MAX_RETRIES + 1):
            try:
                response = self._client.request(method, path, **kwargs)
            except httpx.HTTPError as error:
                raise CliError(
                    f"cannot reach the API at {self.url} ({type(error).__name__}: {error}); "
                    "start it with `derivcheck serve` or pass --url"
                ) from None
            wait_s = _retry_wait_s(response, attempt)
            if (
                wait_s is None
                or attempt == MAX_RETRIES
                or waited_s + wait_s > MAX_TOTAL_RETRY_WAIT_S
            ):
                break
            waited_s += wait_s
            if self._on_retry is not None:
                self._on_retry(
                    f"{method} {path}: HTTP {response.status_code}; trying again in {wait_s:.3g} s"
                )
            self._sleep(wait_s)
        if response.status_code >= 400:
            raise CliError(_describe_failure(response), _problems(response))
        return response.json()

    def submit(self, body: dict[str, Any], *, idempotency_key: str | None = None) -> dict[str, Any]:
        """POST /jobs, with an Idempotency-Key (a new one unless given), so that a retry
        cannot make a second job."""
        key = idempotency_key or uuid.uuid4().hex
        headers = {"Idempotency-Key": key}
        result: dict[str, Any] = self._request("POST", "/jobs", json=body, headers=headers)
        return result

    def job(self, job_id: str) -> dict[str, Any]:
        """GET /jobs/{id}."""
        result: dict[str, Any] = self._request("GET", f"/jobs/{job_id}")
        return result

    def jobs(self, params: dict[str, Any]) -> dict[str, Any]:
        """GET /jobs: a page of the caller's jobs, newest first."""
        result: dict[str, Any] = self._request("GET", "/jobs", params=_present(params))
        return result

    def cancel(self, job_id: str) -> dict[str, Any]:
        """DELETE /jobs/{id}: the job's state once cancelled (a finished job as it is)."""
        result: dict[str, Any] = self._request("DELETE", f"/jobs/{job_id}")
        return result

    def resolve_job_id(self, text: str) -> str:
        """The whole id of the caller's job that ``text`` names: a whole id as it is, or a
        prefix of at least MIN_PREFIX_DIGITS hex digits that one job's id starts with.

        CliError when no job or several jobs match (listing them), or when ``text`` is
        neither."""
        given = text.strip()
        if FULL_ID.fullmatch(given):
            return str(uuid.UUID(given))
        digits = given.replace("-", "").lower()
        if len(digits) < MIN_PREFIX_DIGITS or not all(c in "0123456789abcdef" for c in digits):
            raise CliError(
                f"job id {text!r}: give a whole job id or at least {MIN_PREFIX_DIGITS} of its "
                "first hex digits (derivcheck jobs lists them)"
            )
        page = self.jobs({"prefix": digits, "limit": CANDIDATES_SHOWN + 1})
        found = [str(job["id"]) for job in page["items"]]
        if not found:
            raise CliError(f"no job whose id starts with {given!r} (derivcheck jobs lists them)")
        if len(found) > 1:
            shown = ", ".join(found[:CANDIDATES_SHOWN])
            more = " and more" if len(found) > CANDIDATES_SHOWN else ""
            raise CliError(
                f"job id prefix {given!r} is ambiguous: it starts {shown}{more}; give more digits"
            )
        return found[0]

    def report(self, job_id: str, *, entries: str = "none") -> dict[str, Any]:
        """GET /jobs/{id}/report, every page joined into one report.

        ``entries="none"`` is what a summary needs (each check's verdict, counts and blamed
        nodes) and stays small however many entries the checks have; ``"all"`` brings them.
        """
        path = f"/jobs/{job_id}/report"
        result: dict[str, Any] = self._request("GET", path, params={"entries": entries})
        cursor = result.get("next_cursor")
        while cursor:
            page = self._request("GET", path, params={"entries": entries, "cursor": cursor})
            checks = page["checks"]
            last = result["checks"][-1] if result["checks"] else None
            if checks and last is not None and checks[0].get("check") == last.get("check"):
                # A check whose entries ran past the page comes again with the rest.
                last.setdefault("entries", []).extend(checks.pop(0).get("entries", []))
            result["checks"].extend(checks)
            cursor = page.get("next_cursor")
        result["next_cursor"] = None
        return result

    def reports(self, params: dict[str, Any]) -> dict[str, Any]:
        """GET /reports with filters."""
        result: dict[str, Any] = self._request("GET", "/reports", params=_present(params))
        return result

    def stats(self, params: dict[str, Any]) -> dict[str, Any]:
        """GET /stats with filters."""
        result: dict[str, Any] = self._request("GET", "/stats", params=_present(params))
        return result

    def health(self) -> tuple[int, dict[str, Any]]:
        """GET /health: the status code and body, without raising on 503."""
        try:
            response = self._client.get("/health")
        except httpx.HTTPError as error:
            raise CliError(f"cannot reach the API at {self.url}: {error}") from None
        return response.status_code, response.json()


def _retry_wait_s(response: httpx.Response, attempt: int) -> float | None:
    """How long to wait before sending a refused request again, or None when it is not
    retried: 429 always, 503 only with Retry-After (a database that is down is not waited
    for). Retry-After is seconds or an HTTP date (RFC 9110, 10.2.3)."""
    if response.status_code not in RETRIED_STATUSES:
        return None
    header = response.headers.get("Retry-After")
    if header is None and response.status_code != 429:
        return None
    backoff = FIRST_BACKOFF_S * 2**attempt
    asked = _retry_after_s(header) if header is not None else None
    return min(MAX_RETRY_WAIT_S, asked if asked is not None else backoff)


def _retry_after_s(header: str) -> float | None:
    text = header.strip()
    if text.isdigit():
        return float(text)
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _problems(response: httpx.Response) -> list[dict[str, Any]]:
    try:
        detail = response.json().get("detail")
    except (ValueError, AttributeError):
        return []
    return [p for p in detail if isinstance(p, dict)] if isinstance(detail, list) else []


def _present(params: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in params.items() if value is not None}


def _describe_failure(response: httpx.Response) -> str:
    try:
        detail = response.json().get("detail")
    except ValueError:
        detail = response.text.strip()[:200]
    if isinstance(detail, list):
        messages = [str(problem.get("msg", problem)) for problem in detail[:MAX_PROBLEMS_SHOWN]]
        more = len(detail) - len(messages)
        text = "; ".join(messages) + (f"; and {more} more" if more > 0 else "")
    else:
        text = str(detail)
    return f"the API refused the request (HTTP {response.status_code}): {text}"
