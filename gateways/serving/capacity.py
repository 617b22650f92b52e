"""Connection arithmetic: live conversation actors x nodes + gateway pools must fit max_connections."""

from __future__ import annotations

import logging

from gateways.settings import Settings, SettingsError

log = logging.getLogger("chatservice")
# Left free for migrations, operators' consoles and monitoring.
RESERVED_CONNECTIONS = 5


def live_chats_per_node(settings: Settings, nodes: int, max_connections: int | None) -> int:
    """The cap on live conversation actors per node that the database can serve.

    Each live conversation actor holds one connection and each gateway process DB_POOL_SIZE.
    A cap sized from memory is lowered to fit; an explicit MAX_LIVE_CHATS that cannot fit is
    a configuration error.
    """
    cap = settings.live_chats_cap
    if max_connections is None:
        return cap
    nodes = max(nodes, 1)
    room = max_connections - settings.db_pool_size - RESERVED_CONNECTIONS
    fits = room // nodes
    if cap <= fits:
        return cap
    if settings.max_live_chats is not None or fits < 1:
        raise SettingsError(
            f"MAX_LIVE_CHATS={cap}: {nodes} node(s) x {cap} live chats + DB_POOL_SIZE "
            f"{settings.db_pool_size} + {RESERVED_CONNECTIONS} reserved need more than the database's "
            f"max_connections ({max_connections}); lower MAX_LIVE_CHATS or raise max_connections"
        )
    log.info(
        "live chats per node: %d (sized from memory: %d, lowered to fit the database's max_connections %d)",
        fits,
        cap,
        max_connections,
    )
    return fits


def hosts_for(settings: Settings, nodes: int, max_connections: int | None) -> int:
    """The hosted placement's host count, HOSTS_PER_NODE x nodes, if their pools fit the database.

    Each host holds DB_POOL_SIZE connections for all its chats, so connections no longer grow
    with live chats; too many hosts for max_connections is a configuration error.
    """
    hosts = settings.hosts_per_node * max(nodes, 1)
    need = (hosts + 1) * settings.db_pool_size + RESERVED_CONNECTIONS
    if max_connections is not None and need > max_connections:
        raise SettingsError(
            f"HOSTS_PER_NODE={settings.hosts_per_node}: {hosts} host(s) and a gateway x DB_POOL_SIZE "
            f"{settings.db_pool_size} + {RESERVED_CONNECTIONS} reserved need {need} connections, more "
            f"than the database's max_connections ({max_connections}); lower either or raise max_connections"
        )
    return hosts
