"""The served process: wire the service on the Ray it runs on, run the gateways until a signal."""

from __future__ import annotations

import asyncio
import logging
import signal
import time
from dataclasses import dataclass

from actors.actor import ActorConfig
from actors.host import HostConfig
from actors.hosts import HostedRouter
from actors.inprocess import LocalConfig, LocalConversations
from actors.port import Conversations
from actors.router import ConversationRouter, is_connected
from gateways.http.app import create_app
from gateways.http.listener import HttpListener
from gateways.llm.client import LLM, OpenAIChat
from gateways.llm.counting import TokenCounter
from gateways.llm.endpoints import LLMServer
from gateways.llm.offline import OfflineResponder
from gateways.rpc.server import GrpcGateway
from gateways.service.chats import ChatService
from gateways.service.config import ServiceConfig
from gateways.serving.capacity import hosts_for, live_chats_per_node
from gateways.serving.ports import Ports
from gateways.serving.raynode import RayInfo, alive_nodes
from gateways.serving.readiness import Readiness
from gateways.serving.startup import announced
from gateways.settings import Settings, SettingsError
from store import ChatStore, open_store
from store.errors import Unavailable

log = logging.getLogger("chatservice")
DIRECTORY_WAIT_SECONDS = 60.0
Router = ConversationRouter | HostedRouter  # the Conversations port on Ray, by CONVERSATION_PLACEMENT


@dataclass(slots=True)
class Runtime:
    """Everything a gateway process holds, built once from Settings."""

    settings: Settings
    store: ChatStore
    llm: LLM
    conversations: Conversations
    service: ChatService
    readiness: Readiness
    llm_server: LLMServer | None = None

    async def close(self) -> None:
        await self.service.drain()
        await self.conversations.close()
        await self.llm.close()
        if self.llm_server is not None:
            await self.llm_server.close()
        await self.store.close()


def build_llm(settings: Settings) -> LLM:
    if settings.openai_api_key is None:
        log.warning(
            "OPENAI_API_KEY is not set: answering with the built-in offline responder "
            "(set it, and OPENAI_BASE_URL for a compatible server, to use a real model)"
        )
        return OfflineResponder()
    return OpenAIChat(settings.openai_api_key, settings.openai_base_url, timeout=settings.llm_timeout_seconds)


def build_router(settings: Settings, live_chats_per_node: int) -> ConversationRouter:
    config = ActorConfig(
        settings.database,
        settings.turn_timeout_seconds,
        settings.chat_idle_seconds,
        settings.chat_turns_per_minute,
        settings.ray_namespace,
        evict_to=settings.evict_to,
    )
    return ConversationRouter(config, live_chats_per_node, settings.activation_wait_seconds)


def local_config(settings: Settings, loaded: int, *, measured: bool = False) -> LocalConfig:
    return LocalConfig(
        settings.turn_timeout_seconds, settings.chat_turns_per_minute, settings.evict_to, loaded, measured
    )


