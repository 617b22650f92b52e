"""The message tree in SQL: its rules on writes, a path, siblings, and the leaf under a message.

Every message but a chat's first has a parent with a smaller seq, so walking up from any message
ends at a root and a path read in seq order runs from the root down. Walks are recursive CTEs;
MariaDB stops a recursion after `max_recursive_iterations` (1000 by default) and returns what it
has without an error, and MySQL 8 fails after `cte_max_recursion_depth` (1000), so each walk lifts
the limit for its own statement: `SET STATEMENT ... FOR` on MariaDB, the SET_VAR hint on MySQL
(each is a comment to the other engines and to SQLite, which has no such limit).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import TYPE_CHECKING

from store.errors import InvalidArgument, NotFound
from store.records import MessageRecord
from store.rows import MESSAGE_COLUMNS, columns, message_from, placeholders

if TYPE_CHECKING:
    from store.sql import Transaction

_MARIADB_UNLIMITED = "/*M! SET STATEMENT max_recursive_iterations = 4294967295 FOR */ "
_MYSQL_UNLIMITED = "/*+ SET_VAR(cte_max_recursion_depth = 4294967295) */"
_IN_LIST = 500  # values per IN list


def chained(chat_id: str, messages: Sequence[MessageRecord]) -> list[MessageRecord]:
    """A new chat's first messages as a chain: each one's parent is the message before it."""
    out: list[MessageRecord] = []
    for m in messages:
        parent = out[-1].seq if out else None
        if m.parent_seq not in (None, parent) or (parent is not None and m.seq <= parent):
            raise InvalidArgument(f"chat {chat_id!r}: a new chat's messages follow one another in seq order")
        out.append(replace(m, parent_seq=parent))
    return out


def needed(chat_id: str, append: Sequence[MessageRecord], leaf: int | None) -> set[int]:
    """The messages a write needs the chat to hold already: parents from outside the batch, the leaf.

    InvalidArgument if an appended message names a parent that cannot come before it.
    """
    for m in append:
        if m.parent_seq is not None and not 0 < m.parent_seq < m.seq:
            raise InvalidArgument(
                f"chat {chat_id!r}: message {m.seq} cannot follow message {m.parent_seq}"
                " (a parent has a smaller seq)"
            )
    batch = {m.seq for m in append}
    wanted = {m.parent_seq for m in append if m.parent_seq is not None and m.parent_seq not in batch}
    return wanted | ({leaf} if leaf is not None and leaf not in batch else set())


async def owner_and_missing(tx: Transaction, chat_id: str, wanted: set[int]) -> tuple[str | None, set[int]]:
    """The chat's owner (None: no such chat) and which of the `wanted` messages it lacks, in one read."""
    if wanted:
        rows = await tx.fetchall(
            "SELECT c.user_id, m.seq FROM chats c LEFT JOIN messages m ON m.chat_id = c.id"
            f" AND m.seq IN ({placeholders(len(wanted))}) WHERE c.id = %s",
            [*sorted(wanted), chat_id],
        )
    else:
        rows = await tx.fetchall("SELECT user_id, NULL FROM chats WHERE id = %s", (chat_id,))
    if not rows:
        return None, wanted
    return str(rows[0][0]), wanted - {int(r[1]) for r in rows if r[1] is not None}


async def path(
    tx: Transaction,
    chat_id: str,
    leaf: int | None,
    *,
    include_erased: bool,
    after_seq: int,
    limit: int | None,
) -> list[MessageRecord]:
    """The messages from the root to `leaf` (None: the chat's active leaf), in order, seq > after_seq."""
    anchor = "%s" if leaf is not None else "(SELECT active_leaf FROM chats WHERE id = %s)"
    sql = (
        f"{_MARIADB_UNLIMITED}WITH RECURSIVE path (seq, parent_seq) AS ("
        f" SELECT seq, parent_seq FROM messages WHERE chat_id = %s AND seq = {anchor}"
        " UNION ALL SELECT m.seq, m.parent_seq FROM path p"
        " JOIN messages m ON m.chat_id = %s AND m.seq = p.parent_seq AND m.seq < p.seq"
        " WHERE m.seq > %s)"  # nothing above the page is needed: stop there
        # CROSS JOIN: SQLite then reads the path first and each message by its key (joined the
        # other way it scanned the whole path once per message); to MySQL it is a plain join.
        f" SELECT {_MYSQL_UNLIMITED} {columns(MESSAGE_COLUMNS, 'm')} FROM path p"
        " CROSS JOIN messages m ON m.chat_id = %s AND m.seq = p.seq WHERE m.seq > %s"
    )
    args: list[object] = [
        chat_id,
        leaf if leaf is not None else chat_id,
        chat_id,
        after_seq,
        chat_id,
        after_seq,
    ]
    if not include_erased:
        sql += " AND m.erased = 0"
    sql += " ORDER BY m.seq"
    if limit is not None:
        sql += " LIMIT %s"
        args.append(limit)
    records = [message_from(r) for r in await tx.fetchall(sql, args)]
    if not records and leaf is not None:
        await _must_hold(tx, chat_id, leaf)
    return records


