"""What a client may spend: the query-cost budget per viewer, and the sign-in throttles."""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

from datasources.errors import GatewayError
from gateway.ratelimit import Buckets, Decision

log = logging.getLogger("gateway.limits")


class RateLimited(GatewayError):
    """Too many requests, or too much cost, for now; `retryAfter` says when to try again."""

    code = "RATE_LIMITED"


@dataclass(frozen=True)
class LimitSettings:
    max_query_cost: int = 25_000  # one query's calculated cost
    cost_budget: int = 100_000  # a viewer's bucket
    cost_restore_rate: float = 2_000  # points a second
    sign_in_attempts: int = 10  # failed sign-ins per account per window
    sign_in_attempts_per_address: int = 50  # failed sign-ins per client address per window
    sign_in_window_seconds: float = 300


class Limiter:
    def __init__(self, buckets: Buckets, settings: LimitSettings) -> None:
        self.buckets = buckets
        self.settings = settings

    async def _take(self, key: str, cost: float, capacity: float, rate: float) -> Decision:
        try:
            return await self.buckets.take(key, cost, capacity, rate)
        except Exception:  # Redis away: serving beats limiting, and the log says so
            log.warning("rate-limit store unavailable; allowing %s", key, exc_info=True)
            return Decision(True, capacity, 0.0)

    async def charge_query(self, viewer_key: str, cost: int) -> Decision:
        s = self.settings
        return await self._take(f"cost:{viewer_key}", cost, s.cost_budget, s.cost_restore_rate)

    async def settle_query(self, viewer_key: str, requested: int, actual: int) -> None:
        """After the answer: what it did not use is given back, and what it held beyond the
        estimate is charged, even past the budget (the next queries then wait)."""
        if actual == requested:
            return
        s = self.settings
        try:
            if actual < requested:
                await self.buckets.give_back(f"cost:{viewer_key}", requested - actual, s.cost_budget,
                                             s.cost_restore_rate)
            else:
                await self.buckets.add(f"cost:{viewer_key}", actual - requested, s.cost_budget, s.cost_restore_rate)
        except Exception:
            log.warning("rate-limit store unavailable; settling %s lost", viewer_key, exc_info=True)

    def _sign_in_buckets(self, account: str | None, address: str) -> list[tuple[str, float]]:
        s = self.settings
        found = [(f"sign-in:address:{address}", s.sign_in_attempts_per_address)]
        if account:
            found.append((f"sign-in:account:{account.lower()}", s.sign_in_attempts))
        return found

    async def take_attempt(self, account: str | None, address: str) -> None:
        """Counts one sign-in attempt (a password or token about to be checked) in the client
        address's bucket and the account's, before the check, so that N attempts at once are
        limited exactly like N in a row. Refused, with what was taken given back, when either
        bucket is full; the caller gives the attempt back when the check succeeds."""
        window = self.settings.sign_in_window_seconds
        taken: list[tuple[str, float]] = []
        for key, attempts in self._sign_in_buckets(account, address):
            decision = await self._take(key, 1, attempts, attempts / window)
            if not decision.allowed:
                await self._give_back(taken)
                raise RateLimited("Too many failed sign-in attempts; try again later.",
                                  retryAfter=max(1, math.ceil(decision.retry_after)))
            taken.append((key, attempts))

    async def give_back_attempt(self, account: str | None, address: str) -> None:
        """The attempt succeeded: it does not count against the account or the address."""
        await self._give_back(self._sign_in_buckets(account, address))

    async def _give_back(self, buckets: list[tuple[str, float]]) -> None:
        window = self.settings.sign_in_window_seconds
        for key, attempts in buckets:
            try:
                await self.buckets.give_back(key, 1, attempts, attempts / window)
            except Exception:
                log.warning("rate-limit store unavailable; attempt on %s not given back", key, exc_info=True)