def build_hosted(settings: Settings, hosts: int, live_chats_per_node: int) -> HostedRouter:
    """Conversations as objects in `hosts` host actors, each holding its share of the node's cap."""
    per_host = max(1, live_chats_per_node // settings.hosts_per_node)
    config = HostConfig(
        settings.database,
        settings.db_pool_size,
        local_config(settings, per_host, measured=True),
        settings.chat_idle_seconds,
        hosts,
        settings.ray_namespace,
    )
    return HostedRouter(config, settings.activation_wait_seconds)


def build_local(settings: Settings, store: ChatStore) -> LocalConversations:
    """The conversations in this process, on the gateway's store (tests; no Ray)."""
    return LocalConversations(store, local_config(settings, settings.live_chats_cap))


def build_runtime(
    settings: Settings,
    store: ChatStore | None = None,
    *,
    conversations: Conversations | None = None,
    in_process: bool = False,
) -> Runtime:
    """The runtime on `conversations`, else on a Ray router (or, `in_process`, on LocalConversations)."""
    if not settings.context_known:
        raise SettingsError(f"MODEL_MAX_TOKENS: unset for {settings.default_params.model!r}; set it")
    store = store or open_store(settings.database, settings.db_pool_size)
    if conversations is None and in_process:
        conversations = build_local(settings, store)
    elif conversations is None:
        conversations = build_router(settings, settings.live_chats_cap)
    on_ray = isinstance(conversations, ConversationRouter | HostedRouter)
    readiness = Readiness(store, {"ray": is_connected} if on_ray else None)
    llm = build_llm(settings)
    # The server's own endpoints (tokenize...), for models counted with their own tokenizer.
    server = None
    if not settings.offline and settings.openai_base_url is not None:
        server = LLMServer(settings.openai_base_url, settings.openai_api_key)
    counter = TokenCounter(settings.tokenizer, server)
    service = ChatService(ServiceConfig.of(settings), conversations, llm, store, counter)
    return Runtime(settings, store, llm, conversations, service, readiness, server)


async def prepare(settings: Settings) -> tuple[Runtime, Router]:
    """The runtime on Ray, with the live-chat cap (or the hosts) checked against max_connections."""
    store = open_store(settings.database, settings.db_pool_size)
    nodes = alive_nodes()
    try:
        limit = await store.max_connections()
    except Unavailable:
        log.warning("the database does not answer yet: the live-chat cap is not checked against it")
        limit = None
    try:
        router: Router
        if settings.hosted:
            hosts = hosts_for(settings, nodes, limit)
            router = build_hosted(settings, hosts, settings.live_chats_cap)
            log.info(
                "hosted conversations: %d host(s), at most %d live chats per node",
                hosts,
                settings.live_chats_cap,
            )
        else:
            cap = live_chats_per_node(settings, nodes, limit)
            router = build_router(settings, cap)
            log.info("live conversations: at most %d per node (%d node(s))", cap, nodes)
    except SettingsError:
        await store.close()
        raise
    return build_runtime(settings, store, conversations=router), router


async def warm_directory(router: Router) -> None:
    """Start the chat directory (or the hosts) now, so the first chat does not wait for a process."""
    try:
        await asyncio.wait_for(router.start(), DIRECTORY_WAIT_SECONDS)
    except Exception as exc:  # the first chat starts it then, and says why it cannot
        log.warning("the conversations' actors did not start yet (%r): the first chat will start them", exc)


async def run_gateways(runtime: Runtime, ports: Ports, started: float) -> None:
    """Serve HTTP and gRPC until SIGINT or SIGTERM, then stop accepting and finish what runs."""
    s = runtime.settings
    grace = s.shutdown_grace_seconds
    ports.release_grpc()  # both ports were claimed at start-up: a taken one failed then
    grpc_gateway = GrpcGateway(s, runtime.service, runtime.readiness)
    grpc_port = await grpc_gateway.start()
    log.info("gRPC listening on %s:%s", s.host, grpc_port)
    # At stop, running requests (JSON or SSE turns) get `grace` seconds to finish before they are
    # cancelled, as gRPC streams do.
    http = HttpListener(create_app(s, runtime.service, runtime.readiness), s, grace)
    port = await http.start(ports.http)  # bound at start-up, listening from now
    log.info("HTTP listening on http://%s:%s (ready in %.1f s)", s.host, port, time.monotonic() - started)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    log.info("stopping: new requests are refused, running turns get %.0f s to finish", grace)
    await asyncio.gather(grpc_gateway.stop(grace), http.stop())


async def run(settings: Settings, ray_info: RayInfo, started: float, ports: Ports) -> None:
    runtime, router = await prepare(settings)
    try:
        what = "conversation hosts" if settings.hosted else "chat directory"
        with announced(f"waiting for the {what} (Ray actors) to start...", f"{what} started"):
            await warm_directory(router)
        await run_gateways(runtime, ports, started)
    finally:
        if ray_info.owned:
            # This process started Ray, so its actors end with it: let each close its connection.
            # A gateway that joined a cluster (RAY_ADDRESS) leaves the shared actors alone.
            passivated = await router.passivate_all()
            log.info("passivated %d conversation(s)", passivated)
        await runtime.close()
        log.info("stopped")
