"""Issuance at manufacture (発行): the certificates of many cards at once from the public keys their chips
generated, all or nothing, with the validity rule of the model; a reprint supersedes the old ones."""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from sqlalchemy import Connection, String, Text, insert, literal, select

from mynacard.cards import service as cards
from mynacard.cards.personalisation import CardHolder, IssuedCertificates
from mynacard.clock import local_date
from mynacard.context import Context, Transaction
from mynacard.db import UtcDateTime
from mynacard.errors import InvalidInput
from mynacard.jpki import keys, profiles
from mynacard.jpki.authorities import Authority, ca_signer, issuing_generations, new_serial
from mynacard.jpki.config import settings_of
from mynacard.jpki.model import (
    ISSUER_ROLES,
    CaKind,
    CertificateStatus,
    RevocationReason,
    certificate_not_after,
    may_hold_sign_certificate,
    romanise_municipality,
    signing_facts,
)
from mynacard.jpki.model import PREFECTURES_ROMAN as _PREFECTURES
from mynacard.jpki.revocation import revoke_ids
from mynacard.jpki.tables import jpki_certificate_events, jpki_certificates
from mynacard.principal import Principal
from mynacard.registry import service as registry
from mynacard.registry.model import Resident, ResidentStatus


def card_key(spki: bytes, what: str) -> rsa.RSAPublicKey:
    try:
        key = serialization.load_der_public_key(spki)
    except (ValueError, TypeError):
        raise InvalidInput(f"the {what} public key is not a DER SubjectPublicKeyInfo") from None
    if not isinstance(key, rsa.RSAPublicKey) or key.key_size != keys.KEY_SIZE or key.public_numbers().e != 65537:
        raise InvalidInput(f"the {what} key must be RSA-2048 with e = 65537, as the chip generates")
    return key


def spki_sha256(key: rsa.RSAPublicKey) -> str:
    der = key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return hashlib.sha256(der).hexdigest()


_PLACES: dict[str, tuple[str, str]] = {}


def _place(ctx: Context, municipality_code: str) -> tuple[str, str]:
    """Romanised (prefecture, municipality) of a local government code, cached (reference data)."""
    cached = _PLACES.get(municipality_code)
    if cached is None:
        muni = registry.get_municipality(ctx, municipality_code)
        cached = (_PREFECTURES[int(muni.prefecture_code) - 1], romanise_municipality(muni.name, muni.kana))
        _PLACES[municipality_code] = cached
    return cached


@dataclass(frozen=True)
class IssueRequest:
    """One card to certify: its holder and the public keys its chip generated (SubjectPublicKeyInfo DER)."""

    holder: CardHolder
    auth_public_key: bytes | None
    sign_public_key: bytes | None


@dataclass
class Draft:
    kind: CaKind
    authority: Authority
    key: rsa.RSAPublicKey
    spki_sha256: str
    holder_index: int
    resident: Resident
    card_id: int | None
    card_serial: str | None
    municipality_code: str
    not_after: datetime
    facts_digest: str | None
    replaces: Any | None
    window: str
    serial: int = 0
    common_name: str = ""
    der: bytes = b""


def latest_by_card(conn: Connection, card_ids: Sequence[int]) -> dict[tuple[int, str], Any]:
    out: dict[tuple[int, str], Any] = {}
    for i in range(0, len(card_ids), 5000):
        for row in conn.execute(select(jpki_certificates.c.id, jpki_certificates.c.card_id, jpki_certificates.c.kind,
                                       jpki_certificates.c.spki_sha256, jpki_certificates.c.status,
                                       jpki_certificates.c.der, jpki_certificates.c.not_after,
                                       jpki_certificates.c.authority_id, jpki_certificates.c.serial,
                                       jpki_certificates.c.replaces_id)
                                .where(jpki_certificates.c.card_id.in_(card_ids[i:i + 5000]))
                                .order_by(jpki_certificates.c.id)):
            out[(row.card_id, row.kind)] = row
    return out


