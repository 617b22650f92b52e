"""Headless Chromium (Debian's `chromium`, driven by Playwright) against the real `chatservice serve`."""

from __future__ import annotations

import os
import shutil
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest

from store import DatabaseURL
from tests.browser.web import TOKEN, WebPage
from tests.llm_server import FakeLLM
from tests.serve_process import ServeProcess

# Without the background-networking flags Chromium's own connections are refused on a closed network.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
Serve = Callable[..., ServeProcess]


def chromium_path() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="session")
async def browser() -> AsyncIterator[Any]:
    path = chromium_path()
    if path is None:
        reason = "Chromium is not installed (apt-get install chromium): the browser tests need it"
        if os.environ.get("CHATSERVICE_REQUIRE_BROWSER") == "1":
            pytest.fail(reason)
        pytest.skip(reason)
    playwright_api = pytest.importorskip("playwright.async_api", reason="playwright is not installed")
    async with playwright_api.async_playwright() as p:
        instance = await p.chromium.launch(executable_path=path, args=CHROMIUM_ARGS)
        yield instance
        await instance.close()


@pytest.fixture(scope="session")
def serve_web(ray_session: str, mysql_url: DatabaseURL, llm_server: FakeLLM) -> Iterator[Serve]:
    """Starts `chatservice serve` (with the fake LLM, MariaDB and a token) once per environment."""
    started: dict[tuple[tuple[str, str], ...], ServeProcess] = {}

    def serve(**extra: str) -> ServeProcess:
        key = tuple(sorted(extra.items()))
        if key not in started:
            env = {
                "DATABASE_URL": mysql_url.to_url(),
                "OPENAI_API_KEY": "sk-test",
                "OPENAI_BASE_URL": llm_server.base_url,
                "AUTO_TITLE": "0",
                "RAY_ADDRESS": ray_session,
                "AUTH_TOKEN": TOKEN,
                **extra,
            }
            started[key] = ServeProcess(env).start()
        return started[key]

    yield serve
    for process in started.values():
        process.stop()
        assert process.proc is not None and process.proc.returncode == 0, process.output()


@pytest.fixture
async def open_page(browser: Any, request: pytest.FixtureRequest) -> AsyncIterator[Callable[..., Any]]:
    """`await open_page(serve, viewport=...)`: a fresh browser context (own storage) on the page.

    After the test: no uncaught error, no Content-Security-Policy or Trusted Types violation, and
    no request left the service's origin.
    """
    pages: list[WebPage] = []

    async def make(serve: ServeProcess, **context_options: Any) -> WebPage:
        options = {"viewport": {"width": 1280, "height": 800}} | context_options
        context = await browser.new_context(**options)
        page = WebPage(await context.new_page(), serve.url, request.node.name)
        pages.append(page)
        await page.goto()
        return page

    yield make
    for page in pages:
        await page.page.context.close()
    for page in pages:
        assert page.errors == [], page.errors
        assert page.foreign_requests == [], page.foreign_requests
