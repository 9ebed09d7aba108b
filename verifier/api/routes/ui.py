"""``/ui/``: the report pages, HTML rendered here with SVG charts (docs/pages.md).

A browser signs in once with its API key (``/ui/login``) and gets a UI session: a random
token in an HTTP-only, same-site cookie scoped to ``/ui`` (the key itself is never kept),
stored hashed with the key it acts as and an expiry (``ui_session_s``), ended by sign-out or
by revoking the key (verifier/store/keys.py). Every page then acts as that key exactly as the
JSON API does (another key's job or check is "not found") and draws on the same rate limits.
The sign-in and sign-out forms carry a CSRF token (sign-in: a double-submit cookie; sign-out:
an HMAC of the session token) and are refused with a 403 page when they come from another
origin than this site's (``Origin``, or ``Referer`` without it). While keys are off (the
local default), the pages need no sign-in. The pages carry no script, and their
``Content-Security-Policy`` allows none.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import uuid
from collections.abc import Callable
from datetime import UTC, date, datetime, time, timedelta
from typing import Annotated, Any
from urllib.parse import parse_qs, urlencode, urlsplit

from fastapi import APIRouter, Depends, Request, status
from fastapi.responses import HTMLResponse, PlainTextResponse, RedirectResponse, Response
from sqlalchemy.orm import Session

from verifier.api.auth import Caller, client_address, identify, identify_ui_session, site_origin
from verifier.api.deps import SessionDep
from verifier.api.metrics import count_refusal
from verifier.api.ratelimit import Limiter
from verifier.api.routes.reports import MAX_FILTER_CHARS
from verifier.api.ui import charts, scales
from verifier.api.ui.templates import render
from verifier.config import Settings
from verifier.core.floats.dtypes import DTYPES
from verifier.core.judge.verdict import VERDICT_ORDER
from verifier.errors import NotFoundError, RateLimitedError, UnauthorizedError
from verifier.service import pages
from verifier.store import keys
from verifier.store.page_queries import JobFilters

router = APIRouter(prefix="/ui", include_in_schema=False)

SESSION_COOKIE = "derivcheck_session"
"""The UI session's token (never the API key)."""
CSRF_COOKIE = "derivcheck_csrf"
"""The sign-in form's CSRF token, which the form sends again as ``CSRF_FIELD``."""
CSRF_FIELD = "csrf_token"
CSRF_TOKEN_BYTES = 32
MAX_CSRF_TOKEN_CHARS = 64
OLD_KEY_COOKIE = "derivcheck_key"
"""The cookie earlier versions kept the API key in: deleted at sign-in and sign-out."""
SIGN_OUT_PURPOSE = b"derivcheck sign-out"
COOKIE_PATH = "/ui"
JOBS_PER_PAGE = 25
CHECKS_PER_PAGE = 100
MAX_PAGE_NUMBER = 10_000
MAX_KEY_CHARS = 200
MAX_FORM_BYTES = 4096
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; "
    "img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    # Not no-referrer: under it a browser sends "Origin: null" with the pages' own forms,
    # which the origin check must refuse; same-origin sends this site's origin to itself only.
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


def _page(
    request: Request, name: str, status_code: int = status.HTTP_200_OK, **context: Any
) -> HTMLResponse:
    """The page ``name``; signed in (the sign-out button, with its token) while keys are on
    and the request carries a session cookie, unless ``context`` says otherwise."""
    token = request.cookies.get(SESSION_COOKIE) or ""
    context.setdefault("signed_in", bool(request.app.state.keys_required and token))
    context.setdefault("sign_out_token", sign_out_token(token) if token else "")
    return HTMLResponse(render(name, **context), status_code=status_code, headers=SECURITY_HEADERS)


def _take(request: Request, bucket: str) -> None:
    limiter: Limiter = request.app.state.rate_limiter
    wait = limiter.wait_s(bucket)
    if wait > 0:
        count_refusal(bucket)
        raise RateLimitedError(max(1, int(wait) + 1))


