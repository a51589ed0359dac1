"""The issuer's key: how the card tells the issuer (J-LIS and the municipal window) from ordinary terminals.

Each card holds its own 128-bit AES key, diversified from the issuer's master key by the card's manufacture
number (as GlobalPlatform cards diversify their issuer keys), loaded when the chip is made. The issuer proves
it knows the key with ISO/IEC 7816-4 GET CHALLENGE + EXTERNAL AUTHENTICATE: the cryptogram is AES-CMAC over
the card's 8-byte challenge, the AID of the selected application and the manufacture number. The real card's
issuer channel is proprietary (secure messaging); this is our model of it and says so.

Primitives come from ``cryptography`` (HKDF, CMAC); nothing here is home-made crypto.
"""

from __future__ import annotations

import hmac

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers import algorithms
from cryptography.hazmat.primitives.cmac import CMAC
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from mynacard.config import Settings

__all__ = ["CHALLENGE_LENGTH", "CRYPTOGRAM_LENGTH", "IssuerMasterKey", "card_cryptogram", "cryptogram_ok"]

CHALLENGE_LENGTH = 8
CRYPTOGRAM_LENGTH = 16


def card_cryptogram(card_key: bytes, challenge: bytes, aid: bytes, serial: str) -> bytes:
    """AES-CMAC(card key, challenge || AID || manufacture number)."""
    mac = CMAC(algorithms.AES(card_key))
    mac.update(challenge + aid + serial.encode("ascii"))
    return mac.finalize()


def cryptogram_ok(card_key: bytes, challenge: bytes, aid: bytes, serial: str, candidate: bytes) -> bool:
    """Constant-time check of an EXTERNAL AUTHENTICATE cryptogram."""
    return hmac.compare_digest(card_cryptogram(card_key, challenge, aid, serial), candidate)


class IssuerMasterKey:
    """The issuer's master key; it derives each card's key and answers the card's challenges."""

    def __init__(self, master: bytes) -> None:
        if len(master) != 32:
            raise ValueError("the issuer master key must be 32 bytes")
        self._master = master

    @classmethod
    def from_settings(cls, settings: Settings) -> IssuerMasterKey:
        """The installation's issuer key: ``Settings.issuer_key`` (``MYNACARD_ISSUER_KEY``), a secret of its
        own, not derived from the data key (production would hold it in an HSM)."""
        return cls(settings.issuer_key)

    def card_key(self, serial: str) -> bytes:
        """The 16-byte key loaded into the card with manufacture number ``serial``."""
        if not serial or not serial.isascii():
            raise ValueError("a manufacture number is ASCII text")
        hkdf = HKDF(algorithm=hashes.SHA256(), length=16, salt=None,
                    info=b"mynacard:chip-issuer-key:" + serial.encode("ascii"))
        return hkdf.derive(self._master)

    def answer(self, serial: str, aid: bytes, challenge: bytes) -> bytes:
        """The cryptogram for EXTERNAL AUTHENTICATE."""
        return card_cryptogram(self.card_key(serial), challenge, aid, serial)

    def __repr__(self) -> str:
        return "IssuerMasterKey(<secret>)"
