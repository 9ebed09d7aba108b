"""``/ui/``: the report pages, HTML rendered here with SVG charts (docs/pages.md).

A browser signs in once with its API key (``/ui/login``), which is kept in an HTTP-only,
same-site cookie scoped to ``/ui``; every page then acts as that key exactly as the JSON API
does (another key's job or check is "not found") and draws on the same rate limits. While
keys are off (the local default), the pages need no sign-in. The pages carry no script, and
their ``Content-Security-Policy`` allows none.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, date, datetime, time, timedelta
from typing import Annotated, Any
from urllib.parse import parse_qs, urlencode

from fastapi import APIRouter, Depends, Request, status
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from verifier.api.auth import Caller, client_address, identify
from verifier.api.deps import SessionDep
from verifier.api.metrics import count_refusal
from verifier.api.ratelimit import Limiter
from verifier.api.routes.reports import MAX_FILTER_CHARS
from verifier.api.ui import charts
from verifier.api.ui.templates import render
from verifier.config import Settings
from verifier.core.floats.dtypes import DTYPES
from verifier.core.judge.verdict import VERDICT_ORDER
from verifier.errors import NotFoundError, RateLimitedError, UnauthorizedError
from verifier.service import pages
from verifier.store.page_queries import JobFilters

router = APIRouter(prefix="/ui", include_in_schema=False)

KEY_COOKIE = "derivcheck_key"
JOBS_PER_PAGE = 25
CHECKS_PER_PAGE = 100
MAX_PAGE_NUMBER = 10_000
MAX_KEY_CHARS = 200
MAX_FORM_BYTES = 4096
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; "
    "img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


def _page(name: str, status_code: int = status.HTTP_200_OK, **context: Any) -> HTMLResponse:
    return HTMLResponse(render(name, **context), status_code=status_code, headers=SECURITY_HEADERS)


def _take(request: Request, bucket: str) -> None:
    limiter: Limiter = request.app.state.rate_limiter
    wait = limiter.wait_s(bucket)
    if wait > 0:
        count_refusal(bucket)
        raise RateLimitedError(max(1, int(wait) + 1))


def page_caller(request: Request, session: SessionDep) -> Caller | None:
    """The caller of a page, from the key in its cookie, once its rate limit allows the
    request; None when it must sign in first."""
    settings: Settings = request.app.state.settings
    address = client_address(request, settings.trusted_proxy_networks)
    secret = request.cookies.get(KEY_COOKIE) or None
    try:
        caller = identify(request, session, secret, address)
    except UnauthorizedError:
        _take(request, f"unauthenticated:{address}")
        return None
    _take(request, caller.bucket)
    return caller


PageCallerDep = Annotated[Caller | None, Depends(page_caller)]


def _sign_in() -> RedirectResponse:
    return RedirectResponse("/ui/login", status_code=status.HTTP_303_SEE_OTHER)


def _signed_in(request: Request) -> bool:
    return bool(request.app.state.keys_required)


async def form_fields(request: Request) -> dict[str, str]:
    """The fields of a small url-encoded form (the first value of each)."""
    body = await request.body()
    if len(body) > MAX_FORM_BYTES:
        return {}
    fields = parse_qs(body.decode("utf-8", errors="replace"), max_num_fields=10)
    return {name: values[0] for name, values in fields.items() if values}


@router.get("/login", response_class=HTMLResponse)
def login_form(request: Request) -> Response:
    """The sign-in form (straight to the jobs while keys are off)."""
    if not request.app.state.keys_required:
        return RedirectResponse("/ui/", status_code=status.HTTP_303_SEE_OTHER)
    return _page("login.html", signed_in=False, problem=None)


@router.post("/login", response_class=HTMLResponse)
def login(
    request: Request,
    session: SessionDep,
    fields: Annotated[dict[str, str], Depends(form_fields)],
) -> Response:
    """Check the key and keep it in an HTTP-only cookie; back to the form if it is not valid."""
    settings: Settings = request.app.state.settings
    address = client_address(request, settings.trusted_proxy_networks)
    secret = fields.get("api_key", "").strip()[:MAX_KEY_CHARS]
    try:
        identify(request, session, secret, address)
    except UnauthorizedError as error:
        _take(request, f"unauthenticated:{address}")
        return _page(
            "login.html", status.HTTP_401_UNAUTHORIZED, signed_in=False, problem=str(error)
        )
    response = RedirectResponse("/ui/", status_code=status.HTTP_303_SEE_OTHER)
    if request.app.state.keys_required:
        response.set_cookie(
            KEY_COOKIE,
            secret,
            path="/ui",
            httponly=True,
            samesite="strict",
            secure=request.url.scheme == "https",
        )
    return response


@router.post("/logout")
def logout() -> Response:
    """Forget the key."""
    response = _sign_in()
    response.delete_cookie(KEY_COOKIE, path="/ui", httponly=True, samesite="strict")
    return response


def _text(value: str | None) -> str | None:
    """A filter's text, None when empty; ValueError if a database could not take it."""
    if value is None or not value.strip():
        return None
    if len(value) > MAX_FILTER_CHARS:
        raise ValueError(f"a filter has at most {MAX_FILTER_CHARS} characters")
    if any(ord(char) < 0x20 or ord(char) == 0x7F for char in value):
        raise ValueError("control characters are not allowed in a filter")
    return value.strip()


