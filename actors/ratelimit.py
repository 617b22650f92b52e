"""Sliding-window rate limits: at most `limit` events in any `period` seconds. Pure: callers pass the time."""

from __future__ import annotations

from collections import OrderedDict, deque


class RateLimit:
    """One sliding window; a limit of 0 admits everything."""

    def __init__(self, limit: int, period: float = 60.0) -> None:
        self.limit = limit
        self.period = period
        self._times: deque[float] = deque()

    def admit(self, now: float) -> float:
        """0.0 if an event is admitted now (and recorded), else the seconds until one would be."""
        if self.limit <= 0:
            return 0.0
        while self._times and self._times[0] <= now - self.period:
            self._times.popleft()
        if len(self._times) >= self.limit:
            return self._times[0] + self.period - now
        self._times.append(now)
        return 0.0


class KeyedRateLimit:
    """One window per key (a user), remembering at most `keys` of them, least recently used first out."""

    def __init__(self, limit: int, period: float = 60.0, keys: int = 100_000) -> None:
        self.limit = limit
        self.period = period
        self._keys = keys
        self._windows: OrderedDict[str, RateLimit] = OrderedDict()

    def admit(self, key: str, now: float) -> float:
        """As RateLimit.admit, for this key's window."""
        if self.limit <= 0:
            return 0.0
        window = self._windows.pop(key, None) or RateLimit(self.limit, self.period)
        self._windows[key] = window
        while len(self._windows) > self._keys:
            self._windows.popitem(last=False)
        return window.admit(now)
