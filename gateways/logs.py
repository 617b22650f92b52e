"""Gateway logging: text or JSON lines, with the turn's chat, turn and request ids on every record."""

from __future__ import annotations

import json
import logging
import re
import sys
import traceback
import uuid
from contextvars import ContextVar
from datetime import UTC, datetime
from logging.handlers import RotatingFileHandler
from pathlib import Path

from store.errors import ChatServiceError

IDS = ("chat_id", "turn_id", "request_id")
_VARS: dict[str, ContextVar[str | None]] = {name: ContextVar(name, default=None) for name in IDS}
_REQUEST_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,127}")  # fullmatch: `$` accepts a final newline
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
# Ray rotates its own log files at these sizes by default; the gateway's file in Ray's log
# directory follows suit so it cannot fill the disk.
ROTATE_BYTES = 512 * 1024 * 1024
ROTATE_BACKUPS = 5
WITHHELD = "(message withheld: it may quote what a user sent; LOG_CONTENT=1 shows it)"
# Exceptions whose messages are ours or the system's, never a user's text.
_SAFE_MESSAGES: tuple[type[BaseException], ...] = (OSError, TimeoutError)


def bind(**ids: str | None) -> None:
    """Set ids for the rest of the current task (and tasks it starts); None clears one."""
    for name, value in ids.items():
        _VARS[name].set(value)


def current(name: str) -> str | None:
    return _VARS[name].get()


def request_id(offered: str | None) -> str:
    """The caller's request id if it is a sane token, else a new one."""
    if offered and _REQUEST_ID.fullmatch(offered):
        return offered
    return uuid.uuid4().hex


class ContextFilter(logging.Filter):
    """Puts the current chat_id, turn_id and request_id on every record (None when unset)."""

    def filter(self, record: logging.LogRecord) -> bool:
        for name in IDS:
            if getattr(record, name, None) is None:
                setattr(record, name, _VARS[name].get())
        return True


def _message(exc: BaseException) -> str:
    if isinstance(exc, ChatServiceError):
        return exc.message
    return str(exc) if isinstance(exc, _SAFE_MESSAGES) else WITHHELD


def redacted_traceback(exc: BaseException) -> str:
    """Where it failed (frames) and what (exception types) without the messages of foreign exceptions.

    A driver's or codec's message may quote the values it was given, such as a chat message
    (`UnicodeEncodeError('utf-8', '<the whole message>', ...)`).
    """
    chain: list[BaseException] = []
    e: BaseException | None = exc
    while e is not None and all(e is not seen for seen in chain):
        chain.append(e)
        e = e.__cause__ or (None if e.__suppress_context__ else e.__context__)
    blocks = [
        "Traceback (most recent call last):\n"
        + "".join(traceback.format_tb(e.__traceback__))
        + f"{type(e).__module__}.{type(e).__qualname__}: {_message(e)}"
        for e in reversed(chain)
    ]
    return "\n\nwhich led to:\n\n".join(blocks)


class _Redacting(logging.Formatter):
    """Exceptions are formatted without foreign messages unless `content` (LOG_CONTENT=1)."""

    content = False

    def formatException(self, ei: object) -> str:
        exc = ei[1] if isinstance(ei, tuple) and len(ei) == 3 else None
        if self.content or not isinstance(exc, BaseException):
            return super().formatException(ei)  # type: ignore[arg-type]
        return redacted_traceback(exc)


class TextFormatter(_Redacting):
    """The classic one-line format, with the ids that are set appended as key=value."""

    def __init__(self) -> None:
        super().__init__(TEXT_FORMAT)

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        ids = " ".join(f"{n}={v}" for n in IDS if (v := getattr(record, n, None)))
        if not ids:
            return line
        head, newline, rest = line.partition("\n")  # keep a traceback below the first line
        return f"{head} [{ids}]{newline}{rest}"


class JsonFormatter(_Redacting):
    """One JSON object a line: time, level, logger, message, the ids, and any exception."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        entry.update((n, v) for n in IDS if (v := getattr(record, n, None)))
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


def formatter(fmt: str, content: bool = False) -> logging.Formatter:
    """`content` (LOG_CONTENT): also the messages of foreign exceptions in tracebacks."""
    made = JsonFormatter() if fmt == "json" else TextFormatter()
    made.content = content
    return made


def configure(level: str, fmt: str, content: bool = False) -> None:
    """Log to stderr at `level` in `fmt` (text or json); replaces any earlier set-up."""
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    handler = logging.StreamHandler(sys.stderr)
    _attach(root, handler, fmt, content)
    root.setLevel(level)


def add_file(path: Path, fmt: str, content: bool = False) -> None:
    """Also write every record to `path` (rotated), in the same format."""
    handler = RotatingFileHandler(path, maxBytes=ROTATE_BYTES, backupCount=ROTATE_BACKUPS)
    _attach(logging.getLogger(), handler, fmt, content)


def _attach(root: logging.Logger, handler: logging.Handler, fmt: str, content: bool) -> None:
    handler.setFormatter(formatter(fmt, content))
    handler.addFilter(ContextFilter())
    root.addHandler(handler)
