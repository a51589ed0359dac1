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

Without PKCS#11 the CA keys are sealed with ``Settings.data_key`` and kept in the database.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

from mynacard.errors import InvalidInput
from mynacard.jpki.keys import Pkcs11Config
from mynacard.jpki.model import CrlSchedule

__all__ = ["JpkiSettings", "jpki_settings"]


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
    (mutual TLS). Honoured only when set; the proxy must strip it from client requests."""

    def url(self, path: str) -> str:
        return self.base_url.rstrip("/") + path


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


def jpki_settings() -> JpkiSettings:
    """The current settings (read each time: cheap, and tests change the environment)."""
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
    )