def _day(value: str | None, name: str) -> date | None:
    if not value:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise ValueError(f"{name}: {value!r} is not a date (YYYY-MM-DD)") from None


def _page_number(value: str | None) -> int:
    if value is None or value == "":
        return 0
    if not (value.isascii() and value.isdigit()) or int(value) > MAX_PAGE_NUMBER:
        raise ValueError(f"page: {value!r} is not a page number (0 to {MAX_PAGE_NUMBER})")
    return int(value)


def job_filters(query: dict[str, str], caller: Caller) -> tuple[JobFilters, int]:
    """The filters and page number of a job listing's query; ValueError naming a bad one."""
    verdict = _text(query.get("verdict"))
    if verdict is not None and verdict not in {str(name) for name in VERDICT_ORDER}:
        raise ValueError(f"verdict: {verdict!r} is not a verdict")
    dtype = _text(query.get("dtype"))
    if dtype is not None and dtype not in DTYPES:
        raise ValueError(f"dtype: {dtype!r} is not one of {', '.join(DTYPES)}")
    since = _day(query.get("since"), "from")
    until = _day(query.get("until"), "to")
    return (
        JobFilters(
            api_key_id=caller.key_id,
            verdict=verdict,
            expression=_text(query.get("expression")),
            function=_text(query.get("function")),
            dtype=dtype,
            device=_text(query.get("device")),
            since=datetime.combine(since, time(), UTC) if since else None,
            until=datetime.combine(until + timedelta(days=1), time(), UTC) if until else None,
        ),
        _page_number(query.get("page")),
    )


@router.get("/", response_class=HTMLResponse)
def job_list(request: Request, caller: PageCallerDep, session: SessionDep) -> Response:
    """The caller's jobs, newest first, filtered and paged."""
    if caller is None:
        return _sign_in()
    query = {name: value for name, value in request.query_params.items()}
    problem = None
    try:
        filters, page = job_filters(query, caller)
    except ValueError as error:
        problem = f"{error}; showing no jobs until it is fixed"
        filters, page = JobFilters(api_key_id=caller.key_id), 0
    listing = (
        pages.job_list(session, filters, page=page, page_size=JOBS_PER_PAGE)
        if problem is None
        else pages.JobList(jobs=[], page=0, has_next=False)
    )
    kept = {name: value for name, value in query.items() if value and name != "page"}

    def link(number: int) -> str:
        return "/ui/?" + urlencode({**kept, "page": number})

    return _page(
        "jobs.html",
        status.HTTP_422_UNPROCESSABLE_CONTENT if problem else status.HTTP_200_OK,
        signed_in=_signed_in(request),
        listing=listing,
        filters=filters,
        since=query.get("since", "") if problem is None else "",
        until=query.get("until", "") if problem is None else "",
        verdicts=[str(name) for name in VERDICT_ORDER],
        dtypes=DTYPES,
        problem=problem,
        prev_url=link(listing.page - 1),
        next_url=link(listing.page + 1),
    )


