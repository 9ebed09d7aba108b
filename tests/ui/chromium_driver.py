"""A headless Chromium (Debian's ``chromium``) driven over the DevTools protocol.

Only what the page tests need: open a page and wait for it to load, run an expression in it,
read cookies, take a screenshot. The browser is the system's; nothing is downloaded.
"""

from __future__ import annotations

import base64
import itertools
import json
import shutil
import subprocess
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx
from slowness import SLOWNESS
from websockets.sync.client import ClientConnection, connect

START_TIMEOUT_S = 30.0 * SLOWNESS
COMMAND_TIMEOUT_S = 30.0 * SLOWNESS
CONNECT_TIMEOUT_S = 10.0 * SLOWNESS
STOP_TIMEOUT_S = 10.0 * SLOWNESS
WINDOW = (1280, 900)


def find_chromium() -> str | None:
    """The path of the system's Chromium, or None."""
    for name in ("chromium", "chromium-browser"):
        found = shutil.which(name)
        if found:
            return found
    return None


class Chromium:
    """One headless Chromium process with one page (tab) to drive."""

    def __init__(self, executable: str, profile: Path):
        self._process = subprocess.Popen(
            [
                executable,
                "--headless=new",
                "--no-sandbox",  # CI runs as root, where Chromium's sandbox cannot start
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--no-first-run",
                "--no-default-browser-check",
                "--disable-extensions",
                "--disable-background-networking",
                "--remote-debugging-address=127.0.0.1",
                "--remote-debugging-port=0",
                f"--user-data-dir={profile}",
                f"--window-size={WINDOW[0]},{WINDOW[1]}",
                "about:blank",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self._stack = ExitStack()
        self._stack.callback(self._stop)
        try:
            self._connect(profile)
        except BaseException:
            self._stack.close()
            raise

    def _connect(self, profile: Path) -> None:
        port = self._port(profile / "DevToolsActivePort")
        pages = [
            target
            for target in httpx.get(
                f"http://127.0.0.1:{port}/json/list", timeout=CONNECT_TIMEOUT_S
            ).json()
            if target["type"] == "page"
        ]
        self._socket: ClientConnection = self._stack.enter_context(
            connect(
                pages[0]["webSocketDebuggerUrl"],
                max_size=64 * 1024 * 1024,
                open_timeout=CONNECT_TIMEOUT_S,
            )
        )
        self._ids = itertools.count(1)
        self.events: list[dict[str, Any]] = []
        self.send("Page.enable")
        self.send("Network.enable")
        self.send(
            "Emulation.setDeviceMetricsOverride",
            width=WINDOW[0],
            height=WINDOW[1],
            deviceScaleFactor=1,
            mobile=False,
        )

    def _port(self, path: Path) -> int:
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(f"chromium exited with {self._process.returncode}")
            if path.exists():
                lines = path.read_text().splitlines()
                if lines and lines[0].isdigit():
                    return int(lines[0])
            time.sleep(0.05)
        raise RuntimeError("chromium did not open its DevTools port")

    def send(self, method: str, **params: Any) -> dict[str, Any]:
        """Run one DevTools command and return its result (events meanwhile are kept)."""
        number = next(self._ids)
        self._socket.send(json.dumps({"id": number, "method": method, "params": params}))
        deadline = time.monotonic() + COMMAND_TIMEOUT_S
        while True:
            message = json.loads(self._socket.recv(timeout=max(0.1, deadline - time.monotonic())))
            if message.get("id") == number:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                result: dict[str, Any] = message.get("result", {})
                return result
            self.events.append(message)

    def _wait_for(self, event: str) -> dict[str, Any]:
        """The first ``event`` since the last navigation (kept in ``events``)."""
        deadline = time.monotonic() + COMMAND_TIMEOUT_S
        looked = 0
        while True:
            for message in self.events[looked:]:
                if message.get("method") == event:
                    return message
            looked = len(self.events)
            message = json.loads(self._socket.recv(timeout=max(0.1, deadline - time.monotonic())))
            self.events.append(message)

    def open(self, url: str) -> int:
        """Load ``url`` and wait for its load event; the HTTP status of the document (after
        any redirects)."""
        self.events.clear()
        self.send("Page.navigate", url=url)
        return self._loaded()

    def _loaded(self) -> int:
        self._wait_for("Page.loadEventFired")
        status = 0
        for message in self.events:
            params = message.get("params", {})
            if message.get("method") == "Network.responseReceived" and params.get("type") == (
                "Document"
            ):
                status = int(params["response"]["status"])
        return status

    def evaluate(self, expression: str) -> Any:
        """The value of a JavaScript expression in the page."""
        result = self.send(
            "Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True
        )
        if "exceptionDetails" in result:
            raise RuntimeError(f"page script failed: {result['exceptionDetails']}")
        return result["result"].get("value")

    def submit(self, form_script: str) -> int:
        """Run a script that submits a form, wait for the next page to load; its status."""
        self.events.clear()
        self.evaluate(form_script)
        return self._loaded()

    def cookies(self) -> list[dict[str, Any]]:
        """Every cookie the browser holds."""
        cookies: list[dict[str, Any]] = self.send("Network.getAllCookies")["cookies"]
        return cookies

    def clear_cookies(self) -> None:
        """Forget every cookie (a new visitor)."""
        self.send("Network.clearBrowserCookies")

    def screenshot(self, path: Path, max_height: int = 2000) -> None:
        """A PNG of the page, from its top down to ``max_height`` pixels, at ``path``."""
        metrics = self.send("Page.getLayoutMetrics")
        size = metrics["cssContentSize"]
        shot = self.send(
            "Page.captureScreenshot",
            format="png",
            captureBeyondViewport=True,
            clip={
                "x": 0,
                "y": 0,
                "width": max(WINDOW[0], size["width"]),
                "height": min(max_height, size["height"]),
                "scale": 1,
            },
        )
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(shot["data"]))

    def close(self) -> None:
        """Stop the browser."""
        self._stack.close()

    def _stop(self) -> None:
        self._process.terminate()
        try:
            self._process.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
