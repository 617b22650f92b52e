"""Which database failure happened, in one line for logs and start-up errors (never a password)."""

from __future__ import annotations

import logging
import socket
import sqlite3
import time

from store.url import DatabaseURL

log = logging.getLogger("chatservice.database")
HANDSHAKE_SECONDS = 10.0  # a server that accepts but never greets would otherwise hang a connect
REPEAT_SECONDS = 30.0  # the same run-time failure is logged again after this long

# MySQL/MariaDB error numbers (asyncmy.errors has the same constants; this module needs no driver).
_ACCESS_DENIED = (1045, 1698)  # wrong user or password; 1698: this user may not log in with one
_DB_ACCESS_DENIED = 1044
_UNKNOWN_DATABASE = 1049
_PRIVILEGE = (1142, 1143, 1227, 1370)  # a command, column, global or routine privilege is missing
_LOST = (2006, 2013)
_last: tuple[str, float] = ("", 0.0)


def _server_message(exc: BaseException) -> str:
    return str(exc.args[-1]) if exc.args else repr(exc)


def _errno(exc: BaseException) -> int | None:
    code = exc.args[0] if exc.args else None
    return code if isinstance(code, int) and not isinstance(exc, OSError) else None


def mysql_failure(exc: BaseException, url: DatabaseURL) -> str:
    """What went wrong reaching or using the MySQL/MariaDB database at `url`."""
    where = f"{url.host}:{url.port}"
    code = _errno(exc)
    # The driver wraps socket errors (OperationalError 2003 from gaierror, ConnectionRefusedError...).
    chain = [e for e in (exc, exc.__cause__, exc.__context__) if e is not None]
    gai = next((e for e in chain if isinstance(e, socket.gaierror)), None)
    os_error = next((e for e in chain if isinstance(e, OSError)), None)
    if code in _ACCESS_DENIED:
        return (
            f"access denied for user '{url.user}' at {where}: wrong user or password ({_server_message(exc)})"
        )
    if code == _DB_ACCESS_DENIED:
        return (
            f"access denied for user '{url.user}' to database '{url.database}' at {where} "
            "(it may not exist): create it, or grant the user rights on it"
        )
    if code == _UNKNOWN_DATABASE:
        return (
            f"unknown database '{url.database}' at {where}: create it "
            f"(CREATE DATABASE `{url.database}` CHARACTER SET utf8mb4)"
        )
    if code in _PRIVILEGE:
        return f"user '{url.user}' lacks a privilege on '{url.database}': {_server_message(exc)}"
    if gai is not None:
        return f"host not found: '{url.host}' ({gai.strerror})"
    if any(isinstance(e, ConnectionRefusedError) for e in chain):
        return f"connection refused at {where}: is MySQL/MariaDB running there, on that port?"
    if any(isinstance(e, TimeoutError) for e in chain):
        return (
            f"no answer from {where} within {HANDSHAKE_SECONDS:g} s: "
            "is it a MySQL/MariaDB server, reachable from here?"
        )
    if code in _LOST:
        return f"the server at {where} closed the connection: {_server_message(exc)}"
    if os_error is not None:
        return f"cannot reach {where}: {os_error.strerror or os_error}"
    return f"database error at {where}: {_server_message(exc)}"


def sqlite_failure(exc: BaseException, path: str) -> str:
    """What went wrong opening or using the SQLite file at `path`."""
    if isinstance(exc, OSError):
        return f"cannot create the directory {exc.filename} for the SQLite file {path}: {exc.strerror or exc}"
    text = str(exc)
    if isinstance(exc, sqlite3.DatabaseError) and "not a database" in text:
        return f"{path} is not a SQLite database file"
    if "unable to open" in text:
        return f"cannot open the SQLite file {path}: is it a directory, or is its directory not writable?"
    if "readonly" in text:
        return f"the SQLite file {path} is read-only"
    return f"SQLite error on {path}: {text}"


def failure(exc: BaseException, url: DatabaseURL) -> str:
    return sqlite_failure(exc, url.path) if url.kind == "sqlite" else mysql_failure(exc, url)


def log_unavailable(exc: BaseException, url: DatabaseURL) -> None:
    """Say in the log which failure made the database unavailable (clients are told only that)."""
    global _last
    what = failure(exc, url)
    now = time.monotonic()
    if what != _last[0] or now - _last[1] > REPEAT_SECONDS:
        _last = (what, now)
        log.warning("database unavailable: %s", what)
    log.debug("database driver error: %r", exc)
