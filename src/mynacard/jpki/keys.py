"""CA keys and how they sign: sealed in the database by default, inside a PKCS#11 token in production.

A :class:`Signer` signs with RSASSA-PKCS1-v1_5 and SHA-256 (what the JPKI roots use) and hands out its
public key; it never hands out its private key. Two kinds:

- :class:`SoftwareSigner` — an RSA-2048 key generated with ``cryptography``; at rest it is PKCS#8 sealed with
  AES-GCM under a key derived from ``Settings.data_key`` (:mod:`mynacard.sealing`), the seal bound to the
  CA row it belongs to, so a key copied to another row does not open.
- :class:`Pkcs11Signer` — a key generated inside a PKCS#11 token (SoftHSM2 in tests, an HSM in production),
  marked sensitive and not extractable; only signatures leave the token.

Certificates are encoded by ``cryptography``'s builder. For a key that ``cryptography`` cannot hold (PKCS#11)
the builder signs with a throw-away key to produce the to-be-signed bytes — which do not depend on the
signing key — and the token signs those; the result is byte-for-byte the structure the software path
produces. No cryptographic primitive is implemented here.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from functools import cache
from typing import Any, Protocol

from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from mynacard.sealing import Sealer

__all__ = [
    "KEY_SIZE",
    "Pkcs11Config",
    "Pkcs11Error",
    "Pkcs11Signer",
    "Signer",
    "SoftwareSigner",
    "delete_pkcs11_key",
    "generate_pkcs11_key",
    "generate_software_key",
    "open_pkcs11_key",
    "open_sealed_key",
    "seal_software_key",
]

KEY_SIZE = 2048


class Signer(Protocol):
    """A private key that signs (SHA-256, PKCS#1 v1.5) without revealing itself."""

    @property
    def public_key(self) -> rsa.RSAPublicKey: ...

    def sign(self, data: bytes) -> bytes:
        """The signature over ``data`` (hashed with SHA-256 here or in the token)."""
        ...

    def sign_certificate(self, builder: x509.CertificateBuilder) -> x509.Certificate:
        """Encode and sign a certificate."""
        ...


class SoftwareSigner:
    """An RSA key held in memory (opened from its seal when the CA is first used by this process)."""

    def __init__(self, key: rsa.RSAPrivateKey) -> None:
        self._key = key
        self._public = key.public_key()

    @property
    def public_key(self) -> rsa.RSAPublicKey:
        return self._public

    def sign(self, data: bytes) -> bytes:
        return self._key.sign(data, padding.PKCS1v15(), hashes.SHA256())

    def sign_certificate(self, builder: x509.CertificateBuilder) -> x509.Certificate:
        return builder.sign(self._key, hashes.SHA256())

    def builder_key(self) -> rsa.RSAPrivateKey:
        """For ``cryptography``'s own builders (OCSP responses): the key stays in this process."""
        return self._key


def generate_software_key() -> SoftwareSigner:
    return SoftwareSigner(rsa.generate_private_key(public_exponent=65537, key_size=KEY_SIZE))


def seal_software_key(signer: SoftwareSigner, sealer: Sealer, context: bytes) -> bytes:
    """PKCS#8 DER of the key, sealed (AES-GCM) with ``context`` bound as associated data."""
    der = signer._key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                                    serialization.NoEncryption())
    return sealer.seal(der, context)


def open_sealed_key(sealed: bytes, sealer: Sealer, context: bytes) -> SoftwareSigner:
    """Inverse of :func:`seal_software_key`; raises ``InvalidTag`` if the seal or the context is wrong."""
    key = serialization.load_der_private_key(sealer.open(sealed, context), password=None)
    if not isinstance(key, rsa.RSAPrivateKey):
        raise ValueError("a CA key must be RSA")
    return SoftwareSigner(key)


@cache
def _tbs_key() -> rsa.RSAPrivateKey:
    """Throw-away key used only to make ``cryptography`` emit the to-be-signed bytes (never trusted)."""
    return rsa.generate_private_key(public_exponent=65537, key_size=1024)


def _sign_externally(builder: x509.CertificateBuilder, sign: Any) -> x509.Certificate:
    draft = builder.sign(_tbs_key(), hashes.SHA256())
    tbs = asn1_x509.TbsCertificate.load(draft.tbs_certificate_bytes)
    signed = asn1_x509.Certificate({
        "tbs_certificate": tbs,
        "signature_algorithm": tbs["signature"],
        "signature_value": sign(draft.tbs_certificate_bytes),
    })
    return x509.load_der_x509_certificate(signed.dump())


# --- PKCS#11 --------------------------------------------------------------------------------------------

class Pkcs11Error(RuntimeError):
    """The token is missing, locked, misconfigured, or does not hold the key."""


