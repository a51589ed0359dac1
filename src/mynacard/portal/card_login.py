"""Mynaportal's card login over JPKI (公的個人認証サービス): the login seam the web app is started with, and
the demonstration "reader" that lets a browser use a card file held by this server.

The card's answer is checked by :class:`mynacard.jpki.card_auth.JpkiCardAuthenticator` — the check the kiosk
centre makes too: the chain to a JPKI authentication root, the validity period, key usage and policy, the
revocation status (straight from the CA database, logged against Mynaportal) and the card's signature over the
challenge. Challenges are JPKI's own, kept in the database (``jpki_challenges``: random, single use, five
minutes, bound to the party that asked for them), so a login page served by one worker process can be answered
on any other worker or host. J-LIS's issuance records then say whose card it is. The individual number plays no
part.
"""

from __future__ import annotations

from datetime import datetime

from cryptography.hazmat.primitives import serialization
from fastapi import HTTPException

from mynacard.context import Context
from mynacard.errors import DomainError, Forbidden, NotFound
from mynacard.jpki import card_auth
from mynacard.jpki.card_auth import CardRefusal, CardRefused
from mynacard.jpki.service import AuthoritiesMissing
from mynacard.jpki.verifiers import TooManyChallenges
from mynacard.portal.model import CardLogin, LoginChallenge
from mynacard.principal import Principal

__all__ = ["MYNAPORTAL", "PortalCardLogin", "demo_reader_sign"]

MYNAPORTAL = Principal.system("mynaportal")
"""Mynaportal is run for the Digital Agency by J-LIS's side of the system: it asks JPKI as a system service."""

_REFUSALS = {
    CardRefusal.CERTIFICATE_REVOKED: "この利用者証明用電子証明書は失効しています。市区町村の窓口にご相談ください",
    CardRefusal.CHALLENGE_UNUSABLE: "ログイン画面の有効期限が切れたか、すでに使われています。もう一度お試しください",
    CardRefusal.CERTIFICATE_EXPIRED: "この利用者証明用電子証明書は有効期限が切れています",
    CardRefusal.BAD_SIGNATURE: "カードの署名を確認できませんでした",
    CardRefusal.UNKNOWN_CERTIFICATE: "この電子証明書ではログインできません",
}


def _login_refusal(refused: CardRefused) -> str:
    """A message for the resident, Japanese first, saying why the card's answer was not accepted."""
    return f"{_REFUSALS[refused.reason]} ({'; '.join(refused.problems)})"


class PortalCardLogin:
    """Mynaportal's login seam (``app.state.card_authenticator``: ``issue_challenge``, ``verify``) over
    :class:`mynacard.jpki.card_auth.JpkiCardAuthenticator`.

    An adapter, not a second authenticator, because the login pages need another shape than "check this answer
    to my challenge": the page carries a challenge *id* (JPKI keeps the challenge, so any worker can check the
    answer), a login needs the resident and not only the certificate (:class:`~mynacard.portal.model.CardLogin`,
    from J-LIS's issuance records), and the refusals are the web's — HTTP 503 before the CAs exist, 429 when too
    many challenges are outstanding, :class:`~mynacard.errors.Forbidden` with a message for the resident.
    Tests put a stand-in of the same shape in its place."""

    def __init__(self, ctx: Context, principal: Principal = MYNAPORTAL) -> None:
        self.ctx = ctx
        self.principal = principal
        self.cards = card_auth.JpkiCardAuthenticator(ctx, principal)

    def issue_challenge(self, now: datetime) -> LoginChallenge:
        """A challenge for the login page. Bounded (security review: each anonymous page view wrote a row that
        nothing purged): expired ones are deleted as new ones are made, and beyond
        ``MYNACARD_JPKI_CHALLENGES_MAX`` outstanding ones the page answers 429 until some expire. Before the
        operator has created the CAs (``mynacard jpki init``) the login answers 503: it never creates them."""
        try:
            made = self.cards.issue_challenge(now)
        except AuthoritiesMissing as exc:
            raise _unavailable(exc) from None
        except TooManyChallenges as exc:
            raise HTTPException(429, str(exc), headers={"Retry-After": str(exc.retry_after)}) from None
        return LoginChallenge(made.id, made.nonce, made.expires_at)

    def verify(self, challenge_id: str, certificate: bytes, signature: bytes, now: datetime) -> CardLogin:
        from mynacard.jpki.service import holder_of_certificate

        try:
            card = self.cards.authenticate_login(challenge_id, certificate, signature, now)
        except AuthoritiesMissing as exc:
            raise _unavailable(exc) from None
        except CardRefused as exc:
            raise Forbidden(_login_refusal(exc)) from None
        try:
            resident_id = holder_of_certificate(self.ctx, self.principal, card.serial, now)
        except NotFound:
            raise Forbidden("この電子証明書の持ち主が見つかりません (no holder on record)") from None
        return CardLogin(card.serial_hex, resident_id, now)


def _unavailable(exc: AuthoritiesMissing) -> HTTPException:
    return HTTPException(503, str(exc), headers={"Retry-After": "3600"})


def demo_reader_sign(ctx: Context, card_serial: str, pin: str, nonce: bytes) -> tuple[bytes, bytes]:
    """DEMONSTRATION ONLY: what the resident's own card reader software does, done by this server on a card
    file it holds (``$MYNACARD_HOME/chips/<製造番号>.card``): read the authentication certificate, VERIFY the
    4-digit PIN on the chip (the chip counts the tries) and sign the challenge with the card's key.
    Returns (certificate DER, signature). Raises the chip's ``WrongPin``/``PinBlocked`` or
    :class:`~mynacard.errors.DomainError` for a card that is not there."""
    from mynacard.chip import service as chips
    from mynacard.chip.client import CardClient
    from mynacard.chip.model import KeyKind
    from mynacard.chip.transport import InProcessTransport

    try:
        path = chips.card_path(ctx, card_serial.strip())
    except DomainError:
        raise NotFound("そのカードはこのデモ用リーダーにありません (no such card file)") from None
    if not path.exists():
        raise NotFound("そのカードはこのデモ用リーダーにありません (no such card file)")
    with chips.insert_card(ctx, card_serial.strip()) as chip:
        client = CardClient(InProcessTransport(chip))
        certificate = client.read_auth_certificate().public_bytes(serialization.Encoding.DER)
        return certificate, client.sign_message(KeyKind.AUTH, pin, nonce)