def _fresh_serials(conn: Connection, count: int) -> list[int]:
    serials: set[int] = set()
    while len(serials) < count:
        batch = {new_serial() for _ in range(count - len(serials))} - serials
        taken = set(conn.execute(select(jpki_certificates.c.serial).where(
            jpki_certificates.c.serial.in_(list(batch)))).scalars()) if batch else set()
        serials |= batch - taken
    return list(serials)


def sign_drafts(ctx: Context, conn: Connection, drafts: list[Draft], now: datetime) -> None:
    settings = settings_of(ctx)
    not_before = now.replace(microsecond=0)
    per_ca: dict[int, tuple[keys.Signer, profiles.CaUrls]] = {}
    requested = profiles.sign_common_name(now, 0, "")[:14]  # YYYYMMDDhhmmss, the same for the whole batch
    for draft, serial in zip(drafts, _fresh_serials(conn, len(drafts)), strict=True):
        authority = draft.authority
        if authority.id not in per_ca:
            per_ca[authority.id] = (ca_signer(ctx, conn, authority), authority.urls(settings))
        signer, urls = per_ca[authority.id]
        draft.serial = serial
        prefecture, municipality = _place(ctx, draft.municipality_code)
        if draft.kind is CaKind.SIGN:
            draft.common_name = f"{requested}{serial % 100000:05d}{draft.window}"
            facts = signing_facts(draft.resident.facts)
        else:
            draft.common_name = profiles.auth_common_name(secrets.token_bytes(16))
            facts = None
        req = profiles.EndEntityRequest(draft.kind, draft.key, serial, draft.common_name, not_before,
                                        draft.not_after, prefecture, municipality, facts)
        draft.der = profiles.end_entity_der(req, authority.certificate, signer, urls, authority.der)


def store_drafts(conn: Connection, drafts: list[Draft], actor: str, now: datetime, detail: str,
                 want_ids: bool = False) -> list[int]:
    """Insert the certificates (one executemany) and their "issued" events (one INSERT … SELECT per 5,000
    serials, so no per-row parameters and no id round trip); their ids only when ``want_ids``."""
    if not drafts:
        return []
    not_before = now.replace(microsecond=0)
    good = CertificateStatus.GOOD.value
    # the revocation columns are left out (NULL): fewer parameters to bind per row
    rows = [{
        "authority_id": d.authority.id, "kind": d.kind.value, "serial": d.serial, "card_id": d.card_id,
        "card_serial": d.card_serial, "resident_id": d.resident.id, "municipality_code": d.municipality_code,
        "subject_cn": d.common_name, "spki_sha256": d.spki_sha256, "facts_digest": d.facts_digest, "der": d.der,
        "not_before": not_before, "not_after": d.not_after, "issued_at": now, "issued_by": actor,
        "status": good, "replaces_id": d.replaces.id if d.replaces is not None else None,
    } for d in drafts]
    conn.execute(insert(jpki_certificates), rows)  # a plain executemany: the cheapest bulk insert on both
    serials = [d.serial for d in drafts]
    c = jpki_certificates.c
    for i in range(0, len(serials), 5000):
        conn.execute(insert(jpki_certificate_events).from_select(
            ["certificate_id", "to_status", "actor", "at", "detail"],
            select(c.id, literal(good, String()), literal(actor, String()), literal(now, UtcDateTime()),
                   literal(detail, Text())).where(c.serial.in_(serials[i:i + 5000])).order_by(c.id)))
    if not want_ids:
        return []
    by_serial: dict[int, int] = {}
    for i in range(0, len(serials), 5000):
        query = select(c.serial, c.id).where(c.serial.in_(serials[i:i + 5000]))
        by_serial.update((row.serial, row.id) for row in conn.execute(query))
    return [by_serial[s] for s in serials]


