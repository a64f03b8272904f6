"""The web server's page paths: a page opened by its own URL says where the server is, and nothing else changes.

The browser test (``test_every_page_opens_by_deep_link``) checks the whole: every page by its URL under
``streamlit run``, no console message. These check the middleware itself against a stand-in ASGI app.
"""

from __future__ import annotations

import asyncio

import pytest

from glitchnet.webapp import MAX_PAGE_BYTES, SERVER_HINT, PagePaths, is_page, page_paths, with_server_hint

INDEX = b"<!DOCTYPE html>\n<html lang=\"en\">\n  <head>\n    <title>Streamlit</title>\n  </head>\n</html>\n"


def test_page_paths_are_the_named_pages_only() -> None:
    pages = page_paths(["", "explore", "/predict/", "train"])
    assert pages == {"explore", "predict", "train"}
    assert is_page("/predict", pages) and is_page("/base/predict", pages)
    for path in ("/", "", "/predict/", "/predict/_stcore/health", "/home", "/static/js/x.js"):
        assert not is_page(path, pages), path


def test_the_hint_goes_first_in_the_head() -> None:
    hinted = with_server_hint(INDEX)
    assert hinted == INDEX.replace(b"<head>", b"<head>" + SERVER_HINT)
    assert hinted.index(SERVER_HINT) < hinted.index(b"<title>")
    assert with_server_hint(b"<html>no head</html>") == b"<html>no head</html>"
    assert b"BACKEND_BASE_URL" in SERVER_HINT and b'new URL(".", window.location.href)' in SERVER_HINT


def _serve(middleware_pages, path: str, *, status=200, content_type=b"text/html", body=INDEX, chunks=1,
           method="GET", kind="http", headers=None):
    """Run one request through PagePaths over a stand-in app; (the scope the app saw, what was sent)."""
    seen: dict = {}

    async def app(scope, receive, send):
        seen.update(scope)
        size = len(body)
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", content_type), (b"content-length", str(size).encode()),
                                (b"etag", b'"abc"')]})
        step = -(-size // chunks) if size else 1
        parts = [body[i:i + step] for i in range(0, size, step)] or [b""]
        for i, part in enumerate(parts):
            await send({"type": "http.response.body", "body": part, "more_body": i < len(parts) - 1})

    sent: list = []

    async def send(message):
        sent.append(message)

    async def receive():
        return {"type": "http.request"}

    scope = {"type": kind, "method": method, "path": path,
             "headers": headers if headers is not None else [(b"accept-encoding", b"gzip"), (b"host", b"x"),
                                                            (b"if-none-match", b'"abc"')]}
    asyncio.run(PagePaths(app, middleware_pages)(scope, receive, send))
    return seen, sent


def _body(sent) -> bytes:
    return b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")


def _headers(sent) -> dict:
    return dict(next(m for m in sent if m["type"] == "http.response.start")["headers"])


@pytest.mark.parametrize("chunks", [1, 3])
def test_a_page_opened_by_its_url_says_where_the_server_is(chunks: int) -> None:
    seen, sent = _serve(["explore", "predict"], "/predict", chunks=chunks)
    assert _body(sent) == with_server_hint(INDEX)
    headers = _headers(sent)
    assert headers[b"content-length"] == str(len(with_server_hint(INDEX))).encode() and b"etag" not in headers
    # asked uncompressed and unconditional: the page's HTML is read whole and never answered by a stale copy
    assert [k for k, _ in seen["headers"]] == [b"host"]


@pytest.mark.parametrize(("path", "changes"), [
    ("/", {}), ("/_stcore/health", {}), ("/predict/_stcore/health", {}), ("/elsewhere", {}),
    ("/predict", {"status": 404}), ("/predict", {"content_type": b"application/json"}),
    ("/predict", {"body": b"<head>" + b" " * MAX_PAGE_BYTES}), ("/predict", {"method": "POST"}),
])
def test_everything_else_passes_as_it_came(path: str, changes: dict) -> None:
    body = changes.get("body", INDEX)
    seen, sent = _serve(["predict"], path, **changes)
    assert _body(sent) == body
    assert _headers(sent)[b"content-length"] == str(len(body)).encode()
    if changes.get("method") == "POST" or path != "/predict":
        assert (b"accept-encoding", b"gzip") in seen["headers"]  # the request untouched too
