"""Use cases of the two JPKI certificate authorities: generations and rollover, issuance from the chip's
public keys, re-issue at the window, revocation on life events and on request, CRLs, status look-ups.

Everything that changes a certificate happens in one transaction: the certificate row, its event, its
pre-encoded CRL entry, the platform operators' notifications and (when the service has the keys at hand)
the pre-signed OCSP response. Revocations lock their CA row, so the CA's revocation counter and CRL numbers
advance in commit order — which is what lets delta CRLs and the OCSP responders' caches be exact across
processes and hosts.
"""

from __future__ import annotations

import hashlib
import secrets
import threading
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import cached_property
from typing import Any

from asn1crypto import keys as asn1_keys
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from sqlalchemy import Connection, String, Text, delete, func, insert, literal, select, text, update

from mynacard.cards import service as cards
from mynacard.cards.model import CardState, is_manufacture_number
from mynacard.cards.personalisation import CardHolder, IssuedCertificates
from mynacard.clock import local_date
from mynacard.context import Context
from mynacard.db import UtcDateTime
from mynacard.errors import Conflict, InvalidInput, NotFound
from mynacard.jpki import crl as crl_codec
from mynacard.jpki import keys, ocsp, profiles
from mynacard.jpki.config import JpkiSettings, jpki_settings
from mynacard.jpki.model import PREFECTURES_ROMAN as _PREFECTURES
from mynacard.jpki.model import (
    CaKind,
    CertificateStatus,
    RevocationReason,
    certificate_not_after,
    may_hold_sign_certificate,
    revocations_for_life_event,
    romanise_municipality,
    root_not_after,
    signing_facts,
)
from mynacard.jpki.tables import (
    jpki_authorities,
    jpki_certificate_events,
    jpki_certificates,
    jpki_crls,
    jpki_link_certificates,
    jpki_notifications,
    jpki_ocsp_responses,
    jpki_ocsp_signers,
    jpki_subscriptions,
)
from mynacard.principal import Principal, Role
from mynacard.registry import service as registry
from mynacard.registry.model import Resident, ResidentStatus
from mynacard.sealing import Sealer

__all__ = [
    "AuthoritiesMissing",
    "Authority",
    "CertificateRecord",
    "CertificateView",
    "CrlInfo",
    "IssueRequest",
    "JpkiIssuer",
    "OcspSigner",
    "WindowIssuer",
    "abolish_card_certificates",
    "authorities",
    "authorities_exist",
    "authority_for_key_hash",
    "ca_bundle_pem",
    "certificate_by_serial",
    "certificates_of_card",
    "certificates_of_card_serial",
    "current_authority",
    "current_crl",
    "ensure_authorities",
    "hold_card_certificates",
    "holder_of_certificate",
    "issue_batch",
    "issue_card_certificates",
    "lineage",
    "ocsp_signer",
    "publish_crls",
    "record_handover",
    "refresh_ocsp_responses",
    "reissue_certificate",
    "reissue_sign_certificate",
    "revocations_since",
    "revoke_at_holder_request",
    "revoke_certificate",
    "revoke_for_life_event",
    "rollover",
    "sign_ocsp_response",
]

_ISSUERS = (Role.MANUFACTURER, Role.OPERATOR, Role.SYSTEM)
_WINDOW = (Role.CLERK, Role.SUPERVISOR, Role.OPERATOR, Role.SYSTEM)
_OPERATORS = (Role.OPERATOR, Role.SYSTEM)
_OCSP_SIGNER_DAYS = 365
_OCSP_SIGNER_RENEW = timedelta(days=30)
_KEEP_FULL_CRLS = 3


# --- authorities (CA generations) ---------------------------------------------------------------------

@dataclass(frozen=True)
class Authority:
    """One generation of one of the two CAs (署名用 / 利用者証明用認証局): its root and where its key is."""

    id: int
    kind: CaKind
    generation: int
    der: bytes
    """The self-signed root certificate."""
    not_before: datetime
    not_after: datetime
    retired_at: datetime | None
    """Since when a newer generation issues; a retired generation still signs CRLs and OCSP for its own."""
    key_store: str
    key_label: str
    name_sha1: str
    name_sha256: str
    key_sha1: str
    key_sha256: str
    subject_key_id: str
    last_crl_number: int
    last_full_crl_number: int
    revocation_counter: int

    @cached_property
    def certificate(self) -> x509.Certificate:
        return x509.load_der_x509_certificate(self.der)

    @property
    def pem(self) -> str:
        return self.certificate.public_bytes(serialization.Encoding.PEM).decode()

    @property
    def fingerprint_sha256(self) -> str:
        return hashlib.sha256(self.der).hexdigest()

    def urls(self, settings: JpkiSettings) -> profiles.CaUrls:
        """URLs written into this generation's certificates: the stable paths of the interface, pinned to
        the generation by a query so that they stay right after a rollover (docs/JPKI-PROFILE.md)."""
        pin = f"?generation={self.generation}"
        k = self.kind.value
        return profiles.CaUrls(
            crl=settings.url(f"/jpki/crl/{k}.crl{pin}"),
            delta_crl=settings.url(f"/jpki/crl/{k}-delta.crl{pin}"),
            ca_certificate=settings.url(f"/jpki/ca/{k}.cer{pin}"),
            ocsp=settings.url("/jpki/ocsp"),
            cps=settings.url("/jpki/cps"),
        )


def _authority(row: Any) -> Authority:
    return Authority(
        id=row.id, kind=CaKind(row.kind), generation=row.generation, der=row.certificate,
        not_before=row.not_before, not_after=row.not_after, retired_at=row.retired_at, key_store=row.key_store,
        key_label=row.key_label, name_sha1=row.name_sha1, name_sha256=row.name_sha256, key_sha1=row.key_sha1,
        key_sha256=row.key_sha256, subject_key_id=row.subject_key_id, last_crl_number=row.last_crl_number,
        last_full_crl_number=row.last_full_crl_number, revocation_counter=row.revocation_counter)


_SIGNERS: dict[tuple[str, str, str], keys.Signer] = {}
_SIGNERS_LOCK = threading.Lock()


def _seal_context(kind: str, label: str) -> bytes:
    return f"jpki_authorities:{kind}:{label}".encode()


def _ca_signer(ctx: Context, conn: Connection | None, authority: Authority) -> keys.Signer:
    """The CA's signer, opened once per process (the sealed key is decrypted only here)."""
    cache_key = (str(ctx.db.url), authority.key_label, authority.key_sha1)
    with _SIGNERS_LOCK:
        signer = _SIGNERS.get(cache_key)
    if signer is not None:
        return signer
    if authority.key_store == "pkcs11":
        config = jpki_settings().pkcs11
        if config is None:
            raise keys.Pkcs11Error(f"the {authority.kind.value} CA G{authority.generation} key is in a PKCS#11 "
                                   "token but MYNACARD_JPKI_PKCS11_MODULE is not set")
        signer = keys.open_pkcs11_key(config, authority.key_label)
    else:
        query = select(jpki_authorities.c.sealed_key).where(jpki_authorities.c.id == authority.id)
        if conn is not None:
            sealed = conn.execute(query).scalar_one()
        else:
            with ctx.db.connect() as c:
                sealed = c.execute(query).scalar_one()
        signer = keys.open_sealed_key(sealed, Sealer(ctx.settings.data_key),
                                      _seal_context(authority.kind.value, authority.key_label))
    if _key_sha1(signer.public_key) != authority.key_sha1:
        raise RuntimeError(f"the key of CA {authority.kind.value} G{authority.generation} does not match its root")
    with _SIGNERS_LOCK:
        _SIGNERS[cache_key] = signer
    return signer


def _key_sha1(public_key: rsa.RSAPublicKey) -> str:
    der = public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return asn1_keys.PublicKeyInfo.load(der).sha1.hex()


def _new_serial() -> int:
    """A positive serial with 62 bits of entropy (RFC 5280: at most 20 octets; fits a signed BIGINT)."""
    return secrets.randbits(62) | (1 << 62)


def _load_authorities(conn: Connection) -> list[Authority]:
    return [_authority(r) for r in conn.execute(
        select(jpki_authorities).order_by(jpki_authorities.c.kind, jpki_authorities.c.generation))]


def _serialise_writers(conn: Connection) -> None:
    """One CA creation or rollover at a time across processes (SQLite writers are serial already)."""
    if conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(4201004)"))


