"""The /v1 branch API through aiohttp's test client: regenerate, edit, switch, rename, paths, search, titles."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any
from urllib.parse import quote

import pytest
from aiohttp.test_utils import TestClient

from gateways.service.titles import ASK, TITLE_MAX_TOKENS
from store import DatabaseURL
from tests.http_support import MakeClient, app_clients, parse_events, read_events
from tests.integration.test_actor import killed
from tests.llm_server import FakeLLM, echo

SSE = {"Accept": "text/event-stream"}
Client = TestClient  # type: ignore[type-arg]


@pytest.fixture
async def make_client(db_url: DatabaseURL, fake_llm: FakeLLM) -> AsyncIterator[MakeClient]:
    async with app_clients(db_url, fake_llm) as make:
        yield make


@pytest.fixture
async def make_ray_client(
    ray_session: str, mysql_url: DatabaseURL, fake_llm: FakeLLM
) -> AsyncIterator[MakeClient]:
    """Gateways on the Ray router: two of them reach one actor per chat, and an actor can die."""
    async with app_clients(mysql_url, fake_llm, ray=True) as make:
        yield make


@pytest.fixture
def user() -> str:
    return f"user-{uuid.uuid4().hex[:8]}"


def chats(user: str) -> str:
    return f"/v1/users/{quote(user, safe='')}/chats"


async def ok(response: Any, status: int = 200) -> Any:
    assert response.status == status, await response.text()
    return await response.json()


async def two_exchanges(client: Client, user: str) -> str:
    """A chat holding system 1, user 2, answer 3, user 4, answer 5."""
    chat = await ok(await client.post(chats(user), json={}), 201)
    url = f"{chats(user)}/{chat['chat_id']}"
    for content in ("one", "two"):
        await ok(await client.post(f"{url}/messages", json={"content": content}))
    return str(url)


async def path(client: Client, url: str, query: str = "") -> list[dict[str, Any]]:
    return (await ok(await client.get(f"{url}/messages{query}")))["messages"]  # type: ignore[no-any-return]


def shape(messages: list[dict[str, Any]]) -> list[tuple[int, str, list[int], int]]:
    return [
        (m["message_id"], m["content"], m["siblings"]["ids"], m["siblings"]["position"]) for m in messages
    ]


async def test_regenerate_edit_switch_and_rename(make_client: MakeClient, user: str) -> None:
    client = await make_client()
    url = await two_exchanges(client, user)
    again = await ok(await client.post(f"{url}/messages/5/regenerate", json={}))
    assert (again["user_message_id"], again["assistant_message_id"]) == (4, 6)
    assert again["content"] == "Echo: two"
    active = await path(client, url)
    assert [m["message_id"] for m in active] == [1, 2, 3, 4, 6]
    assert active[4]["siblings"] == {"ids": [5, 6], "position": 2, "count": 2}
    assert shape(await path(client, url, "?leaf=5"))[3:] == [(4, "two", [4], 1), (5, "Echo: two", [5, 6], 1)]

    r = await client.post(f"{url}/messages/2/edit", json={"content": "uno"}, headers=SSE)
    events = parse_events(await r.read())
    assert [n for n, _ in events][:: len(events) - 1] == ["start", "end"]
    assert (events[0][1]["user_message_id"], events[-1][1]["assistant_message_id"]) == (7, 8)
    edited = await path(client, url)
    assert shape(edited) == [
        (1, "You are a helpful assistant.", [1], 1),
        (7, "uno", [2, 7], 2),
        (8, "Echo: uno", [8], 1),
    ]

    # Back to the first version: the path runs down its newest children (the regenerated answer).
    before = (await ok(await client.get(url)))["window"]
    switched = await ok(await client.put(f"{url}/leaf", json={"message_id": 2}))
    rebuilt = await path(client, url)
    assert [m["message_id"] for m in rebuilt] == [1, 2, 3, 4, 6]
    assert switched["window"]["messages"] == 5 and before["messages"] == 3
    # The window is the path's messages plus a constant (the reply's priming), on either branch.
    overhead = before["tokens"] - sum(m["tokens"] for m in edited)
    assert switched["window"]["tokens"] == sum(m["tokens"] for m in rebuilt) + overhead
    assert (await ok(await client.put(f"{url}/leaf", json={"message_id": 7})))["window"] == before
    await ok(await client.put(f"{url}/leaf", json={"message_id": 2}))
    follow = await ok(await client.post(f"{url}/messages", json={"content": "three"}))
    assert follow["user_message_id"] == 9 and follow["content"] == "Echo: three"
    assert [m["message_id"] for m in await path(client, url)] == [1, 2, 3, 4, 6, 9, 10]

    renamed = await ok(await client.patch(url, json={"title": "  Minha\tconversa  "}))
    assert renamed["title"] == "Minha conversa" and "window" in renamed
    assert (await ok(await client.get(url)))["title"] == "Minha conversa"


async def test_bad_ids_bodies_and_titles_are_4xx_and_change_nothing(
    make_client: MakeClient, user: str
) -> None:
    client = await make_client(MAX_MESSAGE_CHARS="50")
    url = await two_exchanges(client, user)
    title = (await ok(await client.get(url)))["title"]
    other = f"{chats('someone-else')}/{url.rsplit('/', 1)[1]}"
    cases: list[tuple[str, str, Any, int]] = [
        ("POST", f"{url}/messages/abc/regenerate", {}, 400),
        ("POST", f"{url}/messages/1e3/regenerate", {}, 400),
        ("POST", f"{url}/messages/-3/regenerate", {}, 404),
        ("POST", f"{url}/messages/99/regenerate", {}, 404),
        ("POST", f"{url}/messages/99999999999999999999/regenerate", {}, 404),
        ("POST", f"{url}/messages/4/regenerate", {}, 400),  # a user message
        ("POST", f"{url}/messages/1/regenerate", {}, 400),  # the system prompt
        ("POST", f"{url}/messages/5/regenerate", {"content": "x"}, 400),
        ("POST", f"{other}/messages/5/regenerate", {}, 403),
        ("POST", f"{chats(user)}/nochat/messages/5/regenerate", {}, 404),
        ("POST", f"{url}/messages/3/edit", {"content": "x"}, 400),  # an answer
        ("POST", f"{url}/messages/2/edit", {"content": " \u200b "}, 400),
        ("POST", f"{url}/messages/2/edit", {}, 400),
        ("POST", f"{url}/messages/2/edit", {"content": 7}, 400),
        ("POST", f"{url}/messages/2/edit", {"content": "x" * 51}, 413),
        ("POST", f"{url}/messages/99/edit", {"content": "x"}, 404),
        ("POST", f"{other}/messages/2/edit", {"content": "x"}, 403),
        ("PUT", f"{url}/leaf", {"message_id": "2"}, 400),
        ("PUT", f"{url}/leaf", {"message_id": True}, 400),
        ("PUT", f"{url}/leaf", {}, 400),
        ("PUT", f"{url}/leaf", {"message_id": 99}, 404),
        ("PUT", f"{url}/leaf", {"message_id": 2**70}, 404),
        ("PUT", f"{other}/leaf", {"message_id": 2}, 403),
        ("PATCH", url, {"title": ""}, 400),
        ("PATCH", url, {"title": " \t "}, 400),
        ("PATCH", url, {"title": "x" * 201}, 400),
        ("PATCH", url, {"title": "a\x00b"}, 400),
        ("PATCH", url, {"title": "ok", "status": "ended"}, 400),
        ("PATCH", other, {"title": "mine"}, 403),
        ("GET", f"{url}/messages?leaf=abc", None, 400),
        ("GET", f"{url}/messages?leaf=99", None, 404),
        ("GET", f"{other}/messages?leaf=2", None, 403),
        ("GET", f"{chats(user)}?q=a", None, 400),  # nothing searchable
    ]
    for method, target, body, status in cases:
        r = await client.request(method, target, json=body)
        assert r.status == status, (method, target, body, await r.text())
        assert "error" in await r.json()
    r = await client.post(f"{url}/messages/5/regenerate", data=b"{}", headers={"Content-Type": "text/plain"})
    assert r.status == 415
    assert [m["message_id"] for m in await path(client, url, "?include_erased=true")] == [1, 2, 3, 4, 5]
    assert (await ok(await client.get(url)))["title"] == title


async def test_search_by_title_and_content_in_pages(make_client: MakeClient, user: str) -> None:
    client = await make_client()
    word = f"zebra{uuid.uuid4().hex[:6]}"
    made = []
    for content in (f"Tell me about the {word} migration", "nothing here", f"More {word} facts please"):
        chat = await ok(await client.post(chats(user), json={}), 201)
        await ok(await client.post(f"{chats(user)}/{chat['chat_id']}/messages", json={"content": content}))
        made.append(chat["chat_id"])
    await ok(await client.patch(f"{chats(user)}/{made[1]}", json={"title": f"Notes on {word}s"}))

    first = await ok(await client.get(f"{chats(user)}?q={word.upper()}&page_size=2"))
    assert [c["chat_id"] for c in first["chats"]] == [made[2], made[1]]  # newest first
    assert first["chats"][0]["snippet"] == f"Echo: More {word} facts please"  # the newest match
    assert "snippet" not in first["chats"][1]  # only its title matched
    rest = await ok(
        await client.get(f"{chats(user)}?q={word}&page_size=2&page_token={first['next_page_token']}")
    )
    assert [c["chat_id"] for c in rest["chats"]] == [made[0]] and rest["next_page_token"] == ""
    assert "window" not in rest["chats"][0]
    theirs = await ok(await client.get(f"{chats('someone-else')}?q={word}"))
    assert theirs["chats"] == []
    plain = await ok(await client.get(f"{chats(user)}?q=%20"))  # blank: the plain list
    assert len(plain["chats"]) == 3


@pytest.mark.ray
async def test_a_regenerate_sent_while_a_turn_streams_queues_behind_it(
    make_ray_client: MakeClient, fake_llm: FakeLLM, user: str
) -> None:
    tab_a, tab_b = await make_ray_client(), await make_ray_client()  # two gateways, one chat
    url = await two_exchanges(tab_a, user)
    fake_llm.behaviour.token_delay = 0.05
    fake_llm.behaviour.reply = lambda messages: " ".join(f"w{i}" for i in range(30))
    r = await tab_a.post(f"{url}/messages", json={"content": "three"}, headers=SSE)
    (start, _), *_ = (await read_events(r, 2))[0]
    assert start == "start"
    regenerate = asyncio.ensure_future(tab_b.post(f"{url}/messages/3/regenerate", headers=SSE))
    events = parse_events(await r.read())  # the running turn ends undisturbed
    assert events[-1][0] == "end" and events[-1][1]["assistant_message_id"] == 7
    again = parse_events(await (await regenerate).read())
    assert [n for n, _ in again][:: len(again) - 1] == ["start", "end"]
    assert (again[0][1]["user_message_id"], again[-1][1]["assistant_message_id"]) == (2, 8)
    seen_a, seen_b = await path(tab_a, url), await path(tab_b, url)
    assert seen_a == seen_b and [m["message_id"] for m in seen_a] == [1, 2, 8]
    assert seen_a[2]["siblings"]["ids"] == [3, 8]
    earlier = await path(tab_a, url, "?leaf=6")  # the branch the regenerate left
    assert [(m["message_id"], m["status"]) for m in earlier][4:] == [
        (5, "complete"),
        (6, "complete"),
        (7, "complete"),
    ]


@pytest.mark.ray
async def test_a_regenerate_outlives_its_actors_death(
    make_ray_client: MakeClient, fake_llm: FakeLLM, user: str
) -> None:
    """The turn's end names its user message, so a fresh activation takes the regenerate over."""
    client = await make_ray_client()
    url = await two_exchanges(client, user)
    fake_llm.behaviour.token_delay = 0.05
    fake_llm.behaviour.reply = lambda messages: " ".join(f"w{i}" for i in range(20))
    r = await client.post(f"{url}/messages/5/regenerate", headers=SSE)
    await read_events(r, 2)
    await killed(url.rsplit("/", 1)[1])
    events = parse_events(await r.read())
    assert events[-1][0] == "end", events[-1]
    assert events[-1][1]["assistant_message_id"] == 6
    active = await path(client, url)
    assert [(m["message_id"], m["status"]) for m in active][3:] == [(4, "complete"), (6, "complete")]
    assert active[-1]["content"] == " ".join(f"w{i}" for i in range(20))


