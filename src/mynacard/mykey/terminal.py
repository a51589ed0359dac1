"""The card side of a touch: what a facility's or shelter's reader does with the card through ``CardClient``."""

from __future__ import annotations

from cryptography.hazmat.primitives import serialization

from mynacard.chip.client import CardClient
from mynacard.chip.model import KeyKind
from mynacard.jpki.relying_party import Challenge
from mynacard.mykey.platform import CardProof

__all__ = ["prove"]


def prove(client: CardClient, challenge: Challenge | None = None, pin: str | None = None) -> CardProof:
    """Read the authentication certificate; with a challenge, sign it with the authentication key after the
    PIN (SHA-256 DigestInfo, PKCS#1 v1.5). A wrong PIN raises the chip's ``WrongPin`` with tries left."""
    certificate = client.read_auth_certificate().public_bytes(serialization.Encoding.DER)
    if challenge is None:
        return CardProof(certificate)
    if pin is None:
        raise ValueError("signing a challenge needs the PIN")
    return CardProof(certificate, challenge.id, client.sign_message(KeyKind.AUTH, pin, challenge.nonce))
