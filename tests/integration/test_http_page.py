"""The web page over HTTP: public, strict headers, revalidated by ETag, and self-contained."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from importlib import resources

import pytest
from aiohttp.test_utils import TestClient, TestServer

from gateways.http.app import create_app
from gateways.http.page import ASSETS
from gateways.serve import build_runtime
from gateways.settings import Settings
from store import DatabaseURL

WEB = resources.files("gateways.http").joinpath("web")
PATHS = {"/": "text/html"} | {f"/web/{n}": t for n, t in ASSETS.items() if n != "index.html"}


@pytest.fixture
async def client(sqlite_url: DatabaseURL) -> AsyncIterator[TestClient]:  # type: ignore[type-arg]
    runtime = build_runtime(
        Settings.from_env({"DATABASE_URL": sqlite_url.to_url(), "AUTH_TOKEN": "tok"}), in_process=True
    )
    c = TestClient(TestServer(create_app(runtime.settings, runtime.service, runtime.readiness)))
    await c.start_server()
    yield c
    await c.close()
    await runtime.close()


def text(name: str) -> str:
    return WEB.joinpath(name).read_text(encoding="utf-8")


@pytest.mark.parametrize(("path", "kind"), PATHS.items())
async def test_the_page_and_its_assets_are_public_with_strict_headers(
    client: TestClient,  # type: ignore[type-arg]
    path: str,
    kind: str,
) -> None:
    r = await client.get(path)  # no token
    assert r.status == 200 and r.content_type == kind and r.charset == "utf-8"
    csp = r.headers["Content-Security-Policy"]
    for directive in ("default-src 'self'", "script-src 'self'", "style-src 'self'", "object-src 'none'"):
        assert directive in csp
    assert "require-trusted-types-for 'script'" in csp and "unsafe" not in csp
    assert r.headers["X-Content-Type-Options"] == "nosniff"
    assert r.headers["Cache-Control"] == "no-cache" and r.headers["ETag"]
    name = "index.html" if path == "/" else path.removeprefix("/web/")
    assert await r.read() == WEB.joinpath(name).read_bytes()


async def test_an_unchanged_asset_is_revalidated_with_a_304(client: TestClient) -> None:  # type: ignore[type-arg]
    etag = (await client.get("/web/app.js")).headers["ETag"]
    r = await client.get("/web/app.js", headers={"If-None-Match": etag})
    assert r.status == 304 and await r.read() == b"" and r.headers["ETag"] == etag
    assert (await client.get("/web/app.js", headers={"If-None-Match": '"other"'})).status == 200
    assert (await client.head("/")).status == 200


async def test_the_api_still_needs_the_token_and_unknown_assets_are_not_served(
    client: TestClient,  # type: ignore[type-arg]
) -> None:
    assert (await client.get("/v1/users/u1/chats")).status == 401
    assert (await client.get("/web/nope.js")).status == 401  # not public: nothing to serve there
    r = await client.get("/web/nope.js", headers={"Authorization": "tok"})
    assert r.status == 404 and (await r.json())["error"]["code"] == "not_found"
    assert (await client.get("/web/index.html", headers={"Authorization": "tok"})).status == 404


def test_the_page_references_only_its_own_assets_and_every_file_is_served() -> None:
    html = text("index.html")
    refs = re.findall(r'(?:src|href)="([^"]*)"', html)
    assert refs and all(ref.startswith("/web/") and ref.removeprefix("/web/") in ASSETS for ref in refs)
    imports = {
        m for name in ASSETS if name.endswith(".js") for m in re.findall(r'from "\./([^"]+)"', text(name))
    }
    assert imports <= set(ASSETS)
    assert not re.search(r"url\(|@import", text("app.css"))
    # Beside the served files: the vendored code's notes and licence (package data, not served).
    assert {f.name for f in WEB.iterdir()} == set(ASSETS) | {"VENDOR.md", "highlight.LICENSE"}


VENDORED = {"highlight.min.js"}  # its highlightElement sets innerHTML: the page never calls it


@pytest.mark.parametrize("name", [n for n in ASSETS if n.endswith(".js") and n not in VENDORED])
def test_no_script_turns_strings_into_html_or_code(name: str) -> None:
    # The CSP's Trusted Types enforce this in Chromium; this keeps it true for every browser.
    assert not re.search(
        r"innerHTML\s*=|outerHTML\s*=|insertAdjacentHTML|document\.write|\beval\(|new Function"
        r"|highlightElement|highlightAll|highlightBlock|initHighlighting",
        text(name),
    )
