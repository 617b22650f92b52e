"""What the fault scenarios share: their chats, the LLM's answer, their names, the closing checks."""

from __future__ import annotations

import uuid
from typing import Any

from store import open_store
from tests.faults import report
from tests.faults.ledger import Ledger, Verdict, compare_windows
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
