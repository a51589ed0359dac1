"""The certificate issuance centre's link to JPKI (公的個人認証サービス): card authentication through the
relying-party SDK and the certificate serial → resident look-up J-LIS keeps.

The centre keeps its own single-use challenge in ``kiosk_sessions``; it only asks JPKI whether the card's
authentication certificate (利用者証明用電子証明書) chains to a JPKI root, is in its validity period, is not
revoked (status straight from the CA database, logged against the centre), and whether the card's key signed
the challenge — :class:`mynacard.jpki.card_auth.JpkiCardAuthenticator`, the check Mynaportal's login makes too.
"""

from __future__ import annotations

from datetime import datetime

from mynacard.context import Context
from mynacard.errors import NotFound
from mynacard.jpki import card_auth
from mynacard.principal import Principal, Role

__all__ = ["CENTRE", "JpkiHolderDirectory", "centre_card_authenticator"]

CENTRE = Principal(Role.OPERATOR, "issuance-centre")
"""The certificate issuance centre (証明書交付センター) is run by J-LIS: it asks JPKI as the operator."""


def centre_card_authenticator(ctx: Context) -> card_auth.JpkiCardAuthenticator:
    """The one card authentication (:class:`mynacard.jpki.card_auth.JpkiCardAuthenticator`), asking as the
    centre (:data:`CENTRE`)."""
    return card_auth.JpkiCardAuthenticator(ctx, CENTRE)


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
