"""The LLM server's own endpoints beside /v1 (tokenize, props...): JSON in and out, any failure None."""

from __future__ import annotations

from typing import Any

import aiohttp

TIMEOUT_SECONDS = 5.0


def root_of(base_url: str) -> str:
    """The server's root: OPENAI_BASE_URL without its trailing /v1 (where /tokenize, /props live)."""
    url = base_url.rstrip("/")
    return url[: -len("/v1")] if url.endswith("/v1") else url


class LLMServer:
    """JSON requests to an OpenAI-compatible server's other endpoints; any failure is None."""

    def __init__(self, base_url: str, api_key: str | None, timeout: float = TIMEOUT_SECONDS) -> None:
        self.base_url = base_url.rstrip("/")
        self.root = root_of(base_url)
        self._headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._session: aiohttp.ClientSession | None = None

    async def get(self, url: str) -> Any:
        return await self._call("GET", url, None)

    async def post(self, url: str, body: dict[str, Any]) -> Any:
        return await self._call("POST", url, body)

    async def _call(self, method: str, url: str, body: dict[str, Any] | None) -> Any:
        if self._session is None:
            self._session = aiohttp.ClientSession(headers=self._headers, timeout=self._timeout)
        try:
            async with self._session.request(method, url, json=body) as r:
                if r.status != 200:
                    return None
                return await r.json(content_type=None)
        except (TimeoutError, aiohttp.ClientError, ValueError):
            return None

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
