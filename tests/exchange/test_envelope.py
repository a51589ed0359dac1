"""Envelopes: signed by the sender, encrypted to the recipient, and useless to anyone else."""

from __future__ import annotations

import base64
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mynacard.exchange.envelope import EnvelopeError, PartyKeys, canonical, open_envelope, peek, seal

ALICE, BOB, EVE = PartyKeys.generate(), PartyKeys.generate(), PartyKeys.generate()
DIRECTORY = {"alice": ALICE.sign_public, "bob": BOB.sign_public, "eve": EVE.sign_public}
BODY = {"type": "query", "message_id": "m1", "code": "ABCDEFGHIJKLMNOPQRSTUVWXYZ", "n": 1, "日本語": "情報"}


def directory(name: str) -> bytes | None:
    return DIRECTORY.get(name)


def test_round_trip() -> None:
    env = seal("alice", ALICE, "bob", BOB.enc_public, BODY)
    opened = open_envelope(env, "bob", BOB, directory)
    assert (opened.sender, opened.body) == ("alice", BODY)
    assert peek(env) == ("alice", "bob")


def test_the_body_is_not_readable_on_the_wire() -> None:
    env = seal("alice", ALICE, "bob", BOB.enc_public, BODY)
    assert b"ABCDEFGHIJKLMNOPQRSTUVWXYZ" not in env and "情報".encode() not in env
    # Two seals of the same body differ (fresh ephemeral key and nonce).
    assert env != seal("alice", ALICE, "bob", BOB.enc_public, BODY)


def test_only_the_recipient_can_open() -> None:
    env = seal("alice", ALICE, "bob", BOB.enc_public, BODY)
    with pytest.raises(EnvelopeError, match="someone else"):
        open_envelope(env, "eve", EVE, directory)
    # Eve rewrites the header to name herself: the header is authenticated, and the key is Bob's anyway.
    outer = json.loads(env)
    outer["to"] = "eve"
    with pytest.raises(EnvelopeError, match="cannot be decrypted"):
        open_envelope(canonical(outer), "eve", EVE, directory)


def test_a_forged_sender_is_refused() -> None:
    # Eve encrypts to Bob but claims to be Alice: the signature does not verify with Alice's key.
    env = seal("alice", EVE, "bob", BOB.enc_public, BODY)
    with pytest.raises(EnvelopeError, match="signature"):
        open_envelope(env, "bob", BOB, directory)
    # An unknown or suspended sender is refused before anything is returned.
    env = seal("mallory", EVE, "bob", BOB.enc_public, BODY)
    with pytest.raises(EnvelopeError, match="unknown or suspended"):
        open_envelope(env, "bob", BOB, directory)


def test_a_message_cannot_be_forwarded_as_if_sent_to_someone_else() -> None:
    """Bob decrypts what Alice sent him and re-encrypts Alice's signed body, untouched, to Eve under a
    correct header "from alice to eve": Eve must refuse it, because Alice signed it for Bob."""
    import os

    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey

    from mynacard.exchange.envelope import _key

    env = json.loads(seal("alice", ALICE, "bob", BOB.enc_public, BODY))
    header = {k: env[k] for k in ("v", "from", "to", "epk", "n")}
    epk, nonce = base64.b64decode(env["epk"]), base64.b64decode(env["n"])
    shared = BOB.enc.exchange(X25519PublicKey.from_public_bytes(epk))
    signed_plaintext = _key(shared, epk, BOB.enc_public, "alice", "bob").decrypt(
        nonce, base64.b64decode(env["ct"]), canonical(header))
    ephemeral = X25519PrivateKey.generate()
    epk2 = ephemeral.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    nonce2 = os.urandom(12)
    header2 = {"v": 1, "from": "alice", "to": "eve", "epk": base64.b64encode(epk2).decode(),
               "n": base64.b64encode(nonce2).decode()}
    ct2 = _key(ephemeral.exchange(X25519PublicKey.from_public_bytes(EVE.enc_public)), epk2, EVE.enc_public,
               "alice", "eve").encrypt(nonce2, signed_plaintext, canonical(header2))
    forwarded = canonical({**header2, "ct": base64.b64encode(ct2).decode()})
    with pytest.raises(EnvelopeError, match="signature"):
        open_envelope(forwarded, "eve", EVE, directory)


@given(st.data())
@settings(max_examples=200, deadline=None)
def test_any_altered_byte_of_the_ciphertext_is_detected(data: st.DataObject) -> None:
    env = seal("alice", ALICE, "bob", BOB.enc_public, BODY)
    outer = json.loads(env)
    field = data.draw(st.sampled_from(["ct", "n", "epk"]))
    raw = bytearray(base64.b64decode(outer[field]))
    i = data.draw(st.integers(0, len(raw) - 1))
    raw[i] ^= data.draw(st.integers(1, 255))
    outer[field] = base64.b64encode(bytes(raw)).decode()
    with pytest.raises(EnvelopeError):
        open_envelope(canonical(outer), "bob", BOB, directory)


@pytest.mark.parametrize("junk", [b"", b"{}", b"[]", b"not json", b'{"v": 2}', b'{"v":1,"from":1,"to":"bob"}',
                                  b'{"v":1,"from":"alice","to":"bob","epk":"!!","n":"AA==","ct":"AA=="}',
                                  b"\xff\xfe", b"x" * (1 << 21)])
def test_junk_is_refused_cleanly(junk: bytes) -> None:
    with pytest.raises(EnvelopeError):
        open_envelope(junk, "bob", BOB, directory)


def test_keys_survive_a_round_trip_through_raw_bytes() -> None:
    sign, enc = ALICE.raw_private()
    again = PartyKeys.from_raw(sign, enc)
    assert (again.sign_public, again.enc_public) == (ALICE.sign_public, ALICE.enc_public)
    env = seal("bob", BOB, "alice", again.enc_public, BODY)
    assert open_envelope(env, "alice", again, directory).body == BODY
