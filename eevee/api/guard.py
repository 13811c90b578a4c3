"""Who may call the API, and how often: bearer-token checks and a per-client rate limit."""

from __future__ import annotations

import hmac
import math
import threading
import time
from collections.abc import Callable


class TokenCheck:
    """Constant-time bearer-token comparison. With no token configured nothing passes."""

    def __init__(self, token: str | None) -> None:
        self._token = token.encode() if token else None

    @property
    def configured(self) -> bool:
        return self._token is not None

    def verdict(self, header: str | None) -> str | None:
        """None when allowed, else why not (never echoing what was sent)."""
        if self._token is None:
            return "the API token is not configured (EEVEE_OPERATOR_API_TOKEN); protected routes are closed"
        if not header:
            return "missing bearer token (Authorization: Bearer <token>)"
        scheme, _, credentials = header.partition(" ")
        if scheme.lower() != "bearer" or not credentials.strip():
            return "malformed Authorization header (expected: Bearer <token>)"
        # Header text is latin-1 by HTTP's rules: compare the bytes that came over the wire.
        if not hmac.compare_digest(credentials.strip().encode("latin-1", "replace"), self._token):
            return "invalid bearer token"
        return None


class RateLimiter:
    """A token bucket per client: ``rate`` requests a second, bursts up to ``burst``."""

    def __init__(
        self, rate: float, burst: int, *, clock: Callable[[], float] = time.monotonic, max_clients: int = 10_000
    ) -> None:
        self.rate = rate
        self.burst = burst
        self.clock = clock
        self.max_clients = max_clients
        self._lock = threading.Lock()
        self._buckets: dict[str, tuple[float, float]] = {}

    def take(self, client: str) -> float:
        """0 when the request may pass, else the seconds to wait (for Retry-After)."""
        now = self.clock()
        with self._lock:
            tokens, stamp = self._buckets.get(client, (float(self.burst), now))
            tokens = min(float(self.burst), tokens + (now - stamp) * self.rate)
            if tokens >= 1.0:
                self._buckets[client] = (tokens - 1.0, now)
                return 0.0
            self._buckets[client] = (tokens, now)
            if len(self._buckets) > self.max_clients:  # forget idle clients rather than grow without bound
                for key in [k for k, (t, s) in self._buckets.items() if t >= self.burst - 1 or now - s > 60][
                    : self.max_clients // 2
                ]:
                    self._buckets.pop(key, None)
            return (1.0 - tokens) / self.rate

    @staticmethod
    def retry_after(wait: float) -> str:
        return str(max(1, math.ceil(wait)))