def _create_generation(ctx: Context, conn: Connection, kind: CaKind, generation: int, now: datetime,
                       principal: Principal) -> Authority:
    settings = jpki_settings()
    label = f"jpki-{kind.value}-g{generation}-{secrets.token_hex(4)}"
    sealed: bytes | None = None
    signer: keys.Signer
    if settings.pkcs11 is not None:
        signer = keys.generate_pkcs11_key(settings.pkcs11, label)
        store = "pkcs11"
    else:
        software = keys.generate_software_key()
        sealed = keys.seal_software_key(software, Sealer(ctx.settings.data_key), _seal_context(kind.value, label))
        signer = software
        store = "sealed"
    try:
        not_before = now.replace(microsecond=0)
        root = profiles.root_certificate(kind, signer, _new_serial(), not_before, root_not_after(not_before))
        der = root.public_bytes(serialization.Encoding.DER)
        info = asn1_x509.Certificate.load(der)
        authority_id = conn.execute(insert(jpki_authorities).values(
            kind=kind.value, generation=generation, certificate=der,
            subject_key_id=root.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest.hex(),
            name_sha1=info.subject.sha1.hex(), name_sha256=info.subject.sha256.hex(),
            key_sha1=info.public_key.sha1.hex(), key_sha256=info.public_key.sha256.hex(),
            not_before=root.not_valid_before_utc, not_after=root.not_valid_after_utc, key_store=store,
            key_label=label, sealed_key=sealed, created_at=now, retired_at=None, last_crl_number=0,
            last_full_crl_number=0, revocation_counter=0).returning(jpki_authorities.c.id)).scalar_one()
    except Exception:  # the generation was not recorded: do not leave its key in the token
        if store == "pkcs11" and settings.pkcs11 is not None:
            keys.delete_pkcs11_key(settings.pkcs11, label)
        raise
    authority = _authority(conn.execute(select(jpki_authorities).where(
        jpki_authorities.c.id == authority_id)).one())
    with _SIGNERS_LOCK:
        _SIGNERS[(str(ctx.db.url), label, authority.key_sha1)] = signer
    _new_ocsp_signer(ctx, conn, authority, now)
    return authority


def _current(authorities_: Iterable[Authority], kind: CaKind) -> Authority | None:
    candidates = [a for a in authorities_ if a.kind is kind and a.retired_at is None]
    return max(candidates, key=lambda a: a.generation, default=None)


class AuthoritiesMissing(Conflict):
    """The CAs have not been created yet. Creating them is the operator's act (``mynacard jpki init``; a demo
    installation's ``mynacard demo``), never a side effect of a request: the web answers 503 until then."""

    def __init__(self) -> None:
        super().__init__("the JPKI certificate authorities have not been created yet: the operator creates them "
                         "with `mynacard jpki init`")


def _ensure(ctx: Context, conn: Connection, now: datetime, principal: Principal, *,
            create: bool = False) -> dict[CaKind, Authority]:
    """The current generation of both CAs; with ``create`` the missing ones are generated (only the operator's
    :func:`ensure_authorities` and the manufacturer's batch run ask for that), else :class:`AuthoritiesMissing`."""
    found = _load_authorities(conn)
    missing = [k for k in CaKind if _current(found, k) is None]
    if missing and not create:
        raise AuthoritiesMissing()
    if missing:
        _serialise_writers(conn)
        found = _load_authorities(conn)
        for kind in CaKind:
            if _current(found, kind) is None:
                generation = max((a.generation for a in found if a.kind is kind), default=0) + 1
                found.append(_create_generation(ctx, conn, kind, generation, now, principal))
    out = {}
    for kind in CaKind:
        current = _current(found, kind)
        assert current is not None
        out[kind] = current
    return out


def ensure_authorities(ctx: Context, principal: Principal, now: datetime,
                       conn: Connection | None = None) -> dict[CaKind, Authority]:
    """The current generation of both CAs, generating the missing ones (keys, roots, OCSP responders): the
    operator's act (``mynacard jpki init``). Nothing a web request reaches calls it."""
    principal.require(*_OPERATORS)
    if conn is not None:
        return _ensure(ctx, conn, now, principal, create=True)
    with ctx.db.connect() as c:
        found = _load_authorities(c)
    if all(_current(found, k) is not None for k in CaKind):
        return {k: a for k in CaKind if (a := _current(found, k)) is not None}
    with ctx.transaction() as tx:
        return _ensure(ctx, tx.conn, now, principal, create=True)


def authorities_exist(ctx: Context) -> bool:
    """Whether both CAs have an issuing generation (``mynacard jpki init`` has been run)."""
    with ctx.db.connect() as conn:
        found = _load_authorities(conn)
    return all(_current(found, k) is not None for k in CaKind)


def authorities(ctx: Context) -> list[Authority]:
    """Every generation of both CAs, oldest first (public information)."""
    with ctx.db.connect() as conn:
        return _load_authorities(conn)


def current_authority(ctx: Context, kind: CaKind, now: datetime, generation: int | None = None) -> Authority:
    """The issuing generation of a CA, or a given generation (:class:`AuthoritiesMissing` before
    ``mynacard jpki init``)."""
    found = authorities(ctx)
    if generation is not None:
        found = [a for a in found if a.kind is kind and a.generation == generation]
        if not found:
            raise NotFound(f"no {kind.value} CA generation {generation}")
        return found[0]
    current = _current(found, kind)
    if current is None:
        raise AuthoritiesMissing()
    return current


def authority_for_key_hash(ctx: Context, algorithm: str, key_hash: bytes) -> Authority | None:
    column = {"sha1": jpki_authorities.c.key_sha1, "sha256": jpki_authorities.c.key_sha256}.get(algorithm)
    if column is None:
        return None
    with ctx.db.connect() as conn:
        row = conn.execute(select(jpki_authorities).where(column == key_hash.hex())).first()
    return None if row is None else _authority(row)


def ca_bundle_pem(ctx: Context, kind: CaKind) -> str:
    """Every generation's root of one CA plus the link certificates between them (PEM)."""
    with ctx.db.connect() as conn:
        roots = [a.pem for a in _load_authorities(conn) if a.kind is kind]
        links = [x509.load_der_x509_certificate(d).public_bytes(serialization.Encoding.PEM).decode()
                 for d in conn.execute(select(jpki_link_certificates.c.certificate).where(
                     jpki_link_certificates.c.kind == kind.value).order_by(jpki_link_certificates.c.id)).scalars()]
    return "".join(roots + links)


def rollover(ctx: Context, principal: Principal, kind: CaKind, now: datetime) -> Authority:
    """Start a new generation of a CA (as J-LIS did in 2019 and 2023): a new key and root, link
    certificates both ways, and the old generation retired from issuance. It keeps signing CRLs and OCSP
    responses for the certificates it issued until they have all expired."""
    principal.require(*_OPERATORS)
    with ctx.transaction() as tx:
        conn = tx.conn
        _serialise_writers(conn)
        old = _ensure(ctx, conn, now, principal)[kind]
        new = _create_generation(ctx, conn, kind, old.generation + 1, now, principal)
        conn.execute(update(jpki_authorities).where(jpki_authorities.c.id == old.id).values(retired_at=now))
        old_signer = _ca_signer(ctx, conn, old)
        new_signer = _ca_signer(ctx, conn, new)
        pairs = [(new, old, old_signer, min(new.not_after, old.not_after)),  # NewWithOld
                 (old, new, new_signer, old.not_after)]                       # OldWithNew
        for subject, issuer, signer, until in pairs:
            subject_key = subject.certificate.public_key()
            assert isinstance(subject_key, rsa.RSAPublicKey)
            link = profiles.link_certificate(kind, subject_key,
                                             signer, issuer.certificate, _new_serial(), now.replace(microsecond=0),
                                             until)
            conn.execute(insert(jpki_link_certificates).values(
                kind=kind.value, subject_generation=subject.generation, issuer_generation=issuer.generation,
                certificate=link.public_bytes(serialization.Encoding.DER), created_at=now))
    return new


# --- the delegated OCSP responder's key -----------------------------------------------------------------

@dataclass(frozen=True)
class OcspSigner:
    """A CA generation's delegated OCSP responder: its certificate and signer."""

    id: int
    authority_id: int
    certificate_der: bytes
    key_hash: bytes
    not_after: datetime
    signer: keys.Signer = field(repr=False)


_OCSP_SIGNERS: dict[tuple[str, int, str], OcspSigner] = {}


