"""Connection arithmetic: the live-chat cap must leave the database room for every connection."""

from __future__ import annotations

import pytest

from actors.hosts import host_of
from gateways.serving.capacity import RESERVED_CONNECTIONS, hosts_for, live_chats_per_node
from gateways.settings import Settings, SettingsError


def settings(**env: str) -> Settings:
    return Settings.from_env({"DB_POOL_SIZE": "4", **env})


def test_a_file_database_takes_the_cap_as_configured() -> None:
    assert live_chats_per_node(settings(MAX_LIVE_CHATS="500"), nodes=3, max_connections=None) == 500


def test_an_explicit_cap_that_fits_is_kept() -> None:
    assert live_chats_per_node(settings(MAX_LIVE_CHATS="40"), nodes=3, max_connections=151) == 40


def test_a_cap_sized_from_memory_is_lowered_to_fit_every_node() -> None:
    s = settings()
    assert s.max_live_chats is None and s.live_chats_cap >= 8
    fits = (100 - 4 - RESERVED_CONNECTIONS) // 2
    assert live_chats_per_node(s, nodes=2, max_connections=100) == min(s.live_chats_cap, fits)


def test_an_explicit_cap_that_cannot_fit_is_a_configuration_error() -> None:
    with pytest.raises(SettingsError, match=r"MAX_LIVE_CHATS=200: 1 node\(s\).*max_connections \(151\)"):
        live_chats_per_node(settings(MAX_LIVE_CHATS="200"), nodes=1, max_connections=151)


def test_a_database_with_no_room_at_all_is_an_error_even_by_default() -> None:
    with pytest.raises(SettingsError, match="max_connections"):
        live_chats_per_node(settings(), nodes=1, max_connections=6)


def test_hosted_connections_do_not_grow_with_live_chats() -> None:
    s = settings(CONVERSATION_PLACEMENT="hosted", HOSTS_PER_NODE="3", MAX_LIVE_CHATS="100000")
    # 3 nodes x 3 hosts, each with DB_POOL_SIZE 4, and a gateway's 4: 40 + reserved, whatever the chats.
    assert hosts_for(s, nodes=3, max_connections=151) == 9
    with pytest.raises(SettingsError, match=r"HOSTS_PER_NODE=3: 9 host\(s\).*max_connections \(40\)"):
        hosts_for(s, nodes=3, max_connections=40)


def test_a_hosted_chat_is_sized_at_a_megabyte_an_actor_at_64() -> None:
    actor, hosted = settings(), settings(CONVERSATION_PLACEMENT="hosted")
    assert hosted.live_chats_cap // actor.live_chats_cap in (63, 64, 65)


def test_chats_spread_evenly_over_the_hosts_and_always_to_the_same_one() -> None:
    counts = [0] * 4
    for n in range(4000):
        counts[host_of(f"chat-{n}", 4)] += 1
    assert all(900 < c < 1100 for c in counts), counts
    assert host_of("chat-7", 4) == host_of("chat-7", 4)