def issue_batch(ctx: Context, principal: Principal, requests: Sequence[IssueRequest], now: datetime,
                tx: Transaction | None = None) -> list[IssuedCertificates]:
    """Issue the certificates of many cards at once (the manufacturing run): all or nothing.

    For each card: an authentication certificate if the holder wants one, a signing certificate if the
    holder wants one, is 15 or older and the card's facts are the registry's (otherwise it is withheld and
    the window issues one later). Validity by :func:`~mynacard.jpki.model.certificate_not_after`. A retry with
    the same chip keys returns the certificates already issued; new keys for a card that has certificates
    (a reprint) revoke the old ones as destroyed before handover (交付前に破棄) and link old → new.
    Pass ``tx`` to issue inside the caller's transaction (the manufacturing personaliser does).
    """
    principal.require(*ISSUER_ROLES)
    with ctx.join(tx) as work:
        return _issue_batch(ctx, principal, work.conn, requests, now)


_Keys = tuple[rsa.RSAPublicKey | None, rsa.RSAPublicKey | None]


def _checked_keys(requests: Sequence[IssueRequest]) -> list[_Keys]:
    """Each card's (authentication, signing) keys, parsed; every refused card is named, nothing issued."""
    problems: list[str] = []
    parsed: list[_Keys] = []
    seen: set[int | str] = set()
    for i, req in enumerate(requests):
        h = req.holder
        label = f"#{i + 1} ({h.card_serial})"
        try:
            if h.card_id is None and h.resident_id is None:
                raise InvalidInput("the card must be known (card_id or resident_id)")
            identity = h.card_id if h.card_id is not None else h.card_serial
            if identity in seen:
                raise InvalidInput("the same card appears twice in this batch")
            seen.add(identity)
            auth = card_key(req.auth_public_key, "authentication") if (
                h.wants_auth_cert and req.auth_public_key is not None) else None
            sign = card_key(req.sign_public_key, "signing") if (
                h.wants_sign_cert and req.sign_public_key is not None) else None
            if h.wants_auth_cert and auth is None:
                raise InvalidInput("the holder wants an authentication certificate but no key was given")
            if h.wants_sign_cert and sign is None:
                raise InvalidInput("the holder wants a signing certificate but no key was given")
            if h.cert_valid_until > h.card_valid_until:
                raise InvalidInput("certificates may not outlive the card")
            parsed.append((auth, sign))
        except InvalidInput as exc:
            problems.append(f"{label}: {exc}")
    if problems:
        raise InvalidInput(f"{len(problems)} card(s) refused; nothing was issued", problems)
    return parsed


def _resident_ids(ctx: Context, requests: Sequence[IssueRequest]) -> list[int]:
    out = []
    for req in requests:
        h = req.holder
        if h.resident_id is not None:
            out.append(h.resident_id)
        else:
            assert h.card_id is not None
            out.append(cards.get_card(ctx, Principal.system("jpki"), h.card_id).resident_id)
    return out


