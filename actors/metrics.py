"""Conversation-actor metrics through ray.util.metrics: lifecycle, store latency and errors, live chats.

Recorded in the process that calls these functions (a conversation actor, or the directory for
the live count) and exported by that node's Ray metrics agent, prefixed `ray_`; counters get
`_total`. Outside Ray (plain unit tests) recording does nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

from ray.util.metrics import Counter, Gauge, Histogram

ACTIVATION_SECONDS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0]
STORE_SECONDS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0]


@dataclass(frozen=True, slots=True)
class _Metrics:
    activations: Counter
    activation_seconds: Histogram
    passivations: Counter
    store_write_seconds: Histogram
    store_errors: Counter
    live: Gauge
    host_live: Gauge


@cache
def _metrics() -> _Metrics:
    # Built on first use, in the process that records them.
    return _Metrics(
        activations=Counter("chatservice_activations", "Conversations loaded from the store into an actor."),
        activation_seconds=Histogram(
            "chatservice_activation_seconds",
            "Seconds to load a conversation (chat and window) from the store.",
            ACTIVATION_SECONDS,
        ),
        passivations=Counter(
            "chatservice_passivations", "Conversation actors that flushed and exited, by reason.", ("reason",)
        ),
        store_write_seconds=Histogram(
            "chatservice_store_write_seconds",
            "Seconds per store write made by conversation actors, by operation.",
            STORE_SECONDS,
            ("op",),
        ),
        store_errors=Counter(
            "chatservice_store_errors",
            "Failed store calls made by conversation actors, by operation and error code.",
            ("op", "kind"),
        ),
        live=Gauge("chatservice_live_conversations", "Conversation actors alive in the cluster."),
        host_live=Gauge(
            "chatservice_host_live_conversations",
            "Conversations live in each host (hosted placement).",
            ("host",),
        ),
    )


def activated(seconds: float) -> None:
    m = _metrics()
    m.activations.inc()
    m.activation_seconds.observe(seconds)


def passivated(reason: str, count: int = 1) -> None:
    """reason: idle (CHAT_IDLE_SECONDS passed), or whatever the caller evicts for."""
    if count > 0:  # Ray's counters refuse 0
        _metrics().passivations.inc(count, tags={"reason": reason})


def store_write(op: str, seconds: float) -> None:
    _metrics().store_write_seconds.observe(seconds, tags={"op": op})


def store_error(op: str, kind: str) -> None:
    _metrics().store_errors.inc(tags={"op": op, "kind": kind})


def set_live_conversations(count: int) -> None:
    """The number of live conversation actors (set by whoever keeps that count)."""
    _metrics().live.set(count)


def set_host_live(host: int, count: int) -> None:
    """The number of conversations live in one host (hosted placement)."""
    _metrics().host_live.set(count, tags={"host": str(host)})
