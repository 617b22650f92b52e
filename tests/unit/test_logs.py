"""Gateway log lines: text or JSON, with the chat, turn and request ids of the task that logs them."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Iterator

import pytest

from gateways import logs
from store.errors import Unavailable


class Capture(logging.Handler):
    def __init__(self, fmt: str, content: bool = False) -> None:
        super().__init__()
        self.setFormatter(logs.formatter(fmt, content))
        self.addFilter(logs.ContextFilter())
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


@pytest.fixture
def logger() -> Iterator[logging.Logger]:
    log = logging.getLogger("test.logs")
    log.setLevel(logging.INFO)
    log.propagate = False
    yield log
    log.handlers.clear()


def capture(log: logging.Logger, fmt: str, content: bool = False) -> Capture:
    handler = Capture(fmt, content)
    log.handlers[:] = [handler]
    return handler


def test_json_lines_carry_the_ids_bound_in_this_task(logger: logging.Logger) -> None:
    out = capture(logger, "json")

    async def a_turn(chat: str) -> None:
        logs.bind(request_id=f"req-{chat}", chat_id=chat, turn_id=f"turn-{chat}")
        await asyncio.sleep(0)  # the other turn runs meanwhile and binds its own ids
        logger.info("turn began: %d tokens", 12)

    async def both() -> None:
        await asyncio.gather(a_turn("c1"), a_turn("c2"))

    asyncio.run(both())
    entries = sorted((json.loads(line) for line in out.lines), key=lambda e: e["chat_id"])
    assert [(e["chat_id"], e["turn_id"], e["request_id"]) for e in entries] == [
        ("c1", "turn-c1", "req-c1"),
        ("c2", "turn-c2", "req-c2"),
    ]
    assert {e["message"] for e in entries} == {"turn began: 12 tokens"}
    assert all(e["level"] == "INFO" and e["logger"] == "test.logs" and "T" in e["time"] for e in entries)


def test_a_line_outside_any_request_has_no_ids(logger: logging.Logger) -> None:
    out = capture(logger, "json")

    async def outside() -> None:
        logger.warning("starting")

    asyncio.run(outside())
    entry = json.loads(out.lines[0])
    assert not set(logs.IDS) & set(entry) and entry["level"] == "WARNING"


def test_text_lines_append_the_ids_after_the_message_and_keep_tracebacks_below(
    logger: logging.Logger,
) -> None:
    out = capture(logger, "text", content=True)

    async def failing() -> None:
        logs.bind(chat_id="c9", turn_id="t9", request_id=None)
        try:
            raise ValueError("boom")
        except ValueError:
            logger.exception("turn failed")

    asyncio.run(failing())
    first, *rest = out.lines[0].split("\n")
    assert first.endswith("ERROR test.logs: turn failed [chat_id=c9 turn_id=t9]")
    assert rest[-1] == "ValueError: boom"


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_tracebacks_withhold_foreign_messages_unless_content_is_logged(
    logger: logging.Logger, fmt: str
) -> None:
    """A codec's or driver's message may quote a chat message: its frames and type are enough."""
    out = capture(logger, fmt)
    text = "".join(["secret", " text ", "\ud800"])  # the source line in the traceback names no text
    try:
        try:
            text.encode()
        except UnicodeEncodeError as exc:
            raise Unavailable("the database is unavailable; retry shortly") from exc
    except Unavailable:
        logger.exception("store failed")
    line = out.lines[0]
    assert "secret text" not in line and "ud800" not in line
    assert "UnicodeEncodeError" in line and logs.WITHHELD in line and "test_logs.py" in line
    assert "the database is unavailable; retry shortly" in line  # our own messages stay
    try:
        raise ValueError(text[:11])
    except ValueError:
        capture(logger, fmt, content=True)
        logger.exception("with LOG_CONTENT=1")
    assert "secret text" in logger.handlers[0].lines[0]  # type: ignore[attr-defined]


def test_json_keeps_an_exception_inside_the_one_line(logger: logging.Logger) -> None:
    out = capture(logger, "json")
    try:
        raise KeyError("k")
    except KeyError:
        logger.exception("failed")
    assert "\n" not in out.lines[0]
    assert "KeyError" in json.loads(out.lines[0])["exception"]


@pytest.mark.parametrize(
    ("offered", "kept"),
    [
        ("abc-123", True),
        ("4f9c0e1a.2:x_y", True),
        ("", False),
        (None, False),
        ("a b", False),
        ("x" * 129, False),
    ],
)
def test_a_request_id_is_the_callers_when_sane(offered: str | None, kept: bool) -> None:
    rid = logs.request_id(offered)
    assert (rid == offered) is kept
    assert 1 <= len(rid) <= 128 and " " not in rid
