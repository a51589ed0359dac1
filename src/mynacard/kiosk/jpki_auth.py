"""The certificate issuance centre's link to JPKI (公的個人認証サービス): card authentication through the
relying-party SDK and the certificate serial → resident look-up J-LIS keeps.

The centre keeps its own single-use challenge in ``kiosk_sessions``; it only asks JPKI whether the card's
authentication certificate (利用者証明用電子証明書) chains to a JPKI root, is in its validity period, is not
revoked (status straight from the CA database, logged against the centre), and whether the card's key signed
the challenge.
"""

from __future__ import annotations

import hashlib
from datetime import datetime

from mynacard.context import Context
from mynacard.errors import NotFound
from mynacard.jpki.model import Purpose
from mynacard.jpki.relying_party import RelyingParty, ServiceRelyingParty, Verification
from mynacard.kiosk.auth import AuthenticatedCard
from mynacard.kiosk.model import RefusalReason, Refused
from mynacard.principal import Principal, Role

__all__ = ["CENTRE", "JpkiCardAuthenticator", "JpkiHolderDirectory", "refusal_for"]

CENTRE = Principal(Role.OPERATOR, "issuance-centre")
"""The certificate issuance centre (証明書交付センター) is run by J-LIS: it asks JPKI as the operator."""
_TRUST_TTL = 300.0
"""Seconds a relying party (its trusted roots) is reused before the CA table is read again (a new CA
generation is seen within this time)."""


def refusal_for(result: Verification, now: datetime) -> Refused:
    """The kiosk's refusal for a failed check: revoked, expired, bad signature, or unknown."""
    detail = "; ".join(result.problems)[:200] or None
    if result.revocation is not None and result.revocation.status == "revoked":
        return Refused(RefusalReason.CERTIFICATE_REVOKED, detail)
    if result.signer is not None and now > result.signer.not_after:
        return Refused(RefusalReason.CERTIFICATE_EXPIRED, detail)
    if any("signature does not verify" in p for p in result.problems):
        return Refused(RefusalReason.BAD_SIGNATURE, detail)
    return Refused(RefusalReason.UNKNOWN_CERTIFICATE, detail)


class JpkiCardAuthenticator:
    """:class:`~mynacard.kiosk.auth.CardAuthenticator` over ``RelyingParty.for_service``."""

    def __init__(self, ctx: Context, principal: Principal = CENTRE) -> None:
        self.ctx = ctx
        self.principal = principal
        self._party = ServiceRelyingParty(ctx, principal, _TRUST_TTL)

    def relying_party(self) -> RelyingParty:
        return self._party.get()

    def authenticate(self, certificate: bytes, challenge: bytes, signature: bytes,
                     now: datetime) -> AuthenticatedCard:
        result = self.relying_party().verify_signature(challenge, signature, certificate, now,
                                                       purpose=Purpose.AUTHENTICATION)
        if not result.valid or result.signer is None:
            raise refusal_for(result, now)
        return AuthenticatedCard(result.signer.serial, result.signer.not_after,
                                 hashlib.sha256(certificate).hexdigest())


class JpkiHolderDirectory:
    """:class:`~mynacard.kiosk.auth.HolderDirectory` over ``jpki.service.holder_of_certificate``."""

    def __init__(self, ctx: Context, principal: Principal | None = None) -> None:
        self.ctx = ctx
        self.principal = principal or Principal(Role.KIOSK, "issuance-centre")

    def resident_for(self, serial: int, now: datetime) -> int | None:
        from mynacard.jpki.service import holder_of_certificate

        try:
            return holder_of_certificate(self.ctx, self.principal, serial, now)
        except NotFound:
            return None
