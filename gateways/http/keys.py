"""Typed application keys (aiohttp AppKey) for what handlers share."""

from __future__ import annotations

from aiohttp import web

from gateways.service.chats import ChatService
from gateways.serving.readiness import Readiness
from gateways.settings import Settings

SERVICE = web.AppKey("service", ChatService)
SETTINGS = web.AppKey("settings", Settings)
READINESS = web.AppKey("readiness", Readiness)
