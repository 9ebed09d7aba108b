"""Signing in to the report pages over real HTTP: login CSRF refused, a session instead of the key.

Before, ``POST /ui/login`` took any form from anywhere (no token, no origin check) and kept the
raw API key in the ``derivcheck_key`` cookie: a page on another site could submit a form that
signed its visitor in with the attacker's key (login CSRF, OWASP's "Cross-Site Request
Forgery Prevention Cheat Sheet"). Now the form carries a double-submit CSRF token, a POST from
another origin is a 403 page, and a sign-in is an opaque session token, stored hashed, that
expires, ends at sign-out and ends with its key (docs/pages.md).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from servers import ServerThread
from slowness import SLOWNESS
from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from verifier.api import create_app
from verifier.api.routes.ui import CSRF_COOKIE, SESSION_COOKIE
from verifier.config import UI_SESSION_S, Settings
from verifier.delivery.sender import InMemorySender
from verifier.store import keys, migrate
from verifier.store.engine import make_engine, make_session_factory
from verifier.store.models import UiSession, utc_now

ATTACKER_SITE = "http://attacker.example"


@dataclass
class Live:
    """A live API requiring keys, its sessions of the database, and two keys."""

    url: str
    sessions: sessionmaker[Session]
    victim: str
    attacker: str

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=30 * SLOWNESS, follow_redirects=False)


@pytest.fixture
def live(tmp_path: Path) -> Iterator[Live]:
    url = f"sqlite:///{tmp_path / 'sign-in.sqlite3'}"
    migrate.upgrade(url)
    settings = Settings(
        data_dir=tmp_path / "data",
        database_url=url,
        requeue_interval_s=0,
        api_keys="required",
        parse_processes=0,
        rate_limit_per_minute=6000,
        rate_limit_burst=1000,
    )
    engine = make_engine(url)
    sessions = make_session_factory(engine)
    with sessions() as session:
        _, victim = keys.create_key(session, "victim")
        _, attacker = keys.create_key(session, "attacker")
    try:
        with ServerThread(create_app(settings, InMemorySender())) as base:
            yield Live(base, sessions, victim, attacker)
    finally:
        engine.dispose()


def cookies(**values: str) -> dict[str, str]:
    """A Cookie header of exactly these cookies: the client's own jar is never sent, so each
    request carries what a browser in the test's story would send, and no more."""
    return {"Cookie": "; ".join(f"{name}={value}" for name, value in values.items())}


def set_cookies(response: httpx.Response) -> dict[str, str]:
    """The Set-Cookie lines of a response, by cookie name."""
    return {line.split("=", 1)[0]: line for line in response.headers.get_list("set-cookie")}


def cookie_value(line: str) -> str:
    return line.split("=", 1)[1].split(";", 1)[0].strip('"')


def login_form(http: httpx.Client) -> tuple[str, str]:
    """The sign-in form's CSRF token and its cookie's value, as a browser gets them."""
    form = http.get("/ui/login", headers=cookies())
    assert form.status_code == 200
    (token,) = re.findall(r'name="csrf_token" value="([^"]+)"', form.text)
    return token, cookie_value(set_cookies(form)[CSRF_COOKIE])


def sign_in(live: Live, http: httpx.Client, key: str) -> httpx.Response:
    """Sign in through the form from this site, as a browser would."""
    token, cookie = login_form(http)
    return http.post(
        "/ui/login",
        data={"api_key": key, "csrf_token": token},
        headers={**cookies(**{CSRF_COOKIE: cookie}), "Origin": live.url},
    )


def session_of(response: httpx.Response) -> str:
    return cookie_value(set_cookies(response)[SESSION_COOKIE])


def page(http: httpx.Client, session_token: str, path: str = "/ui/") -> httpx.Response:
    return http.get(path, headers=cookies(**{SESSION_COOKIE: session_token}))


