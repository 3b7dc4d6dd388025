"""Headless Chromium driven over the Chrome DevTools Protocol: the distribution's browser, no download.

Chromium starts on a fresh profile with `--remote-debugging-port=0`; the port it picked is read from
DevToolsActivePort, and one page target is driven over its websocket. Every protocol event is kept, so
tests can assert on console messages, exceptions, dialogs and network requests after the fact.
"""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

from websockets.sync.client import ClientConnection, connect

from tests.support.processes import stop_group

INSTALL_HINT = (
    "Chromium is needed for the HTML report tests: install it with `apt-get install -y chromium` "
    "(`make test` does it: `make test-deps`), or set BENCHGATE_CHROMIUM to a Chromium/Chrome binary"
)
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-extensions",
    "--hide-scrollbars",
    "--remote-debugging-port=0",
]


PROBLEMS = ("error", "warning", "assert")


class BrowserMissing(RuntimeError):
    pass


def find_chromium(explicit: str | None = None) -> str:
    """The binary to run (`explicit`, else Chromium on PATH), or BrowserMissing saying how to get one."""
    if explicit:
        found = shutil.which(explicit)
        if not found:
            raise BrowserMissing(f"BENCHGATE_CHROMIUM={explicit} is not an executable. {INSTALL_HINT}")
        return found
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    raise BrowserMissing(INSTALL_HINT)


class Browser:
    """One Chromium process with one page; use as a context manager so the process always ends."""

    def __init__(self, binary: str, width: int = 1280, height: int = 900, start_timeout: float = 30) -> None:
        self.profile = Path(tempfile.mkdtemp(prefix="benchgate-chromium-"))
        self.log = (self.profile / "chromium.log").open("wb")  # a file, not a pipe nobody drains
        self.process = subprocess.Popen(
            [
                binary,
                *FLAGS,
                f"--user-data-dir={self.profile}",
                f"--window-size={width},{height}",
                "about:blank",
            ],
            stdout=subprocess.DEVNULL,
            stderr=self.log,
            start_new_session=True,
        )
        self.events: list[dict[str, Any]] = []
        self._next_id = 0
        try:
            self.socket = self._connect(start_timeout)
            for domain in ("Page", "Runtime", "Log", "Network"):
                self.send(f"{domain}.enable")
            self.send(
                "Emulation.setDeviceMetricsOverride",
                width=width,
                height=height,
                deviceScaleFactor=1,
                mobile=False,
            )
        except BaseException:
            self.close()
            raise

    def __enter__(self) -> Browser:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        socket = getattr(self, "socket", None)
        if socket is not None:
            socket.close()
        stop_group(self.process, term_wait=5)
        self.log.close()
        shutil.rmtree(self.profile, ignore_errors=True)

    def _connect(self, timeout: float) -> ClientConnection:
        """Wait for DevToolsActivePort, then attach to the page target Chromium opened."""
        port_file = self.profile / "DevToolsActivePort"
        deadline = time.monotonic() + timeout
        while not port_file.exists() or not port_file.read_text().strip():
            if self.process.poll() is not None:
                stderr = (self.profile / "chromium.log").read_text(errors="replace")
                raise RuntimeError(f"chromium exited with {self.process.returncode}: {stderr[-2000:]}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"chromium wrote no {port_file} within {timeout}s")
            time.sleep(0.05)
        port = int(port_file.read_text().split()[0])
        local = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # never via an HTTP proxy
        with local.open(f"http://127.0.0.1:{port}/json/list", timeout=10) as response:
            targets = json.load(response)
        page = next(t for t in targets if t["type"] == "page")
        return connect(page["webSocketDebuggerUrl"], max_size=None, open_timeout=timeout, proxy=None)

    def send(self, method: str, timeout: float = 30, **params: Any) -> dict[str, Any]:
        """Call a protocol method and return its result; events read meanwhile are kept."""
        self._next_id += 1
        call_id = self._next_id
        self.socket.send(json.dumps({"id": call_id, "method": method, "params": params}))
        deadline = time.monotonic() + timeout
        while True:
            message = json.loads(self.socket.recv(timeout=max(0.01, deadline - time.monotonic())))
            if message.get("id") == call_id:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message.get("result", {})
            if "method" in message:
                self.events.append(message)

    def wait_for_event(self, method: str, timeout: float = 30) -> dict[str, Any]:
        """The first event of this kind not yet consumed, reading more if needed."""
        deadline = time.monotonic() + timeout
        while True:
            for event in self.events:
                if event["method"] == method and not event.get("_consumed"):
                    event["_consumed"] = True
                    return event
            message = json.loads(self.socket.recv(timeout=max(0.01, deadline - time.monotonic())))
            if "method" in message:
                self.events.append(message)

    def open(self, url: str, timeout: float = 30) -> None:
        """Navigate and wait for the load event (the page's script has run by then)."""
        self.send("Page.navigate", url=url)
        self.wait_for_event("Page.loadEventFired", timeout)

    def evaluate(self, expression: str) -> Any:
        """A JavaScript expression's value (JSON-serialisable); a thrown exception fails loudly."""
        result = self.send("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression!r} threw: {result['exceptionDetails']}")
        return result["result"].get("value")

    def type_text(self, selector: str, text: str) -> None:
        """Focus the element and type into it as a user would (input events included)."""
        self.evaluate(f"document.querySelector({json.dumps(selector)}).focus()")
        self.send("Input.insertText", text=text)

    def screenshot(self, path: Path) -> bytes:
        data = self.send("Page.captureScreenshot", format="png")["data"]
        png = base64.b64decode(data)
        path.write_bytes(png)
        return png

    def problems(self) -> list[str]:
        """Console errors and warnings, uncaught exceptions, log errors and dialogs seen so far."""
        found = []
        for event in self.events:
            method, params = event["method"], event.get("params", {})
            if method == "Runtime.exceptionThrown":
                found.append(f"exception: {params['exceptionDetails']}")
            elif method == "Runtime.consoleAPICalled" and params.get("type") in PROBLEMS:
                found.append(f"console.{params['type']}: {params.get('args')}")
            elif method == "Log.entryAdded" and params["entry"]["level"] in PROBLEMS:
                found.append(f"log {params['entry']['level']}: {params['entry'].get('text')}")
            elif method == "Page.javascriptDialogOpening":
                found.append(f"dialog: {params.get('message')}")
        return found

    def requests(self) -> list[str]:
        """The URL of every request the page made."""
        return [
            e["params"]["request"]["url"] for e in self.events if e["method"] == "Network.requestWillBeSent"
        ]
