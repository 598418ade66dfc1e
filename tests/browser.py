"""Headless Chromium (Debian's package) driven over the DevTools protocol, for the browser test.

Nothing is downloaded: the browser is the system's ``chromium`` (``make browser`` installs it) and
the protocol is spoken over a loopback WebSocket with aiohttp. A page is loaded, given time to
render, then inspected with JavaScript in the page itself (``evaluate``) and photographed.
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import json
import shutil
import subprocess
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import aiohttp

# What a page reports about itself: its text, and each image with its natural width (0 = broken).
PAGE_STATE = """(() => ({
  text: document.body ? document.body.innerText : "",
  images: Array.from(document.images).map(i => ({src: i.src.slice(0, 120), complete: i.complete,
                                                 width: i.naturalWidth})),
}))()"""


def chromium_path() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


class Page:
    """One browser tab: navigate, wait for a condition, read the page's state, screenshot."""

    def __init__(self, websocket_url: str) -> None:
        self.websocket_url = websocket_url
        self._ids = itertools.count(1)

    async def _call(self, ws: Any, method: str, **params: Any) -> dict[str, Any]:
        message_id = next(self._ids)
        await ws.send_str(json.dumps({"id": message_id, "method": method, "params": params}))
        while True:
            reply = json.loads((await ws.receive()).data)
            if reply.get("id") == message_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return dict(reply.get("result", {}))

    async def _visit(
        self, url: str, ready: str, timeout: float, screenshot: Path | None
    ) -> dict[str, Any]:
        async with (
            aiohttp.ClientSession() as session,
            session.ws_connect(self.websocket_url, max_msg_size=0) as ws,
        ):
            await self._call(ws, "Page.enable")
            await self._call(ws, "Page.navigate", url=url)
            deadline = time.monotonic() + timeout
            state: dict[str, Any] = {}
            while time.monotonic() < deadline:
                result = await self._call(
                    ws,
                    "Runtime.evaluate",
                    expression=f"({ready}) ? {PAGE_STATE} : null",
                    returnByValue=True,
                )
                state = result.get("result", {}).get("value") or {}
                if state:
                    break
                await asyncio.sleep(0.5)
            if screenshot is not None:
                shot = await self._call(ws, "Page.captureScreenshot", format="png")
                screenshot.write_bytes(base64.b64decode(shot["data"]))
            return state

    def visit(
        self, url: str, ready: str = "true", timeout: float = 60, screenshot: Path | None = None
    ) -> dict[str, Any]:
        """Load ``url``; once the JavaScript condition ``ready`` holds, the page's state.

        Returns {} when ``ready`` never held within ``timeout`` seconds.
        """
        return asyncio.run(self._visit(url, ready, timeout, screenshot))


@contextmanager
def headless_chromium(executable: str, port: int) -> Iterator[Page]:
    """A headless Chromium with its DevTools endpoint on 127.0.0.1:``port``, stopped afterwards."""
    with tempfile.TemporaryDirectory() as profile:
        process = subprocess.Popen(
            [
                executable,
                "--headless",
                "--no-sandbox",  # tests run as root in containers
                "--disable-gpu",
                "--no-first-run",
                "--disable-background-networking",  # no update checks, no safe-browsing lists
                "--disable-component-update",
                # Loopback only: any other host name fails to resolve (a page's CDN, an update).
                "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1",
                "--window-size=1400,1000",
                f"--user-data-dir={profile}",
                "--remote-debugging-address=127.0.0.1",
                f"--remote-debugging-port={port}",
                "about:blank",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            endpoint = f"http://127.0.0.1:{port}/json/list"
            deadline = time.monotonic() + 60
            while True:
                try:
                    with urllib.request.urlopen(endpoint, timeout=5) as response:
                        targets = json.loads(response.read())
                    pages = [t for t in targets if t.get("type") == "page"]
                    if pages:
                        break
                except OSError:
                    pass
                if time.monotonic() > deadline or process.poll() is not None:
                    raise RuntimeError("chromium did not open its DevTools endpoint")
                time.sleep(0.5)
            yield Page(pages[0]["webSocketDebuggerUrl"])
        finally:
            process.terminate()
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
