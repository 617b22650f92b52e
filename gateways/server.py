"""`chatservice serve`: start Ray, migrate, wire the service, run the gateways until a signal."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import ray
from aiohttp import web

from actors.actor import NAMESPACE, ActorConfig
from actors.registry import ChatRegistry
from gateways import logs
from gateways.grpc import GrpcGateway
from gateways.health import Readiness
from gateways.http import create_app
from gateways.llm import LLM, OpenAIChat
from gateways.offline import OfflineResponder
from gateways.service import ChatService
from gateways.settings import Settings
from store import ChatStore, open_store
from store.migrate import migrate

log = logging.getLogger("chatservice")


@dataclass(slots=True)
class Runtime:
    """Everything a gateway process holds, built once from Settings."""

    settings: Settings
    store: ChatStore
    llm: LLM
    service: ChatService
    readiness: Readiness

    async def close(self) -> None:
        await self.service.drain()
        await self.llm.close()
        await self.store.close()


@dataclass(frozen=True, slots=True)
class RayInfo:
    """What serve tells operators about the Ray it runs on."""

    owned: bool  # serve started this Ray itself (no RAY_ADDRESS)
    dashboard_url: str | None
    metrics_url: str | None
    log_dir: Path | None


def start_ray(settings: Settings) -> RayInfo:
    """Join RAY_ADDRESS, or start a local Ray with its dashboard."""
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    owned = settings.ray_address is None
    extra: dict[str, Any] = {}
    if owned and settings.metrics_export_port:
        extra["_metrics_export_port"] = settings.metrics_export_port
    context = ray.init(
        address=settings.ray_address,
        namespace=NAMESPACE,
        logging_level=logging.WARNING,
        configure_logging=False,
        # Actor output copied to stdout would break one-JSON-object-a-line; it stays in Ray's logs.
        log_to_driver=settings.log_format == "text",
        **extra,
    )
    url = getattr(context, "dashboard_url", None) or None
    if url and not url.startswith("http"):
        url = f"http://{url}"
    return RayInfo(owned, url, _metrics_url(), _ray_log_dir())


def _metrics_url() -> str | None:
    """This node's Prometheus endpoint (Ray's metrics agent), which exports our metrics too."""
    node_id = ray.get_runtime_context().get_node_id()
    for node in ray.nodes():  # type: ignore[no-untyped-call]
        if node.get("NodeID") == node_id and node.get("MetricsExportPort"):
            return f"http://{node['NodeManagerAddress']}:{node['MetricsExportPort']}/metrics"
    return None


def _ray_log_dir() -> Path | None:
    """This node's Ray log directory (<temp dir>/<session>/logs), which the dashboard lists."""
    context = ray.get_runtime_context()
    logs_dir = Path(context.get_temp_dir()) / context.get_session_name() / "logs"
    return logs_dir if logs_dir.is_dir() else None


def build_llm(settings: Settings) -> LLM:
    if settings.openai_api_key is None:
        log.warning(
            "OPENAI_API_KEY is not set: answering with the built-in offline responder "
            "(set it, and OPENAI_BASE_URL for a compatible server, to use a real model)"
        )
        return OfflineResponder()
    return OpenAIChat(settings.openai_api_key, settings.openai_base_url)


def build_runtime(settings: Settings) -> Runtime:
    config = ActorConfig(settings.database, settings.turn_timeout_seconds, settings.chat_idle_seconds)
    store = open_store(settings.database, settings.db_pool_size)
    llm = build_llm(settings)
    service = ChatService(settings, ChatRegistry(config), llm, store)
    return Runtime(settings, store, llm, service, Readiness(store))


async def run_gateways(runtime: Runtime, ray_info: RayInfo, started: float) -> None:
    """Serve HTTP and gRPC until SIGINT or SIGTERM, then stop accepting and finish what runs."""
    s = runtime.settings
    grace = s.shutdown_grace_seconds
    grpc_gateway = GrpcGateway(s, runtime.service, runtime.readiness)
    grpc_port = await grpc_gateway.start()
    log.info("gRPC listening on %s:%s", s.host, grpc_port)
    app = create_app(s, runtime.service, runtime.readiness)
    # shutdown_timeout: at cleanup, running requests (JSON or SSE turns) get `grace` seconds to
    # finish before they are cancelled, as gRPC streams do.
    runner = web.AppRunner(app, handler_cancellation=True, access_log=None, shutdown_timeout=grace)
    await runner.setup()
    site = web.TCPSite(runner, s.host, s.web_port)
    await site.start()
    port = runner.addresses[0][1] if runner.addresses else s.web_port
    log.info("HTTP listening on http://%s:%s (ready in %.1f s)", s.host, port, time.monotonic() - started)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    log.info("stopping: new requests are refused, running turns get %.0f s to finish", grace)
    await asyncio.gather(grpc_gateway.stop(grace), runner.cleanup())
    await passivate_live_chats(runtime, ray_info)
    await runtime.close()
    log.info("stopped")


async def passivate_live_chats(runtime: Runtime, ray_info: RayInfo) -> None:
    """Shutdown hook: flush and stop the live conversation actors, if this process owns the Ray.

    TODO(issue 5): ask the directory actor to passivate every live chat. Every acknowledged write
    is already in the store, so today nothing is lost without it (ray.shutdown() ends a local Ray's
    actors). A gateway that joined a cluster (RAY_ADDRESS) must leave the shared actors alone.
    """
    if not ray_info.owned:
        return


def serve(settings: Settings) -> None:
    started = time.monotonic()
    if settings.auth_token is None:
        log.warning("AUTH_TOKEN is not set: no authentication, listening on %s only", settings.host)
    log.info("database: %s", settings.database.redacted())
    applied = asyncio.run(migrate(settings.database))
    if applied:
        log.info("database schema migrated to version %d", applied[-1])
    ray_info = start_ray(settings)
    if ray_info.log_dir is not None:
        path = ray_info.log_dir / f"chatservice-gateway-{os.getpid()}.log"
        logs.add_file(path, settings.log_format)
        log.info("gateway log: %s (also in the Ray dashboard's Logs view)", path)
    if ray_info.dashboard_url:
        log.info("Ray dashboard: %s", ray_info.dashboard_url)
    if ray_info.metrics_url:
        log.info("Ray metrics (Prometheus): %s", ray_info.metrics_url)
    runtime = build_runtime(settings)
    try:
        asyncio.run(run_gateways(runtime, ray_info, started))
    finally:
        ray.shutdown()
