"""Code blocks in answers: syntax colours from the vendored highlight.js, and a copy button."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from playwright.async_api import expect

from tests.browser.conftest import Serve
from tests.browser.web import WebPage, new_user
from tests.llm_server import FakeLLM

pytestmark = [pytest.mark.browser, pytest.mark.e2e, pytest.mark.ray]
OpenPage = Callable[..., Any]

PYTHON = 'def greet(name):\n    # say hello\n    return f"Olá, {name}" + "<b>" * 2\n'
SHELL = "echo '<script>alert(1)</script>'"
ANSWER = f"Try this:\n\n```python\n{PYTHON}```\n\nand run:\n\n```\n{SHELL}\n```\n\nor `inline`."


async def test_code_is_coloured_and_copied_exactly_under_the_strict_policy(
    serve_web: Serve, open_page: OpenPage, fake_llm: FakeLLM
) -> None:
    web: WebPage = await open_page(serve_web(), permissions=["clipboard-read", "clipboard-write"])
    await web.sign_in(new_user())
    fake_llm.behaviour.reply = lambda messages: ANSWER
    await web.ask("Show me some code")

    for shown in ("live", "reloaded"):
        blocks = web.page.locator("#messages > li.msg.assistant pre")
        await expect(blocks).to_have_count(2)
        python, shell = blocks.first, blocks.last
        code = python.locator("code")
        await expect(code).to_have_text(PYTHON.rstrip("\n"))  # the colours change no character
        await expect(code.locator("span.hljs-keyword").first).to_have_text("def")
        await expect(code.locator("span.hljs-comment")).to_have_text("# say hello")
        await expect(code.locator("span.hljs-title.function_")).to_have_text("greet")
        colours = await code.locator("span.hljs-keyword").first.evaluate("s => getComputedStyle(s).color")
        plain = await code.evaluate("c => getComputedStyle(c).color")
        assert colours != plain
        await expect(shell.locator("code")).to_have_text(SHELL)  # no language: plain, HTML as text
        assert await shell.locator("code span").count() == 0
        assert await web.page.locator("#messages script").count() == 0

        await python.get_by_role("button", name="Copy the code").click()
        await expect(python.get_by_role("button", name="Copied")).to_be_visible()
        assert await web.page.evaluate("navigator.clipboard.readText()") == PYTHON.rstrip("\n")
        await shell.get_by_role("button", name="Copy the code").click()
        assert await web.page.evaluate("navigator.clipboard.readText()") == SHELL
        # The button's label is drawn by CSS: an answer selected and copied whole has no "Copy" in it.
        assert "Copy" not in await web.page.locator("#messages > li.msg.assistant .body").inner_text()
        if shown == "live":
            await web.shot("code")
            await web.page.reload()


async def test_a_streaming_code_block_is_coloured_as_it_grows(
    serve_web: Serve, open_page: OpenPage, fake_llm: FakeLLM
) -> None:
    web: WebPage = await open_page(serve_web())
    await web.sign_in(new_user())
    lines = "\n".join(f"total = total + {i}  # step {i}" for i in range(40))
    fake_llm.behaviour.reply = lambda messages: f"```python\n{lines}\n```"
    fake_llm.behaviour.token_delay = 0.02
    await web.send("Count slowly")
    streaming = web.page.locator(".msg.streaming pre code")
    await expect(streaming.locator("span.hljs-comment").first).to_have_text("# step 0")
    await web.wait_idle("Count slowly")
    await expect(web.page.locator("#messages > li.msg.assistant pre code")).to_have_text(lines)
