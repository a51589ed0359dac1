"""Settings of the JPKI part, from environment variables (``MYNACARD_JPKI_*``).

| variable | meaning |
|---|---|
| ``MYNACARD_JPKI_BASE_URL`` | base of the URLs in certificates (default ``http://127.0.0.1:8000``) |
| ``MYNACARD_JPKI_PKCS11_MODULE`` | PKCS#11 module; when set, new CA keys are generated in the token |
| ``MYNACARD_JPKI_PKCS11_TOKEN`` | token label |
| ``MYNACARD_JPKI_PKCS11_PIN`` / ``…_PIN_FILE`` | the token's user PIN, or a file holding it |
| ``MYNACARD_JPKI_OCSP_LIFETIME`` | seconds a pre-signed OCSP response stays valid (default 86400) |
| ``MYNACARD_JPKI_CRL_HOURS`` / ``…_DELTA_MINUTES`` | full and delta CRL intervals (default 24 h / 15 min) |
| ``MYNACARD_JPKI_SCHEDULER`` | ``0`` turns off the web app's background CRL publisher |
| ``MYNACARD_JPKI_MTLS_HEADER`` | header carrying a client certificate's SHA-256 from a TLS proxy |
| ``MYNACARD_JPKI_MTLS_PROXIES`` | the TLS proxies' addresses or networks, comma-separated (``10.0.0.5,10.1.0.0/24``) |
| ``MYNACARD_JPKI_CHALLENGES_MAX`` | login challenges one party may have outstanding at once (default 10000; then 429) |

The client-certificate header is believed only on connections from ``MYNACARD_JPKI_MTLS_PROXIES`` (the address
the application sees: with uvicorn's proxy headers, the one it resolved from ``X-Forwarded-For``); without that
setting the header is ignored and a warning says so once.

Without PKCS#11 the CA keys are sealed with ``Settings.data_key`` and kept in the database.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from datetime import timedelta
from ipaddress import IPv4Network, IPv6Address, IPv6Network, ip_address, ip_network
from pathlib import Path

from mynacard.context import Context
from mynacard.errors import InvalidInput
from mynacard.jpki.keys import Pkcs11Config
from mynacard.jpki.model import CrlSchedule

__all__ = [
    "JpkiSettings",
    "jpki_settings",
    "settings_of",
]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class JpkiSettings:
    base_url: str = "http://127.0.0.1:8000"
    pkcs11: Pkcs11Config | None = field(default=None, repr=False)
    ocsp_lifetime: timedelta = timedelta(days=1)
    """How long a pre-signed response is valid; it is re-signed once half of that has passed."""
    crl: CrlSchedule = field(default_factory=CrlSchedule)
    scheduler: bool = True
    ocsp_cache_entries: int = 20000
    """Pre-signed responses each responder process keeps in memory (about 2 KB each)."""
    ocsp_poll_seconds: float = 0.2
    """How often a responder process looks for revocations made by other processes."""
    mtls_header: str | None = None
    """Header in which the TLS-terminating proxy passes the SHA-256 of a verified client certificate
    (mutual TLS). Honoured only when set, and only on connections from :attr:`mtls_proxies`; the proxy must
    strip it from client requests."""
    mtls_proxies: tuple[IPv4Network | IPv6Network, ...] = ()
    """The addresses of the TLS proxies that may set :attr:`mtls_header` (a fingerprint is no secret: from
    anyone else the header would let a stranger pass for a verifier)."""
    challenges_max: int = 10_000
    """Login challenges one party (Mynaportal, a verifier) may have outstanding (unexpired) at once."""

    def url(self, path: str) -> str:
        return self.base_url.rstrip("/") + path

    def client_certificate(self, value: str | None, remote: str | None) -> str | None:
        """The client certificate fingerprint the proxy vouches for: the header's value when the header is
        configured and the connection comes from one of the configured proxies; else None (the header is
        ignored: without ``MYNACARD_JPKI_MTLS_PROXIES`` a warning says so, once)."""
        if not value or self.mtls_header is None:
            return None
        if not self.mtls_proxies:
            _warn_no_proxies(self.mtls_header)
            return None
        return value if _from(remote, self.mtls_proxies) else None


_WARNED: set[str] = set()


def _warn_no_proxies(header: str) -> None:
    if header not in _WARNED:
        _WARNED.add(header)
        log.warning("MYNACARD_JPKI_MTLS_HEADER=%s is set without MYNACARD_JPKI_MTLS_PROXIES: the client "
                    "certificate header is ignored (name the TLS proxies' addresses to honour it)", header)


def _from(remote: str | None, proxies: tuple[IPv4Network | IPv6Network, ...]) -> bool:
    if not remote:
        return False
    try:
        address = ip_address(remote)
    except ValueError:
        return False
    if isinstance(address, IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return any(address.version == net.version and address in net for net in proxies)


def _proxies(raw: str | None) -> tuple[IPv4Network | IPv6Network, ...]:
    out = []
    for item in (raw or "").split(","):
        item = item.strip()
        if not item:
            continue
        try:
            out.append(ip_network(item, strict=False))
        except ValueError:
            raise InvalidInput(f"MYNACARD_JPKI_MTLS_PROXIES: {item!r} is not an address or network") from None
    return tuple(out)


def _pkcs11() -> Pkcs11Config | None:
    module = os.environ.get("MYNACARD_JPKI_PKCS11_MODULE")
    if not module:
        return None
    token = os.environ.get("MYNACARD_JPKI_PKCS11_TOKEN")
    pin = os.environ.get("MYNACARD_JPKI_PKCS11_PIN")
    pin_file = os.environ.get("MYNACARD_JPKI_PKCS11_PIN_FILE")
    if pin is None and pin_file:
        pin = Path(pin_file).read_text().strip()
    if not token or not pin:
        raise InvalidInput("MYNACARD_JPKI_PKCS11_MODULE needs MYNACARD_JPKI_PKCS11_TOKEN and a PIN "
                           "(MYNACARD_JPKI_PKCS11_PIN or MYNACARD_JPKI_PKCS11_PIN_FILE)")
    return Pkcs11Config(module, token, pin)


def _number(name: str, default: float) -> float:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise InvalidInput(f"{name} must be a number") from None
    if value <= 0:
        raise InvalidInput(f"{name} must be positive")
    return value


def settings_of(ctx: Context) -> JpkiSettings:
    """The installation's JPKI settings, read once per context (:meth:`Context.part_settings`)."""
    return ctx.part_settings(jpki_settings)


