"""Versioned schema migrations: numbered SQL files applied once, under a lock, in order."""

from __future__ import annotations

import asyncio
import re
import sqlite3
from dataclasses import dataclass
from importlib import resources
from typing import Any

from store import backfill
from store.diagnose import HANDSHAKE_SECONDS, failure
from store.errors import Unavailable
from store.url import DatabaseURL

LOCK_NAME = "chatservice.migrate"
LOCK_TIMEOUT_SECONDS = 60
_FILE = re.compile(r"([0-9]{4})_([a-z0-9_]+)\.sql")
_LEDGER = "CREATE TABLE schema_migrations (version INTEGER NOT NULL PRIMARY KEY, name VARCHAR(200) NOT NULL)"


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    statements: tuple[str, ...]


def migrations(kind: str) -> list[Migration]:
    """The migrations shipped for one database kind, in version order."""
    found = []
    for entry in resources.files("store").joinpath("migrations", kind).iterdir():
        match = _FILE.fullmatch(entry.name)
        if match:
            sql = "\n".join(
                line for line in entry.read_text("utf-8").splitlines() if not line.startswith("--")
            )
            found.append(Migration(int(match[1]), match[2], _statements(sql)))
    return sorted(found, key=lambda m: m.version)


def _statements(sql: str) -> tuple[str, ...]:
    """The statements of a file: split on each ';' that ends one (a trigger's body keeps its own)."""
    out, pending = [], ""
    for piece in sql.split(";"):
        pending += piece + ";"
        if sqlite3.complete_statement(pending):
            if pending.strip("; \n\t"):
                out.append(pending.strip().removesuffix(";").strip())
            pending = ""
    return tuple(out)


async def migrate(url: DatabaseURL) -> list[int]:
    """Bring the schema up to date; returns the versions this call applied (none if current).

    Unavailable says in one line which failure stopped it (access denied, unknown database...).
    """
    if url.kind == "sqlite":
        return await asyncio.to_thread(_migrate_sqlite, url)
    return await _migrate_mysql(url)


def failed(url: DatabaseURL, exc: BaseException) -> Unavailable:
    return Unavailable(f"database {url.redacted()}: {failure(exc, url)}")


def _migrate_sqlite(url: DatabaseURL) -> list[int]:
    from pathlib import Path

    try:
        Path(url.path).parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(url.path, timeout=LOCK_TIMEOUT_SECONDS, isolation_level=None)
    except (OSError, sqlite3.Error) as exc:
        raise failed(url, exc) from exc
    try:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("BEGIN IMMEDIATE")  # the file lock serialises concurrent migrators
        if not conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'schema_migrations'").fetchall():
            conn.execute(_LEDGER)
        done = {row[0] for row in conn.execute("SELECT version FROM schema_migrations")}
        applied = []
        for m in migrations("sqlite"):
            if m.version not in done:
                for statement in m.statements:
                    conn.execute(statement)
                backfill.sqlite_after(m.version, conn)
                conn.execute("INSERT INTO schema_migrations VALUES (?, ?)", (m.version, m.name))
                applied.append(m.version)
        conn.execute("COMMIT")
        return applied
    except sqlite3.Error as exc:
        raise failed(url, exc) from exc
    finally:
        conn.close()


async def _migrate_mysql(url: DatabaseURL) -> list[int]:
    import asyncmy
    from asyncmy.errors import MySQLError

    from store.mysql import MySQLDatabase

    kwargs = MySQLDatabase(url, pool_size=1).connect_kwargs() | {"autocommit": True}
    try:
        conn = await asyncio.wait_for(asyncmy.connect(**kwargs), HANDSHAKE_SECONDS)
    except (MySQLError, OSError, EOFError) as exc:
        raise failed(url, exc) from exc
    try:
        async with conn.cursor() as cur:
            # MySQL DDL commits implicitly, so a named lock (not a transaction) makes this safe
            # to run from several processes at once.
            await cur.execute("SELECT GET_LOCK(%s, %s)", (LOCK_NAME, LOCK_TIMEOUT_SECONDS))
            if (await cur.fetchone())[0] != 1:
                raise Unavailable("another process holds the migration lock; retry shortly")
            try:
                return await _apply_mysql(cur)
            finally:
                await cur.execute("SELECT RELEASE_LOCK(%s)", (LOCK_NAME,))
    except (MySQLError, OSError, EOFError) as exc:
        raise failed(url, exc) from exc
    except Unavailable as exc:
        raise Unavailable(f"database {url.redacted()}: {exc.message}") from exc
    finally:
        await conn.ensure_closed()


async def _apply_mysql(cur: Any) -> list[int]:
    # Looked up rather than CREATE TABLE IF NOT EXISTS, whose note the driver logs as a warning.
    await cur.execute(
        "SELECT column_name FROM information_schema.columns WHERE table_schema = DATABASE() "
        "AND table_name = 'schema_migrations'"
    )
    columns = {str(row[0]).lower() for row in await cur.fetchall()}
    if not columns:
        await cur.execute(_LEDGER)
    elif "name" not in columns:
        # golang-migrate's (version, dirty), as the original Go service's database has: its
        # version numbers are not ours, and its tables are not either.
        raise Unavailable(
            "its schema_migrations table is another tool's (golang-migrate's, as the original "
            "Go service made?): give chatservice a database of its own"
        )
    await cur.execute("SELECT version FROM schema_migrations")
    done = {row[0] for row in await cur.fetchall()}
    applied = []
    for m in migrations("mysql"):
        if m.version not in done:
            for statement in m.statements:
                await cur.execute(statement)
            await backfill.mysql_after(m.version, cur)
            await cur.execute("INSERT INTO schema_migrations VALUES (%s, %s)", (m.version, m.name))
            applied.append(m.version)
    return applied