def _new_ocsp_signer(ctx: Context, conn: Connection, authority: Authority, now: datetime) -> OcspSigner:
    key = keys.generate_software_key()
    not_before = now.replace(microsecond=0)
    not_after = min(not_before + timedelta(days=_OCSP_SIGNER_DAYS), authority.not_after)
    cert = profiles.ocsp_responder_certificate(authority.kind, authority.generation, key.public_key,
                                               authority.certificate, _ca_signer(ctx, conn, authority),
                                               _new_serial(), not_before, not_after)
    der = cert.public_bytes(serialization.Encoding.DER)
    key_hash = asn1_x509.Certificate.load(der).public_key.sha1
    sealer = Sealer(ctx.settings.data_key)
    signer_id = conn.execute(insert(jpki_ocsp_signers).values(
        authority_id=authority.id, certificate=der, key_sha1=key_hash.hex(), sealed_key=b"",
        not_before=not_before, not_after=not_after, created_at=now).returning(jpki_ocsp_signers.c.id)).scalar_one()
    conn.execute(update(jpki_ocsp_signers).where(jpki_ocsp_signers.c.id == signer_id).values(
        sealed_key=keys.seal_software_key(key, sealer, f"jpki_ocsp_signers:{signer_id}".encode())))
    made = OcspSigner(signer_id, authority.id, der, key_hash, not_after, key)
    with _SIGNERS_LOCK:
        _OCSP_SIGNERS[(str(ctx.db.url), signer_id, key_hash.hex())] = made
    return made


def ocsp_signer(ctx: Context, authority: Authority, now: datetime, conn: Connection | None = None) -> OcspSigner:
    """The responder certificate and key of a CA generation; a new one when it nears its end."""
    query = (select(jpki_ocsp_signers).where(jpki_ocsp_signers.c.authority_id == authority.id)
             .order_by(jpki_ocsp_signers.c.id.desc()).limit(1))
    if conn is not None:
        row = conn.execute(query).first()
    else:
        with ctx.db.connect() as c:
            row = c.execute(query).first()
    if row is None or (row.not_after - now < _OCSP_SIGNER_RENEW and authority.not_after - now > _OCSP_SIGNER_RENEW):
        if conn is not None:
            return _new_ocsp_signer(ctx, conn, authority, now)
        with ctx.transaction() as tx:
            return _new_ocsp_signer(ctx, tx.conn, authority, now)
    cache_key = (str(ctx.db.url), row.id, row.key_sha1)
    with _SIGNERS_LOCK:
        cached = _OCSP_SIGNERS.get(cache_key)
    if cached is not None:
        return cached
    key = keys.open_sealed_key(row.sealed_key, Sealer(ctx.settings.data_key),
                               f"jpki_ocsp_signers:{row.id}".encode())
    made = OcspSigner(row.id, authority.id, row.certificate, bytes.fromhex(row.key_sha1), row.not_after, key)
    with _SIGNERS_LOCK:
        _OCSP_SIGNERS[cache_key] = made
    return made


# --- certificates as other parts see them ---------------------------------------------------------------

@dataclass(frozen=True)
class CertificateView:
    """An issued certificate, without the personal facts it may carry."""

    id: int
    kind: CaKind
    serial: int
    generation: int
    card_id: int | None
    card_serial: str | None
    resident_id: int
    municipality_code: str
    subject_cn: str
    not_before: datetime
    not_after: datetime
    issued_at: datetime
    status: CertificateStatus
    revoked_at: datetime | None
    revocation_reason: RevocationReason | None
    replaces_id: int | None

    @property
    def serial_hex(self) -> str:
        return f"{self.serial:X}"


@dataclass(frozen=True)
class CertificateRecord:
    """A certificate with its DER (what a relying party or the chip receives)."""

    view: CertificateView
    der: bytes

    @property
    def pem(self) -> str:
        return x509.load_der_x509_certificate(self.der).public_bytes(serialization.Encoding.PEM).decode()


_VIEW_COLUMNS = (jpki_certificates.c.id, jpki_certificates.c.kind, jpki_certificates.c.serial,
                 jpki_authorities.c.generation, jpki_certificates.c.card_id, jpki_certificates.c.card_serial,
                 jpki_certificates.c.resident_id, jpki_certificates.c.municipality_code,
                 jpki_certificates.c.subject_cn, jpki_certificates.c.not_before, jpki_certificates.c.not_after,
                 jpki_certificates.c.issued_at, jpki_certificates.c.status, jpki_certificates.c.revoked_at,
                 jpki_certificates.c.revocation_reason, jpki_certificates.c.replaces_id)


def _view(row: Any) -> CertificateView:
    return CertificateView(
        id=row.id, kind=CaKind(row.kind), serial=row.serial, generation=row.generation, card_id=row.card_id,
        card_serial=row.card_serial, resident_id=row.resident_id, municipality_code=row.municipality_code,
        subject_cn=row.subject_cn, not_before=row.not_before, not_after=row.not_after, issued_at=row.issued_at,
        status=CertificateStatus(row.status), revoked_at=row.revoked_at,
        revocation_reason=RevocationReason(row.revocation_reason) if row.revocation_reason else None,
        replaces_id=row.replaces_id)


def _views_query() -> Any:
    return select(*_VIEW_COLUMNS).join(jpki_authorities,
                                       jpki_authorities.c.id == jpki_certificates.c.authority_id)


def _may_see(principal: Principal, conn: Connection, row: Any) -> bool:
    """Operators see every certificate; clerks those of residents of their municipality (where the card
    was issued or where the resident lives now); a resident their own."""
    if principal.role in _OPERATORS:
        return True
    if principal.role is Role.RESIDENT:
        return str(row.resident_id) == principal.subject
    if principal.role in (Role.CLERK, Role.SUPERVISOR):
        if principal.can_see_municipality(row.municipality_code):
            return True
        resident = registry.get_residents(conn, [row.resident_id]).get(row.resident_id)
        return resident is not None and principal.can_see_municipality(resident.municipality_code)
    return False


def certificate_by_serial(ctx: Context, principal: Principal, serial: int) -> CertificateRecord:
    """A certificate by serial number, if the caller may see it (otherwise :class:`NotFound`)."""
    with ctx.db.connect() as conn:
        row = conn.execute(_views_query().add_columns(jpki_certificates.c.der)
                           .where(jpki_certificates.c.serial == serial)).first()
        if row is None or not _may_see(principal, conn, row):
            raise NotFound("no such certificate")
    return CertificateRecord(_view(row), row.der)


def certificates_of_card(ctx: Context, principal: Principal, card_id: int) -> list[CertificateView]:
    """Every certificate ever issued for a card, oldest first (the lineage is in ``replaces_id``)."""
    with ctx.db.connect() as conn:
        rows = conn.execute(_views_query().where(jpki_certificates.c.card_id == card_id)
                            .order_by(jpki_certificates.c.id)).all()
        if rows and not _may_see(principal, conn, rows[-1]):
            raise NotFound("no such card")
    return [_view(r) for r in rows]


def certificates_of_card_serial(ctx: Context, principal: Principal, card_serial: str) -> list[CertificateView]:
    """Every certificate ever issued for the card with this manufacture number (製造番号), oldest first: those
    issued under the number (the CA's own record of it, also for cards made outside the issuance pipeline, such
    as the kiosk's test cards) and those of the same card under its other prints. Only certificates the caller
    may see; none → :class:`NotFound`."""
    number = card_serial.strip().upper()
    if not is_manufacture_number(number):
        raise InvalidInput("カードの製造番号は英数字13桁です (a manufacture number is 13 letters and digits, "
                           "e.g. E000000000101)")
    with ctx.db.connect() as conn:
        rows = conn.execute(_views_query().where(jpki_certificates.c.card_serial == number)).all()
        ids = {r.card_id for r in rows if r.card_id is not None}
        if ids:
            rows = conn.execute(_views_query().where(
                (jpki_certificates.c.card_serial == number) | jpki_certificates.c.card_id.in_(ids))).all()
        visible = sorted((r for r in rows if _may_see(principal, conn, r)), key=lambda r: r.id)
    if not visible:
        raise NotFound("その製造番号のカードの電子証明書はありません (no certificates for this card)")
    return [_view(r) for r in visible]


def lineage(ctx: Context, principal: Principal, serial: int) -> list[CertificateView]:
    """A certificate with its predecessors and successors, oldest first (old → new)."""
    record = certificate_by_serial(ctx, principal, serial)
    with ctx.db.connect() as conn:
        chain = [record.view]
        while chain[0].replaces_id is not None:
            row = conn.execute(_views_query().where(jpki_certificates.c.id == chain[0].replaces_id)).one()
            chain.insert(0, _view(row))
        while True:
            row = conn.execute(_views_query().where(jpki_certificates.c.replaces_id == chain[-1].id)
                               .order_by(jpki_certificates.c.id)).first()
            if row is None:
                break
            chain.append(_view(row))
    return chain


