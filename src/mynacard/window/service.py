"""Use cases of the municipal issuance window (窓口交付) and of the card in use afterwards.

**Window issuance is a saga with one record per card** (``window_issuances``, keyed by the notice number or
``card-<id>``), so that a crash or a retry at any point leaves either a fully issued card or none:

1. the card goes into the reader (exclusive lock on its card file for the whole saga); the record is
   created with the chip's pre-issuance image (sealed) — or found, when this is a retry;
2. the holder's four PINs are set on the chip through the issuer's APDUs
   (:meth:`~mynacard.chip.issuance.IssuerTerminal.set_initial_pins`; re-doing it is harmless: RESET RETRY
   COUNTER with a new value), each write committed atomically to the card file by the chip;
3. the chip's certificates are checked against the CA's good ones (activation; JPKI issues them at
   manufacture, so the window records which ones it handed over);
4. the old notification card (通知カード) is dealt with;
5. **last**, one transaction moves the card ``notice_sent → issued``, marks the notice collected and closes
   the record. A retry after that returns the same answer and touches nothing.

A record left open (the terminal crashed and the resident left) is rolled back by :func:`cancel_issuance`
or :func:`recover`: the chip gets its pre-issuance image back (written atomically under the card's lock)
and the card keeps waiting. A fault hook called at every step boundary (:data:`model.STEPS`) lets the
tests crash the saga anywhere.

The other acts: suspension by phone at any hour (the J-LIS call centre, role operator), lifting it only in
person at the window with new certificates (J-LIS never releases a hold), loss and reissue, address change
with the endorsement (追記) and a new signing certificate, and PIN reset — each idempotent.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from cryptography import x509
from sqlalchemy import Connection, insert, select, update
from sqlalchemy.exc import IntegrityError

from mynacard.cards import service as cards
from mynacard.cards.model import AbolitionReason, CardState
from mynacard.chip import service as chips
from mynacard.chip.cardfile import CardFile, load_image, open_image, save_image, seal_image
from mynacard.chip.client import CardClient
from mynacard.chip.emulator import Chip
from mynacard.chip.issuance import InitialPins, IssuerTerminal
from mynacard.chip.issuerkey import IssuerMasterKey
from mynacard.chip.model import HOLDER_PINS, Application, KeyKind, PinKind, check_new_pin, check_new_pins
from mynacard.chip.signerkey import card_info_signer
from mynacard.chip.transport import InProcessTransport
from mynacard.context import Context
from mynacard.errors import Conflict, InvalidInput, NotFound
from mynacard.jpki import service as jpki
from mynacard.jpki.model import CaKind
from mynacard.office import service as office
from mynacard.principal import Principal, Role
from mynacard.registry import service as registry
from mynacard.window.model import IdentityCheck, IssuanceStatus, NotificationCard, check_identity
from mynacard.window.tables import window_acts, window_issuances

__all__ = [
    "WINDOW_ROLES",
    "ActResult",
    "FaultHook",
    "IssuanceResult",
    "cancel_issuance",
    "change_address",
    "check_consistency",
    "chip_present",
    "find_card",
    "issuance_of",
    "issue_card",
    "lift_suspension",
    "recover",
    "reissue_after_loss",
    "reset_pin",
    "suspend_by_phone",
    "todays_issuances",
]

FaultHook = Callable[[str], None]
"""Called with each step name of :data:`mynacard.window.model.STEPS` as the saga passes it."""

S = CardState
WINDOW_ROLES = (Role.CLERK, Role.SUPERVISOR, Role.OPERATOR, Role.SYSTEM)
"""Who works the window (the municipalities' staff, and the national operator's call centre and batches): every
window page and API route requires one of these (:func:`mynacard.window.api.window_staff`)."""
_WINDOW = WINDOW_ROLES
_IN_PERSON = (Role.CLERK, Role.SUPERVISOR, Role.SYSTEM)
"""Acts that need the holder at the municipal window (not the call centre)."""
_CALL_CENTRE = (Role.OPERATOR, Role.SYSTEM)


def _no_fault(step: str) -> None:
    return None


@dataclass(frozen=True)
class IssuanceResult:
    """The outcome of a window issuance."""

    card_id: int
    card_serial: str
    idempotency_key: str
    status: IssuanceStatus
    replayed: bool
    """True when the card had already been issued by this record (a retried request)."""
    auth_certificate_serial: str | None
    sign_certificate_serial: str | None


def _result(row: Any, replayed: bool) -> IssuanceResult:
    return IssuanceResult(row.card_id, row.card_serial, row.idempotency_key, IssuanceStatus(row.status), replayed,
                          row.auth_certificate_serial, row.sign_certificate_serial)


def find_card(ctx: Context, principal: Principal, *, notice_number: str | None = None,
              card_id: int | None = None) -> tuple[str, cards.CardView]:
    """The card behind a scanned notice (or a keyed-in card id) and the idempotency key of its issuance;
    another town's card is not found."""
    principal.require(*_WINDOW)
    if notice_number:
        notice = office.card_for_notice(ctx, principal, notice_number)
        return str(notice_number), cards.get_card(ctx, principal, int(notice.card_id))
    if card_id is None:
        raise InvalidInput("scan the notice (交付通知書) or enter the card number")
    card = cards.get_card(ctx, principal, card_id)
    return f"card-{card.id}", card


