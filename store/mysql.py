"""MySQL/MariaDB adapter over asyncmy: a small pool, one transaction at a time per connection."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

import asyncmy
from asyncmy.errors import DataError, IntegrityError, InterfaceError, OperationalError

from store.diagnose import HANDSHAKE_SECONDS, log_unavailable
from store.errors import AlreadyExists, ChatServiceError, InvalidArgument, Unavailable
from store.sql import Row
from store.url import DatabaseURL

_DUPLICATE_KEY = 1062
_CONNECTION_ERRORS = (OperationalError, InterfaceError, OSError, ConnectionError, EOFError)
UNREACHABLE = "the database is unreachable; retry shortly"  # what clients are told; the log says which


def translate(exc: BaseException, where: str, url: DatabaseURL | None = None) -> ChatServiceError | None:
    """The error-tree equivalent of a driver error, or None when it is a bug to let through."""
    if isinstance(exc, IntegrityError):
        if exc.args and exc.args[0] == _DUPLICATE_KEY:
            return AlreadyExists(f"{where}: already exists")
        return InvalidArgument(f"{where}: rejected by the database ({exc.args[-1]})")
    if isinstance(exc, DataError):
        return InvalidArgument(f"{where}: value does not fit ({exc.args[-1]})")
    if isinstance(exc, _CONNECTION_ERRORS):
        if url is not None:
            log_unavailable(exc, url)
        return Unavailable(UNREACHABLE)
    return None


class _Tx:
    def __init__(self, conn: Any) -> None:
        self._conn = conn

    async def execute(self, sql: str, args: Sequence[Any] = ()) -> int:
        async with self._conn.cursor() as cur:
            return int(await cur.execute(sql, tuple(args)))

    async def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        async with self._conn.cursor() as cur:
            await cur.executemany(sql, [tuple(r) for r in rows])

    async def fetchall(self, sql: str, args: Sequence[Any] = ()) -> list[Row]:
        async with self._conn.cursor() as cur:
            await cur.execute(sql, tuple(args))
            return list(await cur.fetchall())


class MySQLDatabase:
    """Opens its pool lazily, so a database that is down at start-up is retried on first use."""

    def __init__(self, url: DatabaseURL, pool_size: int) -> None:
        self._url = url
        self._pool_size = pool_size
        self._pool: Any = None

    def connect_kwargs(self) -> dict[str, Any]:
        u = self._url
        return {
            "host": u.host,
            "port": u.port,
            "user": u.user,
            "password": u.password,
            "db": u.database,
            "charset": "utf8mb4",
            "autocommit": False,
            "connect_timeout": 5,
            # Strict mode: a value that does not fit is an error, never silently truncated.
            "init_command": "SET SESSION sql_mode = 'STRICT_TRANS_TABLES,NO_ENGINE_SUBSTITUTION'",
        }

    async def _get_pool(self) -> Any:
        if self._pool is None:
            try:
                self._pool = await asyncio.wait_for(
                    asyncmy.create_pool(
                        minsize=1, maxsize=self._pool_size, pool_recycle=600, **self.connect_kwargs()
                    ),
                    HANDSHAKE_SECONDS,
                )
            except _CONNECTION_ERRORS as exc:
                log_unavailable(exc, self._url)
                raise Unavailable(UNREACHABLE) from None
        return self._pool

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[_Tx]:
        pool = await self._get_pool()
        try:
            conn = await pool.acquire()
        except _CONNECTION_ERRORS as exc:
            log_unavailable(exc, self._url)
            raise Unavailable(UNREACHABLE) from None
        try:
            await conn.begin()
            yield _Tx(conn)
            await conn.commit()
        except BaseException as exc:
            await _rollback_or_drop(conn, exc)
            mapped = translate(exc, "database write", self._url)
            if mapped is None:
                raise
            raise mapped from exc
        finally:
            pool.release(conn)

    async def max_connections(self) -> int | None:
        async with self.transaction() as tx:
            rows = await tx.fetchall("SELECT @@max_connections")
        return int(rows[0][0])

    async def close(self) -> None:
        if self._pool is not None:
            pool, self._pool = self._pool, None
            pool.close()
            await pool.wait_closed()


async def _rollback_or_drop(conn: Any, exc: BaseException) -> None:
    if isinstance(exc, (asyncio.CancelledError, *_CONNECTION_ERRORS)):
        # A broken or half-read connection is dropped by the pool, never reused.
        conn.close()
        return
    try:
        await conn.rollback()
    except Exception:
        conn.close()
