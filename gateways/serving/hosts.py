"""`chatservice hosts`: an operator's view of the hosted placement (hosts, live chats, a chat's host)."""

from __future__ import annotations

import logging
from typing import Any, TextIO

import ray

from actors.host import host_name
from actors.hosts import host_of
from gateways.serving.raynode import loopback_only
from gateways.settings import Settings, SettingsError, is_loopback


def _host(index: int, namespace: str) -> Any:
    return ray.get_actor(host_name(index), namespace=namespace)


def report(settings: Settings, chat_id: str | None, out: TextIO) -> int:
    """Print each host's pid and live chats, and with `chat_id` the host that serves it; 1 if none run."""
    if not ray.is_initialized():
        address = settings.ray_address
        if address is None:
            raise SettingsError(
                "RAY_ADDRESS: unset; set it to the cluster whose hosts to show (auto: this machine's)"
            )
        if address == "auto" or is_loopback(address.rsplit(":", 1)[0]):
            loopback_only()  # the Ray that serve starts listens on loopback only: join it there
        ray.init(address=address, logging_level=logging.WARNING, log_to_driver=False)
    namespace = settings.ray_namespace
    try:
        count = int(ray.get(_host(0, namespace).count.remote()))
    except ValueError:
        print(
            f"no conversation hosts in Ray namespace {namespace!r} (CONVERSATION_PLACEMENT=hosted?)", file=out
        )
        return 1
    for index in range(count):
        stats = ray.get(_host(index, namespace).stats.remote())
        print(f"{host_name(index)}  pid {stats['pid']}  live chats {stats['live']}", file=out)
    if chat_id is not None:
        index = host_of(chat_id, count)
        live = ray.get(_host(index, namespace).holds.remote(chat_id))
        print(
            f"chat {chat_id}: {host_name(index)} ({'live' if live else 'not live: loads on its next call'})",
            file=out,
        )
    return 0
