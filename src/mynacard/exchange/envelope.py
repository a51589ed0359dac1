"""Signed and encrypted messages between the hub and the agencies' interface systems.

Every message on the network is an envelope: the sender signs the body (Ed25519) together with both parties'
names, then encrypts the signed body to the recipient (ECIES: an ephemeral X25519 key, HKDF-SHA256,
AES-256-GCM with the header as associated data). Sign-then-encrypt with both names under the signature means
a recipient cannot pass a message on as if it had been sent to someone else, and the header cannot be swapped
without
the tag failing. Only library primitives from ``cryptography`` are used; nothing here is home-made crypto.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from cryptography.exceptions import InvalidSignature, InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

__all__ = [
    "MAX_ENVELOPE_BYTES",
    "EnvelopeError",
    "Opened",
    "PartyKeys",
    "canonical",
    "open_envelope",
    "peek",
    "seal",
]

VERSION = 1
MAX_ENVELOPE_BYTES = 1 << 20
_INFO = b"mynacard/exchange/envelope/v1"
_RAW = serialization.Encoding.Raw


class EnvelopeError(ValueError):
    """A message that is malformed, not for us, not from whom it claims, or altered on the way."""


def canonical(value: Any) -> bytes:
    """Deterministic JSON (sorted keys, no spaces, UTF-8): what is signed and what is hashed."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _unb64(text: Any, what: str) -> bytes:
    if not isinstance(text, str):
        raise EnvelopeError(f"{what} is missing")
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise EnvelopeError(f"{what} is not base64") from None


@dataclass(frozen=True)
class PartyKeys:
    """A party's two key pairs: Ed25519 to sign what it sends, X25519 to receive what is sent to it."""

    sign: Ed25519PrivateKey = field(repr=False)
    enc: X25519PrivateKey = field(repr=False)

    @classmethod
    def generate(cls) -> PartyKeys:
        return cls(Ed25519PrivateKey.generate(), X25519PrivateKey.generate())

    @classmethod
    def from_raw(cls, sign: bytes, enc: bytes) -> PartyKeys:
        return cls(Ed25519PrivateKey.from_private_bytes(sign), X25519PrivateKey.from_private_bytes(enc))

    def raw_private(self) -> tuple[bytes, bytes]:
        """The two private keys as raw 32-byte strings (to be sealed at rest, never stored in clear)."""
        none = serialization.NoEncryption()
        return (self.sign.private_bytes(_RAW, serialization.PrivateFormat.Raw, none),
                self.enc.private_bytes(_RAW, serialization.PrivateFormat.Raw, none))

    @property
    def sign_public(self) -> bytes:
        return self.sign.public_key().public_bytes(_RAW, serialization.PublicFormat.Raw)

    @property
    def enc_public(self) -> bytes:
        return self.enc.public_key().public_bytes(_RAW, serialization.PublicFormat.Raw)


def _key(shared: bytes, epk: bytes, recipient_pub: bytes, sender: str, recipient: str) -> AESGCM:
    info = _INFO + b"|" + canonical([sender, recipient])
    kdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=epk + recipient_pub, info=info)
    return AESGCM(kdf.derive(shared))


def _signed_part(sender: str, recipient: str, body: Any) -> bytes:
    return canonical({"v": VERSION, "from": sender, "to": recipient, "body": body})


def seal(sender: str, sender_keys: PartyKeys, recipient: str, recipient_enc_public: bytes,
         body: dict[str, Any]) -> bytes:
    """Sign ``body`` as ``sender`` and encrypt it to ``recipient``; returns the envelope bytes."""
    signature = sender_keys.sign.sign(_signed_part(sender, recipient, body))
    plaintext = canonical({"body": body, "sig": _b64(signature)})
    ephemeral = X25519PrivateKey.generate()
    epk = ephemeral.public_key().public_bytes(_RAW, serialization.PublicFormat.Raw)
    shared = ephemeral.exchange(X25519PublicKey.from_public_bytes(recipient_enc_public))
    nonce = os.urandom(12)
    header = {"v": VERSION, "from": sender, "to": recipient, "epk": _b64(epk), "n": _b64(nonce)}
    ciphertext = _key(shared, epk, recipient_enc_public, sender, recipient).encrypt(
        nonce, plaintext, canonical(header))
    return canonical({**header, "ct": _b64(ciphertext)})


def peek(envelope: bytes) -> tuple[str, str]:
    """(sender, recipient) from the clear header — unauthenticated until :func:`open_envelope` succeeds."""
    header = _parse(envelope)
    return header["from"], header["to"]


def _parse(envelope: bytes) -> dict[str, Any]:
    if not isinstance(envelope, bytes | bytearray) or len(envelope) > MAX_ENVELOPE_BYTES:
        raise EnvelopeError("an envelope is at most 1 MiB of bytes")
    try:
        outer = json.loads(envelope)
    except (UnicodeDecodeError, ValueError):
        raise EnvelopeError("an envelope is a JSON object") from None
    if not isinstance(outer, dict) or outer.get("v") != VERSION:
        raise EnvelopeError("unknown envelope version")
    if not isinstance(outer.get("from"), str) or not isinstance(outer.get("to"), str):
        raise EnvelopeError("an envelope names its sender and recipient")
    return outer


@dataclass(frozen=True)
class Opened:
    """A verified message: who sent it and what they said."""

    sender: str
    body: dict[str, Any]


def open_envelope(envelope: bytes, recipient: str, recipient_keys: PartyKeys,
                  sender_sign_public: Callable[[str], bytes | None]) -> Opened:
    """Decrypt an envelope addressed to ``recipient`` and verify the sender's signature.

    ``sender_sign_public`` returns the registered Ed25519 key of a sender (None if unknown or suspended).
    Raises :class:`EnvelopeError` on anything wrong; never returns an unverified body.
    """
    outer = _parse(envelope)
    sender = outer["from"]
    if outer["to"] != recipient:
        raise EnvelopeError("the envelope is addressed to someone else")
    epk = _unb64(outer.get("epk"), "ephemeral key")
    nonce = _unb64(outer.get("n"), "nonce")
    ciphertext = _unb64(outer.get("ct"), "ciphertext")
    if len(epk) != 32 or len(nonce) != 12:
        raise EnvelopeError("malformed ephemeral key or nonce")
    header = {k: outer[k] for k in ("v", "from", "to", "epk", "n")}
    try:
        shared = recipient_keys.enc.exchange(X25519PublicKey.from_public_bytes(epk))
        plaintext = _key(shared, epk, recipient_keys.enc_public, sender, recipient).decrypt(
            nonce, ciphertext, canonical(header))
    except (InvalidTag, ValueError):
        raise EnvelopeError("the envelope cannot be decrypted: altered, or sealed to another key") from None
    try:
        inner = json.loads(plaintext)
        body, signature = inner["body"], _unb64(inner["sig"], "signature")
    except (ValueError, KeyError, TypeError):
        raise EnvelopeError("malformed signed body") from None
    if not isinstance(body, dict):
        raise EnvelopeError("malformed signed body")
    public = sender_sign_public(sender)
    if public is None:
        raise EnvelopeError(f"unknown or suspended sender {sender!r}")
    try:
        Ed25519PublicKey.from_public_bytes(public).verify(signature, _signed_part(sender, recipient, body))
    except (InvalidSignature, ValueError):
        raise EnvelopeError(f"the signature of {sender!r} does not verify") from None
    return Opened(sender, body)
