"""The two JPKI certificate authorities (署名用 / 利用者証明用認証局) as generations: their keys (sealed or in a
PKCS#11 token, opened once per process), roots, rollover with link certificates, and each generation's
delegated OCSP responder key. Creating them is the operator's act (``mynacard jpki init``)."""

from __future__ import annotations

import hashlib
import secrets
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import cached_property
from typing import Any

from asn1crypto import keys as asn1_keys
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from sqlalchemy import Connection, insert, select, text, update

from mynacard.context import Context, Transaction
from mynacard.errors import Conflict, NotFound
from mynacard.jpki import keys, profiles
from mynacard.jpki.config import JpkiSettings, settings_of
from mynacard.jpki.model import OPERATOR_ROLES, CaKind, root_not_after
from mynacard.jpki.tables import jpki_authorities, jpki_link_certificates, jpki_ocsp_signers
from mynacard.principal import Principal
from mynacard.sealing import Sealer

_OCSP_SIGNER_DAYS = 365
_OCSP_SIGNER_RENEW = timedelta(days=30)


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


def authority_from_row(row: Any) -> Authority:
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


def ca_signer(ctx: Context, conn: Connection | None, authority: Authority) -> keys.Signer:
    """The CA's signer, opened once per process (the sealed key is decrypted only here)."""
    cache_key = (str(ctx.db.url), authority.key_label, authority.key_sha1)
    with _SIGNERS_LOCK:
        signer = _SIGNERS.get(cache_key)
    if signer is not None:
        return signer
    if authority.key_store == "pkcs11":
        config = settings_of(ctx).pkcs11
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


def new_serial() -> int:
    """A positive serial with 62 bits of entropy (RFC 5280: at most 20 octets; fits a signed BIGINT)."""
    return secrets.randbits(62) | (1 << 62)


def load_authorities(conn: Connection) -> list[Authority]:
    return [authority_from_row(r) for r in conn.execute(
        select(jpki_authorities).order_by(jpki_authorities.c.kind, jpki_authorities.c.generation))]


def _serialise_writers(conn: Connection) -> None:
    """One CA creation or rollover at a time across processes (SQLite writers are serial already)."""
    if conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(4201004)"))


def _create_generation(ctx: Context, conn: Connection, kind: CaKind, generation: int, now: datetime,
                       principal: Principal) -> Authority:
    settings = settings_of(ctx)
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
        root = profiles.root_certificate(kind, signer, new_serial(), not_before, root_not_after(not_before))
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
    authority = authority_from_row(conn.execute(select(jpki_authorities).where(
        jpki_authorities.c.id == authority_id)).one())
    with _SIGNERS_LOCK:
        _SIGNERS[(str(ctx.db.url), label, authority.key_sha1)] = signer
    _new_ocsp_signer(ctx, conn, authority, now)
    return authority


def current_of(authorities_: Iterable[Authority], kind: CaKind) -> Authority | None:
    candidates = [a for a in authorities_ if a.kind is kind and a.retired_at is None]
    return max(candidates, key=lambda a: a.generation, default=None)


class AuthoritiesMissing(Conflict):
    """The CAs have not been created yet. Creating them is the operator's act (``mynacard jpki init``; a demo
    installation's ``mynacard demo``), never a side effect of a request: the web answers 503 until then."""

    def __init__(self) -> None:
        super().__init__("the JPKI certificate authorities have not been created yet: the operator creates them "
                         "with `mynacard jpki init`")


def issuing_generations(ctx: Context, conn: Connection, now: datetime, principal: Principal, *,
                        create: bool = False) -> dict[CaKind, Authority]:
    """The current generation of both CAs; with ``create`` the missing ones are generated (only the operator's
    :func:`ensure_authorities` and the manufacturer's batch run ask for that), else :class:`AuthoritiesMissing`."""
    found = load_authorities(conn)
    missing = [k for k in CaKind if current_of(found, k) is None]
    if missing and not create:
        raise AuthoritiesMissing()
    if missing:
        _serialise_writers(conn)
        found = load_authorities(conn)
        for kind in CaKind:
            if current_of(found, kind) is None:
                generation = max((a.generation for a in found if a.kind is kind), default=0) + 1
                found.append(_create_generation(ctx, conn, kind, generation, now, principal))
    out = {}
    for kind in CaKind:
        current = current_of(found, kind)
        assert current is not None
        out[kind] = current
    return out