def _issue_batch(ctx: Context, principal: Principal, conn: Connection, requests: Sequence[IssueRequest],
                 now: datetime) -> list[IssuedCertificates]:
    parsed = _checked_keys(requests)
    resident_ids = _resident_ids(ctx, requests)
    residents = registry.get_residents(conn, resident_ids)
    # The manufacturer's batch run (a job of J-LIS's own processes, never reached by a web request outside a
    # demo) is the one place besides ``mynacard jpki init`` that may generate the CAs at first use.
    cas = issuing_generations(ctx, conn, now, principal, create=True)
    card_ids = [r.holder.card_id for r in requests if r.holder.card_id is not None]
    latest = latest_by_card(conn, card_ids)
    issued_on = local_date(now)
    drafts: list[Draft] = []
    reused: dict[tuple[int, CaKind], bytes] = {}
    to_supersede: list[Any] = []
    for index, (req, (auth_key, sign_key), rid) in enumerate(zip(requests, parsed, resident_ids, strict=True)):
        h = req.holder
        resident = residents.get(rid)
        if resident is None:
            raise InvalidInput(f"#{index + 1} ({h.card_serial}): unknown resident")
        if resident.status is not ResidentStatus.ACTIVE:
            continue  # the card is being voided by the cards part; no certificate for it
        auth_until: datetime | None = None
        for kind, key in ((CaKind.AUTH, auth_key), (CaKind.SIGN, sign_key)):
            if key is None:
                continue
            if kind is CaKind.SIGN and (h.facts != resident.facts
                                        or not may_hold_sign_certificate(resident.facts.birth_date, issued_on)):
                continue
            spki = spki_sha256(key)
            previous = latest.get((h.card_id, kind.value)) if h.card_id is not None else None
            if previous is not None and previous.spki_sha256 == spki and previous.status == "good":
                reused[(index, kind)] = previous.der
                if kind is CaKind.AUTH:
                    auth_until = previous.not_after
                continue
            if previous is not None and previous.status == "good":
                to_supersede.append(previous)
            not_after = certificate_not_after(
                birth_date=resident.facts.birth_date, issued_at=now, card_valid_until=h.card_valid_until,
                ca_not_after=cas[kind].not_after, requested_until=h.cert_valid_until,
                auth_not_after=auth_until if kind is CaKind.SIGN else None)
            if not_after <= now:
                raise InvalidInput(f"#{index + 1} ({h.card_serial}): the validity has already ended")
            drafts.append(Draft(kind, cas[kind], key, spki, index, resident, h.card_id, h.card_serial,
                                 h.municipality_code, not_after,
                                 cards.facts_digest(resident.facts) if kind is CaKind.SIGN else None,
                                 previous, "A"))
            if kind is CaKind.AUTH:
                auth_until = not_after
    sign_drafts(ctx, conn, drafts, now)
    if to_supersede:
        revoke_ids(ctx, conn, [r.id for r in to_supersede], RevocationReason.UNSPECIFIED, now, principal.subject,
                   "replaced by a reprinted card (交付前に破棄)", presign=False)
    store_drafts(conn, drafts, principal.subject, now, "issued at manufacture (発行)")
    out: list[IssuedCertificates] = []
    by_key = {(d.holder_index, d.kind): d.der for d in drafts}
    for index in range(len(requests)):
        out.append(IssuedCertificates(
            auth_certificate=by_key.get((index, CaKind.AUTH)) or reused.get((index, CaKind.AUTH)),
            auth_ca_certificate=cas[CaKind.AUTH].der,
            sign_certificate=by_key.get((index, CaKind.SIGN)) or reused.get((index, CaKind.SIGN)),
            sign_ca_certificate=cas[CaKind.SIGN].der))
    return out


def issue_card_certificates(ctx: Context, principal: Principal, holder: CardHolder, auth_public_key: bytes | None,
                            sign_public_key: bytes | None, now: datetime,
                            tx: Transaction | None = None) -> IssuedCertificates:
    """Issue one card's certificates (see :func:`issue_batch`)."""
    return issue_batch(ctx, principal, [IssueRequest(holder, auth_public_key, sign_public_key)], now, tx)[0]


class JpkiIssuer:
    """The :class:`~mynacard.cards.personalisation.CertificateIssuer` backed by the JPKI CAs.

    Inside the manufacturing personaliser pass the manufacturing transaction, so that the certificates and the
    cards commit (or roll back) together.
    """

    def __init__(self, ctx: Context, principal: Principal, tx: Transaction | None = None) -> None:
        self.ctx = ctx
        self.principal = principal
        self.tx = tx

    def issue(self, holder: CardHolder, auth_public_key: bytes | None, sign_public_key: bytes | None,
              now: datetime) -> IssuedCertificates:
        return issue_card_certificates(self.ctx, self.principal, holder, auth_public_key, sign_public_key, now,
                                       self.tx)