def test_a_cross_site_form_cannot_sign_its_visitor_in_with_the_attackers_key(live: Live) -> None:
    # The attacker's page posts the form from its own origin. Its visitor's browser sends no
    # CSRF cookie of ours to a cross-site POST (SameSite=Strict), and the attacker cannot
    # know one; even a token pair the attacker fetched for itself fails the origin check.
    with live.client() as http:
        bare = http.post(
            "/ui/login",
            data={"api_key": live.attacker},
            headers={**cookies(), "Origin": ATTACKER_SITE},
        )
        token, cookie = login_form(http)
        paired = http.post(
            "/ui/login",
            data={"api_key": live.attacker, "csrf_token": token},
            headers={**cookies(**{CSRF_COOKIE: cookie}), "Origin": ATTACKER_SITE},
        )
    for answer in (bare, paired):
        assert answer.status_code == 403, answer.text
        assert SESSION_COOKIE not in set_cookies(answer)
        assert "derivcheck_key" not in set_cookies(answer)
        assert "Refused" in answer.text and ATTACKER_SITE in answer.text
    with live.sessions() as session:
        assert session.scalars(select(UiSession)).all() == []


@pytest.mark.parametrize(
    ("sent", "why"),
    [(None, "missing"), ("x" * 43, "wrong"), ("", "empty")],
    ids=["missing", "wrong", "empty"],
)
def test_a_sign_in_without_its_csrf_token_is_refused(
    live: Live, sent: str | None, why: str
) -> None:
    with live.client() as http:
        _, cookie = login_form(http)
        data = {"api_key": live.victim} | ({} if sent is None else {"csrf_token": sent})
        answer = http.post(
            "/ui/login",
            data=data,
            headers={**cookies(**{CSRF_COOKIE: cookie}), "Origin": live.url},
        )
        assert answer.status_code == 403, why
        assert "CSRF token" in answer.text
        assert SESSION_COOKIE not in set_cookies(answer)
        # The token without its cookie is refused too (double submit: both must agree).
        token, _ = login_form(http)
        lone = http.post(
            "/ui/login",
            data={"api_key": live.victim, "csrf_token": token},
            headers={**cookies(), "Origin": live.url},
        )
        assert lone.status_code == 403


def test_the_origin_or_else_the_referer_must_be_this_site(live: Live) -> None:
    with live.client() as http:
        for headers, expected in [
            ({"Origin": "null"}, 403),
            ({"Origin": live.url.replace("127.0.0.1", "localhost")}, 403),
            ({"Referer": f"{ATTACKER_SITE}/ui/login"}, 403),
            ({}, 403),
            ({"Referer": f"{live.url}/ui/login"}, 303),
        ]:
            token, cookie = login_form(http)
            answer = http.post(
                "/ui/login",
                data={"api_key": live.victim, "csrf_token": token},
                headers={**cookies(**{CSRF_COOKIE: cookie}), **headers},
            )
            assert answer.status_code == expected, (headers, answer.text)


def test_a_sign_in_is_a_session_cookie_never_the_key(live: Live) -> None:
    with live.client() as http:
        answer = sign_in(live, http, live.victim)
        assert answer.status_code == 303 and answer.headers["location"] == "/ui/"
        line = set_cookies(answer)[SESSION_COOKIE]
        flags = {part.strip().lower() for part in line.split(";")[1:]}
        assert {"httponly", "samesite=strict", "path=/ui", f"max-age={UI_SESSION_S}"} <= flags
        assert "secure" not in flags  # plain HTTP here
        token = session_of(answer)
        assert live.victim not in " ".join(answer.headers.get_list("set-cookie"))
        assert token.startswith(keys.UI_SESSION_MARKER) and len(token) >= 43
        # Stored hashed, with the key it belongs to and an expiry 12 hours on.
        with live.sessions() as session:
            (stored,) = session.scalars(select(UiSession)).all()
            assert stored.token_hash == keys.hash_key(token) != token
            assert stored.expires_at - stored.created_at == timedelta(seconds=UI_SESSION_S)
        assert page(http, token).status_code == 200
        # The key itself in a cookie (as earlier versions kept it) signs nobody in.
        old = http.get("/ui/", headers=cookies(derivcheck_key=live.victim))
        assert old.status_code == 303 and old.headers["location"] == "/ui/login"


