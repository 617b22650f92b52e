"""What operators see of real turns on a two-node cluster: Prometheus metrics, the dashboard, logs."""

from __future__ import annotations

import asyncio
import http.client
import json
import time
import uuid
from typing import Any

import pytest

from store import DatabaseURL, open_store
from store.records import MessageRecord
from tests.cluster.support import Sample, call, scrape, total
from tests.http_support import parse_events
from tests.llm_server import FakeLLM
from tests.ray_cluster import RayCluster
from tests.serve_process import ServeProcess

pytestmark = [pytest.mark.cluster, pytest.mark.e2e, pytest.mark.timeout(900)]
WORDS = " ".join(f"palavra{i}" for i in range(40))  # ~85 tokens: a 300-token window holds two
M = "ray_chatservice_"  # Ray prefixes custom metrics with ray_
OUTCOMES = {"completed": 6, "llm_error": 1, "failed": 0, "rejected": 1, "cancelled": 0, "unavailable": 0}


def k(name: str, **labels: str) -> tuple[str, tuple[tuple[str, str], ...]]:
    """A metric and the labels its series must have, as a dictionary key."""
    return name, tuple(sorted(labels.items()))


def messages(user: str, chat_id: str) -> str:
    return f"/v1/users/{user}/chats/{chat_id}/messages"


def turn(serve: ServeProcess, user: str, chat_id: str, content: str) -> tuple[int, Any]:
    return call(serve, "POST", messages(user, chat_id), {"content": content})


def new_chat(serve: ServeProcess, user: str) -> str:
    status, chat = call(serve, "POST", f"/v1/users/{user}/chats", {})
    assert status == 201, chat
    return str(chat["chat_id"])


async def all_messages(url: DatabaseURL, chat_ids: list[str]) -> list[MessageRecord]:
    store = open_store(url)
    try:
        return [m for c in chat_ids for m in await store.list_messages(c, include_erased=True)]
    finally:
        await store.close()


async def another_writer(url: DatabaseURL, chat_id: str) -> None:
    """Write to the chat behind its actor's back, as a stale second activation would."""
    store = open_store(url)
    try:
        chat = await store.get_chat(chat_id)
        assert chat is not None
        await store.write(chat_id, chat.version, title="written elsewhere")
    finally:
        await store.close()


def stale_turn(serve: ServeProcess, user: str, chat_id: str, url: DatabaseURL) -> list[tuple[str, Any]]:
    """An SSE turn whose chat is written by someone else while the answer streams (its version moves)."""
    conn = http.client.HTTPConnection("127.0.0.1", serve.web_port, timeout=120)
    try:
        body = json.dumps({"content": f"2 {WORDS}"}).encode()
        headers = {"Content-Type": "application/json", "Accept": "text/event-stream"}
        conn.request("POST", messages(user, chat_id), body, headers)
        r = conn.getresponse()
        assert r.status == 200
        while not r.readline().startswith(b"event: delta"):
            pass
        asyncio.run(another_writer(url, chat_id))
        return parse_events(r.read())
    finally:
        conn.close()


