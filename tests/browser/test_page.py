"""The web page in headless Chromium against `chatservice serve`: sign-in, chats, streaming, Stop."""

from __future__ import annotations

import asyncio
import contextlib
import re
import urllib.error
from collections.abc import Callable
from typing import Any

import pytest
from playwright.async_api import Error as PlaywrightError
from playwright.async_api import expect

from tests.browser.conftest import Serve
from tests.browser.web import WebPage, new_user
from tests.llm_server import FakeLLM, words_reply

pytestmark = [pytest.mark.browser, pytest.mark.e2e, pytest.mark.ray]
OpenPage = Callable[..., Any]


async def test_a_wrong_token_is_refused_with_a_message_and_the_right_one_is_remembered(
    serve_web: Serve, open_page: OpenPage
) -> None:
    web: WebPage = await open_page(serve_web())
    user = new_user()
    await expect(web.page.locator("#signin")).to_be_visible()
    await web.sign_in(user, "not-the-token")
    await expect(web.page.locator("#signin-error")).to_contain_text("refused this token")
    await expect(web.page.locator("#app")).to_be_hidden()
    await expect(web.page.locator("#signin-user")).to_have_value(user)  # kept, to fix the token only
    await expect(web.page.locator("#signin-token")).to_be_focused()

    await web.sign_in(user)
    await expect(web.page.locator("#app")).to_be_visible()
    await expect(web.page.locator("#who")).to_have_text(user)
    await expect(web.page.locator("#chat-title")).to_have_text("New chat")
    await expect(web.chat_links).to_have_count(0)
    await web.page.reload()  # the browser keeps the user and the token
    await expect(web.page.locator("#who")).to_have_text(user)
    await web.page.click("#sign-out")
    await expect(web.page.locator("#signin")).to_be_visible()
    assert await web.page.evaluate("localStorage.getItem('chatservice.token')") is None


async def test_two_messages_stream_in_and_the_history_survives_a_reload(
    serve_web: Serve, open_page: OpenPage, fake_llm: FakeLLM
) -> None:
    web: WebPage = await open_page(serve_web())
    user = new_user()
    await web.sign_in(user)
    fake_llm.behaviour.token_delay = 0.15  # so the answer is seen arriving word by word
    first = "What is the capital of Brazil, and why was it built inland?"
    await web.send(first)

    assert f"Echo: {first}".startswith(await web.partial_answer(f"Echo: {first}", "Echo:"))
    await expect(web.input).to_be_disabled()  # one turn at a time on this chat
    await expect(web.page.locator("#stop")).to_be_visible()
    await web.wait_idle(first)
    await expect(web.page.locator("#chat-title")).to_have_text(first)  # titled by the first message

    await web.input.click()
    await web.input.press_sequentially("And of Argentina?")
    await web.input.press("Shift+Enter")  # a new line, not a send
    await web.input.press_sequentially("Answer briefly, in one line, please.")
    await expect(web.messages.filter(has_text="And of Argentina?")).to_have_count(0)
    await web.input.press("Enter")
    second = "And of Argentina?\nAnswer briefly, in one line, please."
    await web.partial_answer(f"Echo: {second}", "Echo: And of Argentina?")
    await web.shot("streaming")
    await web.wait_idle(second)
    expected = [
        ("system", "You are a helpful assistant."),
        ("user", first),
        ("assistant", f"Echo: {first}"),
        ("user", second),
        ("assistant", f"Echo: {second}"),
    ]
    assert await web.transcript() == expected
    assert await web.meter_tokens() > 0
    await expect(web.meter).to_contain_text("/ 128,000 tokens")
    await expect(web.chat_links).to_have_count(1)
    await web.shot("conversation")

    chat_id = web.chat_id()
    await web.page.reload()
    await expect(web.messages).to_have_count(5)
    assert await web.transcript() == expected
    stored = web.api("GET", f"/{chat_id}/messages", user)["messages"]
    assert [m["content"] for m in stored] == [text for _, text in expected]


