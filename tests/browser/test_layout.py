"""The page on a phone-sized screen, and used with the keyboard alone."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from playwright.async_api import expect

from tests.browser.conftest import Serve
from tests.browser.web import TOKEN, WebPage, new_user

pytestmark = [pytest.mark.browser, pytest.mark.e2e, pytest.mark.ray]
OpenPage = Callable[..., Any]
# Reduced motion: the drawer appears without sliding, so screenshots catch it in place.
PHONE = {
    "viewport": {"width": 390, "height": 844},
    "is_mobile": True,
    "has_touch": True,
    "reduced_motion": "reduce",
}


async def test_on_a_phone_the_chat_list_is_a_drawer_and_nothing_overflows(
    serve_web: Serve, open_page: OpenPage
) -> None:
    web: WebPage = await open_page(serve_web(), **PHONE)
    await web.sign_in(new_user())
    await web.ask("A question asked on a phone, long enough to wrap over several lines on a narrow screen.")
    sidebar, menu = web.page.locator("#sidebar"), web.page.locator("#menu")
    await expect(sidebar).to_be_hidden()
    await expect(menu).to_have_attribute("aria-expanded", "false")
    assert await web.page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")

    await menu.tap()
    await expect(sidebar).to_be_visible()
    await expect(menu).to_have_attribute("aria-expanded", "true")
    await expect(web.page.locator("#new-chat")).to_be_focused()  # focus moves into the drawer
    await expect(web.chat_links).to_have_count(1)
    await web.shot("drawer")
    await web.chat_links.first.tap()  # choosing a chat closes the drawer
    await expect(sidebar).to_be_hidden()
    await menu.tap()
    await web.page.keyboard.press("Escape")
    await expect(sidebar).to_be_hidden()
    await expect(menu).to_be_focused()  # and back to the button that opened it
    await web.shot("phone")


async def test_everything_works_from_the_keyboard_with_a_visible_focus(
    serve_web: Serve, open_page: OpenPage
) -> None:
    web: WebPage = await open_page(serve_web())
    keys = web.page.keyboard
    focused = "document.activeElement.id"
    await expect(web.page.locator("#signin-user")).to_be_focused()
    await keys.type(new_user())
    await keys.press("Tab")
    await keys.type(TOKEN)
    await keys.press("Enter")
    await expect(web.input).to_be_focused()
    await keys.type("Sent with the keyboard")
    await keys.press("Enter")
    await web.wait_idle("Sent with the keyboard")
    await expect(web.input).to_be_focused()

    await keys.press("Tab")
    assert await web.page.evaluate(focused) == "send"
    outline = await web.page.locator("#send").evaluate("b => getComputedStyle(b).outlineStyle")
    assert outline == "solid"

    # Delete from the keyboard: the dialog opens on Cancel, Escape keeps the chat.
    delete = web.page.locator("#chat-list button.delete")
    await delete.focus()
    await keys.press("Enter")
    await expect(web.page.locator("#confirm-delete")).to_be_visible()
    assert await web.page.evaluate("document.activeElement.value") == "cancel"
    await keys.press("Escape")
    await expect(web.page.locator("#confirm-delete")).to_be_hidden()
    await expect(web.chat_links).to_have_count(1)


async def test_on_a_phone_the_inputs_hint_fits_on_its_line(serve_web: Serve, open_page: OpenPage) -> None:
    web: WebPage = await open_page(serve_web(), **PHONE)
    await web.sign_in(new_user())
    await expect(web.input).to_be_visible()
    # An empty textarea's scrollHeight counts its placeholder's lines: more than fits means clipped.
    fits = "t => t.value === '' && t.scrollHeight <= t.clientHeight && t.placeholder.length > 0"
    assert await web.input.evaluate(fits)
    await web.page.set_viewport_size({"width": 1280, "height": 800})  # room again: the full hint
    await expect(web.input).to_have_attribute("placeholder", "Message (Enter sends, Shift+Enter adds a line)")
    assert await web.input.evaluate(fits)
