"""Invariants over random mixes of branch operations, dead and stale activations (no Ray).

After every step: every acknowledged message is stored as told and once, nothing of a withdrawn
turn is left, and every activation at the store's version has the window a rebuild from the
store's active path gives. Hypothesis draws the steps on SQLite; one long fixed sequence runs on
MariaDB/MySQL (and SQLite).
"""

from __future__ import annotations

import asyncio
import random
import uuid

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from store import DatabaseURL, open_store
from tests.integration.branch_scenario import ENDS, KINDS, Scenario, Step

STEP_SECONDS = 30
steps = st.builds(
    Step,
    kind=st.sampled_from(KINDS),
    who=st.integers(0, 1),
    pick=st.integers(0, 20),
    tokens=st.integers(1, 30),
    end=st.sampled_from(ENDS),
)


async def play(url: DatabaseURL, sequence: list[Step]) -> Scenario:
    store = open_store(url, pool_size=2)
    try:
        scenario = Scenario(store, f"t-{uuid.uuid4().hex}")
        await scenario.start()
        for step in sequence:
            # A step that hangs (a turn held for ever) fails the test instead of waiting out a lease.
            await asyncio.wait_for(scenario.play(step), STEP_SECONDS)
        return scenario
    finally:
        await store.close()


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(sequence=st.lists(steps, min_size=1, max_size=30))
def test_random_branch_operations_keep_the_invariants_on_sqlite(
    sqlite_url: DatabaseURL, sequence: list[Step]
) -> None:
    asyncio.run(play(sqlite_url, sequence))


def long_sequence(seed: int, length: int) -> list[Step]:
    rng = random.Random(seed)
    return [
        Step(rng.choice(KINDS), rng.randint(0, 1), rng.randint(0, 20), rng.randint(1, 30), rng.choice(ENDS))
        for _ in range(length)
    ]


def test_a_long_fixed_sequence_keeps_the_invariants_on_both_stores(db_url: DatabaseURL) -> None:
    scenario = asyncio.run(play(db_url, long_sequence(17, 300)))
    done = scenario.ledger.done
    # The sequence exercises every operation, not only refusals of them.
    for what in ("begin NoneType", "begin Regenerate", "begin Edit", "switch", "rename", "renew", "shrink"):
        assert done[what] >= 5, (what, done)
    for end in set(ENDS) - {"withdraw", "stale"}:  # an overtaken turn is refused: the chat moved on
        assert done[f"end {end}"] >= 3, (end, done)
    assert done["withdraw"] >= 5 and scenario.ledger.refused["end stale: FailedPrecondition"] >= 5
    assert len(scenario.ledger.answers) >= 80


def test_two_tabs_interleaving_on_one_activation_end_consistent(db_url: DatabaseURL) -> None:
    """Two callers play random steps at once on one activation; they queue, and the chat ends consistent."""
    same = [Step(s.kind, 0, s.pick, s.tokens, s.end) for s in long_sequence(5, 120)]
    tabs = [[s for s in same[i::2] if s.kind != "kill" and s.end not in ("killed", "stale")] for i in (0, 1)]

    async def both() -> Scenario:
        store = open_store(db_url, pool_size=2)
        try:
            scenario = Scenario(store, f"t-{uuid.uuid4().hex}")
            await scenario.start()

            async def tab(steps: list[Step]) -> None:
                for step in steps:
                    await asyncio.wait_for(scenario.play(step, check=False), STEP_SECONDS)

            await asyncio.gather(*(tab(steps) for steps in tabs))
            await scenario.check()
            return scenario
        finally:
            await store.close()

    scenario = asyncio.run(both())
    assert len(scenario.ledger.answers) >= 20 and scenario.ledger.done["switch"] >= 5
