"""The page's controls on the message tree and the chat list: regenerate, edit and the ‹n/m›
arrows, rename in place, search, copy a message or a code block."""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable
from typing import Any

import pytest
from playwright.async_api import Locator, expect

from tests.browser.conftest import Serve
from tests.browser.web import WebPage, new_user
from tests.llm_server import FakeLLM, echo

pytestmark = [pytest.mark.browser, pytest.mark.e2e, pytest.mark.ray]
OpenPage = Callable[..., Any]

PREVIOUS = re.compile(r"^Previous version")
NEXT = re.compile(r"^Next version")


def asks_title(messages: list[dict[str, Any]]) -> bool:
    """The request for a chat's title, made after its first exchange."""
    return str(messages[0]["content"]).startswith("Write a short title")


def version(item: Locator) -> Locator:
    return item.locator(".branches")


async def test_regenerate_makes_a_second_answer_and_the_arrows_switch_between_them(
    serve_web: Serve, open_page: OpenPage, fake_llm: FakeLLM
) -> None:
    web: WebPage = await open_page(serve_web())
    user = new_user()
    await web.sign_in(user)
    question = "Pick a number"
    count = itertools.count(1)
    fake_llm.behaviour.reply = lambda m: f"Number {next(count)}"
    await web.ask(question)
    answer = web.messages.last
    await expect(answer.locator(".body")).to_have_text("Number 1")
    await expect(version(answer)).to_have_count(0)  # one version: no arrows

    await answer.get_by_role("button", name="Regenerate the answer").click()
    await expect(web.page.locator(".msg.streaming")).to_have_count(0)
    await expect(web.messages).to_have_count(3)  # system, question, the new answer (no second question)
    await expect(web.messages.last.locator(".body")).to_have_text("Number 2")
    await expect(version(web.messages.last)).to_have_attribute("aria-label", "Version 2 of 2")
    await expect(web.messages.last.locator(".branch-position")).to_have_text("2/2")

    await web.messages.last.get_by_role("button", name=PREVIOUS).click()
    await expect(web.messages.last.locator(".body")).to_have_text("Number 1")
    await expect(web.messages.last.locator(".branch-position")).to_have_text("1/2")
    await expect(web.messages.last.get_by_role("button", name=NEXT)).to_be_focused()  # press it again
    await web.page.reload()  # the switch is stored: the active path runs through the first answer
    await expect(web.messages.last.locator(".body")).to_have_text("Number 1")
    stored = web.api("GET", f"/{web.chat_id()}/messages", user)["messages"]
    assert [m["content"] for m in stored[1:]] == [question, "Number 1"]
    assert stored[-1]["siblings"]["count"] == 2


async def test_an_edit_resends_on_a_new_branch_and_the_arrows_go_back_and_forth(
    serve_web: Serve, open_page: OpenPage, fake_llm: FakeLLM
) -> None:
    web: WebPage = await open_page(serve_web())
    user = new_user()
    await web.sign_in(user)
    fake_llm.behaviour.reply = echo
    await web.ask("What is the capital of Peru?")
    await web.ask("And its population, roughly, in millions of people?")
    original = await web.transcript()
    long_path = await web.meter_tokens()

    first = web.messages.nth(1)
    await first.get_by_role("button", name="Edit the message").click()
    editor = first.get_by_role("textbox", name="Edit the message")
    await expect(editor).to_be_focused()
    await expect(editor).to_have_value("What is the capital of Peru?")
    await editor.press("Escape")  # cancels: nothing sent, the message as it was
    await expect(first.locator(".body")).to_have_text("What is the capital of Peru?")
    await expect(first.get_by_role("button", name="Edit the message")).to_be_focused()

    await first.get_by_role("button", name="Edit the message").click()
    await editor.fill("What is the capital of Chile?")
    await editor.press("Enter")
    await web.wait_idle("What is the capital of Chile?")
    edited = [
        original[0],
        ("user", "What is the capital of Chile?"),
        ("assistant", "Echo: What is the capital of Chile?"),
    ]
    assert await web.transcript() == edited
    await expect(web.messages.nth(1).locator(".branch-position")).to_have_text("2/2")
    short_path = await web.meter_tokens()
    await web.shot("branches")

    await web.messages.nth(1).get_by_role("button", name=PREVIOUS).click()
    await expect(web.messages.nth(1).locator(".branch-position")).to_have_text("1/2")
    await expect(web.messages).to_have_count(5)
    assert await web.transcript() == original  # the earlier branch, whole, its second exchange too
    await expect(web.meter).to_have_attribute("aria-valuenow", str(long_path))  # the window follows the path

    await web.messages.nth(1).get_by_role("button", name=NEXT).click()
    await expect(web.messages).to_have_count(3)
    assert await web.transcript() == edited
    await expect(web.meter).to_have_attribute("aria-valuenow", str(short_path))
    assert short_path < long_path
    print(f"window tokens: long branch {long_path}, after switching to the edit {short_path}")


