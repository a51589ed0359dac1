"""Data encrypted at rest: AES-GCM sealing and keyed look-up hashes, from one configured data key.

The individual number is stored sealed, with a keyed hash beside it so that it can be found without being
decrypted (DESIGN.md, Data). Sub-keys are derived with HKDF so that the encryption key and the hashing key
are never the same bytes. Primitives come from ``cryptography``; nothing here is home-made crypto.

The root is ``Settings.data_key`` for everything at rest. The session part (staff sessions, the browser
session cookie, CSRF) uses the keyed hashes of a ``Sealer`` rooted in ``Settings.session_key`` instead, so that
the session key can change without touching sealed data, and the data key never signs a cookie.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from functools import cached_property

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

__all__ = ["Sealer"]

_NONCE = 12


class Sealer:
    """Seals and opens values, and hashes them for look-ups, under sub-keys derived from one root key."""

    def __init__(self, data_key: bytes) -> None:
        if len(data_key) != 32:
            raise ValueError("the data key must be 32 bytes")
        self._root = data_key

    def _derive(self, purpose: bytes) -> bytes:
        return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=b"mynacard:" + purpose).derive(
            self._root)

    @cached_property
    def _aead(self) -> AESGCM:
        return AESGCM(self._derive(b"seal"))

    @cached_property
    def _hash_key(self) -> bytes:
        return self._derive(b"lookup")

    def seal(self, plaintext: bytes, context: bytes) -> bytes:
        """Nonce || ciphertext || tag; ``context`` is bound as associated data (e.g. the table and row)."""
        nonce = os.urandom(_NONCE)
        return nonce + self._aead.encrypt(nonce, plaintext, context)

    def open(self, sealed: bytes, context: bytes) -> bytes:
        """Inverse of :meth:`seal`; raises ``cryptography.exceptions.InvalidTag`` on tampering."""
        return self._aead.decrypt(sealed[:_NONCE], sealed[_NONCE:], context)

    def lookup_hash(self, value: str) -> str:
        """Keyed hash (hex HMAC-SHA256) for equality look-ups of a secret value."""
        return hmac.new(self._hash_key, value.encode(), hashlib.sha256).hexdigest()