def _address(request: Request) -> str:
    settings: Settings = request.app.state.settings
    return client_address(request, settings.trusted_proxy_networks)


def page_caller(request: Request, session: SessionDep) -> Caller | None:
    """The caller of a page, from the UI session in its cookie, once its rate limit allows
    the request; None when it must sign in first."""
    address = _address(request)
    token = request.cookies.get(SESSION_COOKIE) or None
    try:
        caller = identify_ui_session(request, session, token, address)
    except UnauthorizedError:
        _take(request, f"unauthenticated:{address}")
        return None
    _take(request, caller.bucket)
    return caller


PageCallerDep = Annotated[Caller | None, Depends(page_caller)]


def _sign_in() -> RedirectResponse:
    response = RedirectResponse("/ui/login", status_code=status.HTTP_303_SEE_OTHER)
    response.delete_cookie(SESSION_COOKIE, path=COOKIE_PATH, httponly=True, samesite="strict")
    return response


def sign_out_token(session_token: str) -> str:
    """The sign-out form's CSRF token of a UI session: an HMAC of its token, which only the
    session's own pages know."""
    return hmac.new(session_token.encode(), SIGN_OUT_PURPOSE, hashlib.sha256).hexdigest()


def _secure(request: Request) -> bool:
    settings: Settings = request.app.state.settings
    return site_origin(request, settings.trusted_proxy_networks).startswith("https:")


def _cross_site_problem(request: Request) -> str | None:
    """Why a form POST did not come from this site's own pages (None: it did): its
    ``Origin``, or its ``Referer``'s origin when it sends no ``Origin``, must be this site's."""
    settings: Settings = request.app.state.settings
    ours = site_origin(request, settings.trusted_proxy_networks)
    origin = request.headers.get("origin")
    if origin is None:
        referer = request.headers.get("referer")
        if referer is None:
            return "the form was sent with neither Origin nor Referer, so its site is unknown"
        parts = urlsplit(referer)
        origin = f"{parts.scheme}://{parts.netloc}" if parts.scheme and parts.netloc else referer
    if origin.strip().lower() != ours:
        return f"the form was sent from {origin[:100]!r}, not from this site ({ours})"
    return None


def _refused(request: Request, problem: str) -> HTMLResponse:
    """The 403 page of a form refused as a possible cross-site request."""
    return _page(
        request,
        "refused.html",
        status.HTTP_403_FORBIDDEN,
        signed_in=False,
        problem=f"{problem}: refused, nothing was changed",
    )


async def form_fields(request: Request) -> dict[str, str]:
    """The fields of a small url-encoded form (the first value of each)."""
    body = await request.body()
    if len(body) > MAX_FORM_BYTES:
        return {}
    fields = parse_qs(body.decode("utf-8", errors="replace"), max_num_fields=10)
    return {name: values[0] for name, values in fields.items() if values}


def _login_page(request: Request, status_code: int, problem: str | None) -> HTMLResponse:
    """The sign-in form with a CSRF token, kept (or set) in its double-submit cookie."""
    token = request.cookies.get(CSRF_COOKIE) or ""
    if not (token.isascii() and token.replace("-", "").replace("_", "").isalnum()):
        token = ""
    if not token or len(token) > MAX_CSRF_TOKEN_CHARS:
        token = secrets.token_urlsafe(CSRF_TOKEN_BYTES)
    response = _page(
        request, "login.html", status_code, signed_in=False, problem=problem, csrf_token=token
    )
    response.set_cookie(
        CSRF_COOKIE,
        token,
        path=COOKIE_PATH,
        httponly=True,
        samesite="strict",
        secure=_secure(request),
    )
    return response


@router.get("/login", response_class=HTMLResponse)
def login_form(request: Request) -> Response:
    """The sign-in form (straight to the jobs while keys are off)."""
    if not request.app.state.keys_required:
        return RedirectResponse("/ui/", status_code=status.HTTP_303_SEE_OTHER)
    return _login_page(request, status.HTTP_200_OK, None)