def holder_of_certificate(ctx: Context, principal: Principal, serial: int, now: datetime) -> int:
    """The resident holding a certificate (J-LIS maps serial ↔ resident for municipalities and the
    certificate issuance centre behind convenience-store kiosks). Only for the operator, system jobs, the
    kiosk centre and clerks of the resident's municipality."""
    if principal.role is Role.KIOSK:
        principal = Principal.system(f"kiosk:{principal.subject}")
    principal.require(*_WINDOW)
    return certificate_by_serial(ctx, principal, serial).view.resident_id


# --- issuance ------------------------------------------------------------------------------------------

def _card_key(spki: bytes, what: str) -> rsa.RSAPublicKey:
    try:
        key = serialization.load_der_public_key(spki)
    except (ValueError, TypeError):
        raise InvalidInput(f"the {what} public key is not a DER SubjectPublicKeyInfo") from None
    if not isinstance(key, rsa.RSAPublicKey) or key.key_size != keys.KEY_SIZE or key.public_numbers().e != 65537:
        raise InvalidInput(f"the {what} key must be RSA-2048 with e = 65537, as the chip generates")
    return key


def _spki_sha256(key: rsa.RSAPublicKey) -> str:
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
class _Draft:
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


def _latest_by_card(conn: Connection, card_ids: Sequence[int]) -> dict[tuple[int, str], Any]:
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
        batch = {_new_serial() for _ in range(count - len(serials))} - serials
        taken = set(conn.execute(select(jpki_certificates.c.serial).where(
            jpki_certificates.c.serial.in_(list(batch)))).scalars()) if batch else set()
        serials |= batch - taken
    return list(serials)


def _sign_drafts(ctx: Context, conn: Connection, drafts: list[_Draft], now: datetime) -> None:
    settings = jpki_settings()
    not_before = now.replace(microsecond=0)
    per_ca: dict[int, tuple[keys.Signer, profiles.CaUrls]] = {}
    requested = profiles.sign_common_name(now, 0, "")[:14]  # YYYYMMDDhhmmss, the same for the whole batch
    for draft, serial in zip(drafts, _fresh_serials(conn, len(drafts)), strict=True):
        authority = draft.authority
        if authority.id not in per_ca:
            per_ca[authority.id] = (_ca_signer(ctx, conn, authority), authority.urls(settings))
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


def _store_drafts(conn: Connection, drafts: list[_Draft], actor: str, now: datetime, detail: str,
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
                conn: Connection | None = None) -> list[IssuedCertificates]:
    """Issue the certificates of many cards at once (the manufacturing run): all or nothing.

    For each card: an authentication certificate if the holder wants one, a signing certificate if the
    holder wants one, is 15 or older and the card's facts are the registry's (otherwise it is withheld and
    the window issues one later). Validity by :func:`~mynacard.jpki.model.certificate_not_after`. A retry with
    the same chip keys returns the certificates already issued; new keys for a card that has certificates
    (a reprint) revoke the old ones as destroyed before handover (交付前に破棄) and link old → new.
    Pass ``conn`` to issue inside the caller's transaction (the manufacturing personaliser does).
    """
    principal.require(*_ISSUERS)
    if conn is None:
        with ctx.transaction() as tx:
            return _issue_batch(ctx, principal, tx.conn, requests, now)
    return _issue_batch(ctx, principal, conn, requests, now)


def _issue_batch(ctx: Context, principal: Principal, conn: Connection, requests: Sequence[IssueRequest],
                 now: datetime) -> list[IssuedCertificates]:
    problems: list[str] = []
    parsed: list[tuple[rsa.RSAPublicKey | None, rsa.RSAPublicKey | None]] = []
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
            auth = _card_key(req.auth_public_key, "authentication") if (
                h.wants_auth_cert and req.auth_public_key is not None) else None
            sign = _card_key(req.sign_public_key, "signing") if (
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
    resident_ids = []
    for req in requests:
        h = req.holder
        if h.resident_id is not None:
            resident_ids.append(h.resident_id)
        else:
            assert h.card_id is not None
            resident_ids.append(cards.get_card(ctx, Principal.system("jpki"), h.card_id).resident_id)
    residents = registry.get_residents(conn, resident_ids)
    # The manufacturer's batch run (a job of J-LIS's own processes, never reached by a web request outside a
    # demo) is the one place besides ``mynacard jpki init`` that may generate the CAs at first use.
    cas = _ensure(ctx, conn, now, principal, create=True)
    card_ids = [r.holder.card_id for r in requests if r.holder.card_id is not None]
    latest = _latest_by_card(conn, card_ids)
    issued_on = local_date(now)
    drafts: list[_Draft] = []
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
            spki = _spki_sha256(key)
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
            drafts.append(_Draft(kind, cas[kind], key, spki, index, resident, h.card_id, h.card_serial,
                                 h.municipality_code, not_after,
                                 cards.facts_digest(resident.facts) if kind is CaKind.SIGN else None,
                                 previous, "A"))
            if kind is CaKind.AUTH:
                auth_until = not_after
    _sign_drafts(ctx, conn, drafts, now)
    if to_supersede:
        _revoke(ctx, conn, [r.id for r in to_supersede], RevocationReason.UNSPECIFIED, now, principal.subject,
                "replaced by a reprinted card (交付前に破棄)", presign=False)
    _store_drafts(conn, drafts, principal.subject, now, "issued at manufacture (発行)")
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
                            conn: Connection | None = None) -> IssuedCertificates:
    """Issue one card's certificates (see :func:`issue_batch`)."""
    return issue_batch(ctx, principal, [IssueRequest(holder, auth_public_key, sign_public_key)], now, conn)[0]


class JpkiIssuer:
    """The :class:`~mynacard.cards.personalisation.CertificateIssuer` backed by the JPKI CAs.

    Inside the manufacturing personaliser pass the manufacturing transaction's connection, so that the
    certificates and the cards commit (or roll back) together.
    """

    def __init__(self, ctx: Context, principal: Principal, conn: Connection | None = None) -> None:
        self.ctx = ctx
        self.principal = principal
        self.conn = conn

    def issue(self, holder: CardHolder, auth_public_key: bytes | None, sign_public_key: bytes | None,
              now: datetime) -> IssuedCertificates:
        return issue_card_certificates(self.ctx, self.principal, holder, auth_public_key, sign_public_key, now,
                                       self.conn)


def _card_for_window(ctx: Context, principal: Principal, card_id: int,
                     conn: Connection | None = None) -> tuple[cards.CardView, Resident]:
    """The card and its holder's record — read in the caller's transaction when given, so that a change of
    address made in the same transaction is what the new certificate carries."""
    principal.require(*_WINDOW)
    try:
        card = cards.get_card(ctx, Principal.system("jpki"), card_id)
    except NotFound:
        raise NotFound("no such card") from None
    resident = registry.get_resident(ctx, Principal.system("jpki"), card.resident_id, conn)
    if not (principal.can_see_municipality(card.municipality_code)
            or principal.can_see_municipality(resident.municipality_code)):
        raise NotFound("no such card")
    return card, resident


def reissue_certificate(ctx: Context, principal: Principal, card_id: int, kind: CaKind, public_key: bytes,
                        now: datetime, conn: Connection | None = None) -> CertificateRecord:
    """Issue a new certificate for a card at the window (電子証明書の発行・更新), e.g. a signing certificate
    after an address change, from a key the chip generated just now.

    The previous certificate of that kind is linked as its predecessor (old → new) and, if still good,
    revoked as superseded; platform operators subscribed to it are told where the new one is and follow
    it. Repeating the call with the same key returns the same certificate. Pass ``conn`` to issue inside
    the caller's transaction (it then commits or rolls back with the caller's work).
    """
    if conn is not None:
        card, resident = _card_for_window(ctx, principal, card_id, conn)
        return _reissue(ctx, principal, conn, card, resident, kind, public_key, now)
    card, resident = _card_for_window(ctx, principal, card_id)
    with ctx.transaction() as tx:
        return _reissue(ctx, principal, tx.conn, card, resident, kind, public_key, now)


