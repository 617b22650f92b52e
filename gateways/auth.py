"""The token check both gateways use: '<token>' or 'Bearer <token>', compared in constant time."""

from __future__ import annotations

import hmac


def token_matches(header: str | None, token: str) -> bool:
    """'<token>' or 'Bearer <token>', compared in constant time."""
    if not header:
        return False
    scheme, _, rest = header.partition(" ")
    given = rest.strip() if scheme.lower() == "bearer" and rest else header.strip()
    # aiohttp hands over header bytes that are not UTF-8 as surrogates: they never match, never raise.
    return hmac.compare_digest(given.encode("utf-8", "surrogatepass"), token.encode())