def titled_by(answer: str | None) -> Callable[[list[dict[str, Any]]], str]:
    """The fake LLM's reply: `answer` to a title request (None: it fails), an echo otherwise."""

    def reply(messages: list[dict[str, Any]]) -> str:
        if messages[0]["content"] != ASK:
            return echo(messages)
        if answer is None:
            raise RuntimeError("the title request fails")
        return answer

    return reply


async def chat_title(client: Client, url: str, other_than: str, tries: int = 400) -> str:
    """The chat's title once it is no longer `other_than` (or still it, after a while)."""
    for _ in range(tries):
        title = (await ok(await client.get(url)))["title"]
        if title != other_than:
            return str(title)
        await asyncio.sleep(0.05)
    return str(title)


async def test_the_llm_titles_a_chat_after_its_first_exchange_unless_it_was_named(
    make_client: MakeClient, fake_llm: FakeLLM, user: str
) -> None:
    client = await make_client(AUTO_TITLE="1")
    fake_llm.behaviour.reply = titled_by('Title: "Pão caseiro sem sova".\nExtra line')
    named = await ok(await client.post(chats(user), json={}), 201)
    named_url = f"{chats(user)}/{named['chat_id']}"
    await ok(await client.patch(named_url, json={"title": "Mine"}))
    await ok(await client.post(f"{named_url}/messages", json={"content": "Como faço pão?"}))
    answered = await ok(await client.post(chats(user), json={}), 201)
    url = f"{chats(user)}/{answered['chat_id']}"
    reply = await ok(await client.post(f"{url}/messages", json={"content": "Como faço pão em casa?"}))
    assert reply["content"] == "Echo: Como faço pão em casa?"  # the answer is not the title's
    assert await chat_title(client, url, "Como faço pão em casa?") == "Pão caseiro sem sova"
    asks = [r.body for r in fake_llm.records if r.body["messages"][0]["content"] == ASK]
    assert [a["messages"][1]["content"] for a in asks] == ["Como faço pão em casa?"]
    assert asks[0]["max_tokens"] == TITLE_MAX_TOKENS
    assert (await ok(await client.get(named_url)))["title"] == "Mine"
    await ok(await client.post(f"{url}/messages", json={"content": "E com fermento natural?"}))
    await ok(await client.post(f"{url}/messages/5/regenerate"))
    assert len([r for r in fake_llm.records if r.body["messages"][0]["content"] == ASK]) == 1