async def test_a_chat_is_renamed_in_place_with_enter_and_escape_cancels(
    serve_web: Serve, open_page: OpenPage, fake_llm: FakeLLM
) -> None:
    web: WebPage = await open_page(serve_web(AUTO_TITLE="1"))  # the one test with titles from the LLM
    user = new_user()
    await web.sign_in(user)
    fake_llm.behaviour.reply = lambda m: "Lisbon trip" if asks_title(m) else "Gladly."
    await web.ask("Plan a trip to Lisbon")
    chat_id = web.chat_id()
    before = "Lisbon trip"  # asked of the LLM after the first exchange, shown when it comes
    await expect(web.chat_links).to_have_text([before])
    await expect(web.page.locator("#chat-title")).to_have_text(before)

    await web.page.get_by_role("button", name=f"Rename chat: {before}").click()
    field = web.page.locator("#chat-list .rename-input")
    await expect(field).to_be_focused()
    await field.fill("Not this")
    await field.press("Escape")
    await expect(web.chat_links).to_have_text([before])
    await expect(web.page.get_by_role("button", name=f"Rename chat: {before}")).to_be_focused()
    assert web.api("GET", f"/{chat_id}", user)["title"] == before

    await web.page.keyboard.press("Enter")  # the focused rename button opens the field again
    await expect(field).to_be_focused()
    await field.fill("  Lisbon, three days  ")
    await field.press("Enter")
    await expect(web.chat_links).to_have_text(["Lisbon, three days"])
    await expect(web.page.locator("#chat-title")).to_have_text("Lisbon, three days")
    await expect(web.page.get_by_role("button", name="Rename chat: Lisbon, three days")).to_be_focused()
    assert web.api("GET", f"/{chat_id}", user)["title"] == "Lisbon, three days"
    await web.page.reload()
    await expect(web.chat_links).to_have_text(["Lisbon, three days"])


async def test_search_finds_a_chat_by_a_word_in_its_messages_and_opens_it_from_the_keyboard(
    serve_web: Serve, open_page: OpenPage, fake_llm: FakeLLM
) -> None:
    web: WebPage = await open_page(serve_web())
    user = new_user()
    await web.sign_in(user)
    fake_llm.behaviour.reply = lambda m: "Noted."
    await web.ask("Groceries for the week")
    await web.ask("Also buy persimmons and rye bread")  # the word only in a later message
    wanted = web.chat_id()
    await web.page.click("#new-chat")
    await web.ask("Books to read this winter")
    await expect(web.chat_links).to_have_count(2)

    box = web.page.get_by_role("searchbox", name="Search chats")
    await box.click()
    await box.press_sequentially("persimmons")
    hit = web.page.locator("#chat-list .chat-item")
    await expect(hit).to_have_count(1)
    await expect(hit.locator("a")).to_have_attribute("href", f"#chat/{wanted}")
    await expect(hit.locator(".snippet")).to_contain_text("persimmons")
    await expect(hit.locator(".snippet mark").first).to_have_text(re.compile("^persimmons$", re.I))
    await web.shot("search")

    await box.press("ArrowDown")
    await expect(hit.locator("a")).to_be_focused()
    await web.page.keyboard.press("Enter")
    await expect(web.page).to_have_url(re.compile(f"#chat/{re.escape(wanted)}$"))
    await expect(web.messages.nth(3).locator(".body")).to_have_text("Also buy persimmons and rye bread")

    await box.fill("no-such-word-anywhere")
    await expect(web.page.locator("#search-none")).to_be_visible()
    await expect(hit).to_have_count(0)
    await box.press("Escape")  # clears: the whole list again
    await expect(box).to_have_value("")
    await expect(web.chat_links).to_have_count(2)


async def test_copy_a_message_an_answer_and_a_code_block_with_and_without_the_clipboard_api(
    serve_web: Serve, open_page: OpenPage, fake_llm: FakeLLM
) -> None:
    code = 'print("hi")'
    answer = f"Run:\n\n```python\n{code}\n```"
    fake_llm.behaviour.reply = lambda m: answer
    web: WebPage = await open_page(serve_web(), permissions=["clipboard-read", "clipboard-write"])
    await web.sign_in(new_user())
    await web.ask("How do I print?\n  Keep it short.")
    question, reply = web.messages.nth(1), web.messages.nth(2)

    await question.get_by_role("button", name="Copy the message").click()
    await expect(question.get_by_role("button", name="Copied")).to_be_visible()
    assert await web.page.evaluate("navigator.clipboard.readText()") == "How do I print?\n  Keep it short."
    await reply.get_by_role("button", name="Copy the answer").click()
    assert await web.page.evaluate("navigator.clipboard.readText()") == answer  # as written: Markdown
    await expect(reply.locator(".controls .copied")).to_be_visible()
    await reply.get_by_role("button", name="Copy the code").click()
    await expect(reply.get_by_role("button", name="Copied")).to_have_count(2)
    assert await web.page.evaluate("navigator.clipboard.readText()") == code
    await expect(reply.get_by_role("button", name="Copy the answer")).to_be_visible()  # back in 2 s

    # Where the clipboard API is refused (plain http away from localhost), the text is selected.
    await web.page.evaluate("Object.defineProperty(navigator, 'clipboard', {value: undefined})")
    await question.get_by_role("button", name="Copy the message").click()
    await expect(question.locator(".controls .copy")).to_have_class(re.compile(r"\b(copied|selected)\b"))
    selected = await web.page.evaluate("getSelection().toString()")
    assert selected == "How do I print?\n  Keep it short."