async def test_stop_ends_the_answer_on_the_server_and_keeps_the_partial_marked_stopped(
    serve_web: Serve, open_page: OpenPage, fake_llm: FakeLLM
) -> None:
    web: WebPage = await open_page(serve_web())
    user = new_user()
    await web.sign_in(user)
    fake_llm.behaviour.reply = words_reply(400)
    fake_llm.behaviour.token_delay = 0.05
    await web.send("Tell me a very long story.")
    streaming = web.page.locator(".msg.streaming .body")
    await expect(streaming).to_contain_text("w3 ")
    chat_url = web.page.url

    # The input is disabled on this chat only: a new chat takes messages while the answer runs.
    await web.page.click("#new-chat")
    await expect(web.input).to_be_enabled()
    await web.page.go_back()
    assert web.page.url == chat_url
    await expect(streaming).to_contain_text("w8 ")
    await expect(web.input).to_be_disabled()

    await web.page.click("#stop")
    stopped = web.page.locator(".msg.assistant.stopped")
    await expect(stopped).to_have_count(1)
    await expect(stopped.locator(".note")).to_contain_text("Stopped")
    await web.wait_idle("Tell me a very long story.")
    assert fake_llm.wait_for(lambda: fake_llm.records[-1].disconnected, 30)
    assert not fake_llm.records[-1].finished
    shown = (await stopped.locator(".body").inner_text()).strip()
    assert shown.startswith("w0 w1 w2 w3") and len(shown.split()) < 400

    await web.page.reload()  # as stored: the partial answer, flagged interrupted
    await expect(stopped).to_have_count(1)
    assert (await stopped.locator(".body").inner_text()).strip() == shown
    stored = web.api("GET", f"/{web.chat_id()}/messages", user)["messages"]
    assert (stored[-1]["status"], stored[-1]["content"].strip()) == ("interrupted", shown)


async def test_a_second_chat_with_its_own_settings_and_deleting_one_after_confirming(
    serve_web: Serve, open_page: OpenPage, fake_llm: FakeLLM
) -> None:
    web: WebPage = await open_page(serve_web())
    user = new_user()
    await web.sign_in(user)
    await web.ask("First chat")
    first_id = web.chat_id()

    await web.page.click("#new-chat")
    await expect(web.page.locator("#settings")).to_be_visible()
    await expect(web.messages).to_have_count(0)
    await web.page.fill("#set-system", "Answer like a pirate.")
    await web.page.fill("#set-model", "gpt-4o")
    await web.page.fill("#set-temperature", "0.5")
    await web.ask("Second chat")
    second_id = web.chat_id()
    assert second_id != first_id
    sent = fake_llm.records[-1].body
    assert (sent["model"], sent["temperature"]) == ("gpt-4o", 0.5)
    assert sent["messages"][0] == {"role": "system", "content": "Answer like a pirate."}
    await expect(web.meter).to_contain_text("/ 128,000 tokens")
    await expect(web.chat_links).to_have_text(["Second chat", "First chat"])  # newest first

    await web.chat_links.filter(has_text="First chat").click()
    await expect(web.page.locator("#chat-title")).to_have_text("First chat")
    assert web.chat_id() == first_id
    assert [text for _, text in await web.transcript()][1:] == ["First chat", "Echo: First chat"]

    delete = web.page.get_by_role("button", name="Delete chat: Second chat")
    await delete.click()
    dialog = web.page.locator("#confirm-delete")
    await expect(dialog).to_be_visible()
    await dialog.get_by_role("button", name="Cancel").click()
    await expect(web.chat_links).to_have_count(2)
    await delete.click()
    await dialog.get_by_role("button", name="Delete").click()
    await expect(web.chat_links).to_have_text(["First chat"])
    with pytest.raises(urllib.error.HTTPError) as gone:
        web.api("GET", f"/{second_id}", user)
    assert gone.value.code == 404


