"""A small HTTP client of the API for the CLI; failures become one-line ``CliError``s."""

from __future__ import annotations

from typing import Any

import httpx

from verifier.errors import VerifierError

DEFAULT_TIMEOUT_S = 30.0
MAX_PROBLEMS_SHOWN = 5


class CliError(VerifierError):
    """A failure to show the user as one line (exit status 2)."""


class ApiClient:
    """Calls the API at ``url`` and returns decoded JSON."""

    def __init__(self, url: str, *, timeout: float = DEFAULT_TIMEOUT_S, api_key: str | None = None):
        self.url = url.rstrip("/")
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._client = httpx.Client(base_url=self.url, timeout=timeout, headers=headers)

    def __enter__(self) -> ApiClient:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the connections."""
        self._client.close()

    def _request(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            response = self._client.request(method, path, **kwargs)
        except httpx.HTTPError as error:
            raise CliError(
                f"cannot reach the API at {self.url} ({type(error).__name__}: {error}); "
                "start it with `derivcheck serve` or pass --url"
            ) from None
        if response.status_code >= 400:
            raise CliError(_describe_failure(response))
        return response.json()

    def submit(self, body: dict[str, Any]) -> dict[str, Any]:
        """POST /jobs."""
        result: dict[str, Any] = self._request("POST", "/jobs", json=body)
        return result

    def job(self, job_id: str) -> dict[str, Any]:
        """GET /jobs/{id}."""
        result: dict[str, Any] = self._request("GET", f"/jobs/{job_id}")
        return result

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