async def test_offline_or_a_failing_llm_keeps_the_first_words_as_title(
    make_client: MakeClient, fake_llm: FakeLLM, user: str
) -> None:
    first = "Quero aprender " + "muitas palavras novas " * 10
    offline = await make_client(AUTO_TITLE="1", OPENAI_API_KEY="")
    chat = await ok(await offline.post(chats(user), json={}), 201)
    url = f"{chats(user)}/{chat['chat_id']}"
    await ok(await offline.post(f"{url}/messages", json={"content": first}))
    title = (await ok(await offline.get(url)))["title"]
    assert title == " ".join(first.split())[:79] + "…"

    online = await make_client(AUTO_TITLE="1")
    fake_llm.behaviour.reply = titled_by(None)  # the title request fails (a 500, retried by the SDK)
    chat = await ok(await online.post(chats(user), json={}), 201)
    url = f"{chats(user)}/{chat['chat_id']}"
    reply = await ok(await online.post(f"{url}/messages", json={"content": "Olá, tudo bem?"}))
    assert reply["content"] == "Echo: Olá, tudo bem?"
    for _ in range(400):  # every attempt made: a rename could only follow an answer
        if len([r for r in fake_llm.records if r.body["messages"][0]["content"] == ASK]) == 3:
            break
        await asyncio.sleep(0.05)
    assert (await ok(await online.get(url)))["title"] == "Olá, tudo bem?"