def _master(ctx: Context) -> IssuerMasterKey:
    return IssuerMasterKey.from_settings(ctx.settings)


@contextmanager
def _reader(ctx: Context, serial: str) -> Iterator[tuple[Chip, IssuerTerminal]]:
    """The card in the window's reader, exclusively (a second terminal waits, then gets 409)."""
    with CardFile(chips.card_path(ctx, serial), ctx.settings.data_key, wait=10.0) as chip:
        yield chip, IssuerTerminal(InProcessTransport(chip), _master(ctx))


def _record_row(conn: Connection, card_id: int, lock: bool = False) -> Any:
    query = select(window_issuances).where(window_issuances.c.card_id == card_id)
    if lock and conn.dialect.name == "postgresql":
        query = query.with_for_update()
    return conn.execute(query).first()


def issuance_of(ctx: Context, principal: Principal, card_id: int) -> IssuanceResult | None:
    """The issuance record of a card (scoped), or None."""
    cards.get_card(ctx, principal, card_id)
    with ctx.db.connect() as conn:
        row = _record_row(conn, card_id)
    return None if row is None else _result(row, False)


def _begin(ctx: Context, principal: Principal, key: str, card: cards.CardView, identity: IdentityCheck,
           notification_card: NotificationCard, chip: Chip, now: datetime) -> Any:
    data_key = ctx.settings.data_key
    values = {"identity": json.dumps(identity.to_record(), ensure_ascii=False),
              "notification_card": notification_card.value, "clerk": principal.subject, "updated_at": now}
    with ctx.transaction() as tx:
        conn = tx.conn
        row = _record_row(conn, card.id, lock=True)
        if row is not None and row.status == IssuanceStatus.ISSUED.value:
            return row
        if card.state is not S.NOTICE_SENT:
            raise Conflict(f"カードは交付待ちではありません (the card is {card.state.value}, not waiting for pickup)")
        if row is None:
            conn.execute(insert(window_issuances).values(
                idempotency_key=key, card_id=card.id, card_serial=card.card_serial,
                municipality_code=card.municipality_code, status=IssuanceStatus.STARTED.value,
                snapshot=seal_image(chip.image, data_key), attempts=1, started_at=now, finished_at=None,
                **values))
        elif row.status == IssuanceStatus.ROLLED_BACK.value:
            conn.execute(update(window_issuances).where(window_issuances.c.id == row.id).values(
                status=IssuanceStatus.STARTED.value, snapshot=seal_image(chip.image, data_key),
                attempts=row.attempts + 1, started_at=now, finished_at=None, idempotency_key=key, **values))
        else:
            conn.execute(update(window_issuances).where(window_issuances.c.id == row.id).values(
                attempts=row.attempts + 1, **values))
        return _record_row(conn, card.id)


def _mark(ctx: Context, record_id: int, status: IssuanceStatus, now: datetime, **values: Any) -> None:
    with ctx.transaction() as tx:
        conn = tx.conn
        done = conn.execute(update(window_issuances).where(
            window_issuances.c.id == record_id,
            window_issuances.c.status.in_([s.value for s in IssuanceStatus if s.open]))
            .values(status=status.value, updated_at=now, **values)).rowcount
    if not done:
        raise Conflict("この交付処理は既に終了しています (the issuance was closed meanwhile)")


def _chip_certificate(chip: Chip, fid: int) -> x509.Certificate | None:
    data = chip.image.file(Application.JPKI, fid)
    return x509.load_der_x509_certificate(data) if data else None


