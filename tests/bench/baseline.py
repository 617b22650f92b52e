"""The stateless baseline: the turn a user might write instead of chatservice, as its own aiohttp app.

Every request loads the chat's whole history from MariaDB, counts and trims it with tiktoken to fit
the model's window, streams the answer from the same OpenAI-compatible LLM as server-sent events
(the same `start`/`delta`/`end` events as chatservice's /v1), then writes both messages back.
`python -m tests.bench.baseline --port 8090 --database-url mysql://... --llm-url http://.../v1`
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from typing import Any

import asyncmy
import openai
from aiohttp import web

from gateways.llm.tokenizer import tokenizer_for
from tests.bench.workload import history

TABLE = """CREATE TABLE IF NOT EXISTS baseline_messages (
    chat_id VARCHAR(128) NOT NULL,
    seq INT UNSIGNED NOT NULL,
    role VARCHAR(16) NOT NULL,
    content MEDIUMTEXT NOT NULL,
    created_at DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
    PRIMARY KEY (chat_id, seq)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin"""
POOL = web.AppKey("pool", Any)
LLM = web.AppKey("llm", openai.AsyncOpenAI)
OPTIONS = web.AppKey("options", argparse.Namespace)


def connect_kwargs(url: str) -> dict[str, Any]:
    from store import DatabaseURL

    u = DatabaseURL.parse(url)
    return {"host": u.host, "port": u.port, "user": u.user, "password": u.password, "db": u.database}


async def create_tables(url: str) -> None:
    conn = await asyncmy.connect(**connect_kwargs(url), autocommit=True)
    async with conn.cursor() as cur:
        await cur.execute(TABLE)
    conn.close()


async def seed(url: str, chats: Sequence[str], length: int) -> None:
    """Give each chat exactly `length` stored messages (what reset() brings them back to)."""
    messages = history(length)
    conn = await asyncmy.connect(**connect_kwargs(url), autocommit=False)
    async with conn.cursor() as cur:
        for chat_id in chats:
            await cur.execute("DELETE FROM baseline_messages WHERE chat_id = %s", (chat_id,))
            rows = [(chat_id, i + 1, m["role"], m["content"]) for i, m in enumerate(messages)]
            await cur.executemany(
                "INSERT INTO baseline_messages (chat_id, seq, role, content) VALUES (%s, %s, %s, %s)", rows
            )
    await conn.commit()
    conn.close()


async def reset(url: str, chats: Sequence[str], length: int) -> None:
    """Drop what a phase added, so every phase starts at the same history length."""
    conn = await asyncmy.connect(**connect_kwargs(url), autocommit=True)
    async with conn.cursor() as cur:
        for i in range(0, len(chats), 500):
            part = list(chats[i : i + 500])
            marks = ", ".join(["%s"] * len(part))
            await cur.execute(
                f"DELETE FROM baseline_messages WHERE seq > %s AND chat_id IN ({marks})", [length, *part]
            )
    conn.close()


def trim(messages: list[dict[str, str]], counts: list[int], budget: int) -> list[dict[str, str]]:
    """Drop the oldest messages after the system prompt until the prompt fits the budget."""
    total = sum(counts) + 3  # reply priming
    first = 1 if messages and messages[0]["role"] == "system" else 0
    drop = first
    while total > budget and drop < len(messages) - 1:
        total -= counts[drop]
        drop += 1
    return messages[:first] + messages[drop:]


async def send_message(request: web.Request) -> web.StreamResponse:
    chat_id = request.match_info["chat_id"]
    body = await request.json()
    content = body["content"]
    opts = request.app[OPTIONS]
    pool = request.app[POOL]
    async with pool.acquire() as conn, conn.cursor() as cur:
        await cur.execute(
            "SELECT seq, role, content FROM baseline_messages WHERE chat_id = %s ORDER BY seq", (chat_id,)
        )
        rows = await cur.fetchall()
        await conn.commit()
    last_seq = rows[-1][0] if rows else 0
    messages = [{"role": r[1], "content": r[2]} for r in rows] + [{"role": "user", "content": content}]
    tok = tokenizer_for(opts.model)
    counts = [tok.count_message(m["role"], m["content"]) for m in messages]
    prompt = trim(messages, counts, opts.context_tokens - opts.max_tokens)
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
    await response.prepare(request)
    await response.write(_frame("start", {"chat_id": chat_id, "window": {"messages": len(prompt)}}))
    parts: list[str] = []
    stream = await request.app[LLM].chat.completions.create(
        model=opts.model,
        messages=prompt,
        max_tokens=opts.max_tokens,
        stream=True,  # type: ignore[arg-type]
    )
    async with stream:
        async for chunk in stream:
            for choice in chunk.choices:
                if choice.delta is not None and choice.delta.content:
                    parts.append(choice.delta.content)
                    await response.write(_frame("delta", {"text": choice.delta.content}))
    answer = "".join(parts)
    async with pool.acquire() as conn, conn.cursor() as cur:
        await cur.executemany(
            "INSERT INTO baseline_messages (chat_id, seq, role, content) VALUES (%s, %s, %s, %s)",
            [(chat_id, last_seq + 1, "user", content), (chat_id, last_seq + 2, "assistant", answer)],
        )
        await conn.commit()
    await response.write(_frame("end", {"history": len(rows), "prompt_messages": len(prompt)}))
    await response.write_eof()
    return response


def _frame(event: str, data: dict[str, Any]) -> bytes:
    return f"event: {event}\ndata: {json.dumps(data)}\n\n".encode()


async def _lifetime(app: web.Application) -> Any:
    opts = app[OPTIONS]
    app[POOL] = await asyncmy.create_pool(
        minsize=1, maxsize=opts.pool_size, autocommit=False, **connect_kwargs(opts.database_url)
    )
    app[LLM] = openai.AsyncOpenAI(api_key="bench", base_url=opts.llm_url)
    yield
    await app[LLM].close()
    app[POOL].close()
    await app[POOL].wait_closed()


def create_app(opts: argparse.Namespace) -> web.Application:
    app = web.Application()
    app[OPTIONS] = opts
    app.cleanup_ctx.append(_lifetime)
    app.router.add_post("/chats/{chat_id}/messages", send_message)
    app.router.add_get("/healthz", lambda _: web.Response(text="ok"))
    return app


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--llm-url", required=True)
    parser.add_argument("--model", default="gpt-4o-mini")
    parser.add_argument("--context-tokens", type=int, default=4096)
    parser.add_argument("--max-tokens", type=int, default=512)
    parser.add_argument("--pool-size", type=int, default=16, help="MariaDB connections")
    opts = parser.parse_args()
    web.run_app(create_app(opts), host="127.0.0.1", port=opts.port, access_log=None, print=None)


if __name__ == "__main__":
    main()