def _same_token(sent: str | None, expected: str | None) -> bool:
    if not sent or not expected:
        return False
    return hmac.compare_digest(sent.encode(), expected.encode())


@router.post("/login", response_class=HTMLResponse)
def login(
    request: Request,
    session: SessionDep,
    fields: Annotated[dict[str, str], Depends(form_fields)],
) -> Response:
    """Check the form's origin and CSRF token, then the key, and sign in: a new UI session
    in an HTTP-only cookie; 403 for a cross-site form, back to the form for a wrong key."""
    if not request.app.state.keys_required:
        return RedirectResponse("/ui/", status_code=status.HTTP_303_SEE_OTHER)
    address = _address(request)
    problem = _cross_site_problem(request)
    if problem is None and not _same_token(
        fields.get(CSRF_FIELD), request.cookies.get(CSRF_COOKIE)
    ):
        problem = (
            "the sign-in form's CSRF token is missing or does not match its cookie "
            "(open /ui/login again and sign in there)"
        )
    if problem is not None:
        _take(request, f"unauthenticated:{address}")
        return _refused(request, problem)
    secret = fields.get("api_key", "").strip()[:MAX_KEY_CHARS]
    try:
        caller = identify(request, session, secret, address)
    except UnauthorizedError as error:
        _take(request, f"unauthenticated:{address}")
        return _login_page(request, status.HTTP_401_UNAUTHORIZED, str(error))
    assert caller.key_id is not None  # keys are required here
    _take(request, caller.bucket)
    settings: Settings = request.app.state.settings
    token = keys.open_ui_session(session, caller.key_id, settings.ui_session_s)
    response = RedirectResponse("/ui/", status_code=status.HTTP_303_SEE_OTHER)
    response.set_cookie(
        SESSION_COOKIE,
        token,
        max_age=settings.ui_session_s,
        path=COOKIE_PATH,
        httponly=True,
        samesite="strict",
        secure=_secure(request),
    )
    response.delete_cookie(CSRF_COOKIE, path=COOKIE_PATH, httponly=True, samesite="strict")
    response.delete_cookie(OLD_KEY_COOKIE, path=COOKIE_PATH, httponly=True, samesite="strict")
    return response


@router.post("/logout", response_class=HTMLResponse)
def logout(
    request: Request,
    session: SessionDep,
    fields: Annotated[dict[str, str], Depends(form_fields)],
) -> Response:
    """End the UI session (403 for a cross-site form or a wrong token) and forget it."""
    problem = _cross_site_problem(request)
    token = request.cookies.get(SESSION_COOKIE) or ""
    if problem is None and token:
        if not _same_token(fields.get(CSRF_FIELD), sign_out_token(token)):
            problem = "the sign-out form's CSRF token is missing or wrong"
    if problem is not None:
        _take(request, f"unauthenticated:{_address(request)}")
        return _refused(request, problem)
    if token:
        keys.close_ui_session(session, token)
    response = _sign_in()
    response.delete_cookie(OLD_KEY_COOKIE, path=COOKIE_PATH, httponly=True, samesite="strict")
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
        request,
        "jobs.html",
        status.HTTP_422_UNPROCESSABLE_CONTENT if problem else status.HTTP_200_OK,
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
        request,
        "not_found.html",
        status.HTTP_404_NOT_FOUND,
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
        request,
        "job.html",
        job=data.job,
        checks=data.checks,
        blamed=data.blamed,
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


def _reproduce(data: pages.CheckPage) -> list[tuple[str, str]]:
    """Each point of the worst entries, once, in the table's order: its text and the
    ``derivcheck check`` command that checks the expression there."""
    points = data.report.points
    text = _point_text(points)
    seen: list[Any] = []
    for entry in data.worst:
        index = entry.get("point")
        if index not in seen and pages.point_of(points, index):
            seen.append(index)
    return [
        (
            text(index),
            pages.reproduce_command(
                data.options.expression, pages.point_of(points, index), data.options.dtype
            ),
        )
        for index in seen
    ]