async def siblings(tx: Transaction, chat_id: str, seqs: Sequence[int]) -> dict[int, tuple[int, ...]]:
    """For each message, the seqs of the messages sharing its parent (itself included), in order."""
    if not seqs:
        return {}
    wanted = sorted(set(seqs))
    found: dict[int, list[int]] = {}
    # MariaDB turns an IN list of 1,000 values or more into a table and then plans the join badly.
    for start in range(0, len(wanted), _IN_LIST):
        part = wanted[start : start + _IN_LIST]
        among = f"m.chat_id = %s AND m.seq IN ({placeholders(len(part))})"
        # Children of a parent, then the roots: two lookups of the (chat_id, parent_seq) index,
        # where one join on "same parent or both none" made both engines scan the chat per message.
        rows = await tx.fetchall(
            "SELECT m.seq, s.seq FROM messages m JOIN messages s ON s.chat_id = m.chat_id"
            f" AND s.parent_seq = m.parent_seq WHERE {among}"
            " UNION ALL SELECT m.seq, s.seq FROM messages m JOIN messages s ON s.chat_id = m.chat_id"
            f" AND s.parent_seq IS NULL WHERE {among} AND m.parent_seq IS NULL ORDER BY 1, 2",
            [chat_id, *part, chat_id, *part],
        )
        for seq, sibling in rows:
            found.setdefault(int(seq), []).append(int(sibling))
    return {seq: tuple(group) for seq, group in found.items()}


async def leaf_under(tx: Transaction, chat_id: str, seq: int) -> int:
    """The leaf reached from `seq` by following the newest child down; NotFound if there is no `seq`."""
    rows = await tx.fetchall(
        f"{_MARIADB_UNLIMITED}WITH RECURSIVE down (seq) AS ("
        " SELECT seq FROM messages WHERE chat_id = %s AND seq = %s"
        " UNION ALL SELECT c.seq FROM down d"
        " JOIN messages c ON c.chat_id = %s AND c.parent_seq = d.seq AND c.seq > d.seq"
        # the newest child: no sibling of it has a larger seq (an anti-join; MySQL allows no
        # aggregate in a recursive step)
        " LEFT JOIN messages n ON n.chat_id = %s AND n.parent_seq = d.seq AND n.seq > c.seq"
        " WHERE n.seq IS NULL)"
        f" SELECT {_MYSQL_UNLIMITED} MAX(seq) FROM down",
        [chat_id, seq, chat_id, chat_id],
    )
    if rows[0][0] is None:
        raise NotFound(f"chat {chat_id!r} has no message {seq}")
    return int(rows[0][0])


async def _must_hold(tx: Transaction, chat_id: str, seq: int) -> None:
    rows = await tx.fetchall("SELECT 1 FROM messages WHERE chat_id = %s AND seq = %s", [chat_id, seq])
    if not rows:
        raise NotFound(f"chat {chat_id!r} has no message {seq}")


async def leaf_after_removal(tx: Transaction, chat_id: str, removed: Sequence[int]) -> int | None:
    """The chat's active leaf once `removed` are deleted: it moves up past every removed message."""
    rows = await tx.fetchall("SELECT active_leaf FROM chats WHERE id = %s", (chat_id,))
    leaf = rows[0][0] if rows else None
    gone = set(removed)
    if leaf is None or int(leaf) not in gone:
        return None if leaf is None else int(leaf)
    rows = await tx.fetchall(
        f"SELECT seq, parent_seq FROM messages WHERE chat_id = %s AND seq IN ({placeholders(len(gone))})",
        [chat_id, *sorted(gone)],
    )
    parents: dict[int, int | None] = {int(r[0]): None if r[1] is None else int(r[1]) for r in rows}
    at: int | None = int(leaf)
    while at is not None and at in gone:
        at = parents.get(at)
    return at