def test_the_session_cookie_is_secure_over_https(live: Live) -> None:
    # The test server believes X-Forwarded-Proto from loopback, as a TLS proxy in front.
    with live.client() as http:
        https = {"X-Forwarded-Proto": "https"}
        form = http.get("/ui/login", headers={**https, **cookies()})
        (token,) = re.findall(r'name="csrf_token" value="([^"]+)"', form.text)
        assert "secure" in set_cookies(form)[CSRF_COOKIE].lower()
        answer = http.post(
            "/ui/login",
            data={"api_key": live.victim, "csrf_token": token},
            headers={
                **https,
                **cookies(**{CSRF_COOKIE: cookie_value(set_cookies(form)[CSRF_COOKIE])}),
                "Origin": live.url.replace("http:", "https:"),
            },
        )
        assert answer.status_code == 303, answer.text
        assert "; secure" in set_cookies(answer)[SESSION_COOKIE].lower()


def test_an_expired_session_leads_back_to_the_form(live: Live) -> None:
    with live.client() as http:
        token = session_of(sign_in(live, http, live.victim))
        assert page(http, token).status_code == 200
        with live.sessions() as session:  # twelve hours pass
            session.execute(update(UiSession).values(expires_at=utc_now() - timedelta(seconds=1)))
            session.commit()
        answer = page(http, token)
        assert answer.status_code == 303 and answer.headers["location"] == "/ui/login"


def test_signing_out_ends_the_session_and_needs_its_token(live: Live) -> None:
    with live.client() as http:
        token = session_of(sign_in(live, http, live.victim))
        shown = page(http, token)
        (sign_out,) = re.findall(r'name="csrf_token" value="([^"]+)"', shown.text)
        # A cross-site or tokenless sign-out is refused and the session lives on.
        for data, origin in [({"csrf_token": sign_out}, ATTACKER_SITE), ({}, live.url)]:
            refused = http.post(
                "/ui/logout",
                data=data,
                headers={**cookies(**{SESSION_COOKIE: token}), "Origin": origin},
            )
            assert refused.status_code == 403
            assert page(http, token).status_code == 200
        out = http.post(
            "/ui/logout",
            data={"csrf_token": sign_out},
            headers={**cookies(**{SESSION_COOKIE: token}), "Origin": live.url},
        )
        assert out.status_code == 303 and out.headers["location"] == "/ui/login"
        assert 'derivcheck_session=""' in set_cookies(out)[SESSION_COOKIE]
        with live.sessions() as session:
            assert session.scalars(select(UiSession)).all() == []
        # The old cookie, replayed, signs nobody in.
        assert page(http, token).headers["location"] == "/ui/login"


def test_revoking_the_key_ends_its_sessions(live: Live) -> None:
    with live.client() as http:
        victim = session_of(sign_in(live, http, live.victim))
        attacker = session_of(sign_in(live, http, live.attacker))
        with live.sessions() as session:
            keys.revoke_key(session, "victim")
            assert [row.api_key_id for row in session.scalars(select(UiSession))] == [
                keys.authenticate(session, live.attacker).id  # type: ignore[union-attr]
            ]
        assert page(http, victim).headers["location"] == "/ui/login"
        assert page(http, attacker).status_code == 200


def test_a_key_holds_a_bounded_number_of_sessions(live: Live) -> None:
    with live.sessions() as session:
        key = keys.authenticate(session, live.victim)
        assert key is not None
        tokens = [
            keys.open_ui_session(session, key.id, UI_SESSION_S)
            for _ in range(keys.MAX_UI_SESSIONS_PER_KEY + 3)
        ]
        kept = set(session.scalars(select(UiSession.token_hash)))
    assert len(kept) == keys.MAX_UI_SESSIONS_PER_KEY
    assert keys.hash_key(tokens[-1]) in kept and keys.hash_key(tokens[0]) not in kept
