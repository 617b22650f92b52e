"""The load driver, a process of its own: reads one JSON command a line, answers JSON lines.

Commands: `phase` (closed-loop chats for a warm-up and a measured window, marking the window's
start and end as it passes them), `touch` (one turn on each chat), `ceiling` (this machine's Ray
call and MariaDB commit limits), `quit`.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import sys
import time
from typing import Any

import grpc

from tests.bench.clients import Client, Turn, make_client
from tests.bench.workload import history, user_text

_counter = itertools.count(1)


def emit(payload: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(payload) + "\n")
    sys.stdout.flush()


async def one_turn(client: Client, user_id: str, chat_id: str) -> Turn:
    start = time.monotonic()
    try:
        return await client.turn(user_id, chat_id, user_text(next(_counter)))
    except grpc.aio.AioRpcError as exc:
        return Turn(start, error=f"grpc {exc.code().name}")
    except Exception as exc:
        return Turn(start, error=type(exc).__name__)


def _client(cmd: dict[str, Any]) -> Client:
    prompt = history(int(cmd.get("direct_history", 10)))
    return make_client(cmd["target"], cmd["urls"], prompt, cmd.get("model", "gpt-4o-mini"))


def _row(t: Turn) -> list[Any]:
    return [t.start, t.first, t.end, t.window, t.error]


async def phase(cmd: dict[str, Any]) -> dict[str, Any]:
    """C slots, each a chat user who sends the next message as soon as an answer ends.

    Slot k cycles over chats k, k+C, k+2C...: every chat of the pool gets turns at every
    concurrency, so histories grow evenly and no chat sees more than one turn at a time.
    """
    chats = [tuple(c) for c in cmd["chats"]]
    c = int(cmd["concurrency"])
    client = _client(cmd)
    begin = time.monotonic()
    window_start = begin + float(cmd["warmup"])
    window_end = window_start + float(cmd["duration"])
    turns: list[Turn] = []

    async def slot(k: int) -> None:
        mine = chats[k::c] or [chats[k % len(chats)]]
        for i in itertools.count():
            if time.monotonic() >= window_end:
                return
            user_id, chat_id = mine[i % len(mine)]
            turns.append(await one_turn(client, user_id, chat_id))

    async def marks() -> None:
        await asyncio.sleep(max(0.0, window_start - time.monotonic()))
        emit({"event": "window_start"})
        await asyncio.sleep(max(0.0, window_end - time.monotonic()))
        emit({"event": "window_end"})

    await asyncio.gather(marks(), *(slot(k) for k in range(c)))
    await client.close()
    return {"window": [window_start, window_end], "turns": [_row(t) for t in turns]}


async def touch(cmd: dict[str, Any]) -> dict[str, Any]:
    """One turn on each chat, `concurrency` at a time (activates, or measures a first turn)."""
    client = _client(cmd)
    sem = asyncio.Semaphore(int(cmd.get("concurrency", 1)))

    async def one(user_id: str, chat_id: str) -> Turn:
        async with sem:
            return await one_turn(client, user_id, chat_id)

    turns = await asyncio.gather(*(one(u, ch) for u, ch in cmd["chats"]))
    await client.close()
    return {"turns": [_row(t) for t in turns]}


async def ceiling(cmd: dict[str, Any]) -> dict[str, Any]:
    from tests.bench.ceiling import db_ceiling, ray_ceiling

    return {
        "ray": await ray_ceiling(cmd["ray_address"], float(cmd["seconds"]), int(cmd["actors"])),
        "mariadb": await db_ceiling(cmd["database_url"], float(cmd["seconds"])),
    }


COMMANDS = {"phase": phase, "touch": touch, "ceiling": ceiling}


async def main() -> None:
    loop = asyncio.get_running_loop()
    while True:
        line = await loop.run_in_executor(None, sys.stdin.readline)
        if not line or not line.strip():
            return
        cmd = json.loads(line)
        if cmd["cmd"] == "quit":
            return
        result = await COMMANDS[cmd["cmd"]](cmd)
        emit({"event": "result", **result})


if __name__ == "__main__":
    asyncio.run(main())