def jpki_settings() -> JpkiSettings:
    """The settings as the environment gives them now (``settings_of`` keeps them per context)."""
    base = os.environ.get("MYNACARD_JPKI_BASE_URL", "http://127.0.0.1:8000").rstrip("/")
    if not base.startswith(("http://", "https://")):
        raise InvalidInput("MYNACARD_JPKI_BASE_URL must be an http(s) URL")
    return JpkiSettings(
        base_url=base,
        pkcs11=_pkcs11(),
        ocsp_lifetime=timedelta(seconds=_number("MYNACARD_JPKI_OCSP_LIFETIME", 86400)),
        crl=CrlSchedule(full_every=timedelta(hours=_number("MYNACARD_JPKI_CRL_HOURS", 24)),
                        delta_every=timedelta(minutes=_number("MYNACARD_JPKI_CRL_DELTA_MINUTES", 15))),
        scheduler=os.environ.get("MYNACARD_JPKI_SCHEDULER", "1") != "0",
        mtls_header=os.environ.get("MYNACARD_JPKI_MTLS_HEADER") or None,
        mtls_proxies=_proxies(os.environ.get("MYNACARD_JPKI_MTLS_PROXIES")),
        challenges_max=int(_number("MYNACARD_JPKI_CHALLENGES_MAX", 10_000)),
    )