def _reissue(ctx: Context, principal: Principal, conn: Connection, card: cards.CardView, resident: Resident,
             kind: CaKind, public_key: bytes, now: datetime) -> CertificateRecord:
    card_id = card.id
    key = _card_key(public_key, "new")
    if card.state is not CardState.ISSUED:
        raise Conflict(f"certificates are issued only for a card in use (this one is {card.state.value})")
    abroad_continued = resident.status is ResidentStatus.ABROAD
    if resident.status is not ResidentStatus.ACTIVE and not abroad_continued:
        raise Conflict(f"the resident record is {resident.status.value}")
    if kind is CaKind.SIGN and not may_hold_sign_certificate(resident.facts.birth_date, local_date(now)):
        raise Conflict("no signing certificate before the 15th birthday")
    if card.card_valid_until is None:
        raise Conflict("the card has no validity recorded")
    spki = _spki_sha256(key)
    latest = _latest_by_card(conn, [card_id])
    previous = latest.get((card_id, kind.value))
    if previous is not None and previous.spki_sha256 == spki:
        if previous.status != "good":
            raise Conflict("this key's certificate was revoked; the chip must generate a new key")
        row = conn.execute(_views_query().where(jpki_certificates.c.id == previous.id)).one()
        return CertificateRecord(_view(row), previous.der)
    cas = _ensure(ctx, conn, now, principal)
    auth = latest.get((card_id, CaKind.AUTH.value))
    auth_until = auth.not_after if (kind is CaKind.SIGN and auth is not None and auth.status == "good") else None
    not_after = certificate_not_after(
        birth_date=resident.facts.birth_date, issued_at=now, card_valid_until=card.card_valid_until,
        ca_not_after=cas[kind].not_after,
        previous_not_after=previous.not_after if previous is not None else None, auth_not_after=auth_until)
    if not_after <= now:
        raise Conflict("the card or the authentication certificate has expired")
    draft = _Draft(kind, cas[kind], key, spki, 0, resident, card_id, card.card_serial,
                   resident.municipality_code, not_after,
                   cards.facts_digest(resident.facts) if kind is CaKind.SIGN else None, previous, "W")
    _sign_drafts(ctx, conn, [draft], now)
    if previous is not None and previous.status == "good":
        _revoke(ctx, conn, [previous.id], RevocationReason.SUPERSEDED, now, principal.subject,
                "renewed at the window (更新)")
    (new_id,) = _store_drafts(conn, [draft], principal.subject, now, "issued at the window", want_ids=True)
    if previous is not None:
        _notify_reissue(conn, previous.id, new_id, now)
    row = conn.execute(_views_query().where(jpki_certificates.c.id == new_id)).one()
    return CertificateRecord(_view(row), draft.der)


def reissue_sign_certificate(ctx: Context, principal: Principal, old_serial: int, new_public_key_spki_der: bytes,
                             holder: CardHolder | None, now: datetime,
                             conn: Connection | None = None) -> CertificateRecord:
    """A new signing certificate (署名用電子証明書) at the window in place of ``old_serial`` — typically after
    an address or name change revoked the old one (affiliationChanged) — from the key the chip just
    generated (SubjectPublicKeyInfo DER). Lineage old → new is recorded (``replaces_id``, :func:`lineage`),
    a still-good old certificate is revoked as superseded, and subscribed platform operators are notified.

    The certificate carries the registry's basic four facts (基本4情報). ``holder`` is what the window has
    just endorsed on the card (追記); when given, its facts must equal the registry's and its card must be
    the old certificate's, otherwise :class:`Conflict` and nothing is issued. A retry with the same key
    returns the same certificate; a second replacement of an already replaced certificate is refused.
    Clerks of the holder's municipality, supervisors, operators and system jobs only. Pass ``conn`` to
    issue inside the caller's transaction.
    """
    principal.require(*_WINDOW)
    old = certificate_by_serial(ctx, principal, old_serial).view
    if old.kind is not CaKind.SIGN:
        raise InvalidInput("not a signing certificate")
    card_id = old.card_id
    if card_id is None:
        raise Conflict("the certificate is not on a card known here")
    card, resident = _card_for_window(ctx, principal, card_id, conn)
    if holder is not None:
        if holder.card_id is not None and holder.card_id != card_id:
            raise Conflict("the holder's card is not the card of this certificate")
        if holder.facts != resident.facts:
            raise Conflict("the facts on the card differ from the resident registry; record the change first")
    key = _card_key(new_public_key_spki_der, "new signing")

    def run(c: Connection) -> CertificateRecord:
        latest = _latest_by_card(c, [card_id])[(card_id, CaKind.SIGN.value)]
        if latest.id != old.id:
            retry = latest.replaces_id == old.id and latest.spki_sha256 == _spki_sha256(key)
            if not retry:
                raise Conflict(f"certificate {old.serial_hex} was already replaced by {latest.serial:X}")
        return _reissue(ctx, principal, c, card, resident, CaKind.SIGN, new_public_key_spki_der, now)

    if conn is not None:
        return run(conn)
    with ctx.transaction() as tx:
        return run(tx.conn)


class WindowIssuer:
    """The :class:`~mynacard.cards.personalisation.CertificateIssuer` of a municipal window: new certificates
    for a card in use from keys its chip just generated (e.g. ``chip.issuance.IssuerTerminal.
    replace_sign_certificate`` after an address change), each linked to its predecessor (old → new).

    ``holder.card_id`` names the card; ``holder.facts`` (what the window endorsed on the card) must equal the
    registry's, otherwise :class:`Conflict` and nothing is issued. A retry with the same key returns the same
    certificate; a new key after a failed chip write supersedes the orphan (revoked ``superseded``), so a card
    never keeps two good certificates of one kind. Pass ``conn`` to issue inside the caller's transaction.
    """

    def __init__(self, ctx: Context, principal: Principal, conn: Connection | None = None) -> None:
        principal.require(*_WINDOW)
        self.ctx = ctx
        self.principal = principal
        self.conn = conn

    def issue(self, holder: CardHolder, auth_public_key: bytes | None, sign_public_key: bytes | None,
              now: datetime) -> IssuedCertificates:
        if holder.card_id is None:
            raise InvalidInput("the window issues for a card in use: card_id is needed")
        if auth_public_key is None and sign_public_key is None:
            raise InvalidInput("no public key to certify")
        if self.conn is not None:
            return self._issue(self.conn, holder, holder.card_id, auth_public_key, sign_public_key, now)
        with self.ctx.transaction() as tx:
            return self._issue(tx.conn, holder, holder.card_id, auth_public_key, sign_public_key, now)

    def _issue(self, conn: Connection, holder: CardHolder, card_id: int, auth_public_key: bytes | None,
               sign_public_key: bytes | None, now: datetime) -> IssuedCertificates:
        card, resident = _card_for_window(self.ctx, self.principal, card_id, conn)
        if holder.facts != resident.facts:
            raise Conflict("the facts on the card differ from the resident registry; record the change first")
        out: dict[CaKind, bytes] = {}
        for kind, key in ((CaKind.AUTH, auth_public_key), (CaKind.SIGN, sign_public_key)):
            if key is not None:
                out[kind] = _reissue(self.ctx, self.principal, conn, card, resident, kind, key, now).der
        cas = _ensure(self.ctx, conn, now, self.principal)
        return IssuedCertificates(auth_certificate=out.get(CaKind.AUTH), auth_ca_certificate=cas[CaKind.AUTH].der,
                                  sign_certificate=out.get(CaKind.SIGN), sign_ca_certificate=cas[CaKind.SIGN].der)


def record_handover(ctx: Context, principal: Principal, card_id: int, now: datetime,
                    conn: Connection | None = None) -> list[CertificateView]:
    """Record in each good certificate's history that its card was handed to the holder (交付).

    The real JPKI has no activation step: the certificates are issued at manufacture and are ``good`` from
    then on (the card's PINs, set by the holder at the window, are what guard the keys; a card destroyed
    before handover has its certificates revoked as ``unspecified``, 交付前に破棄). So this changes no
    status, no CRL and no OCSP answer: it only appends a history event, once (a retry adds nothing).
    """
    card, _resident = _card_for_window(ctx, principal, card_id)

    def run(c: Connection) -> list[CertificateView]:
        rows = c.execute(_views_query().where(jpki_certificates.c.card_id == card.id,
                                              jpki_certificates.c.status == CertificateStatus.GOOD.value)
                         .order_by(jpki_certificates.c.id)).all()
        ids = [r.id for r in rows]
        done = set(c.execute(select(jpki_certificate_events.c.certificate_id).where(
            jpki_certificate_events.c.certificate_id.in_(ids),
            jpki_certificate_events.c.detail == _HANDOVER)).scalars()) if ids else set()
        todo = [i for i in ids if i not in done]
        if todo:
            c.execute(insert(jpki_certificate_events), [
                {"certificate_id": i, "from_status": CertificateStatus.GOOD.value,
                 "to_status": CertificateStatus.GOOD.value, "reason": None, "actor": principal.subject,
                 "at": now, "detail": _HANDOVER} for i in todo])
        return [_view(r) for r in rows]

    if conn is not None:
        return run(conn)
    with ctx.transaction() as tx:
        return run(tx.conn)