async def test_a_bad_chat_setting_is_explained_and_nothing_is_created(
    serve_web: Serve, open_page: OpenPage
) -> None:
    web: WebPage = await open_page(serve_web())
    user = new_user()
    await web.sign_in(user)
    await web.page.fill("#set-model", "no-such-model")
    await web.send("Hello")
    await expect(web.page.locator("#banner")).to_contain_text("no known context window")
    await expect(web.input).to_have_value("Hello")  # kept, to send again
    await expect(web.chat_links).to_have_count(0)
    assert web.api("GET", "", user)["chats"] == []


async def chat_creation(web: WebPage) -> asyncio.Event:
    """Holds the page's POST that creates a chat until the returned event is set."""
    release = asyncio.Event()

    async def hold(route: Any) -> None:
        if route.request.method == "POST":
            await release.wait()
        with contextlib.suppress(PlaywrightError):  # the page may have given up on it (Stop)
            await route.continue_()

    await web.page.route(re.compile(r"/v1/users/[^/]+/chats$"), hold)
    return release


async def test_a_new_chats_first_message_shows_at_once_and_leaves_the_input(
    serve_web: Serve, open_page: OpenPage
) -> None:
    web: WebPage = await open_page(serve_web())
    await web.sign_in(new_user())
    release = await chat_creation(web)
    await web.send("The first message of a new chat")
    # The chat is still being created (the request is held), and the message is already shown.
    pending = web.page.locator("#messages > li.msg.user.pending .body")
    await expect(pending).to_have_text("The first message of a new chat")
    await expect(web.page.locator(".msg.streaming .typing")).to_have_text("Thinking…")
    await expect(web.input).to_have_value("")
    await expect(web.input).to_be_disabled()  # one turn at a time, from Enter on: nothing typed is lost
    await expect(web.page.locator("#stop")).to_be_visible()
    release.set()
    await web.wait_idle("The first message of a new chat")
    assert [text for _, text in await web.transcript()][1:] == [
        "The first message of a new chat",
        "Echo: The first message of a new chat",
    ]
    await expect(web.input).to_have_value("")


async def test_stop_while_the_chat_is_created_gives_the_message_back(
    serve_web: Serve, open_page: OpenPage
) -> None:
    web: WebPage = await open_page(serve_web())
    user = new_user()
    await web.sign_in(user)
    release = await chat_creation(web)
    await web.send("Never mind")
    await expect(web.page.locator("#messages > li.msg.user.pending")).to_have_count(1)
    await web.page.click("#stop")
    await expect(web.input).to_have_value("Never mind")  # never sent: back to edit or send again
    await expect(web.input).to_be_enabled()
    await expect(web.messages).to_have_count(0)
    release.set()
    await expect(web.chat_links).to_have_count(0)
    assert web.api("GET", "", user)["chats"] == []


async def test_after_stop_the_last_line_and_the_mark_stay_in_view(
    serve_web: Serve, open_page: OpenPage, fake_llm: FakeLLM
) -> None:
    web: WebPage = await open_page(serve_web(), viewport={"width": 1000, "height": 560})
    await web.sign_in(new_user())
    fake_llm.behaviour.reply = lambda messages: "\n\n".join(f"Line {i} of a long answer." for i in range(150))
    fake_llm.behaviour.token_delay = 0.01
    await web.send("A long answer, please.")
    await expect(web.page.locator(".msg.streaming .body")).to_contain_text("Line 60 of")
    await web.page.click("#stop")
    await web.wait_idle("A long answer, please.")
    in_view = """() => {
        const box = document.getElementById('conversation').getBoundingClientRect();
        const inside = el => { const r = el.getBoundingClientRect(); return r.top >= box.top && r.bottom <= box.bottom; };
        const answer = [...document.querySelectorAll('#messages > li.msg.assistant')].pop();
        return [inside(answer.querySelector('.note')), inside(answer.querySelector('.body > :last-child'))];
    }"""
    assert await web.page.evaluate(in_view) == [True, True]
    await web.shot("stopped-in-view")