_CERT_FILES = ((CaKind.AUTH, 0x000A), (CaKind.SIGN, 0x0001))
"""The JPKI application's certificate files, by the CA that issues them."""


def _good_serials(ctx: Context, card_id: int) -> dict[str, int]:
    """The card's good certificates at the CA: kind → serial."""
    return {str(v.kind): v.serial for v in jpki.certificates_of_card(ctx, Principal.system("window"), card_id)
            if v.status == "good"}


def _activate(ctx: Context, card: cards.CardView, chip: Chip) -> tuple[str | None, str | None]:
    """The chip's certificates must be the CA's good ones for this card (電子証明書の有効化)."""
    good = _good_serials(ctx, card.id)
    out: list[str | None] = []
    for kind, fid in _CERT_FILES:
        cert = _chip_certificate(chip, fid)
        if cert is None:
            out.append(None)
            continue
        if good.get(kind) != cert.serial_number:
            raise Conflict(f"チップの{'利用者証明用' if kind == 'auth' else '署名用'}電子証明書が有効ではありません "
                           f"(the chip's {kind} certificate is not a good one of this card)")
        out.append(str(cert.serial_number))
    return out[0], out[1]


def issue_card(ctx: Context, principal: Principal, *, identity: IdentityCheck, pins: InitialPins,
               notification_card: NotificationCard | str, now: datetime, notice_number: str | None = None,
               card_id: int | None = None, fault: FaultHook | None = None) -> IssuanceResult:
    """交付: hand the card over at the window — identity, PINs on the chip, certificates, notification card,
    then the card becomes issued (see the module's description). Safe to retry with the same notice."""
    principal.require(*_IN_PERSON)
    hook = fault or _no_fault
    check_identity(identity)
    try:
        notification_card = NotificationCard(notification_card)
    except ValueError:
        raise InvalidInput("通知カードの扱いを選んでください (collected, none or lost)") from None
    check_new_pins(pins.items())  # before anything is touched: bad input changes nothing
    key, card = find_card(ctx, principal, notice_number=notice_number, card_id=card_id)
    if card.card_serial is None:
        raise Conflict("this card has no chip")
    with _reader(ctx, card.card_serial) as (chip, terminal):
        with ctx.db.connect() as conn:
            done = _record_row(conn, card.id)
        if done is not None and done.status == IssuanceStatus.ISSUED.value:
            return _result(done, True)  # a retried request: answered again, nothing touched
        has_sign = bool(chip.image.file(Application.JPKI, 0x0001))
        if has_sign and pins.sign is None:
            raise InvalidInput("署名用電子証明書のパスワードを設定してください (the card has a signing certificate)")
        if not has_sign and pins.sign is not None:
            pins = InitialPins(pins.auth, pins.card_info, pins.residence, None)
        row = _begin(ctx, principal, key, card, identity, notification_card, chip, now)
        if row.status == IssuanceStatus.ISSUED.value:
            return _result(row, True)
        hook("started")
        terminal.set_initial_pins(pins, after_each=lambda kind: hook(f"pin_{kind.value.replace('-', '_')}"))
        _mark(ctx, row.id, IssuanceStatus.PINS_SET, now)
        hook("pins_set")
        auth_serial, sign_serial = _activate(ctx, card, chip)
        _mark(ctx, row.id, IssuanceStatus.ACTIVATED, now, auth_certificate_serial=auth_serial,
              sign_certificate_serial=sign_serial)
        hook("activated")
        _mark(ctx, row.id, IssuanceStatus.COLLECTED, now, notification_card=notification_card.value)
        hook("collected")
        result = _commit(ctx, principal, row.id, card, notice_number, now)
        hook("committed")
    return result


def _commit(ctx: Context, principal: Principal, record_id: int, card: cards.CardView, notice_number: str | None,
            now: datetime) -> IssuanceResult:
    with ctx.transaction() as tx:
        conn = tx.conn
        row = _record_row(conn, card.id, lock=True)
        if row.status == IssuanceStatus.ISSUED.value:
            return _result(row, True)
        if row.status == IssuanceStatus.ROLLED_BACK.value:
            raise Conflict("この交付処理は取り消されました (the issuance was rolled back)")
        if not cards.move_card(tx, card.id, [S.NOTICE_SENT], S.ISSUED, actor=principal.subject, now=now,
                               reason=f"窓口交付 {row.idempotency_key}"):
            raise Conflict("カードは交付待ちではありません (the card is no longer waiting for pickup)")
        if notice_number:
            office.mark_notice_collected(tx, notice_number, now)
        conn.execute(update(window_issuances).where(window_issuances.c.id == record_id).values(
            status=IssuanceStatus.ISSUED.value, updated_at=now, finished_at=now))
        tx.record("window.card_issued", {"card_id": card.id, "card_serial": card.card_serial,
                                         "municipality_code": card.municipality_code,
                                         "by": principal.subject}, now)
        return _result(_record_row(conn, card.id), False)


