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
