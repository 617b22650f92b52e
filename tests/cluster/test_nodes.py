"""Past one machine: two gateways on the same chats, and a node lost with its conversations."""

from __future__ import annotations

import asyncio
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from store import DatabaseURL, open_store
from store.records import MessageRecord, Role
from tests.cluster.support import call, until
from tests.llm_server import FakeLLM
from tests.ray_cluster import RayCluster
from tests.serve_process import ServeProcess

pytestmark = [pytest.mark.cluster, pytest.mark.e2e, pytest.mark.timeout(900)]


def send(serve: ServeProcess, user: str, chat_id: str, content: str) -> tuple[int, Any]:
    return call(serve, "POST", f"/v1/users/{user}/chats/{chat_id}/messages", {"content": content})


def new_chat(serve: ServeProcess, user: str) -> str:
    status, chat = call(serve, "POST", f"/v1/users/{user}/chats", {})
    assert status == 201, chat
    return str(chat["chat_id"])


async def history(url: DatabaseURL, chat_id: str) -> list[MessageRecord]:
    store = open_store(url)
    try:
        return await store.list_messages(chat_id, include_erased=True)
    finally:
        await store.close()


def check_turns_in_order(messages: list[MessageRecord]) -> list[str]:
    """System first, then whole turns: each user message answered by its echo. Returns the questions."""
    assert [m.seq for m in messages] == list(range(1, len(messages) + 1))
    assert messages[0].role is Role.SYSTEM and not any(m.erased for m in messages)
    pairs = list(zip(messages[1::2], messages[2::2], strict=True))
    for question, answer in pairs:
        assert (question.role, answer.role) == (Role.USER, Role.ASSISTANT)
        assert answer.content == f"Echo: {question.content}" and answer.turn_id == question.turn_id
    return [q.content for q, _ in pairs]


def ok(result: tuple[int, Any]) -> tuple[int, Any] | None:
    return result if result[0] == 200 else None


def placement(cluster: RayCluster, chat_ids: list[str]) -> dict[str, str]:
    """chat id -> the node its live actor runs on, from the dashboard's state API."""
    actors = cluster.api("/api/v0/actors?limit=10000&detail=1")["data"]["result"]["result"]
    names = {f"chat:{c}": c for c in chat_ids}
    return {names[a["name"]]: a["node_id"] for a in actors if a["name"] in names and a["state"] == "ALIVE"}


def test_two_gateways_serve_the_same_chats_interleaved_without_conflicts(
    cluster: RayCluster, gateway_env: dict[str, str], fake_llm: FakeLLM, mysql_url: DatabaseURL
) -> None:
    fake_llm.behaviour.token_delay = 0.01
    user = f"g-{uuid.uuid4().hex[:8]}"
    with ServeProcess(gateway_env) as a, ServeProcess(gateway_env) as b:
        chats = [new_chat(a, user) for _ in range(3)]
        jobs = [(g, name, c, k) for c in chats for g, name in ((a, "a"), (b, "b")) for k in range(4)]
        with ThreadPoolExecutor(len(jobs)) as pool:
            results = list(pool.map(lambda j: send(j[0], user, j[2], f"{j[1]}{j[3]} {j[2]}"), jobs))
        windows = [call(b, "GET", f"/v1/users/{user}/chats/{c}")[1]["window"]["messages"] for c in chats]
    for (_, name, chat_id, k), (status, answer) in zip(jobs, results, strict=True):
        assert status == 200, answer
        assert answer["content"] == f"Echo: {name}{k} {chat_id}"
    assert windows == [17, 17, 17]  # the system prompt and 8 whole turns, in every chat
    for chat_id in chats:
        questions = check_turns_in_order(asyncio.run(history(mysql_url, chat_id)))
        assert sorted(questions) == sorted(f"{g}{k} {chat_id}" for g in "ab" for k in range(4))


def test_chats_on_a_lost_node_reactivate_on_the_survivors_with_nothing_lost(
    cluster: RayCluster, gateway_env: dict[str, str], fake_llm: FakeLLM, mysql_url: DatabaseURL
) -> None:
    node_b = cluster.add_node("b")
    user = f"n-{uuid.uuid4().hex[:8]}"
    try:
        with ServeProcess(gateway_env) as serve:
            chats: list[str] = []
            before: dict[str, str] = {}
            # SPREAD places chats round the nodes; a loaded machine may skip the newest node a
            # few times, so make chats until both node b and the others hold some.
            while len(chats) < 6 or (node_b.node_id not in before.values() and len(chats) < 18):
                chat_id = new_chat(serve, user)
                chats.append(chat_id)
                for k in range(2):
                    status, answer = send(serve, user, chat_id, f"{chat_id} pergunta {k}")
                    assert status == 200, answer
                before = placement(cluster, chats)
            lost = [c for c in chats if before[c] == node_b.node_id]
            assert lost and len(lost) < len(chats), before  # the gateway on the head reached node b's chats

            node_b.kill()
            fake_llm.records.clear()
            for chat_id in chats:
                # Node b's chats answer again once Ray has declared the node dead (seconds here).
                status, answer = until(lambda c=chat_id: ok(send(serve, user, c, f"{c} depois")), within=120)
                assert answer["content"] == f"Echo: {chat_id} depois"
            after = placement(cluster, chats)
    finally:
        node_b.stop()
        cluster.nodes.remove(node_b)
    assert set(after) == set(chats) and node_b.node_id not in after.values()
    for chat_id in chats:
        questions = check_turns_in_order(asyncio.run(history(mysql_url, chat_id)))
        assert questions == [f"{chat_id} pergunta 0", f"{chat_id} pergunta 1", f"{chat_id} depois"]
        # The re-activated actor rebuilt the whole window: the LLM saw every earlier message.
        prompt = next(
            r.body["messages"]
            for r in fake_llm.records
            if r.body["messages"][-1]["content"] == f"{chat_id} depois"
        )
        assert [m["content"] for m in prompt] == [
            "You are a helpful assistant.",
            f"{chat_id} pergunta 0",
            f"Echo: {chat_id} pergunta 0",
            f"{chat_id} pergunta 1",
            f"Echo: {chat_id} pergunta 1",
            f"{chat_id} depois",
        ]