_HANDOVER = "handed over with the card (交付)"


# --- revocation ------------------------------------------------------------------------------------------

def _lock_authority(conn: Connection, authority_id: int) -> Any:
    query = select(jpki_authorities).where(jpki_authorities.c.id == authority_id)
    if conn.dialect.name == "postgresql":
        query = query.with_for_update()
    return conn.execute(query).one()


def _revoke(ctx: Context | None, conn: Connection, certificate_ids: Sequence[int], reason: RevocationReason,
            now: datetime, actor: str, detail: str, presign: bool = True) -> list[int]:
    """Revoke the good ones among ``certificate_ids``; returns those revoked now.

    Per CA, under the CA row's lock: number the revocation, stamp the CRL number it comes after, store the
    pre-encoded CRL entry and the event, drop stale OCSP responses (and, with a context, sign the revoked
    ones at once), and notify subscribed platform operators.
    """
    if not certificate_ids:
        return []
    rows: list[Any] = []
    ids = list(dict.fromkeys(certificate_ids))
    for i in range(0, len(ids), 5000):
        rows.extend(conn.execute(select(jpki_certificates.c.id, jpki_certificates.c.authority_id,
                                        jpki_certificates.c.serial, jpki_certificates.c.status)
                                 .where(jpki_certificates.c.id.in_(ids[i:i + 5000]))))
    by_authority: dict[int, list[Any]] = defaultdict(list)
    for row in rows:
        by_authority[row.authority_id].append(row)
    revoked: list[int] = []
    moment = now.replace(microsecond=0)
    for authority_id in sorted(by_authority):
        ca = _lock_authority(conn, authority_id)
        query = select(jpki_certificates.c.id, jpki_certificates.c.serial).where(
            jpki_certificates.c.id.in_([r.id for r in by_authority[authority_id]]),
            jpki_certificates.c.status == CertificateStatus.GOOD.value).order_by(jpki_certificates.c.id)
        if conn.dialect.name == "postgresql":
            query = query.with_for_update()
        good = conn.execute(query).all()
        counter = ca.revocation_counter
        for row in good:
            counter += 1
            conn.execute(update(jpki_certificates).where(jpki_certificates.c.id == row.id).values(
                status=CertificateStatus.REVOKED.value, revoked_at=moment, revocation_reason=reason.value,
                revocation_no=counter, crl_after=ca.last_crl_number,
                crl_entry=crl_codec.encode_entry(row.serial, moment, reason)))
        if good:
            conn.execute(update(jpki_authorities).where(jpki_authorities.c.id == authority_id)
                         .values(revocation_counter=counter))
            done = [r.id for r in good]
            conn.execute(insert(jpki_certificate_events), [
                {"certificate_id": cid, "from_status": "good", "to_status": "revoked", "reason": reason.value,
                 "actor": actor, "at": now, "detail": detail} for cid in done])
            conn.execute(delete(jpki_ocsp_responses).where(jpki_ocsp_responses.c.certificate_id.in_(done)))
            _notify_revocation(conn, done, reason, now)
            revoked.extend(done)
    if presign and ctx is not None and revoked:
        settings = jpki_settings()
        for cid in revoked:
            for algorithm in ("sha1", "sha256"):
                _presign(ctx, conn, cid, algorithm, now, settings)
    return revoked


def _notify_revocation(conn: Connection, certificate_ids: list[int], reason: RevocationReason,
                       now: datetime) -> None:
    subs = conn.execute(select(jpki_subscriptions.c.verifier_id, jpki_subscriptions.c.certificate_id).where(
        jpki_subscriptions.c.certificate_id.in_(certificate_ids))).all()
    if subs:
        conn.execute(insert(jpki_notifications), [
            {"verifier_id": s.verifier_id, "certificate_id": s.certificate_id, "event": "revoked",
             "reason": reason.value, "new_certificate_id": None, "created_at": now, "acknowledged_at": None}
            for s in subs])


def _notify_reissue(conn: Connection, old_id: int, new_id: int, now: datetime) -> None:
    """Subscribers of the predecessor learn where the new certificate is (現況確認) and follow it."""
    verifiers = list(conn.execute(select(jpki_subscriptions.c.verifier_id).where(
        jpki_subscriptions.c.certificate_id == old_id)).scalars())
    if verifiers:
        conn.execute(insert(jpki_notifications), [
            {"verifier_id": v, "certificate_id": old_id, "event": "reissued", "reason": None,
             "new_certificate_id": new_id, "created_at": now, "acknowledged_at": None} for v in verifiers])
        conn.execute(insert(jpki_subscriptions), [
            {"verifier_id": v, "certificate_id": new_id, "created_at": now} for v in verifiers])


def _scoped_certificate(ctx: Context, principal: Principal, conn: Connection, serial: int) -> Any:
    row = conn.execute(_views_query().where(jpki_certificates.c.serial == serial)).first()
    if row is None or not _may_see(principal, conn, row):
        raise NotFound("no such certificate")
    return row


def revoke_certificate(ctx: Context, principal: Principal, serial: int, reason: RevocationReason | str,
                       now: datetime, detail: str | None = None) -> CertificateView:
    """Revoke one certificate (the operator's command, or a clerk for a resident of their town).

    Revoking a revoked certificate changes nothing and returns it as it is.
    """
    principal.require(*_WINDOW)
    try:
        reason = RevocationReason.parse(reason) if isinstance(reason, str) else reason
    except ValueError as exc:
        raise InvalidInput(str(exc)) from None
    with ctx.transaction() as tx:
        row = _scoped_certificate(ctx, principal, tx.conn, serial)
        _revoke(ctx, tx.conn, [row.id], reason, now, principal.subject, detail or "revoked on request")
        return _view(tx.conn.execute(_views_query().where(jpki_certificates.c.id == row.id)).one())


def _revoke_card(ctx: Context, principal: Principal, card_id: int, reason: RevocationReason, now: datetime,
                 detail: str, kinds: Iterable[CaKind] = tuple(CaKind),
                 conn: Connection | None = None) -> list[CertificateView]:
    wanted = [k.value for k in kinds]

    def run(c: Connection) -> list[CertificateView]:
        rows = c.execute(_views_query().where(jpki_certificates.c.card_id == card_id)).all()
        if not rows or not _may_see(principal, c, rows[-1]):
            raise NotFound("no certificates for this card")
        targets = [r.id for r in rows if r.kind in wanted and r.status == CertificateStatus.GOOD.value]
        done = set(_revoke(ctx, c, targets, reason, now, principal.subject, detail))
        return [_view(r) for r in c.execute(_views_query().where(jpki_certificates.c.id.in_(done))
                                            .order_by(jpki_certificates.c.id))]

    if conn is not None:
        return run(conn)
    with ctx.transaction() as tx:
        return run(tx.conn)


def hold_card_certificates(ctx: Context, principal: Principal, card_id: int, now: datetime,
                           conn: Connection | None = None) -> list[CertificateView]:
    """A card reported lost or suspended (一時利用停止, by phone at any hour): both certificates are put on
    hold (一時保留, certificateHold). J-LIS never releases a hold: new certificates are issued instead.
    Pass ``conn`` to revoke inside the caller's transaction."""
    principal.require(*_WINDOW)
    return _revoke_card(ctx, principal, card_id, RevocationReason.CERTIFICATE_HOLD, now,
                        "card lost or suspended (一時保留)", conn=conn)


def abolish_card_certificates(ctx: Context, principal: Principal, card_id: int, now: datetime,
                              conn: Connection | None = None) -> list[CertificateView]:
    """The card was abolished (返納, 破損, 期限切れ …): its certificates are revoked (cessationOfOperation).
    Pass ``conn`` to revoke inside the caller's transaction."""
    principal.require(*_WINDOW)
    return _revoke_card(ctx, principal, card_id, RevocationReason.CESSATION_OF_OPERATION, now,
                        "card abolished (廃止)", conn=conn)


def revoke_at_holder_request(ctx: Context, principal: Principal, card_id: int, now: datetime,
                             kinds: Iterable[CaKind] = tuple(CaKind),
                             key_compromise: bool = False, conn: Connection | None = None) -> list[CertificateView]:
    """The holder asks for revocation (失効申請) — or reports that a key may be known to others
    (秘密鍵の漏えい等の届出, keyCompromise). The holder themselves (online) or a clerk at the window."""
    if principal.role is not Role.RESIDENT:
        principal.require(*_WINDOW)
    reason = RevocationReason.KEY_COMPROMISE if key_compromise else RevocationReason.CESSATION_OF_OPERATION
    return _revoke_card(ctx, principal, card_id, reason, now, "the holder's request (失効申請)", kinds, conn)


