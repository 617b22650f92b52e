"""`chatservice serve`'s start-up: claim the ports, migrate, start Ray while the gateways load.

The order is for failing fast: a taken port or a database that refuses us stops start-up in a
second, with one line, before Ray (the slow part: seconds) is started. While Ray starts, a thread
imports the gateways and loads the default model's tokenizer, which the first turn would pay for.
A step that takes long says what it waits for.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from importlib.metadata import version
from pathlib import Path
from typing import TYPE_CHECKING

from gateways import logs
from gateways.serving.ports import claim
from gateways.settings import Settings
from store.migrate import migrate

if TYPE_CHECKING:
    from gateways.serving.raynode import RayInfo

log = logging.getLogger("chatservice")
SLOW_SECONDS = 2.0  # a step still running after this long is announced
AUTH_MODE = "RAY_AUTH_MODE"


@contextmanager
def announced(waiting: str, done: str, after: float = SLOW_SECONDS) -> Iterator[None]:
    """Log `waiting` if the block still runs after `after` seconds, then `done` with its duration."""
    started = time.monotonic()
    timer = threading.Timer(after, log.info, (waiting,))
    timer.daemon = True
    timer.start()
    try:
        yield
    finally:
        timer.cancel()
        took = time.monotonic() - started
        if took >= after:
            log.info("%s in %.1f s", done, took)


def warm_up(settings: Settings) -> None:
    """Import the gateways and load the default model's tokenizer (run while Ray starts)."""
    try:
        import gateways.serve  # noqa: F401  aiohttp, grpc, the openai SDK: about a second
        from gateways.llm.tokenizer import tokenizer_for

        tokenizer_for(settings.default_params.model)  # the encoding's load, ~0.5 s, off the first turn
    except Exception as exc:  # the main thread imports them again and reports any failure itself
        log.debug("warm-up failed: %r", exc)


def choose_auth_mode(settings: Settings) -> None:
    """A Ray of our own uses token authentication, as current Ray does by default, said once in our words.

    Set before Ray is imported (it reads RAY_AUTH_MODE then): Ray then does not print its own
    notice at every start. An explicit RAY_AUTH_MODE, or a Ray without tokens, is left alone.
    """
    numbers = re.findall(r"\d+", version("ray"))[:2]
    if settings.ray_address is None and tuple(map(int, numbers)) >= (2, 52):
        os.environ.setdefault(AUTH_MODE, "token")


def auth_notice(settings: Settings) -> str | None:
    """Where Ray's token is, and who needs it; None without token authentication."""
    if os.environ.get(AUTH_MODE, "").lower() != "token":
        return None
    if os.environ.get("RAY_AUTH_TOKEN"):
        where = "the RAY_AUTH_TOKEN environment variable"
    else:
        where = os.environ.get("RAY_AUTH_TOKEN_PATH") or str(Path.home() / ".ray" / "auth_token")
    if settings.ray_address is not None:
        return f"Ray token authentication is on: this gateway's token is from {where}"
    return (
        f"Ray token authentication is on: the token is in {where} (`ray get-auth-token` prints it); "
        "the Ray dashboard asks for it, and a gateway joining this Ray needs RAY_AUTH_MODE=token and it"
    )


def serve(settings: Settings) -> None:
    started = time.monotonic()
    # First: the LLM server's inspection below imports Ray (through the metrics), and a Ray imported
    # before RAY_AUTH_MODE is set keeps "disabled" while the Ray it starts demands its token.
    choose_auth_mode(settings)
    ports = claim(settings)
    try:
        from gateways.llm.discovery import inspect_server

        settings = asyncio.run(inspect_server(settings))  # an unknown model's context size, from its server
        if settings.auth_token is None:
            log.warning("AUTH_TOKEN is not set: no authentication, listening on %s only", settings.host)
        log.info("database: %s", settings.database.redacted())
        applied = asyncio.run(migrate(settings.database))
        if applied:
            log.info("database schema migrated to version %d", applied[-1])
        from gateways.serving.raynode import (
            start_ray,  # Ray itself: imported here, not by both threads at once
        )

        warming = threading.Thread(target=warm_up, args=(settings,), name="warm-up", daemon=True)
        warming.start()
        parts = "its processes and dashboard" if settings.ray_dashboard else "its processes"
        with announced(f"waiting for Ray to start ({parts})...", "Ray started"):
            ray_info = start_ray(settings)
        warming.join()
        _announce(settings, ray_info)
        from gateways.serve import run

        asyncio.run(run(settings, ray_info, started, ports))
    finally:
        ports.close()
        _stop_ray()


def _stop_ray() -> None:
    if "ray" in sys.modules:
        sys.modules["ray"].shutdown()


def _announce(settings: Settings, ray_info: RayInfo) -> None:
    if ray_info.log_dir is not None:
        path = ray_info.log_dir / f"chatservice-gateway-{os.getpid()}.log"
        logs.add_file(path, settings.log_format, settings.log_content)
        log.info("gateway log: %s (also in the Ray dashboard's Logs view)", path)
    notice = auth_notice(settings)
    if notice:
        log.info("%s", notice)
    if ray_info.dashboard_url:
        log.info("Ray dashboard: %s", ray_info.dashboard_url)
    if ray_info.metrics_url:
        log.info("Ray metrics (Prometheus): %s", ray_info.metrics_url)