def cancel_issuance(ctx: Context, principal: Principal, card_id: int, now: datetime) -> IssuanceStatus | None:
    """Roll an open window issuance back: the chip gets its pre-issuance image again, the card keeps waiting.
    An issued card is left as it is (returns ``issued``); None when the card has no record."""
    principal.require(*_WINDOW)
    card = cards.get_card(ctx, principal, card_id)
    if card.card_serial is None:
        return None
    with _reader(ctx, card.card_serial):
        with ctx.db.connect() as conn:
            row = _record_row(conn, card_id)
        if row is None:
            return None
        status = IssuanceStatus(row.status)
        if not status.open:
            return status
        data_key = ctx.settings.data_key
        save_image(chips.card_path(ctx, card.card_serial), open_image(row.snapshot, data_key), data_key)
        with ctx.transaction() as tx:
            tx.conn.execute(update(window_issuances).where(
                window_issuances.c.id == row.id,
                window_issuances.c.status.in_([s.value for s in IssuanceStatus if s.open]))
                .values(status=IssuanceStatus.ROLLED_BACK.value, updated_at=now, finished_at=now))
            tx.record("window.issuance_rolled_back", {"card_id": card_id, "card_serial": card.card_serial,
                                                      "municipality_code": card.municipality_code,
                                                      "by": principal.subject}, now)
    return IssuanceStatus.ROLLED_BACK


def recover(ctx: Context, principal: Principal, now: datetime,
            stale_after: timedelta = timedelta(minutes=30)) -> list[int]:
    """Roll back every issuance left open for longer than ``stale_after`` (after a crash the resident has
    gone home); returns the card ids rolled back. Run at start-up and by the nightly batch."""
    principal.require(*_WINDOW)
    scope = principal.municipality_scope()
    query = select(window_issuances.c.card_id).where(
        window_issuances.c.status.in_([s.value for s in IssuanceStatus if s.open]),
        window_issuances.c.updated_at < now - stale_after)
    if scope is not None:
        query = query.where(window_issuances.c.municipality_code == scope)
    with ctx.db.connect() as conn:
        ids = list(conn.execute(query).scalars())
    done = []
    for card_id in ids:
        if cancel_issuance(ctx, principal, card_id, now) is IssuanceStatus.ROLLED_BACK:
            done.append(card_id)
    return done


def chip_present(ctx: Context, card: cards.CardView) -> bool:
    """Whether the card's chip can be read (its card file exists)."""
    return bool(card.card_serial) and chips.card_path(ctx, str(card.card_serial)).exists()


def check_consistency(ctx: Context, card_id: int) -> list[str]:
    """What is wrong between the card's state, its issuance record, its chip and its certificates (empty
    when all agree). An audit for the operator and the crash tests."""
    system = Principal.system("window-audit")
    card = cards.get_card(ctx, system, card_id)
    problems: list[str] = []
    with ctx.db.connect() as conn:
        row = _record_row(conn, card_id)
    if card.card_serial is None:
        return ["the card has no chip"]
    try:
        image = load_image(chips.card_path(ctx, card.card_serial), ctx.settings.data_key)
    except NotFound as exc:
        return [str(exc)]
    holder_pins = [k for k in HOLDER_PINS if k is not PinKind.SIGN or image.file(Application.JPKI, 0x0001)]
    set_pins = [k for k in holder_pins if image.pins[k].value is not None]
    if row is not None and IssuanceStatus(row.status).open:
        problems.append(f"an issuance is still open ({row.status})")
    if card.state in (S.ISSUED, S.SUSPENDED):
        if row is None or row.status != IssuanceStatus.ISSUED.value:
            problems.append("the card is issued without a closed issuance record")
        if len(set_pins) != len(holder_pins):
            problems.append(f"the card is issued but PINs are not set: "
                            f"{[k.value for k in holder_pins if k not in set_pins]}")
    elif card.state is S.NOTICE_SENT:
        if row is not None and row.status == IssuanceStatus.ISSUED.value:
            problems.append("the record says issued but the card is not")
        if set_pins and (row is None or not IssuanceStatus(row.status).open):
            problems.append(f"a half-issued chip: PINs set on a card not issued: {[k.value for k in set_pins]}")
    good = _good_serials(ctx, card_id)
    for kind, fid in _CERT_FILES:
        data = image.file(Application.JPKI, fid)
        serial = x509.load_der_x509_certificate(data).serial_number if data else None
        if card.state in (S.NOTICE_SENT, S.ISSUED) and serial is not None and good.get(kind) != serial:
            problems.append(f"the chip's {kind} certificate is not the card's good one")
        if card.state in (S.NOTICE_SENT, S.ISSUED) and serial is None and kind in good:
            problems.append(f"a good {kind} certificate is on no chip")
    return problems


