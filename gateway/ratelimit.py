"""Leaky buckets for the query-cost budget and the sign-in throttles.

A bucket holds up to `capacity` points and drains at `rate` points a second. A request
that would overflow it is refused with the time until it fits. Without Redis the buckets
live in this process; with `REDIS_URL` they live in Redis, where a Lua script updates
each one atomically, so every gateway process behind a load balancer shares them.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class Decision:
    allowed: bool
    available: float  # points left after this request (or now, if refused)
    retry_after: float  # seconds until the request would fit; 0 when allowed


class Buckets(Protocol):
    async def take(self, key: str, cost: float, capacity: float, rate: float) -> Decision: ...
    async def give_back(self, key: str, amount: float, capacity: float, rate: float) -> None: ...
    # Adds even past capacity: a cost found only afterwards is owed all the same.
    async def add(self, key: str, amount: float, capacity: float, rate: float) -> None: ...
    async def close(self) -> None: ...


def _drain(level: float, last: float, now: float, rate: float) -> float:
    return max(0.0, level - (now - last) * rate)


def _decide(level: float, cost: float, capacity: float, rate: float) -> tuple[Decision, float]:
    if level + cost <= capacity:
        return Decision(True, capacity - level - cost, 0.0), level + cost
    wait = (level + cost - capacity) / rate if rate > 0 else math.inf
    return Decision(False, capacity - level, wait), level


class LocalBuckets:
    """One process's buckets (the default, and enough for a single process)."""

    def __init__(self, clock=time.monotonic) -> None:  # type: ignore[no-untyped-def]
        self._clock = clock
        self._levels: dict[str, tuple[float, float]] = {}

    async def take(self, key: str, cost: float, capacity: float, rate: float) -> Decision:
        now = self._clock()
        level, last = self._levels.get(key, (0.0, now))
        decision, level = _decide(_drain(level, last, now, rate), cost, capacity, rate)
        self._levels[key] = (level, now)
        self._forget_full_ones(now, capacity, rate)
        return decision

    async def give_back(self, key: str, amount: float, capacity: float, rate: float) -> None:
        now = self._clock()
        level, last = self._levels.get(key, (0.0, now))
        self._levels[key] = (max(0.0, _drain(level, last, now, rate) - amount), now)

    async def add(self, key: str, amount: float, capacity: float, rate: float) -> None:
        now = self._clock()
        level, last = self._levels.get(key, (0.0, now))
        self._levels[key] = (_drain(level, last, now, rate) + amount, now)

    def _forget_full_ones(self, now: float, capacity: float, rate: float) -> None:
        """Keeps memory bounded: an empty bucket is the same as no bucket."""
        if len(self._levels) > 10_000:
            self._levels = {k: v for k, v in self._levels.items() if _drain(v[0], v[1], now, rate) > 0}

    async def close(self) -> None:
        self._levels.clear()


# KEYS[1]: bucket; ARGV: cost (negative to give back), capacity, rate, now (seconds), and
# 1 to add the cost even past capacity.
# Returns {allowed, available*1000, retry_after*1000} as integers (Lua numbers to Redis).
_LEAKY_BUCKET = """
local level = tonumber(redis.call('HGET', KEYS[1], 'level') or '0')
local last = tonumber(redis.call('HGET', KEYS[1], 'last') or ARGV[4])
local cost, capacity, rate, now = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
-- Each caller reads TIME before its script runs, so concurrent callers' scripts may run with
-- their times out of order: time never runs backwards here (that would fill the bucket).
now = math.max(now, last)
level = math.max(0, level - (now - last) * rate)
local allowed, retry = 1, 0
if cost < 0 or ARGV[5] == '1' or level + cost <= capacity then
  level = math.max(0, level + cost)
else
  allowed = 0
  retry = (level + cost - capacity) / rate
end
redis.call('HSET', KEYS[1], 'level', level, 'last', now)
redis.call('EXPIRE', KEYS[1], math.ceil(math.max(level, capacity) / rate) + 1)
return {allowed, math.floor((capacity - level) * 1000), math.ceil(retry * 1000)}
"""


class RedisBuckets:
    """Buckets shared by every gateway process through Redis."""

    def __init__(self, url: str, prefix: str = "account-gateway:bucket:") -> None:
        import redis.asyncio as redis  # only needed when REDIS_URL is set

        self._redis = redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)
        self._script = self._redis.register_script(_LEAKY_BUCKET)
        self._prefix = prefix

    async def _run(self, key: str, cost: float, capacity: float, rate: float, force: bool = False) -> Decision:
        # Redis' own clock: processes on several machines then agree on "now".
        seconds, micros = await self._redis.time()
        allowed, available, retry = await self._script(
            keys=[self._prefix + key], args=[cost, capacity, rate, seconds + micros / 1e6, int(force)])
        return Decision(bool(allowed), available / 1000, retry / 1000)

    async def take(self, key: str, cost: float, capacity: float, rate: float) -> Decision:
        return await self._run(key, cost, capacity, rate)

    async def give_back(self, key: str, amount: float, capacity: float, rate: float) -> None:
        await self._run(key, -amount, capacity, rate)

    async def add(self, key: str, amount: float, capacity: float, rate: float) -> None:
        await self._run(key, amount, capacity, rate, force=True)

    async def close(self) -> None:
        await self._redis.aclose()