def _csv_url(check_id: uuid.UUID, variable: str) -> str:
    return f"/ui/checks/{check_id}/points.csv?" + urlencode({"variable": variable})


def _check_data(
    request: Request, check_id: str, key_id: uuid.UUID | None, session: Session
) -> tuple[uuid.UUID, pages.CheckPage] | Response:
    """The check page's data of ``key_id``'s check ``check_id`` (what its page and its plots'
    CSV show), or the not-found page."""
    found = _uuid(check_id)
    try:
        if found is None:
            raise NotFoundError(check_id)
        settings: Settings = request.app.state.settings
        data = pages.check_page(
            session, found, key_id, json_page_entries=settings.max_report_page_entries
        )
    except NotFoundError:
        return _not_found(request, "such check")
    return found, data


@router.get("/checks/{check_id}", response_class=HTMLResponse)
def check_page(
    request: Request, check_id: str, caller: PageCallerDep, session: SessionDep
) -> Response:
    """One check: its expression and options, plots of its errors, its worst entries."""
    if caller is None:
        return _sign_in()
    looked_up = _check_data(request, check_id, caller.key_id, session)
    if isinstance(looked_up, Response):
        return looked_up
    found, data = looked_up
    allowed = data.report.tolerance.get("ulps")
    marks = charts.marks_per_plot(len(data.series))
    chosen = scales.choose(
        request.query_params.getlist(scales.LOG_PARAMETER), data.series, request.url.path
    )
    scatters = [
        (
            name,
            charts.error_scatter(
                points,
                name,
                f"error in ulps against {name}",
                float(allowed) if isinstance(allowed, (int, float)) else None,
                marks,
                chosen.scale(name),
            ),
            charts.scatter_legend(points),
            _csv_url(found, name),
            chosen.switches[name],
        )
        for name, points in data.series.items()
    ]
    return _page(
        request,
        "check.html",
        status.HTTP_422_UNPROCESSABLE_CONTENT if chosen.problems else status.HTTP_200_OK,
        problem="; ".join(chosen.problems) or None,
        options=data.options,
        document=data.report,
        page=data,
        scatters=scatters,
        histogram=charts.error_histogram(data.histogram, "errors by decade of ulps"),
        hessian=charts.hessian_matrix(data.hessian_variables, data.hessian, "worst Hessian errors")
        if data.hessian
        else None,
        point_text=_point_text(data.report.points),
        reproduce=_reproduce(data),
    )


CSV_HEADERS = {**SECURITY_HEADERS, "Content-Type": "text/csv; charset=utf-8"}


@router.get("/checks/{check_id}/points.csv", response_class=PlainTextResponse)
def check_points_csv(
    request: Request, check_id: str, caller: PageCallerDep, session: SessionDep
) -> Response:
    """The data of one scatter plot of a check's page (``?variable=``) as CSV: the same
    bounded sample of entries the plot draws, under the same access rules as the page."""
    if caller is None:
        return _sign_in()
    variable = request.query_params.get("variable", "")
    looked_up = _check_data(request, check_id, caller.key_id, session)
    if isinstance(looked_up, Response):
        return looked_up
    _, data = looked_up
    if variable not in data.series:
        return _not_found(request, f"plot against {variable[:100]!r} on this check")
    body = charts.scatter_csv(
        data.series[variable], variable, charts.marks_per_plot(len(data.series))
    )
    return Response(body, headers=CSV_HEADERS)


@router.get("/stats", response_class=HTMLResponse)
def stats_page(request: Request, caller: PageCallerDep, session: SessionDep) -> Response:
    """Verdicts of the caller's reports by function and by dtype."""
    if caller is None:
        return _sign_in()
    data = pages.stats_page(session, caller.key_id)
    return _page(
        request,
        "stats.html",
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
        legend=charts.verdict_legend(),
    )