def test_metrics_of_real_turns_are_exported_on_the_nodes_prometheus_endpoints(
    cluster: RayCluster, gateway_env: dict[str, str], fake_llm: FakeLLM, mysql_url: DatabaseURL
) -> None:
    fake_llm.behaviour.ttft = 0.3  # every answer's first token takes longer than 0.25 s
    env = gateway_env | {"MODEL_MAX_TOKENS": "300", "MAX_TOKENS": "60", "CHAT_IDLE_SECONDS": "3"}
    before = scrape(cluster.metrics_ports())
    user = f"m-{uuid.uuid4().hex[:8]}"
    with ServeProcess(env) as serve:
        chats = [new_chat(serve, user) for _ in range(3)]
        answers = [turn(serve, user, c, f"{i} {WORDS}") for c in chats[:2] for i in range(2)]
        answers.append(turn(serve, user, chats[2], f"0 {WORDS}"))
        fake_llm.behaviour.failures.append(400)
        llm_error = turn(serve, user, chats[2], f"1 {WORDS}")
        rejected = turn(serve, "someone-else", chats[0], "let me in")
        fake_llm.behaviour.token_delay = 0.2  # slow enough to write behind the actor's back mid-answer
        stale = stale_turn(serve, user, chats[2], mysql_url)
    assert [status for status, _ in answers] == [200] * 5
    assert (llm_error[0], rejected[0]) == (400, 403)
    # The answer's first write meets the newer version; the actor reloads, sees its turn is still
    # the chat's last, and stores the answer: one stale_state store error, and the turn completes.
    assert stale[-1][0] == "end", stale[-1]
    usage = [a["usage"] for _, a in answers] + [stale[-1][1]["usage"]]
    erased = [m for m in asyncio.run(all_messages(mysql_url, chats)) if m.erased]
    assert len(erased) >= 3
    model = {"model": "gpt-4o-mini"}
    exactly: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {
        # Turns, in the gateway: as many of each outcome as this test caused.
        **{k("turns_total", outcome=o): n for o, n in OUTCOMES.items()},
        k("llm_errors_total"): 1,
        k("llm_errors_total", kind="bad_request"): 1,
        # Latency histograms: every completed turn counted, none faster than the LLM's first token.
        k("turn_seconds_count", **model): 6,
        k("turn_seconds_bucket", le="+Inf", **model): 6,
        k("turn_seconds_bucket", le="0.25", **model): 0,
        k("time_to_first_token_seconds_count", **model): 6,  # the stale turn streamed too
        k("time_to_first_token_seconds_bucket", le="0.25", **model): 0,
        k("time_to_first_token_seconds_bucket", le="30.0", **model): 6,
        k("prompt_tokens_total", **model): sum(u["prompt_tokens"] for u in usage),
        k("completion_tokens_total", **model): sum(u["completion_tokens"] for u in usage),
        k("evicted_messages_total"): len(erased),
        # Inside the conversation actors, exported by the node each one runs on.
        k("store_write_seconds_count", op="create_chat"): 3,
        k("store_write_seconds_count", op="write"): 13,  # 6 x (begin + complete), 1 begin
        k("store_errors_total"): 1,
        k("store_errors_total", op="write", kind="stale_state"): 1,
    }
    at_least = {k("activations_total"): 3, k("passivations_total", reason="idle"): 3}
    exactly_as_many = {k("activation_seconds_count"): k("activations_total")}  # one timing each

    def observed(now: list[Sample]) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        return {
            key: total(now, M + key[0], **dict(key[1])) - total(before, M + key[0], **dict(key[1]))
            for key in [*exactly, *at_least, *exactly_as_many]
        }

    # Ray exports every few seconds, and idle chats passivate after 3 s: poll until it all shows.
    deadline = time.monotonic() + 120
    while True:
        now = scrape(cluster.metrics_ports())
        seen = observed(now)
        wrong = {key: (seen[key], want) for key, want in exactly.items() if seen[key] != want}
        wrong |= {key: (seen[key], f">= {want}") for key, want in at_least.items() if seen[key] < want}
        wrong |= {key: (seen[key], seen[to]) for key, to in exactly_as_many.items() if seen[key] != seen[to]}
        if not wrong or time.monotonic() > deadline:
            break
        time.sleep(1)
    assert not wrong, f"(seen, expected): {wrong}"


def test_the_dashboard_lists_conversations_by_chat_id_and_shows_the_gateway_log(
    cluster: RayCluster, gateway_env: dict[str, str], fake_llm: FakeLLM
) -> None:
    user = f"d-{uuid.uuid4().hex[:8]}"
    with ServeProcess(gateway_env) as serve:
        chats = []
        for i in range(5):
            status, answer = call(
                serve,
                "POST",
                "/chat",
                {"user_id": user, "user_message": f"oi {i}"},
                {"X-Request-Id": f"dash-{i}"},
            )
            assert status == 200
            chats.append(answer["chat_id"])
        fake_llm.behaviour.failures.append(400)
        status, _ = call(
            serve,
            "POST",
            "/chat",
            {"chat_id": chats[0], "user_id": user, "user_message": "x"},
            {"X-Request-Id": "dash-bad"},
        )
        assert status == 400
        actors = cluster.api("/api/v0/actors?limit=10000&detail=1")["data"]["result"]["result"]
        ours = {
            a["name"].removeprefix("chat:"): a for a in actors if a["name"] in {f"chat:{c}" for c in chats}
        }
        assert set(ours) == set(chats)
        for chat_id, actor in ours.items():
            assert (actor["class_name"], actor["state"]) == ("ConversationActor", "ALIVE")
            assert actor["repr_name"] == f"Conversation({chat_id})"
        assert len({a["node_id"] for a in ours.values()}) == 2  # spread over both nodes

        head = cluster.nodes[0].node_id
        gateway_log = f"chatservice-gateway-{serve.proc.pid if serve.proc else 0}.log"
        listed = cluster.api(f"/api/v0/logs?node_id={head}")["data"]["result"]
        assert gateway_log in [f for files in listed.values() for f in files]
        text = cluster.api_text(f"/api/v0/logs/file?node_id={head}&filename={gateway_log}&lines=1000")
    failure = [line for line in text.splitlines() if "turn failed in the LLM" in line]
    assert len(failure) == 1 and "WARNING" in failure[0]
    assert f"chat_id={chats[0]}" in failure[0] and "request_id=dash-bad" in failure[0]
    assert all(f"request_id=dash-{i}" in text for i in range(5))
    assert "oi 0" not in text  # message text stays out of the log without LOG_CONTENT=1