def todays_issuances(ctx: Context, principal: Principal, since: datetime, limit: int = 200) -> list[dict[str, Any]]:
    """The window's issuance records since ``since`` (the clerk's own municipality)."""
    principal.require(*_WINDOW)
    scope = principal.municipality_scope()
    query = (select(window_issuances.c.card_id, window_issuances.c.idempotency_key, window_issuances.c.card_serial,
                    window_issuances.c.status, window_issuances.c.clerk, window_issuances.c.updated_at,
                    window_issuances.c.attempts)
             .where(window_issuances.c.updated_at >= since).order_by(window_issuances.c.updated_at.desc())
             .limit(limit))
    if scope is not None:
        query = query.where(window_issuances.c.municipality_code == scope)
    with ctx.db.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(query)]


# --- the card in use: suspension, loss, address change, PIN reset ---------------------------------------------

@dataclass(frozen=True)
class ActResult:
    """The outcome of a window or call-centre act on an issued card."""

    card_id: int
    state: CardState
    replayed: bool
    certificates: tuple[str, ...] = ()
    """Serials of certificates revoked, held or issued by the act."""


def _prior_act(conn: Connection, request_key: str) -> Any:
    """The act already done under ``request_key`` (its card and kind), or None."""
    return conn.execute(select(window_acts.c.card_id, window_acts.c.kind)
                        .where(window_acts.c.request_key == request_key)).first()


def _replayed_suspension(ctx: Context, principal: Principal, card_id: int, prior: Any) -> ActResult:
    """A retry of a suspension already done under the same request key: answered again, nothing touched.
    The key names one act on one card: the same key for another card (or another act) is refused."""
    if int(prior.card_id) != card_id or prior.kind != "suspended":
        raise Conflict("この受付番号は別のカードの手続きに使われています。カードは変更していません "
                       "(the request key was already used for another card; nothing was changed — "
                       "a new call needs a new ticket number)")
    return ActResult(card_id, cards.get_card(ctx, principal, card_id).state, True)


def _record_act(conn: Connection, card: cards.CardView, kind: str, principal: Principal, now: datetime,
                request_key: str | None = None, detail: dict[str, Any] | None = None) -> None:
    conn.execute(insert(window_acts).values(
        card_id=card.id, municipality_code=card.municipality_code, kind=kind, request_key=request_key,
        actor=principal.subject, detail=json.dumps(detail or {}, ensure_ascii=False), at=now))


