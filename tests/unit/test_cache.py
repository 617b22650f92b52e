"""The gateways' bounded cache: least recently used out first, never above its size."""

from __future__ import annotations

import pytest

from gateways.service.cache import LRU


def test_the_least_recently_used_entry_goes_first_and_the_size_holds() -> None:
    cache: LRU[str, int] = LRU(3)
    for i, key in enumerate("abc"):
        cache.put(key, i)
    assert cache.get("a") == 0  # a is now the most recently used
    cache.put("d", 3)
    assert len(cache) == 3
    assert cache.get("b") is None and cache.get("a") == 0 and cache.get("d") == 3
    for i in range(1000):
        cache.put(f"k{i}", i)
    assert len(cache) == 3
    cache.pop("k999")
    cache.pop("never there")
    assert len(cache) == 2 and cache.get("k998") == 998


def test_a_cache_holds_at_least_one_entry() -> None:
    with pytest.raises(ValueError, match="at least one"):
        LRU(0)
