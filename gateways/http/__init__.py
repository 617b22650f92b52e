"""The aiohttp gateway: app factory, routes and middleware."""

from gateways.http.app import create_app

__all__ = ["create_app"]
