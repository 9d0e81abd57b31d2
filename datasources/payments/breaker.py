"""A circuit breaker for the payment provider: fail fast while it is down, recover by itself.

One breaker per `PaymentsClient` (one client per gateway process): its state is the
process's own view of the provider, never shared through module state.

- CLOSED: calls go through. Each call that ends in ProviderUnavailable (after the client's
  own retries: one call, one failure) adds to a run of consecutive failures; any answer
  from the provider ends the run, including refusals (a declined card, a 4xx, NotFound):
  a provider that refuses is a provider that is up. `failure_threshold` failures in a row
  open the breaker.
- OPEN: calls fail at once with ProviderUnavailable, without touching the network, until
  `cooldown_seconds` have passed since it opened.
- HALF_OPEN: the first call after the cool-down is let through as a trial; calls arriving
  while it runs fail fast. The trial's success closes the breaker; its failure opens it for
  another cool-down. A trial that ends otherwise (cancelled, or a bug) frees the slot for
  the next caller.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from enum import Enum
from typing import TypeVar

from datasources.errors import GatewayError, ProviderUnavailable

T = TypeVar("T")
log = logging.getLogger("gateway.payments.breaker")


class BreakerState(Enum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


class CircuitBreaker:
    def __init__(self, *, failure_threshold: int = 5, cooldown_seconds: float = 10.0,
                 unavailable_message: str = "The payment provider is unavailable; try again shortly.",
                 clock: Callable[[], float] = time.monotonic, name: str = "payments") -> None:
        if failure_threshold < 1:
            raise ValueError("failure_threshold must be at least 1")
        if cooldown_seconds < 0:
            raise ValueError("cooldown_seconds must not be negative")
        self.failure_threshold = failure_threshold
        self.cooldown_seconds = cooldown_seconds
        self._message = unavailable_message
        self._clock = clock
        self._name = name
        self._failures = 0  # consecutive, while CLOSED
        self._opened_at: float | None = None  # set while OPEN or HALF_OPEN
        self._trial_running = False
        self.rejected = 0  # calls failed fast since the client was made (for metrics and tests)

    @property
    def state(self) -> BreakerState:
        if self._opened_at is None:
            return BreakerState.CLOSED
        if self._trial_running or self._clock() - self._opened_at >= self.cooldown_seconds:
            return BreakerState.HALF_OPEN
        return BreakerState.OPEN

    @property
    def consecutive_failures(self) -> int:
        return self._failures

    def retry_after(self) -> float:
        """Seconds until a trial call is let through (0 when one would be now)."""
        if self._opened_at is None:
            return 0.0
        return max(0.0, self.cooldown_seconds - (self._clock() - self._opened_at))

    async def call(self, request: Callable[[], Awaitable[T]]) -> T:
        trial = self._admit()
        try:
            result = await request()
        except ProviderUnavailable:
            self._failed(trial)
            raise
        except GatewayError:
            # Any other error is the provider's answer (declined, NotFound, a 4xx): it is up.
            self._succeeded(trial)
            raise
        except BaseException:
            # Cancellation and our own bugs say nothing about the provider.
            if trial:
                self._trial_running = False
            raise
        self._succeeded(trial)
        return result

    # --- transitions ----------------------------------------------------------------------

    def _admit(self) -> bool:
        """True for a trial call; raises ProviderUnavailable when the call may not go."""
        state = self.state
        if state is BreakerState.CLOSED:
            return False
        if state is BreakerState.HALF_OPEN and not self._trial_running:
            self._trial_running = True
            log.info("%s breaker half-open: letting one trial call through", self._name)
            return True
        self.rejected += 1
        raise ProviderUnavailable(self._message)

    def _succeeded(self, trial: bool) -> None:
        if trial or self._opened_at is not None:
            if trial:
                log.warning("%s breaker closed: the provider answers again", self._name)
                self._opened_at = None
                self._trial_running = False
            # A late success of a call admitted before the breaker opened changes nothing.
            return
        self._failures = 0

    def _failed(self, trial: bool) -> None:
        if trial:
            self._trial_running = False
            self._opened_at = self._clock()
            log.warning("%s breaker re-opened: the trial call failed; next trial in %.1f s",
                        self._name, self.cooldown_seconds)
            return
        if self._opened_at is not None:
            return  # admitted before it opened: already counted in the run that opened it
        self._failures += 1
        if self._failures >= self.failure_threshold:
            self._opened_at = self._clock()
            self._failures = 0
            log.warning("%s breaker opened after %d consecutive failures; next trial in %.1f s",
                        self._name, self.failure_threshold, self.cooldown_seconds)