def _not_found(request: Request, what: str) -> HTMLResponse:
    return _page(
        "not_found.html",
        status.HTTP_404_NOT_FOUND,
        signed_in=_signed_in(request),
        problem=f"no {what} (or it belongs to another key)",
    )


def _uuid(text: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(text)
    except ValueError:
        return None


@router.get("/jobs/{job_id}", response_class=HTMLResponse)
def job_page(request: Request, job_id: str, caller: PageCallerDep, session: SessionDep) -> Response:
    """One job: its checks and a chart of their verdicts."""
    if caller is None:
        return _sign_in()
    found = _uuid(job_id)
    try:
        page = _page_number(request.query_params.get("page"))
        if found is None:
            raise NotFoundError(job_id)
        data = pages.job_page(session, found, caller.key_id, page=page, page_size=CHECKS_PER_PAGE)
    except (NotFoundError, ValueError):
        return _not_found(request, "such job")
    return _page(
        "job.html",
        signed_in=_signed_in(request),
        job=data.job,
        checks=data.checks,
        chart=charts.verdict_bars(data.counts, "checks by verdict"),
        page=data.page,
        has_next=data.has_next,
    )


def _point_text(points: list[Any]) -> Callable[[Any], str]:
    def text(index: Any) -> str:
        if isinstance(index, int) and 0 <= index < len(points) and isinstance(points[index], dict):
            return ", ".join(
                f"{name}={value:.6g}" if isinstance(value, float) else f"{name}={value}"
                for name, value in points[index].items()
            )
        return str(index)

    return text


@router.get("/checks/{check_id}", response_class=HTMLResponse)
def check_page(
    request: Request, check_id: str, caller: PageCallerDep, session: SessionDep
) -> Response:
    """One check: its expression and options, plots of its errors, its worst entries."""
    if caller is None:
        return _sign_in()
    found = _uuid(check_id)
    try:
        if found is None:
            raise NotFoundError(check_id)
        data = pages.check_page(session, found, caller.key_id)
    except NotFoundError:
        return _not_found(request, "such check")
    allowed = data.report.tolerance.get("ulps")
    variables = list(data.series)
    scatters = [
        (
            name,
            charts.error_scatter(
                points,
                name,
                f"error in ulps against {name}",
                float(allowed) if isinstance(allowed, (int, float)) else None,
            ),
        )
        for name, points in data.series.items()
    ]
    return _page(
        "check.html",
        signed_in=_signed_in(request),
        options=data.options,
        document=data.report,
        page=data,
        scatters=scatters,
        histogram=charts.error_histogram(data.histogram, "errors by decade of ulps"),
        hessian=charts.hessian_matrix(variables, data.hessian, "worst Hessian errors")
        if data.hessian
        else None,
        point_text=_point_text(data.report.points),
    )


@router.get("/stats", response_class=HTMLResponse)
def stats_page(request: Request, caller: PageCallerDep, session: SessionDep) -> Response:
    """Verdicts of the caller's reports by function and by dtype."""
    if caller is None:
        return _sign_in()
    data = pages.stats_page(session, caller.key_id)
    return _page(
        "stats.html",
        signed_in=_signed_in(request),
        by_function=data.by_function,
        by_dtype=data.by_dtype,
        function_chart=charts.stacked_bars(
            [(group.key or "(none)", group.counts) for group in data.by_function.groups],
            "verdicts by function",
        ),
        dtype_chart=charts.stacked_bars(
            [(group.key or "(none)", group.counts) for group in data.by_dtype.groups],
            "verdicts by dtype",
        ),
    )
