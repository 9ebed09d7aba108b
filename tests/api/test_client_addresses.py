"""Rate limits by client address over real HTTP: failed authentications are limited per
address, every loopback address is one client, and X-Forwarded-For buys no new bucket unless
``VERIFIER_TRUSTED_PROXIES`` names the proxy.

docs/hostile-load.md: invalid keys were once never rate-limited, and, with keys off, there was
a fresh bucket for each X-Forwarded-For value (uvicorn believes that header from loopback peers
and replaces the client's address with it) and for each loopback address (127.0.0.0/8 is 16
million of them).
With keys off, a local script hammering the API once rate-limited every other local client
(the user's browser too): now each client of an address (its X-Client-Id, else its User-Agent)
has a bucket of its own, within a bound on the address's clients together.
Every app here allows a burst of 5 requests, then one a second (60 a minute), so 8 quick
requests from one client are 5 answered, then 429.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from typing import Any

import httpx
import pytest
from pydantic import ValidationError
from slowness import SLOWNESS
from sqlalchemy.orm import Session

from verifier.api import create_app
from verifier.api.deps import get_session
from verifier.config import Settings
from verifier.store import keys

BURST = 5
REQUESTS = 8
Serve = Callable[..., AbstractContextManager[str]]


@pytest.fixture
def serve(
    settings: Settings, session: Session, sender: Any, server_thread: Any
) -> Callable[..., AbstractContextManager[str]]:
    """Serves an app on ``settings`` with these changes: ``with serve(api_keys=...) as url``."""

    def start(**changes: Any) -> AbstractContextManager[str]:
        limited = settings.model_copy(
            update={"rate_limit_per_minute": 60, "rate_limit_burst": BURST, **changes}
        )
        app = create_app(limited, sender)
        app.dependency_overrides[get_session] = lambda: session
        server: AbstractContextManager[str] = server_thread(app)
        return server

    return start


def _from(address: str) -> httpx.Client:
    """A client whose connections leave from ``address`` (any of 127.0.0.0/8 reaches the API)."""
    return httpx.Client(transport=httpx.HTTPTransport(local_address=address), timeout=30 * SLOWNESS)


@pytest.fixture
def clients() -> Iterator[list[httpx.Client]]:
    """Eight clients, each on its own loopback address: 127.0.0.2 to 127.0.0.9."""
    opened = [_from(f"127.0.0.{n}") for n in range(2, 2 + REQUESTS)]
    try:
        yield opened
    finally:
        for client in opened:
            client.close()


def _codes(url: str, requests: list[tuple[httpx.Client, dict[str, str]]]) -> list[int]:
    return [
        client.get(f"{url}/reports", headers=headers).status_code for client, headers in requests
    ]


def test_an_invalid_key_is_rate_limited_per_address(serve: Serve, session: Session) -> None:
    _, alice = keys.create_key(session, "alice")
    with serve(api_keys="required") as url, httpx.Client(timeout=30 * SLOWNESS) as http:
        codes = _codes(
            url, [(http, {"Authorization": f"Bearer guess-{n}"}) for n in range(REQUESTS)]
        )
        assert codes[:BURST] == [401] * BURST
        assert set(codes[BURST:]) == {429}
        limited = http.get(f"{url}/reports", headers={"Authorization": "Bearer another-guess"})
        assert limited.status_code == 429 and 1 <= int(limited.headers["retry-after"]) <= 2
        assert http.get(f"{url}/reports").status_code == 429  # no key is a failure too
        # A valid key from the same address has a bucket of its own.
        assert (
            http.get(f"{url}/reports", headers={"Authorization": f"Bearer {alice}"}).status_code
            == 200
        )


def test_rotating_x_forwarded_for_buys_no_new_bucket_for_invalid_keys(serve: Serve) -> None:
    with serve(api_keys="required") as url, httpx.Client(timeout=30 * SLOWNESS) as http:
        requests = [
            (http, {"Authorization": "Bearer guess", "X-Forwarded-For": f"203.0.113.{n}"})
            for n in range(REQUESTS)
        ]
        codes = _codes(url, requests)
    assert codes[:BURST] == [401] * BURST
    assert set(codes[BURST:]) == {429}


def test_every_loopback_address_is_one_client_for_invalid_keys(
    serve: Serve, clients: list[httpx.Client]
) -> None:
    with serve(api_keys="required") as url:
        codes = _codes(url, [(client, {"X-API-Key": "guess"}) for client in clients])
    assert codes[:BURST] == [401] * BURST
    assert set(codes[BURST:]) == {429}


def test_with_keys_off_rotating_x_forwarded_for_shares_one_bucket(serve: Serve) -> None:
    with serve(api_keys="off") as url, httpx.Client(timeout=30 * SLOWNESS) as http:
        codes = _codes(
            url, [(http, {"X-Forwarded-For": f"198.51.100.{n}"}) for n in range(REQUESTS)]
        )
    assert codes[:BURST] == [200] * BURST
    assert set(codes[BURST:]) == {429}


def test_with_keys_off_every_loopback_address_shares_one_bucket(
    serve: Serve, clients: list[httpx.Client]
) -> None:
    with serve(api_keys="off") as url:
        codes = _codes(url, [(client, {}) for client in clients])
    assert codes[:BURST] == [200] * BURST
    assert set(codes[BURST:]) == {429}


def test_behind_a_trusted_proxy_each_forwarded_client_has_its_own_bucket(serve: Serve) -> None:
    # The proxy (this test, on loopback) appends the client it saw to what the client claimed.
    with serve(api_keys="off", trusted_proxies="127.0.0.1, 10.0.0.0/8") as url:
        with httpx.Client(timeout=30 * SLOWNESS) as http:

            def via_proxy(client: str, claimed: str = "") -> dict[str, str]:
                chain = f"{claimed}, {client}, 10.1.2.3" if claimed else f"{client}, 10.1.2.3"
                return {"X-Forwarded-For": chain}

            first = _codes(url, [(http, via_proxy("192.0.2.10")) for _ in range(REQUESTS)])
            # Another client, even one claiming to be the first, is counted as itself.
            second = _codes(url, [(http, via_proxy("192.0.2.11", "192.0.2.10"))] * BURST)
            # Addresses of one IPv6 /64 are one client; the next /64 is another.
            same_net = _codes(
                url, [(http, via_proxy(f"2001:db8::{n:x}")) for n in range(1, REQUESTS + 1)]
            )
            next_net = _codes(url, [(http, via_proxy("2001:db8:0:1::1"))])
    assert first[:BURST] == [200] * BURST and set(first[BURST:]) == {429}
    assert second == [200] * BURST
    assert same_net[:BURST] == [200] * BURST and set(same_net[BURST:]) == {429}
    assert next_net == [200]


def test_trusted_proxies_must_be_addresses_or_networks(settings: Settings) -> None:
    assert settings.trusted_proxies == ""  # the default: no proxy is trusted
    good = Settings(data_dir=settings.data_dir, trusted_proxies="10.0.0.0/8, ::1,192.0.2.7")
    assert [str(network) for network in good.trusted_proxy_networks] == [
        "10.0.0.0/8",
        "::1/128",
        "192.0.2.7/32",
    ]
    with pytest.raises(ValidationError, match="'nonsense' is not an IP address or network"):
        Settings(data_dir=settings.data_dir, trusted_proxies="10.0.0.1, nonsense")


def test_with_keys_off_a_hammering_local_script_leaves_other_local_clients_served(
    serve: Serve,
) -> None:
    # One request a minute after the burst, so no token comes back during the test; the
    # address's clients together may send twice one client's burst (10).
    with (
        serve(api_keys="off", rate_limit_per_minute=1, rate_limit_clients_per_address=2) as url,
        httpx.Client(timeout=30 * SLOWNESS) as http,
    ):

        def codes(headers: list[dict[str, str]]) -> list[int]:
            return _codes(url, [(http, each) for each in headers])

        script = codes([{"User-Agent": "hammer/1.0"}] * REQUESTS)
        # Before: every loopback client shared the script's empty bucket.
        browser = codes([{"User-Agent": "Mozilla/5.0 (X11; Linux x86_64) Firefox/140.0"}])
        notebook = codes([{"X-Client-Id": "notebook", "User-Agent": "hammer/1.0"}])
        # 7 of the address's 10 tokens are taken (refused requests take none): a script that
        # names itself anew each time gets 3 more answers, then nobody on the address does.
        rotating = codes([{"X-Client-Id": f"rotating-{n}"} for n in range(REQUESTS)])
        browser_again = codes([{"User-Agent": "Mozilla/5.0 (X11; Linux x86_64) Firefox/140.0"}])
    assert script[:BURST] == [200] * BURST and set(script[BURST:]) == {429}
    assert browser == [200]
    assert notebook == [200]
    assert rotating[:3] == [200] * 3 and set(rotating[3:]) == {429}
    assert browser_again == [429]
