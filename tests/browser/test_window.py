"""The token window on the page: the meter moves, and evicted messages show under a fold."""

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
CONTEXT, RESERVE = 160, 40  # a tiny window, so a few messages fill it

FACTS = [
    "My name is Ana and my cat is called Miau.",
    "I live in Porto Alegre, in the south of Brazil.",
    "I work as a nurse at a hospital near the river.",
    "On weekends I cook feijoada for my whole family.",
    "Next month I fly to Lisbon for a nursing conference.",
]
QUESTION = "Do you remember my cat's name?"


def recall(messages: list[dict[str, Any]]) -> str:
    """A model that knows only what is in its context, and says how much it sees."""
    if messages[-1]["content"] == QUESTION:
        if any("Miau" in m["content"] for m in messages):
            return "Your cat is called Miau."
        return "I'm sorry, I don't know your cat's name: nothing I can see mentions it."
    return f"Noted. I can see {len(messages) - 1} of our messages."


async def test_the_meter_moves_and_evicted_messages_show_greyed_under_a_fold(
    serve_web: Serve, open_page: OpenPage, fake_llm: FakeLLM
) -> None:
    serve = serve_web(MODEL_MAX_TOKENS=str(CONTEXT), MAX_TOKENS=str(RESERVE))
    web: WebPage = await open_page(serve, viewport={"width": 1280, "height": 1280})
    user = new_user()
    await web.sign_in(user)
    fake_llm.behaviour.reply = recall

    used = []
    for fact in FACTS:
        await web.ask(fact)
        used.append(await web.meter_tokens())
    assert used[0] < used[1] < used[2], used  # each turn adds to the window until it is full
    assert max(used) <= CONTEXT
    await expect(web.meter).to_have_attribute("aria-valuemax", str(CONTEXT))

    fold = web.page.locator("#messages > li.fold")
    await expect(fold).to_have_count(1)
    stored = web.api("GET", f"/{web.chat_id()}/messages?include_erased=true", user)["messages"]
    erased = [m["content"] for m in stored if m["erased"]]
    assert FACTS[0] in erased and len(erased) >= 2  # the oldest went first
    await expect(fold.locator("summary")).to_have_text(
        f"{len(erased)} earlier messages left the model's context"
    )
    folded = fold.locator("li.msg.erased")
    await expect(folded).to_have_count(len(erased))
    await expect(folded.first).to_be_hidden()
    await fold.locator("summary").click()
    await expect(folded.first).to_be_visible()
    await expect(folded.locator(".body")).to_have_text(erased)
    assert float(await folded.first.evaluate("li => getComputedStyle(li).opacity")) < 1  # greyed

    await web.ask(QUESTION)  # the fold stays open while the conversation goes on
    await expect(web.messages.last.locator(".body")).to_contain_text("I don't know your cat's name")
    await expect(fold.locator("details")).to_have_attribute("open", "")
    chat = web.api("GET", f"/{web.chat_id()}", user)
    await expect(web.meter).to_have_attribute("aria-valuenow", str(chat["window"]["tokens"]))
    await expect(web.meter).to_have_class("meter full")
    await web.shot("token-window")
