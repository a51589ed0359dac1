"""A short-lived memory of kiosk API keys, so that a session's four requests do not each look the key up.

Every request to the centre carries the kiosk's API key; checking it is a pooled connection, a query and a
keyed hash. A kiosk sends four requests per customer within a second or two, so a worker process keeps what a
key resolved to for :data:`TTL_SECONDS`. Only kiosk principals are kept, only keys that were found (a key just
issued works at once), and nothing outlives the TTL: a key replaced or an account disabled stops working in
every worker process at most :data:`TTL_SECONDS` later. Keys are kept by their SHA-256, never in clear.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable

from mynacard.accounts import service as accounts
from mynacard.context import Context
from mynacard.principal import Principal, Role

__all__ = ["TTL_SECONDS", "KeyCache"]

TTL_SECONDS = 2.0
"""How long a looked-up kiosk key is believed without asking the database again (the revocation delay)."""
_MAX_KEYS = 10_000


class KeyCache:
    """API key → kiosk principal, for at most ``ttl`` seconds of ``clock``."""

    def __init__(self, ttl: float = TTL_SECONDS, clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl = ttl
        self.clock = clock
        self._known: dict[bytes, tuple[Principal, float]] = {}
        self._lock = threading.Lock()

    def remembered(self, key: str) -> Principal | None:
        """The key's kiosk principal if it was looked up less than ``ttl`` ago; no database access (so the web
        app answers it on its event loop and goes to a worker thread only to look a key up)."""
        return self._remembered(hashlib.sha256(key.encode()).digest(), self.clock())

    def _remembered(self, digest: bytes, now: float) -> Principal | None:
        with self._lock:
            found = self._known.get(digest)
        return found[0] if found is not None and now < found[1] else None

    def principal(self, ctx: Context, key: str) -> Principal | None:
        """The key's principal: remembered if it is a kiosk's and was looked up less than ``ttl`` ago."""
        digest = hashlib.sha256(key.encode()).digest()
        now = self.clock()
        remembered = self._remembered(digest, now)
        if remembered is not None:
            return remembered
        who = accounts.authenticate_api_key(ctx, key)
        with self._lock:
            if who is None or who.role is not Role.KIOSK:
                self._known.pop(digest, None)
            else:
                if len(self._known) >= _MAX_KEYS:  # bounded: forget the stale ones, or all
                    self._known = {k: v for k, v in self._known.items() if now < v[1]}
                    if len(self._known) >= _MAX_KEYS:
                        self._known.clear()
                self._known[digest] = (who, now + self.ttl)
        return who

    def forget(self) -> None:
        with self._lock:
            self._known.clear()
