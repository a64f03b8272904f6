"""The app as a web server: Streamlit's own ASGI server (``st.App``), with a page opened by its own URL told where the
server is.

Opened by its own URL (``/predict``), a page makes Streamlit's front end look for the server under that path first
(``/predict/_stcore/health`` and ``/predict/_stcore/host-config``) and under the root only after those fail
(streamlit/streamlit#7074): two 404s in the browser's console on every deep link. The front end skips that search
when the page says where the server is (``window.__streamlit.BACKEND_BASE_URL``, its hook for hosts that serve it
elsewhere). :class:`PagePaths` writes that into the page's HTML for the app's own page paths: the server is the
page URL's folder (``/predict`` -> ``/``, and under a ``server.baseUrlPath`` ``/base/predict`` -> ``/base/``).
Nothing else changes: the root, every other path and every other response pass as they came.

Front-end hooks move between Streamlit releases: ``streamlit`` is pinned to the tested range in ``pyproject.toml``,
and the browser test opens every page by its URL and fails on any console message.

Plain ASGI, no Streamlit import: ``streamlit_app.py`` hands it to ``st.App`` as a middleware.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from typing import Any

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

SERVER_HINT = (b'<script>window.__streamlit = Object.assign({}, window.__streamlit, '
               b'{BACKEND_BASE_URL: new URL(".", window.location.href).href});</script>')
"""Where the server is, for a page opened at ``<server>/<page>``: the page URL's folder. A classic inline script in
``<head>``, so it runs before Streamlit's module script reads the hook."""

MAX_PAGE_BYTES = 1 << 20
"""Streamlit's index.html is ~2 KB: a larger page (or one of unknown type) is passed on untouched."""


def page_paths(url_paths: Iterable[str]) -> frozenset[str]:
    """The path segments that name a page: the navigation's ``url_path`` values (the default page's is empty: it is
    the root, where the front end finds the server at once)."""
    return frozenset(p.strip("/") for p in url_paths if p.strip("/"))


def is_page(path: str, pages: frozenset[str]) -> bool:
    """Whether a request path opens one of ``pages`` by its URL (``/predict``, or ``/base/predict`` under a base path:
    the last segment names the page)."""
    return path.rstrip("/").rpartition("/")[2] in pages and not path.endswith("/")


def with_server_hint(html: bytes) -> bytes:
    """``html`` with :data:`SERVER_HINT` at the start of its ``<head>`` (unchanged if it has no ``<head>``)."""
    at = html.find(b"<head>")
    return html if at < 0 else html[:at + 6] + SERVER_HINT + html[at + 6:]


class PagePaths:
    """ASGI middleware: the HTML of a page opened by its own URL says where the server is (see the module doc)."""

    def __init__(self, app: ASGIApp, pages: Iterable[str]) -> None:
        self.app = app
        self.pages = page_paths(pages)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("method") != "GET" or not is_page(scope["path"], self.pages):
            await self.app(scope, receive, send)
            return
        # The page's HTML whole and uncompressed, to add one line to it (it is about 2 KB); never a 304 for a copy the
        # browser kept from before.
        scope = dict(scope, headers=[(k, v) for k, v in scope.get("headers", []) if k.lower() not in DROPPED])
        held: Message | None = None
        body = bytearray()

        async def hinted(message: Message) -> None:
            nonlocal held
            if message["type"] == "http.response.start" and _hintable(message):
                held = message
            elif message["type"] == "http.response.body" and held is not None:
                body.extend(message.get("body", b""))
                if not message.get("more_body", False):
                    page = with_server_hint(bytes(body))
                    headers = [(k, v) for k, v in held.get("headers", []) if k.lower() not in (b"content-length",
                                                                                             b"etag")]
                    await send(dict(held, headers=[*headers, (b"content-length", str(len(page)).encode())]))
                    await send({"type": "http.response.body", "body": page})
            else:
                await send(message)

        await self.app(scope, receive, hinted)


DROPPED = (b"accept-encoding", b"if-none-match", b"if-modified-since")
"""Request headers taken off a page's request: compression and conditional requests."""


def _hintable(start: Message) -> bool:
    """Whether a response is a page's HTML to add the hint to: 200, HTML, uncompressed, of a known small length."""
    headers = {k.lower(): v for k, v in start.get("headers", [])}
    length = headers.get(b"content-length", b"")
    return (start.get("status") == 200 and headers.get(b"content-type", b"").startswith(b"text/html")
            and b"content-encoding" not in headers and length.isdigit() and int(length) <= MAX_PAGE_BYTES)
