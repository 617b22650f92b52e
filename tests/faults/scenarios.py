"""What the fault scenarios share: their chats, the LLM's answer, their names, the closing checks."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

from store import open_store
from tests.faults import report
from tests.faults.ledger import Ledger, Verdict, compare_windows
from tests.faults.load import Load
from tests.faults.mariadb import PrivateMariaDB

PLACEMENTS = ["actor", "hosted"]  # CONVERSATION_PLACEMENT, for the scenarios run in both


def echo(question: str) -> str:
    return f"Echo: {question}"


def chats(prefix: str, n: int) -> list[str]:
    run = uuid.uuid4().hex[:6]
    return [f"{prefix}-{run}-{i}" for i in range(n)]


def named(number: int, what: str, placement: str) -> str:
    """A scenario's row in the report: `2. what`, or `2h. what (hosted)`, a row of its own."""
    return f"{number}. {what}" if placement == "actor" else f"{number}h. {what} (hosted)"


async def conclude(
    scenario: str, ledger: Ledger, db: PrivateMariaDB, namespace: str, **extra: Any
) -> Verdict:
    """Check the ledger and the live windows against the store, record the row, assert it is clean."""
    store = open_store(db.url, pool_size=2)
    try:
        verdict = await ledger.verify(store, echo)
        windows = await compare_windows(namespace, store, verdict, ledger.chats())
    finally:
        await store.close()
    report.record(scenario, verdict.row() | {"windows compared": windows} | extra)
    print(f"{scenario}: errors seen", verdict.messages.most_common(5))
    assert verdict.clean, verdict.problems[:20]
    return verdict


async def load_until(load: Load, ids: list[str], enough: Callable[[], bool], rounds: int) -> list[int]:
    """Nine acknowledged turns per chat, then one more per chat (up to `rounds`) until `enough()`.

    How many failures a load meets depends on how fast this node recovers from them (killer.py).
    """
    acks = await load.run(ids, acks=9, within=600, concurrency=60)
    for _ in range(rounds):
        if enough():
            break
        more = await load.run(ids, acks=1, within=300, concurrency=60)
        acks = [a + m for a, m in zip(acks, more, strict=True)]
    return acks