def suspend_by_phone(ctx: Context, principal: Principal, card_id: int, request_key: str, now: datetime,
                     lost: bool = True) -> ActResult:
    """一時利用停止 by phone, at any hour (the J-LIS call centre): both certificates go on hold
    (certificateHold) and the card is suspended. ``request_key`` (the call's ticket) makes a retry harmless: the
    same key for the same card answers again (``replayed``); the same key for another card is refused
    (:class:`Conflict`) and that card is not touched."""
    principal.require(*_CALL_CENTRE)
    if not request_key or len(request_key) > 64:
        raise InvalidInput("a request key (the call's ticket number, at most 64 characters) is required")
    card = cards.get_card(ctx, principal, card_id)
    with ctx.db.connect() as conn:
        prior = _prior_act(conn, request_key)
    if prior is not None:
        return _replayed_suspension(ctx, principal, card_id, prior)
    if card.state not in (S.ISSUED, S.SUSPENDED):
        raise Conflict(f"only a card in use can be suspended (this one is {card.state.value})")
    # One transaction: the holds, the card's move and the act under its key commit together or not at all, so
    # a crash leaves the card suspendable again, and a concurrent request with the same key (the act's key is
    # unique) rolls back whole — holds included — and is answered as a replay or refused as another card's.
    try:
        with ctx.transaction() as tx:
            prior = _prior_act(tx.conn, request_key)
            if prior is not None:
                return _replayed_suspension(ctx, principal, card_id, prior)
            held: list[str] = []
            with suppress(NotFound):  # a card without certificates (declined at application): nothing to hold
                held = [str(v.serial) for v in jpki.hold_card_certificates(ctx, principal, card_id, now,
                                                                           tx=tx)]
            cards.move_card(tx, card_id, [S.ISSUED], S.SUSPENDED, actor=principal.subject, now=now,
                            reason="紛失等による一時利用停止 (phone)" if lost else "一時利用停止 (phone)")
            _record_act(tx.conn, card, "suspended", principal, now, request_key, {"lost": lost, "held": held})
            tx.record("window.card_suspended", {"card_id": card_id, "municipality_code": card.municipality_code},
                      now)
    except IntegrityError:
        with ctx.db.connect() as conn:
            prior = _prior_act(conn, request_key)
        if prior is None:
            raise
        return _replayed_suspension(ctx, principal, card_id, prior)
    return ActResult(card_id, S.SUSPENDED, False, tuple(held))


def _replace_certificate(ctx: Context, principal: Principal, card_id: int, terminal: IssuerTerminal,
                         kind: CaKind, now: datetime) -> str:
    """A new key pair in the chip and its certificate from the CA (window re-issue, lineage kept)."""
    key_kind, cert_fid, ca_fid = ((KeyKind.AUTH, 0x000A, 0x000B) if kind is CaKind.AUTH
                                  else (KeyKind.SIGN, 0x0001, 0x0002))
    terminal.open(Application.JPKI)
    spki = terminal.generate_key(key_kind)
    record = jpki.reissue_certificate(ctx, principal, card_id, kind, spki, now)
    authority = jpki.current_authority(ctx, kind, now)
    terminal.write(cert_fid, record.der)
    terminal.write(ca_fid, authority.der)
    terminal.client.transport.reset()
    return str(record.view.serial)


def _chip_certificate_good(chip: Chip, fid: int, good: dict[str, int]) -> bool | None:
    """Whether the chip's certificate in ``fid`` is one of ``good`` (None: the file is empty)."""
    cert = _chip_certificate(chip, fid)
    return None if cert is None else cert.serial_number in good.values()


def lift_suspension(ctx: Context, principal: Principal, card_id: int, identity: IdentityCheck,
                    now: datetime) -> ActResult:
    """一時利用停止の解除 — only in person at the window. The held certificates are never released: the chip
    makes new keys and the CA issues new certificates (lineage kept). Safe to retry."""
    principal.require(*_IN_PERSON)
    check_identity(identity)
    card = cards.get_card(ctx, principal, card_id)
    if card.state not in (S.SUSPENDED, S.ISSUED) or card.card_serial is None:
        raise Conflict(f"the card is {card.state.value}, not suspended")
    with ctx.transaction() as tx:
        if cards.move_card(tx, card_id, [S.SUSPENDED], S.ISSUED, actor=principal.subject, now=now,
                           reason="一時利用停止の解除 (in person)"):
            _record_act(tx.conn, card, "suspension_lifted", principal, now,
                        detail={"identity": identity.to_record()})
    issued: list[str] = []
    with _reader(ctx, card.card_serial) as (chip, terminal):
        good = _good_serials(ctx, card_id)
        for kind, fid in _CERT_FILES:
            if _chip_certificate_good(chip, fid, good) is False:
                issued.append(_replace_certificate(ctx, principal, card_id, terminal, kind, now))
    return ActResult(card_id, S.ISSUED, not issued and card.state is S.ISSUED, tuple(issued))


