"""Pension status confirmation (年金の現況確認) for private insurers, through a JPKI platform operator
(プラットフォーム事業者) instead of a paper form.

* **Enrolment**: the annuitant signs their consent (insurer, contract number) with the signing key of the card
  (署名用電子証明書, 6–16 character password) and hands over the authentication certificate. The platform
  operator verifies the signature through the relying-party SDK — which gives it the basic four facts, as a
  signature verifier — subscribes to the signing certificate, and keeps the facts the insurer has on file.
* **Each confirmation run** reads the subscription's notifications:
  ``reissued`` → the new certificate's facts are compared with those on file (``changed`` and which fields,
  or ``confirmed``) and the new certificate is followed; ``revoked`` with no successor → the facts changed
  and the annuitant has not renewed yet: if the authentication certificate is revoked too (death, emigration
  without continued use) the status is ``suspended`` (payments held until the insurer confirms), otherwise
  ``contact`` (the insurer asks the annuitant to renew). No news on a good certificate is ``confirmed``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from cryptography import x509
from sqlalchemy import insert, select, update

from mynacard.context import Context
from mynacard.db import any_of
from mynacard.errors import Conflict, Forbidden, InvalidInput, NotFound
from mynacard.jpki import verifiers
from mynacard.jpki.model import Purpose, SigningFacts, VerifierKind
from mynacard.jpki.profiles import read_signing_facts
from mynacard.jpki.relying_party import RelyingParty
from mynacard.mykey.tables import pension_annuitants
from mynacard.principal import Principal

__all__ = ["Annuitant", "annuitants", "confirm_all", "consent_message", "enrol"]


def consent_message(insurer: str, contract_number: str) -> bytes:
    """What the annuitant signs: consent to the confirmation for this contract."""
    return f"現況確認への同意|{insurer}|{contract_number}".encode()


@dataclass(frozen=True)
class Annuitant:
    insurer: str
    contract_number: str
    name: str
    address: str
    status: str
    """``confirmed``, ``changed``, ``contact`` or ``suspended``."""
    detail: str
    checked_at: datetime


def _platform(ctx: Context, principal: Principal, now: datetime) -> verifiers.Verifier:
    verifier = verifiers.verifier_of(ctx, principal)
    if verifier is None or verifier.kind is not VerifierKind.PLATFORM_OPERATOR:
        raise Forbidden("only a registered platform operator (プラットフォーム事業者) does this")
    return verifier


def enrol(ctx: Context, principal: Principal, insurer: str, contract_number: str, sign_certificate: bytes,
          signature: bytes, auth_certificate: bytes, now: datetime) -> Annuitant:
    """Enrol an annuitant from their signed consent (see the module). Idempotent per insurer and contract."""
    _platform(ctx, principal, now)
    if not (insurer and contract_number and len(insurer) <= 32 and len(contract_number) <= 32):
        raise InvalidInput("an insurer and a contract number of at most 32 characters are needed")
    rp = RelyingParty.for_service(ctx, principal, now)
    signed = rp.verify_signature(consent_message(insurer, contract_number), signature, sign_certificate, now)
    if not signed.valid or signed.signer is None or signed.signer.facts is None:
        raise Forbidden("the consent was not accepted: " + "; ".join(signed.problems or ("no facts",)))
    auth = rp.check_certificate(auth_certificate, Purpose.AUTHENTICATION, now)
    if not auth.valid:
        raise Forbidden("the authentication certificate was not accepted: " + "; ".join(auth.problems))
    facts = signed.signer.facts
    serial = signed.signer.serial
    verifiers.subscribe(ctx, principal, serial, now)
    with ctx.transaction() as tx:
        conn = tx.conn
        existing = conn.execute(select(pension_annuitants.c.sign_serial).where(
            pension_annuitants.c.insurer == insurer,
            pension_annuitants.c.contract_number == contract_number)).scalar()
        if existing is not None and existing != f"{serial:X}":
            raise Conflict("this contract is already enrolled with another certificate")
        if existing is None:
            conn.execute(insert(pension_annuitants).values(
                platform=principal.subject, insurer=insurer, contract_number=contract_number,
                sign_serial=f"{serial:X}", auth_certificate=auth_certificate, name=facts.name,
                address=facts.address, birth_date=facts.birth_date, sex=facts.sex, status="confirmed",
                detail="enrolled", enrolled_at=now, checked_at=now))
    return _one(ctx, insurer, contract_number)


def _one(ctx: Context, insurer: str, contract_number: str) -> Annuitant:
    with ctx.db.connect() as conn:
        row = conn.execute(select(pension_annuitants).where(
            pension_annuitants.c.insurer == insurer,
            pension_annuitants.c.contract_number == contract_number)).first()
    if row is None:
        raise NotFound("no such contract")
    return Annuitant(row.insurer, row.contract_number, row.name, row.address, row.status, row.detail,
                     row.checked_at)


_FIELDS = (("name", "氏名"), ("address", "住所"), ("birth_date", "生年月日"), ("sex", "性別"))


def _changes(row: object, facts: SigningFacts) -> list[str]:
    return [label for field, label in _FIELDS if getattr(row, field) != getattr(facts, field)]


def confirm_all(ctx: Context, principal: Principal, now: datetime) -> list[Annuitant]:
    """The confirmation run (see the module): every notification handled and acknowledged once."""
    _platform(ctx, principal, now)
    rp = RelyingParty.for_service(ctx, principal, now)
    notes = verifiers.notifications(ctx, principal, now, limit=5000)
    revoked: set[str] = set()
    renewed: set[int] = set()
    for note in notes:
        old = f"{note.certificate_serial:X}"
        if note.event == "revoked":
            revoked.add(old)
            continue
        if note.new_certificate_serial is None:
            continue
        record = verifiers.subscribed_certificate(ctx, principal, note.new_certificate_serial, now)
        facts = read_signing_facts(x509.load_der_x509_certificate(record.der))
        if facts is None:
            continue
        with ctx.transaction() as tx:
            conn = tx.conn
            rows = conn.execute(select(pension_annuitants).where(
                pension_annuitants.c.platform == principal.subject, pension_annuitants.c.sign_serial == old)).all()
            for row in rows:
                changed = _changes(row, facts)
                conn.execute(update(pension_annuitants).where(pension_annuitants.c.id == row.id).values(
                    sign_serial=f"{note.new_certificate_serial:X}", name=facts.name, address=facts.address,
                    birth_date=facts.birth_date, sex=facts.sex, status="changed" if changed else "confirmed",
                    detail=("変更: " + "・".join(changed)) if changed else "renewed, facts unchanged",
                    checked_at=now))
                renewed.add(row.id)
        revoked.discard(old)
    verifiers.acknowledge_notifications(ctx, principal, [n.id for n in notes], now)
    with ctx.db.connect() as conn:
        rows = conn.execute(select(pension_annuitants).where(
            pension_annuitants.c.platform == principal.subject)).all()
    outcomes: dict[int, tuple[str, str]] = {}
    for row in rows:
        if row.sign_serial in revoked:
            auth = rp.check_certificate(bytes(row.auth_certificate), Purpose.AUTHENTICATION, now)
            both = auth.revocation is not None and auth.revocation.status == "revoked"
            outcomes[row.id] = (("suspended", "both certificates revoked (death or emigration?): confirm before "
                                 "paying") if both else
                                ("contact", "signing certificate revoked (facts changed): ask the annuitant to "
                                 "renew it"))
        elif row.id not in renewed and row.status not in ("contact", "suspended"):
            outcomes[row.id] = ("confirmed", "no change reported")
        elif row.id not in renewed:
            outcomes[row.id] = (row.status, row.detail)  # still waiting for a renewed certificate
    by_outcome: dict[tuple[str, str], list[int]] = {}
    for row_id, outcome in outcomes.items():  # nearly all "confirmed": one UPDATE per outcome, not per row
        by_outcome.setdefault(outcome, []).append(row_id)
    with ctx.transaction() as tx:
        conn = tx.conn
        for (status, detail), ids in by_outcome.items():
            conn.execute(update(pension_annuitants).where(any_of(pension_annuitants.c.id, ids)).values(
                status=status, detail=detail[:200], checked_at=now))
    return annuitants(ctx, principal, now)


def annuitants(ctx: Context, principal: Principal, now: datetime) -> list[Annuitant]:
    """The platform operator's own annuitants (nobody else's)."""
    _platform(ctx, principal, now)
    with ctx.db.connect() as conn:
        rows = conn.execute(select(pension_annuitants).where(pension_annuitants.c.platform == principal.subject)
                            .order_by(pension_annuitants.c.insurer, pension_annuitants.c.contract_number)).all()
    return [Annuitant(r.insurer, r.contract_number, r.name, r.address, r.status, r.detail, r.checked_at)
            for r in rows]