@dataclass(frozen=True)
class Pkcs11Config:
    """Which PKCS#11 module and token hold the CA keys (``MYNACARD_JPKI_PKCS11_*``)."""

    module: str
    """Path of the module, e.g. ``/usr/lib/softhsm/libsofthsm2.so``."""
    token_label: str
    pin: str = field(repr=False)
    """User PIN of the token; from the environment or a file, never from the repository."""


_LIB_LOCK = threading.Lock()
_SESSIONS: dict[tuple[str, str, str], tuple[Any, threading.Lock]] = {}


@cache
def _library(module: str) -> Any:
    import pkcs11

    return pkcs11.lib(module)


def _session(config: Pkcs11Config) -> tuple[Any, threading.Lock]:
    """The process's logged-in session on the token (PKCS#11 login is per application, not per session),
    with the lock that serialises its use."""
    import hashlib

    import pkcs11

    key = (config.module, config.token_label, hashlib.sha256(config.pin.encode()).hexdigest())
    with _LIB_LOCK:
        found = _SESSIONS.get(key)
        if found is not None:
            return found
        try:
            token = _library(config.module).get_token(token_label=config.token_label)
            session = token.open(user_pin=config.pin, rw=True)
        except pkcs11.exceptions.UserAlreadyLoggedIn as exc:
            raise Pkcs11Error(f"PKCS#11 token {config.token_label!r} is already in use in this process with "
                              "other credentials") from exc
        except (pkcs11.exceptions.PKCS11Error, OSError, RuntimeError) as exc:
            raise Pkcs11Error(f"cannot open PKCS#11 token {config.token_label!r}: "
                              f"{type(exc).__name__} {exc}") from exc
        _SESSIONS[key] = (session, threading.Lock())
        return _SESSIONS[key]


class Pkcs11Signer:
    """A key inside a PKCS#11 token; signs with CKM_SHA256_RSA_PKCS in the token."""

    def __init__(self, config: Pkcs11Config, label: str) -> None:
        import pkcs11
        from pkcs11 import Attribute, ObjectClass

        self.label = label
        self._session, self._lock = _session(config)
        try:
            with self._lock:
                self._private = self._session.get_key(object_class=ObjectClass.PRIVATE_KEY, label=label)
                public = self._session.get_key(object_class=ObjectClass.PUBLIC_KEY, label=label)
                exponent, modulus = public[Attribute.PUBLIC_EXPONENT], public[Attribute.MODULUS]
        except (pkcs11.exceptions.NoSuchKey, pkcs11.exceptions.MultipleObjectsReturned) as exc:
            raise Pkcs11Error(f"token {config.token_label!r} has no single key labelled {label!r}") from exc
        numbers = rsa.RSAPublicNumbers(int.from_bytes(exponent, "big"), int.from_bytes(modulus, "big"))
        self._public = numbers.public_key()

    @property
    def public_key(self) -> rsa.RSAPublicKey:
        return self._public

    @property
    def extractable(self) -> bool:
        from pkcs11 import Attribute

        with self._lock:
            return bool(self._private[Attribute.EXTRACTABLE]) or not bool(self._private[Attribute.SENSITIVE])

    def sign(self, data: bytes) -> bytes:
        from pkcs11 import Mechanism

        with self._lock:
            return bytes(self._private.sign(data, mechanism=Mechanism.SHA256_RSA_PKCS))

    def sign_certificate(self, builder: x509.CertificateBuilder) -> x509.Certificate:
        return _sign_externally(builder, self.sign)


def generate_pkcs11_key(config: Pkcs11Config, label: str) -> Pkcs11Signer:
    """Generate an RSA-2048 key pair inside the token: private half sensitive, never extractable."""
    import pkcs11
    from pkcs11 import Attribute, KeyType

    session, lock = _session(config)
    try:
        with lock:
            session.generate_keypair(
                KeyType.RSA, KEY_SIZE, label=label, store=True,
                public_template={Attribute.PUBLIC_EXPONENT: b"\x01\x00\x01", Attribute.VERIFY: True},
                private_template={Attribute.SENSITIVE: True, Attribute.EXTRACTABLE: False, Attribute.SIGN: True,
                                  Attribute.PRIVATE: True})
    except pkcs11.exceptions.PKCS11Error as exc:
        raise Pkcs11Error(f"key generation in token {config.token_label!r} failed: {type(exc).__name__}") from exc
    return Pkcs11Signer(config, label)


def open_pkcs11_key(config: Pkcs11Config, label: str) -> Pkcs11Signer:
    return Pkcs11Signer(config, label)


def delete_pkcs11_key(config: Pkcs11Config, label: str) -> None:
    """Remove a key pair (used when a concurrent first use generated a CA key that lost the race)."""
    session, lock = _session(config)
    with lock:
        for obj in list(session.get_objects({_label_attribute(): label})):
            obj.destroy()


def _label_attribute() -> Any:
    from pkcs11 import Attribute

    return Attribute.LABEL
