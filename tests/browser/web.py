"""The web page as a user drives it (Playwright's async API), and what it saw go wrong."""

from __future__ import annotations

import json
import re
import urllib.request
import uuid
from typing import Any
from urllib.parse import quote

from playwright.async_api import Locator, Page, expect

from tests.conftest import repo_root

TOKEN = "web-token"
# The machine is shared and a chat's first turn starts a Ray actor: wait for the page, never sleep.
expect.set_options(timeout=30_000)
SCREENSHOTS = repo_root() / "artifacts" / "screenshots"
_VIOLATION = re.compile(r"Content Security Policy|Trusted ?Type", re.IGNORECASE)


def new_user() -> str:
    return f"ana-{uuid.uuid4().hex[:6]}"


class WebPage:
    def __init__(self, page: Page, base_url: str, test_name: str) -> None:
        self.page = page
        self.base_url = base_url
        self.test_name = re.sub(r"\W+", "-", test_name).strip("-")
        self.errors: list[str] = []
        self.foreign_requests: list[str] = []
        page.on("pageerror", lambda exc: self.errors.append(f"uncaught: {exc}"))
        page.on("console", self._console)
        page.on("request", self._request)

    def _console(self, message: Any) -> None:
        if message.type == "error" and _VIOLATION.search(message.text):
            self.errors.append(f"console: {message.text}")

    def _request(self, request: Any) -> None:
        if not request.url.startswith(self.base_url + "/") and not request.url.startswith("data:"):
            self.foreign_requests.append(request.url)

    # -- parts of the page ---------------------------------------------------------------------

    @property
    def input(self) -> Locator:
        return self.page.locator("#input")

    @property
    def messages(self) -> Locator:
        """The conversation's top-level messages (not the ones folded away)."""
        return self.page.locator("#messages > li.msg")

    @property
    def chat_links(self) -> Locator:
        return self.page.locator("#chat-list a")

    @property
    def meter(self) -> Locator:
        return self.page.locator("#meter")

    # -- actions --------------------------------------------------------------------------------

    async def goto(self) -> None:
        await self.page.goto(self.base_url + "/")

    async def sign_in(self, user: str, token: str = TOKEN) -> None:
        await self.page.fill("#signin-user", user)
        await self.page.fill("#signin-token", token)
        await self.page.click("#signin-form button[type=submit]")

    async def send(self, text: str) -> None:
        """Type the message and press Enter, as a user does."""
        await self.input.click()
        await self.input.fill(text)
        await self.input.press("Enter")

    async def ask(self, text: str) -> None:
        """Send the message and wait for the whole answer."""
        await self.send(text)
        await self.wait_idle(text)

    async def wait_idle(self, sent: str) -> None:
        """Until the turn that sent `sent` is over and the page shows the chat as stored."""
        await expect(self.page.locator("#messages > li.msg.user .body").last).to_have_text(sent)
        await expect(self.page.locator(".msg.streaming")).to_have_count(0)
        await expect(self.input).to_be_enabled()
        await self.page.wait_for_load_state("networkidle")

    async def partial_answer(self, final: str, start: str) -> str:
        """Waits until the answer being streamed shows `start`, but not yet all of `final`."""
        handle = await self.page.wait_for_function(
            """([final, start]) => {
                const body = document.querySelector('.msg.streaming .body');
                const text = body ? body.innerText.trim() : '';
                return text.startsWith(start) && text.length < final.length ? text : null;
            }""",
            arg=[final, start],
            polling=50,  # ms; Playwright's default requestAnimationFrame polling stalls here
        )
        return str(await handle.json_value())

    async def transcript(self) -> list[tuple[str, str]]:
        """(role, text) of each message shown, folded ones included, in order."""
        rows = await self.page.locator("#messages li.msg").evaluate_all(
            "items => items.map(li => [li.classList[1], li.querySelector('.body').innerText.trim()])"
        )
        return [(role, text) for role, text in rows]

    async def meter_tokens(self) -> int:
        return int(await self.meter.get_attribute("aria-valuenow") or "0")

    def chat_id(self) -> str:
        match = re.search(r"#chat/(.+)$", self.page.url)
        assert match, self.page.url
        return match.group(1)

    async def shot(self, name: str) -> None:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        await self.page.screenshot(path=str(SCREENSHOTS / f"{self.test_name}-{name}.png"))

    # -- the API beside the page, to check what it shows against what is stored ------------------

    def api(self, method: str, path: str, user: str) -> Any:
        url = f"{self.base_url}/v1/users/{quote(user, safe='')}/chats{path}"
        request = urllib.request.Request(url, method=method, headers={"Authorization": TOKEN})
        with urllib.request.urlopen(request, timeout=30) as response:
            raw = response.read()
        return json.loads(raw) if raw else None