def reissue_after_loss(ctx: Context, principal: Principal, card_id: int, identity: IdentityCheck,
                       now: datetime) -> str:
    """紛失による再交付: the lost card is abolished (its certificates revoked) and the holder gets a new
    application form; returns the new 申請書ID. Retrying returns a fresh form only if none was made."""
    principal.require(*_IN_PERSON)
    check_identity(identity)
    card = cards.get_card(ctx, principal, card_id)
    if card.state not in (S.ISSUED, S.SUSPENDED, S.ABOLISHED):
        raise Conflict(f"the card is {card.state.value}; only a card in use can be reissued after loss")
    with suppress(NotFound):
        jpki.abolish_card_certificates(ctx, principal, card_id, now)
    with ctx.transaction() as tx:
        cards.move_card(tx, card_id, [S.ISSUED, S.SUSPENDED], S.ABOLISHED, actor=principal.subject, now=now,
                        reason="紛失による再交付", values={"abolition_reason": AbolitionReason.LOST_REISSUED.value})
        existing = tx.conn.execute(select(window_acts.c.detail).where(
            window_acts.c.card_id == card_id, window_acts.c.kind == "lost_reissued")).scalar()
    if existing:
        return str(json.loads(existing)["application_id"])
    forms = cards.issue_application_forms(ctx, principal, [card.resident_id], now)
    application_id = str(forms[card.resident_id])
    with ctx.transaction() as tx:
        _record_act(tx.conn, card, "lost_reissued", principal, now, detail={"application_id": application_id})
    return application_id


def change_address(ctx: Context, principal: Principal, card_id: int, now: datetime,
                   new_sign_password: str | None = None) -> ActResult:
    """住所変更: the resident's new address (already in the registry) is endorsed on the chip (追記; after 転入
    the card, already handed to the new municipality by the registry's move, becomes its chip's too) and,
    when the card has a signing certificate, the chip makes a new signing key and the CA issues a new
    certificate (the registry's move already revoked the old one; lineage old → new). Safe to retry."""
    principal.require(*_IN_PERSON)
    card = cards.get_card(ctx, principal, card_id)
    if card.state is not S.ISSUED or card.card_serial is None:
        raise Conflict(f"the card is {card.state.value}, not in use")
    if new_sign_password is not None:
        check_new_pin(PinKind.SIGN, new_sign_password)
    resident = registry.get_resident(ctx, Principal.system("window"), card.resident_id)
    endorsed = chips.endorse_address(ctx, principal, card.card_serial, resident.facts.address,
                                     card_info_signer(ctx.settings), now,
                                     new_municipality_code=resident.municipality_code)
    issued: list[str] = []
    with _reader(ctx, card.card_serial) as (chip, terminal):
        if _chip_certificate_good(chip, 0x0001, _good_serials(ctx, card_id)) is False:
            issued.append(_replace_certificate(ctx, principal, card_id, terminal, CaKind.SIGN, now))
            if new_sign_password is not None:
                terminal.reset_pin(PinKind.SIGN, new_sign_password)
    with ctx.transaction() as tx:
        if endorsed or issued:
            _record_act(tx.conn, card, "endorsed", principal, now, detail={"certificates": issued})
    return ActResult(card_id, S.ISSUED, not (endorsed or issued), tuple(issued))


def reset_pin(ctx: Context, principal: Principal, card_id: int, kind: PinKind | str, new_value: str,
              identity: IdentityCheck, now: datetime) -> ActResult:
    """暗証番号の再設定 at the window (a blocked PIN): the issuer's reset, a new value, full tries."""
    principal.require(*_IN_PERSON)
    check_identity(identity)
    try:
        kind = PinKind(kind)
    except ValueError:
        raise InvalidInput(f"unknown PIN {kind!r}") from None
    if kind not in HOLDER_PINS:
        raise InvalidInput(f"{kind.policy.label} is not reset at the window")
    check_new_pin(kind, new_value)
    card = cards.get_card(ctx, principal, card_id)
    if card.state is not S.ISSUED or card.card_serial is None:
        raise Conflict(f"the card is {card.state.value}, not in use")
    chips.reset_pin(ctx, principal, card.card_serial, kind, new_value, now)
    with ctx.transaction() as tx:
        _record_act(tx.conn, card, "pin_reset", principal, now, detail={"pin": kind.value})
    return ActResult(card_id, S.ISSUED, False)


def tries_left(ctx: Context, principal: Principal, card_id: int) -> dict[str, int]:
    """The retry counters of the holder's PINs, as the window's terminal shows them."""
    card = cards.get_card(ctx, principal, card_id)
    if card.card_serial is None:
        raise NotFound("no chip")
    with _reader(ctx, card.card_serial) as (chip, _terminal):
        status = CardClient(InProcessTransport(chip)).pin_status()
    return {k.value: v for k, v in status.items() if k in HOLDER_PINS}