def revoke_for_life_event(conn: Connection, kind: str, payload: dict[str, Any], now: datetime) -> list[int]:
    """The reaction to a registry life event (subscribed in :mod:`mynacard.bootstrap`): revoke what
    :func:`~mynacard.jpki.model.revocations_for_life_event` says. Runs in the bus delivery's transaction;
    the OCSP responders sign the revoked responses when they see the revocation."""
    plan = revocations_for_life_event(kind, payload)
    if not plan:
        return []
    resident_id = int(payload["resident_id"])
    revoked: list[int] = []
    for ca_kind, reason in plan.items():
        ids = list(conn.execute(select(jpki_certificates.c.id).where(
            jpki_certificates.c.resident_id == resident_id, jpki_certificates.c.kind == ca_kind.value,
            jpki_certificates.c.status == CertificateStatus.GOOD.value)).scalars())
        revoked += _revoke(None, conn, ids, reason, now, "registry",
                           f"{kind.removeprefix('registry.')} (異動等失効)", presign=False)
    return revoked


def revocations_since(ctx: Context, counters: dict[int, int]) -> tuple[dict[int, int], list[tuple[int, int]]]:
    """For OCSP responder caches: the CAs' current revocation counters, and (authority id, serial) of every
    certificate revoked after the given counters (exact: counters advance in commit order)."""
    changed: list[tuple[int, int]] = []
    with ctx.db.connect() as conn:
        now_counters = dict(conn.execute(select(jpki_authorities.c.id, jpki_authorities.c.revocation_counter)).all())
        for authority_id, counter in now_counters.items():
            before = counters.get(authority_id, counter)
            if counter > before:
                changed += [(authority_id, s) for s in conn.execute(select(jpki_certificates.c.serial).where(
                    jpki_certificates.c.authority_id == authority_id,
                    jpki_certificates.c.revocation_no > before,
                    jpki_certificates.c.revocation_no <= counter)).scalars()]
    return now_counters, changed


# --- OCSP responses (pre-signed per certificate) ---------------------------------------------------------

def _hashes(authority: Authority, algorithm: str) -> tuple[bytes, bytes]:
    if algorithm == "sha1":
        return bytes.fromhex(authority.name_sha1), bytes.fromhex(authority.key_sha1)
    if algorithm == "sha256":
        return bytes.fromhex(authority.name_sha256), bytes.fromhex(authority.key_sha256)
    raise ValueError(f"no pre-signed responses for {algorithm}")


def sign_ocsp_response(ctx: Context, authority: Authority, statuses: Sequence[ocsp.SingleStatus], now: datetime,
                       nonce: bytes | None = None, conn: Connection | None = None) -> bytes:
    """A signed OCSP response from the generation's delegated responder."""
    responder = ocsp_signer(ctx, authority, now, conn)
    return ocsp.build_response(statuses, produced_at=now, responder_key_hash=responder.key_hash,
                               responder_cert_der=responder.certificate_der, signer=responder.signer, nonce=nonce)


def single_status(row: Any, cert_id_der: bytes, now: datetime, lifetime: timedelta) -> ocsp.SingleStatus:
    """What the responder says about a certificate row (``None`` row → unknown)."""
    if row is None:
        return ocsp.SingleStatus(cert_id_der, "unknown", now, None)
    if row.status == CertificateStatus.REVOKED.value:
        return ocsp.SingleStatus(cert_id_der, "revoked", now, now + lifetime, row.revoked_at,
                                 RevocationReason(row.revocation_reason))
    return ocsp.SingleStatus(cert_id_der, "good", now, now + lifetime)


def _presign(ctx: Context, conn: Connection, certificate_id: int, algorithm: str, now: datetime,
             settings: JpkiSettings) -> tuple[bytes, Any] | None:
    """Sign and store the response for one certificate (inside ``conn``'s transaction)."""
    row = conn.execute(select(jpki_certificates.c.id, jpki_certificates.c.serial, jpki_certificates.c.status,
                              jpki_certificates.c.revoked_at, jpki_certificates.c.revocation_reason,
                              jpki_certificates.c.authority_id).where(
        jpki_certificates.c.id == certificate_id)).first()
    if row is None:
        return None
    authority = _authority(conn.execute(select(jpki_authorities).where(
        jpki_authorities.c.id == row.authority_id)).one())
    name_hash, key_hash = _hashes(authority, algorithm)
    moment = now.replace(microsecond=0)
    status = single_status(row, ocsp.cert_id(algorithm, name_hash, key_hash, row.serial), moment,
                           settings.ocsp_lifetime)
    der = sign_ocsp_response(ctx, authority, [status], moment, conn=conn)
    conn.execute(delete(jpki_ocsp_responses).where(jpki_ocsp_responses.c.certificate_id == certificate_id,
                                                   jpki_ocsp_responses.c.hash_algorithm == algorithm))
    conn.execute(insert(jpki_ocsp_responses).values(
        certificate_id=certificate_id, hash_algorithm=algorithm, status=row.status, der=der,
        this_update=moment, next_update=moment + settings.ocsp_lifetime))
    return der, row


@dataclass(frozen=True)
class PresignedResponse:
    """A stored response and the certificate facts the responder's cache keeps beside it."""

    der: bytes
    certificate_id: int
    status: str
    this_update: datetime
    next_update: datetime
    revoked_at: datetime | None
    reason: RevocationReason | None


def presigned_response(ctx: Context, authority: Authority, serial: int, algorithm: str,
                       now: datetime) -> PresignedResponse | None:
    """The pre-signed response for one certificate, signing (and storing) a new one when there is none or
    half its lifetime has passed. None for a serial this CA generation never issued."""
    settings = jpki_settings()
    columns = (jpki_certificates.c.id, jpki_certificates.c.status, jpki_certificates.c.revoked_at,
               jpki_certificates.c.revocation_reason)
    with ctx.db.connect() as conn:
        row = conn.execute(select(*columns, jpki_ocsp_responses.c.der, jpki_ocsp_responses.c.status.label("rs"),
                                  jpki_ocsp_responses.c.this_update, jpki_ocsp_responses.c.next_update)
                           .select_from(jpki_certificates.outerjoin(jpki_ocsp_responses, (
                               jpki_ocsp_responses.c.certificate_id == jpki_certificates.c.id)
                               & (jpki_ocsp_responses.c.hash_algorithm == algorithm)))
                           .where(jpki_certificates.c.authority_id == authority.id,
                                  jpki_certificates.c.serial == serial)).first()
    if row is None:
        return None
    half = settings.ocsp_lifetime / 2
    if row.der is not None and row.rs == row.status and now < row.this_update + half:
        return PresignedResponse(row.der, row.id, row.status, row.this_update, row.next_update, row.revoked_at,
                                 RevocationReason(row.revocation_reason) if row.revocation_reason else None)
    with ctx.db.begin() as conn:
        lock = select(*columns).where(jpki_certificates.c.id == row.id)
        if conn.dialect.name == "postgresql":
            lock = lock.with_for_update()
        conn.execute(lock).one()  # serialise with a revocation of this certificate
        made = _presign(ctx, conn, row.id, algorithm, now, settings)
    assert made is not None
    der, current = made
    moment = now.replace(microsecond=0)
    return PresignedResponse(der, row.id, current.status, moment, moment + settings.ocsp_lifetime,
                             current.revoked_at,
                             RevocationReason(current.revocation_reason) if current.revocation_reason else None)


def certificate_status_row(ctx: Context, authority: Authority, serial: int) -> Any:
    """(id, serial, status, revoked_at, revocation_reason) of a certificate of this generation, or None."""
    with ctx.db.connect() as conn:
        return conn.execute(select(jpki_certificates.c.id, jpki_certificates.c.serial, jpki_certificates.c.status,
                                   jpki_certificates.c.revoked_at, jpki_certificates.c.revocation_reason)
                            .where(jpki_certificates.c.authority_id == authority.id,
                                   jpki_certificates.c.serial == serial)).first()


