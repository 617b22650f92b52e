"""SQLite adapter: the embedded default store, one connection on its own thread per process."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager, suppress
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

from store.errors import AlreadyExists, ChatServiceError, Unavailable
from store.sql import Row

T = TypeVar("T")
BUSY_TIMEOUT_MS = 10_000


def _arg(value: Any) -> Any:
    # Fixed-width ISO text sorts like time, so range queries on timestamps stay correct.
    if isinstance(value, datetime):
        return value.isoformat(sep=" ", timespec="microseconds")
    return value


def _args(args: Sequence[Any]) -> tuple[Any, ...]:
    return tuple(_arg(a) for a in args)


def translate(exc: BaseException, where: str) -> ChatServiceError | None:
    if isinstance(exc, sqlite3.IntegrityError):
        return AlreadyExists(f"{where}: already exists")
    if isinstance(exc, sqlite3.OperationalError):
        return Unavailable(f"the database is unavailable ({exc}); retry shortly")
    return None


class _Tx:
    def __init__(self, db: SQLiteDatabase) -> None:
        self._db = db

    async def execute(self, sql: str, args: Sequence[Any] = ()) -> int:
        cur = await self._db.run(lambda c: c.execute(sql.replace("%s", "?"), _args(args)))
        return int(cur.rowcount)

    async def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        await self._db.run(lambda c: c.executemany(sql.replace("%s", "?"), [_args(r) for r in rows]))

    async def fetchall(self, sql: str, args: Sequence[Any] = ()) -> list[Row]:
        return await self._db.run(lambda c: list(c.execute(sql.replace("%s", "?"), _args(args)).fetchall()))


class SQLiteDatabase:
    """Serialises transactions in-process; BEGIN IMMEDIATE serialises them across processes."""

    def __init__(self, path: str) -> None:
        self._path = path
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sqlite")
        self._conn: sqlite3.Connection | None = None
        self._lock = asyncio.Lock()

    def _open(self) -> sqlite3.Connection:
        if self._conn is None:
            Path(self._path).parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(
                self._path,
                timeout=BUSY_TIMEOUT_MS / 1000,
                isolation_level=None,
                check_same_thread=False,
            )
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA foreign_keys=ON")
            conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
            self._conn = conn
        return self._conn

    async def run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, lambda: fn(self._open()))

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[_Tx]:
        async with self._lock:
            try:
                await self.run(lambda c: c.execute("BEGIN IMMEDIATE"))
                yield _Tx(self)
                await self.run(lambda c: c.execute("COMMIT"))
            except BaseException as exc:
                await self._rollback()
                mapped = translate(exc, "database write")
                if mapped is None:
                    raise
                raise mapped from exc

    async def _rollback(self) -> None:
        def rollback(c: sqlite3.Connection) -> None:
            if c.in_transaction:
                c.execute("ROLLBACK")

        with suppress(sqlite3.Error, asyncio.CancelledError):
            await asyncio.shield(self.run(rollback))

    async def max_connections(self) -> int | None:
        return None  # an embedded file: no server, no connection limit

    async def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            await asyncio.get_running_loop().run_in_executor(self._executor, conn.close)
        self._executor.shutdown(wait=False)
