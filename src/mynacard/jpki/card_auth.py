"""Card authentication with the authentication certificate (利用者証明用電子証明書): the one seam, and its JPKI
implementation, for every part inside mynacard that lets a resident in with the card — the kiosk's certificate
issuance centre and Mynaportal.

The card (not the terminal, not the service) checks the 4-digit PIN and counts the tries, then signs a
challenge with the key of its authentication certificate. :class:`CardAuthenticator` checks that answer: the
certificate chains to a JPKI authentication root, it and the root are in their validity periods, it carries the
authentication key usage and policy, it is not revoked (an unavailable status counts as not valid), and its key
signed the challenge. The answer is an :class:`AuthenticatedCard`, or :class:`CardRefused` saying why
(:class:`CardRefusal`). Who holds the card is a separate question (J-LIS's serial → resident records,
``jpki.service.holder_of_certificate``).

:class:`JpkiCardAuthenticator` implements it over the relying-party SDK in process
(:class:`~mynacard.jpki.relying_party.ServiceRelyingParty`: the roots read from the CA table and reread every
few minutes, the revocation status straight from the CA database and every query logged against the asking
party). A party that keeps its own single-use challenge (the kiosk centre, in ``kiosk_sessions``) calls
:meth:`~JpkiCardAuthenticator.authenticate`; one that lets JPKI keep them (Mynaportal, whose login page and
answer may reach different workers) calls :meth:`~JpkiCardAuthenticator.issue_challenge` and
:meth:`~JpkiCardAuthenticator.authenticate_login` — the same checks, after the challenge is used up.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Protocol

from mynacard.errors import Forbidden

if TYPE_CHECKING:
    from mynacard.context import Context
    from mynacard.jpki.relying_party import Challenge, RelyingParty, Verification
    from mynacard.principal import Principal

__all__ = [
    "AuthenticatedCard",
    "CardAuthenticator",
    "CardRefusal",
    "CardRefused",
    "JpkiCardAuthenticator",
]


@dataclass(frozen=True)
class AuthenticatedCard:
    """A card whose authentication certificate is valid and whose key signed the challenge."""

    serial: int
    """The certificate's serial number: the pseudonymous handle J-LIS maps to a resident."""
    not_after: datetime
    certificate_sha256: str

    @property
    def serial_hex(self) -> str:
        return f"{self.serial:X}"


class CardRefusal(StrEnum):
    """Why a card's answer was not accepted (the kiosk's refusal reasons of the same names use these values)."""

    CERTIFICATE_REVOKED = "certificate_revoked"
    CERTIFICATE_EXPIRED = "certificate_expired"
    BAD_SIGNATURE = "bad_signature"
    """The certificate's key did not sign this challenge."""
    UNKNOWN_CERTIFICATE = "unknown_certificate"
    """Anything else: not a certificate, not from a JPKI authentication CA, not yet valid, wrong usage or
    policy, revocation status unavailable."""
    CHALLENGE_UNUSABLE = "challenge_unusable"
    """Only with challenges JPKI keeps: unknown, already used or expired."""


class CardRefused(Forbidden):
    """A card's answer refused: ``reason`` and the checks' ``problems`` (safe to show)."""

    def __init__(self, reason: CardRefusal, problems: Sequence[str] = ()) -> None:
        self.reason = reason
        self.problems = tuple(problems)
        super().__init__(reason.value + (f" ({self.detail})" if self.detail else ""))

    @property
    def detail(self) -> str | None:
        """The problems on one line (None when there were none to tell)."""
        return "; ".join(self.problems) or None


class CardAuthenticator(Protocol):
    """Checks a card's answer to a challenge (what the kiosk centre and Mynaportal need of JPKI)."""

    def authenticate(self, certificate: bytes, challenge: bytes, signature: bytes,
                     now: datetime) -> AuthenticatedCard:
        """``certificate`` is the card's authentication certificate (DER); ``signature`` is the card's
        RSASSA-PKCS1-v1_5 signature over SHA-256 of ``challenge`` (a test stand-in may also take ECDSA). Raises
        :class:`CardRefused` (revoked, expired, bad signature or unknown certificate)."""
        ...


def _refusal_of(result: Verification, now: datetime) -> CardRefusal:
    """The reason for a failed relying-party check: revoked first, then a spent challenge, expired, a signature
    that does not verify; anything else is an unknown certificate."""
    if result.revocation is not None and result.revocation.status == "revoked":
        return CardRefusal.CERTIFICATE_REVOKED
    if result.signer is None and any("challenge" in p for p in result.problems):
        return CardRefusal.CHALLENGE_UNUSABLE
    if result.signer is not None and now > result.signer.not_after:
        return CardRefusal.CERTIFICATE_EXPIRED
    if any("signature does not verify" in p for p in result.problems):
        return CardRefusal.BAD_SIGNATURE
    return CardRefusal.UNKNOWN_CERTIFICATE


def _accepted(result: Verification, certificate: bytes, now: datetime) -> AuthenticatedCard:
    if not result.valid or result.signer is None:
        raise CardRefused(_refusal_of(result, now), result.problems)
    return AuthenticatedCard(result.signer.serial, result.signer.not_after, hashlib.sha256(certificate).hexdigest())


class JpkiCardAuthenticator:
    """:class:`CardAuthenticator` over ``RelyingParty.for_service``, asking as ``principal`` (every status query
    is logged against it). Before the operator has created the CAs (``mynacard jpki init``) every call raises
    :class:`~mynacard.jpki.service.AuthoritiesMissing`: a relying party never creates them."""

    def __init__(self, ctx: Context, principal: Principal) -> None:
        from mynacard.jpki.relying_party import ServiceRelyingParty

        self.ctx = ctx
        self.principal = principal
        self._party = ServiceRelyingParty(ctx, principal)

    def relying_party(self) -> RelyingParty:
        """Built once and reused for a few minutes (the roots are read from the CA table)."""
        return self._party.get()

    def authenticate(self, certificate: bytes, challenge: bytes, signature: bytes,
                     now: datetime) -> AuthenticatedCard:
        """The card's answer to a challenge the caller keeps (and uses up) itself."""
        from mynacard.jpki.model import Purpose

        result = self.relying_party().verify_signature(challenge, signature, certificate, now,
                                                       purpose=Purpose.AUTHENTICATION)
        return _accepted(result, certificate, now)

    def issue_challenge(self, now: datetime) -> Challenge:
        """A challenge JPKI keeps for this party (random, single use, five minutes; in the database, so any
        process can check the answer). Raises :class:`~mynacard.jpki.verifiers.TooManyChallenges` beyond
        ``MYNACARD_JPKI_CHALLENGES_MAX`` outstanding ones."""
        return self.relying_party().issue_challenge(now)

    def authenticate_login(self, challenge_id: str, certificate: bytes, signature: bytes,
                           now: datetime) -> AuthenticatedCard:
        """The card's answer to a challenge from :meth:`issue_challenge`, which is used up whether or not the
        answer is accepted (:attr:`CardRefusal.CHALLENGE_UNUSABLE` when it is unknown, used or expired)."""
        result = self.relying_party().verify_login(challenge_id, signature, certificate, now)
        return _accepted(result, certificate, now)