def refresh_ocsp_responses(ctx: Context, principal: Principal, now: datetime, limit: int = 10000) -> int:
    """Pre-sign responses (SHA-1 CertIDs, what most clients send) for good certificates that have none or
    whose response passed half its lifetime — the scheduled job that keeps the responders' answers warm."""
    principal.require(*_OPERATORS)
    settings = jpki_settings()
    stale_before = now - settings.ocsp_lifetime / 2
    with ctx.db.connect() as conn:
        ids = list(conn.execute(
            select(jpki_certificates.c.id).select_from(jpki_certificates.outerjoin(jpki_ocsp_responses, (
                jpki_ocsp_responses.c.certificate_id == jpki_certificates.c.id)
                & (jpki_ocsp_responses.c.hash_algorithm == "sha1")))
            .where(jpki_certificates.c.not_after > now,
                   (jpki_ocsp_responses.c.der.is_(None)) | (jpki_ocsp_responses.c.this_update < stale_before))
            .order_by(jpki_certificates.c.id).limit(limit)).scalars())
    for i in range(0, len(ids), 500):
        with ctx.db.begin() as conn:
            for cid in ids[i:i + 500]:
                _presign(ctx, conn, cid, "sha1", now, settings)
    return len(ids)


# --- CRLs ----------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class CrlInfo:
    """A published CRL."""

    kind: CaKind
    generation: int
    number: int
    is_delta: bool
    base_number: int | None
    this_update: datetime
    next_update: datetime
    entry_count: int
    der: bytes = field(repr=False)


def _generate_crl(ctx: Context, conn: Connection, authority_id: int, delta: bool, now: datetime,
                  settings: JpkiSettings) -> CrlInfo:
    ca = _authority(_lock_authority(conn, authority_id))
    if delta and ca.last_full_crl_number == 0:
        raise Conflict("a delta CRL needs a full CRL first")
    number = ca.last_crl_number + 1
    this_update = now.replace(microsecond=0)
    next_update = (settings.crl.delta_next_update if delta else settings.crl.full_next_update)(this_update)
    query = select(jpki_certificates.c.crl_entry).where(
        jpki_certificates.c.authority_id == authority_id,
        jpki_certificates.c.status == CertificateStatus.REVOKED.value,
        jpki_certificates.c.not_after > this_update)  # expired certificates leave the CRL (RFC 5280 §3.3)
    if delta:
        query = query.where(jpki_certificates.c.crl_after >= ca.last_full_crl_number)
    entries = list(conn.execute(query.order_by(jpki_certificates.c.serial)).scalars())
    urls = ca.urls(settings)
    der = crl_codec.build_crl(
        issuer_der=ca.certificate.subject.public_bytes(), authority_key_id=bytes.fromhex(ca.subject_key_id),
        number=number, this_update=this_update, next_update=next_update, entries=entries,
        signer=_ca_signer(ctx, conn, ca), delta_base=ca.last_full_crl_number if delta else None,
        freshest_crl_url=None if delta else urls.delta_crl)
    conn.execute(insert(jpki_crls).values(
        authority_id=authority_id, number=number, is_delta=delta,
        base_number=ca.last_full_crl_number if delta else None, this_update=this_update, next_update=next_update,
        entry_count=len(entries), der=der))
    values: dict[str, int] = {"last_crl_number": number}
    if not delta:
        values["last_full_crl_number"] = number
        keep = conn.execute(select(jpki_crls.c.number).where(
            jpki_crls.c.authority_id == authority_id, jpki_crls.c.is_delta.is_(False))
            .order_by(jpki_crls.c.number.desc()).limit(_KEEP_FULL_CRLS)).scalars().all()
        conn.execute(delete(jpki_crls).where(jpki_crls.c.authority_id == authority_id,
                                             jpki_crls.c.number < min(keep)))
    conn.execute(update(jpki_authorities).where(jpki_authorities.c.id == authority_id).values(**values))
    return CrlInfo(ca.kind, ca.generation, number, delta, ca.last_full_crl_number if delta else None, this_update,
                   next_update, len(entries), der)


def _latest_crl(conn: Connection, authority_id: int, delta: bool) -> Any:
    return conn.execute(select(jpki_crls).where(jpki_crls.c.authority_id == authority_id,
                                                jpki_crls.c.is_delta.is_(delta))
                        .order_by(jpki_crls.c.number.desc()).limit(1)).first()


def _crl_info(row: Any, authority: Authority) -> CrlInfo:
    return CrlInfo(authority.kind, authority.generation, row.number, row.is_delta, row.base_number, row.this_update,
                   row.next_update, row.entry_count, row.der)


def publish_crls(ctx: Context, principal: Principal, now: datetime, *, force: bool = False,
                 kinds: Iterable[CaKind] = tuple(CaKind), delta_only: bool = False,
                 create: bool = False) -> list[CrlInfo]:
    """The scheduled job: a new full CRL per CA generation when the last one is due, a new delta when the
    last delta (or the full it would follow) is due; ``force`` publishes both now. Generations whose root
    has expired publish nothing, and nothing is published before the CAs exist (with ``create``, the operator's
    own act, they are made first). Returns what was published."""
    principal.require(*_OPERATORS)
    settings = jpki_settings()
    if create:  # only the operator's command line asks for it; the web never does
        ensure_authorities(ctx, principal, now)
    out: list[CrlInfo] = []
    wanted = {k for k in kinds}
    for authority in authorities(ctx):
        if authority.kind not in wanted or authority.not_after <= now:
            continue
        with ctx.transaction() as tx:
            conn = tx.conn
            _lock_authority(conn, authority.id)
            full = _latest_crl(conn, authority.id, False)
            if full is None or (not delta_only and (force or settings.crl.due(full.next_update, now))):
                out.append(_generate_crl(ctx, conn, authority.id, False, now, settings))
                continue
            last_delta = _latest_crl(conn, authority.id, True)
            if force or last_delta is None or last_delta.base_number != full.number or settings.crl.due(
                    last_delta.next_update, now):
                out.append(_generate_crl(ctx, conn, authority.id, True, now, settings))
    return out


def current_crl(ctx: Context, kind: CaKind, delta: bool, now: datetime, generation: int | None = None) -> CrlInfo:
    """The CRL to serve at a stable URL: the latest of its kind, published first if it is due (so the file
    behind the URL is never stale even if no scheduler runs)."""
    settings = jpki_settings()
    authority = current_authority(ctx, kind, now, generation)
    with ctx.db.connect() as conn:
        full = _latest_crl(conn, authority.id, False)
        row = _latest_crl(conn, authority.id, True) if delta else full
    stale = (row is None or settings.crl.due(row.next_update, now)
             or (delta and full is not None and row.base_number != full.number))
    if not stale:
        return _crl_info(row, authority)
    if authority.not_after <= now:
        raise NotFound(f"the {kind.value} CA generation {authority.generation} has expired")
    with ctx.transaction() as tx:
        conn = tx.conn
        _lock_authority(conn, authority.id)
        full = _latest_crl(conn, authority.id, False)
        if full is None or settings.crl.due(full.next_update, now):
            made = _generate_crl(ctx, conn, authority.id, False, now, settings)
            full = _latest_crl(conn, authority.id, False)
            if not delta:
                return made
        if not delta:
            return _crl_info(full, authority)
        last = _latest_crl(conn, authority.id, True)
        if last is None or last.base_number != full.number or settings.crl.due(last.next_update, now):
            return _generate_crl(ctx, conn, authority.id, True, now, settings)
        return _crl_info(last, authority)


def crl_numbers(ctx: Context, kind: CaKind) -> list[tuple[int, bool]]:
    """(number, is_delta) of the CRLs kept for the current generation, in order (for checks and pages)."""
    with ctx.db.connect() as conn:
        current = _current(_load_authorities(conn), kind)
        if current is None:
            return []
        return [(n, d) for n, d in conn.execute(select(jpki_crls.c.number, jpki_crls.c.is_delta).where(
            jpki_crls.c.authority_id == current.id).order_by(jpki_crls.c.number))]


def statistics(ctx: Context) -> dict[str, dict[str, int]]:
    """Certificates by CA kind and status (aggregates only: public)."""
    out: dict[str, dict[str, int]] = {k.value: {"good": 0, "revoked": 0} for k in CaKind}
    with ctx.db.connect() as conn:
        for kind, status, n in conn.execute(select(jpki_certificates.c.kind, jpki_certificates.c.status,
                                                   func.count()).group_by(jpki_certificates.c.kind,
                                                                          jpki_certificates.c.status)):
            out[kind][status] = n
    return out


def certificate_events(ctx: Context, principal: Principal, serial: int) -> list[dict[str, Any]]:
    """The append-only history of a certificate (issued, revoked …)."""
    record = certificate_by_serial(ctx, principal, serial)
    with ctx.db.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(
            select(jpki_certificate_events.c.from_status, jpki_certificate_events.c.to_status,
                   jpki_certificate_events.c.reason, jpki_certificate_events.c.actor, jpki_certificate_events.c.at,
                   jpki_certificate_events.c.detail)
            .where(jpki_certificate_events.c.certificate_id == record.view.id).order_by(jpki_certificate_events.c.id))]

