"""Per-caller rate limits: requests and tokens per minute over a sliding one-minute window.

Tokens are charged after the fact (prompt + generated, when a generation ends) rather than
reserved up front from ``max_tokens``: a reservation would bill every request for the default
ceiling (1,024 tokens) although most answers are far shorter. The cost is that a burst of
concurrent requests may overshoot the budget once; the next request then waits it out.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable

from gemma_service.config import ServiceSettings
from gemma_service.errors import RateLimitError

WINDOW_S = 60
# Callers idle for a whole window are forgotten once this many are tracked.
_SWEEP_AT = 10_000


class _MinuteWindow:
    """Amounts in one-second buckets over the last minute; bounded to 60 buckets."""

    def __init__(self) -> None:
        self._buckets: deque[list[int]] = deque()  # [second, amount], oldest first
        self.total = 0

    def prune(self, now_s: int) -> None:
        while self._buckets and self._buckets[0][0] <= now_s - WINDOW_S:
            self.total -= self._buckets.popleft()[1]

    def add(self, now_s: int, amount: int) -> None:
        if self._buckets and self._buckets[-1][0] == now_s:
            self._buckets[-1][1] += amount
        else:
            self._buckets.append([now_s, amount])
        self.total += amount

    def seconds_until_below(self, limit: int, now: float) -> float:
        """How long until the total drops below ``limit`` as old buckets expire."""
        remaining = self.total
        for second, amount in self._buckets:
            remaining -= amount
            if remaining < limit:
                return max(1.0, second + WINDOW_S - now)
        return float(WINDOW_S)


class RateLimiter:
    """Requests per minute are counted on admission; tokens per minute as generations end."""

    def __init__(
        self,
        requests_per_minute: int = 0,
        tokens_per_minute: int = 0,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.rpm = requests_per_minute
        self.tpm = tokens_per_minute
        self._clock = clock
        self._requests: dict[str, _MinuteWindow] = {}
        self._tokens: dict[str, _MinuteWindow] = {}

    @classmethod
    def from_settings(cls, settings: ServiceSettings) -> RateLimiter:
        return cls(settings.rate_limit_rpm, settings.rate_limit_tpm)

    @property
    def enabled(self) -> bool:
        return self.rpm > 0 or self.tpm > 0

    def admit(self, caller: str) -> None:
        """Count one request for ``caller``, or raise 429 with the seconds to wait."""
        if not self.enabled:
            return
        now = self._clock()
        now_s = math.floor(now)
        if self.tpm:
            tokens = self._window(self._tokens, caller, now_s)
            if tokens.total >= self.tpm:
                raise RateLimitError(
                    f"token rate limit reached ({self.tpm} tokens per minute); retry later",
                    retry_after_s=tokens.seconds_until_below(self.tpm, now),
                    code="tokens_per_minute_exceeded",
                )
        if self.rpm:
            requests = self._window(self._requests, caller, now_s)
            if requests.total >= self.rpm:
                raise RateLimitError(
                    f"request rate limit reached ({self.rpm} requests per minute); retry later",
                    retry_after_s=requests.seconds_until_below(self.rpm, now),
                    code="requests_per_minute_exceeded",
                )
            requests.add(now_s, 1)
        self._sweep(now_s)

    def charge_tokens(self, caller: str, tokens: int) -> None:
        if self.tpm and tokens > 0:
            now_s = math.floor(self._clock())
            self._window(self._tokens, caller, now_s).add(now_s, tokens)

    @staticmethod
    def _window(windows: dict[str, _MinuteWindow], caller: str, now_s: int) -> _MinuteWindow:
        window = windows.get(caller)
        if window is None:
            window = windows[caller] = _MinuteWindow()
        window.prune(now_s)
        return window

    def _sweep(self, now_s: int) -> None:
        for windows in (self._requests, self._tokens):
            if len(windows) >= _SWEEP_AT:
                for caller in list(windows):
                    windows[caller].prune(now_s)
                    if windows[caller].total == 0:
                        del windows[caller]