def ensure_authorities(ctx: Context, principal: Principal, now: datetime,
                       tx: Transaction | None = None) -> dict[CaKind, Authority]:
    """The current generation of both CAs, generating the missing ones (keys, roots, OCSP responders): the
    operator's act (``mynacard jpki init``). Nothing a web request reaches calls it."""
    principal.require(*OPERATOR_ROLES)
    if tx is not None:
        return issuing_generations(ctx, tx.conn, now, principal, create=True)
    with ctx.db.connect() as c:
        found = load_authorities(c)
    if all(current_of(found, k) is not None for k in CaKind):
        return {k: a for k in CaKind if (a := current_of(found, k)) is not None}
    with ctx.transaction() as tx:
        return issuing_generations(ctx, tx.conn, now, principal, create=True)


def authorities_exist(ctx: Context) -> bool:
    """Whether both CAs have an issuing generation (``mynacard jpki init`` has been run)."""
    with ctx.db.connect() as conn:
        found = load_authorities(conn)
    return all(current_of(found, k) is not None for k in CaKind)


def authorities(ctx: Context) -> list[Authority]:
    """Every generation of both CAs, oldest first (public information)."""
    with ctx.db.connect() as conn:
        return load_authorities(conn)


def current_authority(ctx: Context, kind: CaKind, now: datetime, generation: int | None = None) -> Authority:
    """The issuing generation of a CA, or a given generation (:class:`AuthoritiesMissing` before
    ``mynacard jpki init``)."""
    found = authorities(ctx)
    if generation is not None:
        found = [a for a in found if a.kind is kind and a.generation == generation]
        if not found:
            raise NotFound(f"no {kind.value} CA generation {generation}")
        return found[0]
    current = current_of(found, kind)
    if current is None:
        raise AuthoritiesMissing()
    return current


def authority_for_key_hash(ctx: Context, algorithm: str, key_hash: bytes) -> Authority | None:
    column = {"sha1": jpki_authorities.c.key_sha1, "sha256": jpki_authorities.c.key_sha256}.get(algorithm)
    if column is None:
        return None
    with ctx.db.connect() as conn:
        row = conn.execute(select(jpki_authorities).where(column == key_hash.hex())).first()
    return None if row is None else authority_from_row(row)


def ca_bundle_pem(ctx: Context, kind: CaKind) -> str:
    """Every generation's root of one CA plus the link certificates between them (PEM)."""
    with ctx.db.connect() as conn:
        roots = [a.pem for a in load_authorities(conn) if a.kind is kind]
        links = [x509.load_der_x509_certificate(d).public_bytes(serialization.Encoding.PEM).decode()
                 for d in conn.execute(select(jpki_link_certificates.c.certificate).where(
                     jpki_link_certificates.c.kind == kind.value).order_by(jpki_link_certificates.c.id)).scalars()]
    return "".join(roots + links)


def rollover(ctx: Context, principal: Principal, kind: CaKind, now: datetime) -> Authority:
    """Start a new generation of a CA (as J-LIS did in 2019 and 2023): a new key and root, link
    certificates both ways, and the old generation retired from issuance. It keeps signing CRLs and OCSP
    responses for the certificates it issued until they have all expired."""
    principal.require(*OPERATOR_ROLES)
    with ctx.transaction() as tx:
        conn = tx.conn
        _serialise_writers(conn)
        old = issuing_generations(ctx, conn, now, principal)[kind]
        new = _create_generation(ctx, conn, kind, old.generation + 1, now, principal)
        conn.execute(update(jpki_authorities).where(jpki_authorities.c.id == old.id).values(retired_at=now))
        old_signer = ca_signer(ctx, conn, old)
        new_signer = ca_signer(ctx, conn, new)
        pairs = [(new, old, old_signer, min(new.not_after, old.not_after)),  # NewWithOld
                 (old, new, new_signer, old.not_after)]                       # OldWithNew
        for subject, issuer, signer, until in pairs:
            subject_key = subject.certificate.public_key()
            assert isinstance(subject_key, rsa.RSAPublicKey)
            link = profiles.link_certificate(kind, subject_key,
                                             signer, issuer.certificate, new_serial(), now.replace(microsecond=0),
                                             until)
            conn.execute(insert(jpki_link_certificates).values(
                kind=kind.value, subject_generation=subject.generation, issuer_generation=issuer.generation,
                certificate=link.public_bytes(serialization.Encoding.DER), created_at=now))
    return new


def lock_authority(conn: Connection, authority_id: int) -> Any:
    query = select(jpki_authorities).where(jpki_authorities.c.id == authority_id)
    if conn.dialect.name == "postgresql":
        query = query.with_for_update()
    return conn.execute(query).one()


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
                                               authority.certificate, ca_signer(ctx, conn, authority),
                                               new_serial(), not_before, not_after)
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
