"""Convenience-store issuance (コンビニ交付) as a pure domain model: documents, hours, fees, eligibility,
refusals, the request's states and the content of a certificate.

No I/O and no clock: the moment comes in as ``now`` (aware) and is read in JST here. The rules come from
reference/operations-and-incidents.md §3.2 (documents, hours, fees, who may not use the service) and §3.7
(the 2023 wrong-person incidents: one request ID end to end, no shared state, a timeout aborts the whole
request, the subject is checked against the authenticated holder before release).
"""

from __future__ import annotations

import hashlib
import json
import re
import secrets
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from enum import StrEnum
from typing import Any

from mynacard.calendar import is_year_end_closure
from mynacard.clock import JST
from mynacard.errors import Conflict, Forbidden, InvalidInput
from mynacard.registry.model import Resident, ResidentStatus, age_on

__all__ = [
    "CLOSE",
    "DEFAULT_FEES",
    "MAX_ADDRESS_CHARS",
    "MAX_COPIES",
    "MAX_NAME_CHARS",
    "MIN_AGE",
    "OPEN",
    "SESSION_TTL",
    "DocumentContent",
    "DocumentId",
    "DocumentKind",
    "DocumentOptions",
    "DocumentState",
    "Field",
    "Offering",
    "OrderDecision",
    "PersonRecord",
    "RefusalReason",
    "Refused",
    "RequestId",
    "Section",
    "SessionState",
    "check_document",
    "check_holder",
    "check_service_hours",
    "check_session_transition",
    "decide_order",
    "fiscal_year_available",
    "wareki",
]

OPEN = time(6, 30)
"""Kiosks open at 06:30 JST …"""
CLOSE = time(23, 0)
"""… and close at 23:00 JST, every day but 12/29–1/3 and maintenance days."""
MIN_AGE = 15
"""No issuance to under-15s (their legal representative applies at the window)."""
MAX_NAME_CHARS = 20
"""The layout's limit for a name (family + given, without spaces); longer names go to the window."""
MAX_ADDRESS_CHARS = 60
"""The layout's limit for an address."""
MAX_COPIES = 5
SESSION_TTL = timedelta(minutes=10)
"""A kiosk session that has not finished in this time is over; anything still open in it is aborted."""
TAX_YEAR_SWITCH = (6, 1)
"""New fiscal-year tax data (所得・課税証明書 of 年度 N) are available from 1 June of year N."""

DEFAULT_FEES: dict[str, int] = {
    "juminhyo": 200, "kisai": 200, "inkan": 200, "shotoku": 300, "koseki_zenbu": 350, "koseki_kojin": 350,
    "fuhyo": 200,
}
"""Typical convenience-store fees in yen (Tamba, Miyako: 住民票・印鑑 200, 戸籍 350–450); each municipality sets
its own."""


# --- identifiers -----------------------------------------------------------------------------------------

_REQUEST_ID = re.compile(r"^[0-9a-f]{32}$")
_DOCUMENT_ID = re.compile(r"^[0-9A-HJKMNP-TV-Z]{26}$")
_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


class RequestId(str):
    """The correlation ID (交付要求ID) of one kiosk request: 32 lowercase hex digits (128 random bits), made by
    the kiosk when the card goes on the reader and carried through the centre and the municipality into the
    signed PDF and the print job."""

    __slots__ = ()

    def __new__(cls, value: str) -> RequestId:
        if not isinstance(value, str) or not _REQUEST_ID.match(value):
            raise InvalidInput("a request ID is 32 lowercase hexadecimal digits")
        return super().__new__(cls, value)

    @classmethod
    def new(cls) -> RequestId:
        return cls(secrets.token_hex(16))


class DocumentId(str):
    """The ID printed on a certificate and in its QR code (証明書番号): 26 Crockford base-32 characters
    (130 random bits), so that knowing one certificate tells nothing about another."""

    __slots__ = ()

    def __new__(cls, value: str) -> DocumentId:
        if not isinstance(value, str) or not _DOCUMENT_ID.match(value):
            raise InvalidInput("a document ID is 26 characters of 0-9 and A-Z (no I, L, O, U)")
        return super().__new__(cls, value)

    @classmethod
    def new(cls) -> DocumentId:
        n = secrets.randbits(130)
        return cls("".join(_CROCKFORD[(n >> (5 * i)) & 31] for i in range(25, -1, -1)))


# --- documents ------------------------------------------------------------------------------------------

class DocumentKind(StrEnum):
    """The certificates a kiosk can print; each municipality chooses which it offers."""

    RESIDENT_RECORD = "juminhyo"
    """住民票の写し — the holder or members of the same household."""
    RESIDENT_RECORD_ENTRY = "kisai"
    """住民票記載事項証明書 — the holder's name, date of birth, sex and address."""
    SEAL_REGISTRATION = "inkan"
    """印鑑登録証明書 — needs a seal registration (印鑑登録)."""
    INCOME_TAX = "shotoku"
    """所得・課税証明書 — the current fiscal year only."""
    FAMILY_REGISTER_ALL = "koseki_zenbu"
    """戸籍全部事項証明書 (戸籍謄本) — the whole family register."""
    FAMILY_REGISTER_INDIVIDUAL = "koseki_kojin"
    """戸籍個人事項証明書 (戸籍抄本) — the holder's entry."""
    FAMILY_REGISTER_ATTACHMENT = "fuhyo"
    """戸籍の附票の写し — the address history of the people in the register."""

    @property
    def label_ja(self) -> str:
        return _LABELS[self][0]

    @property
    def label_en(self) -> str:
        return _LABELS[self][1]

    @property
    def from_family_register(self) -> bool:
        """Issued by the municipality of the registered domicile (本籍地), not of residence."""
        return self in (DocumentKind.FAMILY_REGISTER_ALL, DocumentKind.FAMILY_REGISTER_INDIVIDUAL,
                        DocumentKind.FAMILY_REGISTER_ATTACHMENT)


_LABELS = {
    DocumentKind.RESIDENT_RECORD: ("住民票の写し", "Resident record copy"),
    DocumentKind.RESIDENT_RECORD_ENTRY: ("住民票記載事項証明書", "Resident record entry certificate"),
    DocumentKind.SEAL_REGISTRATION: ("印鑑登録証明書", "Seal registration certificate"),
    DocumentKind.INCOME_TAX: ("所得・課税証明書", "Income and tax certificate"),
    DocumentKind.FAMILY_REGISTER_ALL: ("戸籍全部事項証明書", "Family register certificate (all entries)"),
    DocumentKind.FAMILY_REGISTER_INDIVIDUAL: ("戸籍個人事項証明書", "Family register certificate (one entry)"),
    DocumentKind.FAMILY_REGISTER_ATTACHMENT: ("戸籍の附票の写し", "Family register attachment copy"),
}


@dataclass(frozen=True)
class Offering:
    """One document a municipality offers at kiosks, with its fee."""

    kind: DocumentKind
    fee_yen: int
    """Per copy."""
    weekdays_only: bool = False
    """Some municipalities offer 戸籍 only on weekdays …"""
    opens: time = OPEN
    """… and only within office hours (e.g. 09:00–17:00)."""
    closes: time = CLOSE

    def __post_init__(self) -> None:
        if not 0 <= self.fee_yen <= 10_000:
            raise InvalidInput("a fee is 0–10,000 yen")
        if not OPEN <= self.opens < self.closes <= CLOSE:
            raise InvalidInput("a document's hours lie within 06:30–23:00")


@dataclass(frozen=True)
class DocumentOptions:
    """What the resident chose on the kiosk screen."""

    kind: DocumentKind
    member_ids: tuple[int, ...] = ()
    """住民票の写し: the household members to include (resident ids); empty means the holder alone."""
    include_relationship: bool = False
    """世帯主・続柄 shown."""
    include_domicile: bool = False
    """本籍・筆頭者 shown."""
    include_individual_number: bool = False
    """個人番号 shown — only when the resident explicitly asks for it."""
    copies: int = 1

    def __post_init__(self) -> None:
        if not 1 <= self.copies <= MAX_COPIES:
            raise InvalidInput(f"1–{MAX_COPIES} copies")
        if len(set(self.member_ids)) != len(self.member_ids):
            raise InvalidInput("a household member is listed twice")
        if self.kind is not DocumentKind.RESIDENT_RECORD and (
                self.member_ids or self.include_relationship or self.include_domicile
                or self.include_individual_number):
            raise InvalidInput(f"{self.kind.label_en} has no household or content options")

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind.value, "member_ids": list(self.member_ids),
                "include_relationship": self.include_relationship, "include_domicile": self.include_domicile,
                "include_individual_number": self.include_individual_number, "copies": self.copies}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> DocumentOptions:
        try:
            kind = DocumentKind(data["kind"])
        except (KeyError, ValueError):
            raise InvalidInput("unknown document kind") from None
        members = data.get("member_ids") or []
        if not isinstance(members, list) or not all(isinstance(m, int) and not isinstance(m, bool)
                                                    for m in members):
            raise InvalidInput("member_ids must be a list of resident ids")
        copies = data.get("copies", 1)
        if not isinstance(copies, int) or isinstance(copies, bool):
            raise InvalidInput("copies must be a whole number")
        return cls(kind, tuple(members), bool(data.get("include_relationship")),
                   bool(data.get("include_domicile")), bool(data.get("include_individual_number")), copies)


# --- refusals ---------------------------------------------------------------------------------------------

class RefusalReason(StrEnum):
    """Why a kiosk request was refused; each has a message in Japanese and English for the screen."""

    CLOSED_HOURS = "closed_hours"
    YEAR_END = "year_end"
    MAINTENANCE = "maintenance"
    NOT_PARTICIPATING = "not_participating"
    NOT_OFFERED = "not_offered"
    DOCUMENT_HOURS = "document_hours"
    DOCUMENT_SUSPENDED = "document_suspended"
    UNDER_15 = "under_15"
    MOVED_OUT = "moved_out"
    HOUSEHOLD_MOVING_OUT = "household_moving_out"
    MOVED_IN_TODAY = "moved_in_today"
    SUPPORT_MEASURE = "support_measure"
    DECEASED = "deceased"
    TEXT_TOO_LONG = "text_too_long"
    NOT_IN_HOUSEHOLD = "not_in_household"
    NO_DOMICILE_RECORD = "no_domicile_record"
    NO_SEAL_REGISTRATION = "no_seal_registration"
    NO_TAX_RECORD = "no_tax_record"
    NO_FAMILY_REGISTER = "no_family_register"
    FAMILY_REGISTER_NOT_REGISTERED = "family_register_not_registered"
    FAMILY_REGISTER_PENDING = "family_register_pending"
    CERTIFICATE_REVOKED = "certificate_revoked"
    CERTIFICATE_EXPIRED = "certificate_expired"
    BAD_SIGNATURE = "bad_signature"
    UNKNOWN_CERTIFICATE = "unknown_certificate"
    NO_HOLDER = "no_holder"
    WRONG_PIN = "wrong_pin"
    PIN_BLOCKED = "pin_blocked"
    NO_CARD = "no_card"
    SESSION_EXPIRED = "session_expired"
    TIMEOUT = "timeout"
    ABORTED = "aborted"
    WRONG_FEE = "wrong_fee"

    @property
    def message_ja(self) -> str:
        return REFUSAL_MESSAGES[self][0]

    @property
    def message_en(self) -> str:
        return REFUSAL_MESSAGES[self][1]


REFUSAL_MESSAGES: dict[RefusalReason, tuple[str, str]] = {
    RefusalReason.CLOSED_HOURS: ("ご利用時間外です。コンビニ交付は6時30分から23時までご利用いただけます。",
                                 "The service is closed. Kiosks issue certificates from 06:30 to 23:00."),
    RefusalReason.YEAR_END: ("12月29日から1月3日までは、コンビニ交付を休止しています。",
                             "The service is closed from 29 December to 3 January."),
    RefusalReason.MAINTENANCE: ("本日はシステム保守のため、コンビニ交付を休止しています。",
                                "The service is closed today for maintenance."),
    RefusalReason.NOT_PARTICIPATING: ("お住まいの市区町村はコンビニ交付を実施していません。",
                                      "Your municipality does not issue certificates at kiosks."),
    RefusalReason.NOT_OFFERED: ("この証明書は、この市区町村ではコンビニ交付の対象外です。",
                                "This municipality does not issue this certificate at kiosks."),
    RefusalReason.DOCUMENT_HOURS: ("この証明書は、現在の時間帯には発行できません（平日の取扱時間内のみ）。",
                                   "This certificate is only issued on weekdays within office hours."),
    RefusalReason.DOCUMENT_SUSPENDED: ("この証明書は、現在発行を停止しています（年度の切替えなど）。",
                                       "This certificate is suspended at the moment (e.g. the tax year "
                                       "switch-over)."),
    RefusalReason.UNDER_15: ("15歳未満の方はコンビニ交付をご利用いただけません。市区町村の窓口をご利用ください。",
                             "Residents under 15 cannot use kiosks; please ask at the municipal office."),
    RefusalReason.MOVED_OUT: ("転出された方（転出届を出された方を含む）はコンビニ交付をご利用いただけません。",
                              "Residents who have moved out (or filed a move-out) cannot use kiosks."),
    RefusalReason.HOUSEHOLD_MOVING_OUT: ("世帯に転出予定の方がいるため、住民票の写しはコンビニでは発行できません。",
                                         "Someone in the household is moving out; the resident record copy is "
                                         "issued at the office only."),
    RefusalReason.MOVED_IN_TODAY: ("転入届の当日はコンビニ交付をご利用いただけません。翌日以降にご利用ください。",
                                   "Kiosks cannot issue on the day of moving in; please come back tomorrow."),
    RefusalReason.SUPPORT_MEASURE: ("支援措置の対象の方が含まれるため、"
                                    "コンビニでは発行できません。窓口へお越しください。",
                                    "A person under protection measures is concerned; please ask at the "
                                    "municipal office."),
    RefusalReason.DECEASED: ("亡くなられた方の証明書はコンビニでは発行できません。",
                             "Certificates of deceased persons are not issued at kiosks."),
    RefusalReason.TEXT_TOO_LONG: ("氏名または住所の文字数が多いため、"
                                  "コンビニでは発行できません。窓口へお越しください。",
                                  "The name or address is too long for the kiosk layout; please ask at the "
                                  "office."),
    RefusalReason.NOT_IN_HOUSEHOLD: ("同一世帯の方の住民票の写しのみ発行できます。",
                                     "Only members of your own household can be included."),
    RefusalReason.NO_DOMICILE_RECORD: ("本籍の記録がないため、本籍・筆頭者入りの住民票の写しは発行できません。",
                                       "No registered domicile on record: the copy cannot show it."),
    RefusalReason.NO_SEAL_REGISTRATION: ("印鑑登録がないため、印鑑登録証明書は発行できません。",
                                         "You have no seal registration."),
    RefusalReason.NO_TAX_RECORD: ("今年度の課税情報がないため、所得・課税証明書"
                                  "は発行できません。窓口へお越しください。",
                                  "No tax record for the current year; please ask at the office."),
    RefusalReason.NO_FAMILY_REGISTER: ("戸籍の記録が見つからないため、戸籍の証明書は発行できません。",
                                       "No family register found for you."),
    RefusalReason.FAMILY_REGISTER_NOT_REGISTERED: (
        "本籍地が住所地と異なるため、先に本籍地への利用登録申請が必要です。",
        "Your registered domicile is in another municipality: register for kiosk use there first."),
    RefusalReason.FAMILY_REGISTER_PENDING: ("届出の反映中のため、戸籍の証明書は発行できません。窓口へお越しください。",
                                            "A recent filing is still being entered; please ask at the office."),
    RefusalReason.CERTIFICATE_REVOKED: ("利用者証明用電子証明書が失効しています。市区町村の窓口で手続きしてください。",
                                        "The card's authentication certificate is revoked."),
    RefusalReason.CERTIFICATE_EXPIRED: ("利用者証明用電子証明書の有効期限が切れてい"
                                        "ます。市区町村の窓口で更新してください。",
                                        "The card's authentication certificate has expired."),
    RefusalReason.BAD_SIGNATURE: ("カードの認証に失敗しました。カードを置き直してください。",
                                  "The card could not be authenticated; please place it again."),
    RefusalReason.UNKNOWN_CERTIFICATE: ("このカードの電子証明書は確認できません。",
                                        "This card's certificate cannot be validated."),
    RefusalReason.NO_HOLDER: ("このカードの持ち主の住民記録が見つかりません。窓口へお越しください。",
                              "No resident record for this card's holder; please ask at the office."),
    RefusalReason.WRONG_PIN: ("暗証番号が違います。", "Wrong PIN."),
    RefusalReason.PIN_BLOCKED: ("暗証番号がロックされています。市区町村の窓口で再設定してください。",
                                "The PIN is blocked; it can be reset at the municipal office."),
    RefusalReason.NO_CARD: ("カードが読み取れません。カードを置いてください。", "No card on the reader."),
    RefusalReason.SESSION_EXPIRED: ("一定時間操作がなかったため、最初からやり直してください。",
                                    "The session timed out; please start again."),
    RefusalReason.TIMEOUT: ("処理が時間内に終わらなかったため、取り消しました。料金はお返しします。",
                            "The request did not finish in time and was cancelled; the fee is returned."),
    RefusalReason.ABORTED: ("お取り扱いを中止しました。", "The request was cancelled."),
    RefusalReason.WRONG_FEE: ("料金が正しくありません。", "The fee paid does not match."),
}


class Refused(Forbidden):
    """A request refused for a reason the kiosk shows to the resident (no document, no fee)."""

    def __init__(self, reason: RefusalReason, detail: str | None = None) -> None:
        super().__init__(reason.message_en + (f" ({detail})" if detail else ""))
        self.reason = reason
        self.detail = detail


# --- hours ------------------------------------------------------------------------------------------------

def _jst(now: datetime) -> datetime:
    if now.tzinfo is None:
        raise ValueError("naive datetime: pass an aware time")
    return now.astimezone(JST)


def check_service_hours(now: datetime, maintenance_days: Iterable[date] = ()) -> None:
    """Raise :class:`Refused` unless kiosks are open at ``now``: 06:30–23:00 JST, not 12/29–1/3, not a
    maintenance day (nationwide, or of the municipality concerned)."""
    local = _jst(now)
    if is_year_end_closure(local.date()):
        raise Refused(RefusalReason.YEAR_END)
    if local.date() in set(maintenance_days):
        raise Refused(RefusalReason.MAINTENANCE)
    if not OPEN <= local.time() < CLOSE:
        raise Refused(RefusalReason.CLOSED_HOURS)


def fiscal_year_available(today: date) -> int:
    """The newest fiscal year (年度) of tax certificates: year N's data from 1 June of year N."""
    return today.year if (today.month, today.day) >= TAX_YEAR_SWITCH else today.year - 1


# --- eligibility ------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class PersonRecord:
    """A resident as the certificate issuing server sees them: the registry record plus the municipality's
    own notes about them."""

    resident: Resident
    support_measure: bool = False
    """支援措置 (DV, stalking, abuse) in force: nothing about them is issued at a kiosk."""
    transfer_out_filed: bool = False
    """転出届 filed, the move not yet done."""
    moved_in_on: date | None = None
    """The day of the last 転入 into this municipality, if known."""

    @property
    def id(self) -> int:
        return self.resident.id


def _text_too_long(resident: Resident) -> bool:
    facts = resident.facts
    return (len(facts.family_name) + len(facts.given_name) > MAX_NAME_CHARS
            or len(facts.address) > MAX_ADDRESS_CHARS)


def check_holder(holder: PersonRecord, now: datetime) -> None:
    """The card holder may use the kiosk at all (the checks every document shares)."""
    today = _jst(now).date()
    r = holder.resident
    if r.status is ResidentStatus.DECEASED:
        raise Refused(RefusalReason.DECEASED)
    if r.status is ResidentStatus.ABROAD or holder.transfer_out_filed:
        raise Refused(RefusalReason.MOVED_OUT)
    if age_on(r.facts.birth_date, today) < MIN_AGE:
        raise Refused(RefusalReason.UNDER_15)
    if holder.support_measure:
        raise Refused(RefusalReason.SUPPORT_MEASURE)
    if holder.moved_in_on == today:
        raise Refused(RefusalReason.MOVED_IN_TODAY)
    if _text_too_long(r):
        raise Refused(RefusalReason.TEXT_TOO_LONG)


def check_document(
    options: DocumentOptions,
    holder: PersonRecord,
    household: Sequence[PersonRecord],
    offering: Offering | None,
    now: datetime,
    *,
    suspended: bool = False,
    has_domicile: Mapping[int, bool] | None = None,
    has_seal: bool = False,
    has_tax_record: bool = False,
    family_register: str | None = None,
    family_register_pending: bool = False,
    family_register_usable: bool = True,
) -> list[PersonRecord]:
    """Whether ``options`` may be issued to ``holder``; returns the people the document is about.

    ``household`` is the holder's household as the registry has it (the holder included); ``offering`` is
    the issuing municipality's offering of this kind (None: not offered); the keyword arguments are what the
    municipality's records say about the holder. Raises :class:`Refused` with the first reason that applies.
    """
    check_holder(holder, now)
    local = _jst(now)
    if offering is None:
        raise Refused(RefusalReason.NOT_OFFERED)
    if (offering.weekdays_only and local.weekday() >= 5) or not offering.opens <= local.time() < offering.closes:
        raise Refused(RefusalReason.DOCUMENT_HOURS)
    if suspended:
        raise Refused(RefusalReason.DOCUMENT_SUSPENDED)
    kind = options.kind
    if kind is DocumentKind.RESIDENT_RECORD:
        by_id = {p.id: p for p in household}
        wanted = options.member_ids or (holder.id,)
        missing = [m for m in wanted if m not in by_id]
        if missing:
            raise Refused(RefusalReason.NOT_IN_HOUSEHOLD)
        subjects = [by_id[m] for m in wanted]
        for person in subjects:
            if person.resident.status is not ResidentStatus.ACTIVE:
                raise Refused(RefusalReason.NOT_IN_HOUSEHOLD)
            if person.support_measure:
                raise Refused(RefusalReason.SUPPORT_MEASURE)
            if _text_too_long(person.resident):
                raise Refused(RefusalReason.TEXT_TOO_LONG)
        if any(p.transfer_out_filed for p in household):
            raise Refused(RefusalReason.HOUSEHOLD_MOVING_OUT)
        if options.include_domicile and not all((has_domicile or {}).get(p.id, False) for p in subjects):
            raise Refused(RefusalReason.NO_DOMICILE_RECORD)
        return subjects
    if kind is DocumentKind.SEAL_REGISTRATION and not has_seal:
        raise Refused(RefusalReason.NO_SEAL_REGISTRATION)
    if kind is DocumentKind.INCOME_TAX and not has_tax_record:
        raise Refused(RefusalReason.NO_TAX_RECORD)
    if kind.from_family_register:
        if family_register is None:
            raise Refused(RefusalReason.NO_FAMILY_REGISTER)
        if not family_register_usable:
            raise Refused(RefusalReason.FAMILY_REGISTER_NOT_REGISTERED)
        if family_register_pending:
            raise Refused(RefusalReason.FAMILY_REGISTER_PENDING)
    return [holder]


# --- the request's life ---------------------------------------------------------------------------------

class SessionState(StrEnum):
    """One kiosk request at the certificate issuance centre (証明書交付センター)."""

    CHALLENGED = "challenged"
    """The kiosk has a single-use challenge for the card to sign."""
    AUTHENTICATED = "authenticated"
    """The card signed it, its certificate is valid and mapped to a resident."""
    RENDERING = "rendering"
    """Paid and ordered; the municipality is building the document."""
    RELEASED = "released"
    """The document was checked against the holder and handed to the kiosk."""
    COMPLETED = "completed"
    """The kiosk reported it printed: the transaction is closed."""
    ABORTED = "aborted"
    """Cancelled, timed out or refused: nothing is delivered, the fee is returned."""


_SESSION_MOVES: dict[SessionState, frozenset[SessionState]] = {
    SessionState.CHALLENGED: frozenset({SessionState.AUTHENTICATED, SessionState.ABORTED}),
    SessionState.AUTHENTICATED: frozenset({SessionState.RENDERING, SessionState.ABORTED}),
    SessionState.RENDERING: frozenset({SessionState.RELEASED, SessionState.ABORTED}),
    SessionState.RELEASED: frozenset({SessionState.COMPLETED, SessionState.ABORTED}),
    SessionState.COMPLETED: frozenset(),
    SessionState.ABORTED: frozenset(),
}


def check_session_transition(current: SessionState, target: SessionState) -> None:
    if target not in _SESSION_MOVES[current]:
        raise Conflict(f"a request that is {current.value} cannot become {target.value}")


class DocumentState(StrEnum):
    """A certificate at the municipality's certificate issuing server (証明発行サーバ)."""

    PREPARED = "prepared"
    """Rendered and signed, not released: not valid."""
    ISSUED = "issued"
    """Released to the kiosk by the centre: valid."""
    PRINTED = "printed"
    """The kiosk printed it: valid."""
    VOID = "void"
    """The request was aborted after the document was made: never valid."""

    @property
    def valid(self) -> bool:
        return self in (DocumentState.ISSUED, DocumentState.PRINTED)


# --- content ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Field:
    """One line of a certificate: a label and its value."""

    label: str
    value: str
    secret: bool = False
    """The individual number: shown on the paper, masked everywhere else (verification page, logs)."""

    def shown(self, *, reveal: bool) -> str:
        if not self.secret or reveal:
            return self.value
        digits = "".join(ch for ch in self.value if ch.isdigit())
        return "●●●● ●●●● " + digits[-4:] if len(digits) == 12 else "●" * len(self.value)


@dataclass(frozen=True)
class Section:
    """A block of a certificate: one person, one register entry, one tax year."""

    heading: str
    fields: tuple[Field, ...]


@dataclass(frozen=True)
class DocumentContent:
    """What a certificate says — the one source of both the PDF and the verification page."""

    kind: DocumentKind
    title: str
    municipality_code: str
    municipality_name: str
    """e.g. 東京都千代田区."""
    issuer: str
    """Who certifies, e.g. 東京都千代田区長."""
    issued_on: date
    certification: str
    """The certifying sentence above the date and the seal."""
    sections: tuple[Section, ...]
    notes: tuple[str, ...] = ()
    seal_registration_number: str | None = None
    """印鑑登録証明書: the number whose registered impression is printed."""

    def to_dict(self, *, reveal: bool = True) -> dict[str, Any]:
        return {
            "kind": self.kind.value, "title": self.title, "municipality_code": self.municipality_code,
            "municipality_name": self.municipality_name, "issuer": self.issuer,
            "issued_on": self.issued_on.isoformat(), "certification": self.certification,
            "sections": [{"heading": s.heading, "fields": [
                {"label": f.label, "value": f.shown(reveal=reveal), "secret": f.secret} for f in s.fields]}
                for s in self.sections],
            "notes": list(self.notes), "seal_registration_number": self.seal_registration_number,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> DocumentContent:
        return cls(
            kind=DocumentKind(data["kind"]), title=data["title"], municipality_code=data["municipality_code"],
            municipality_name=data["municipality_name"], issuer=data["issuer"],
            issued_on=date.fromisoformat(data["issued_on"]), certification=data["certification"],
            sections=tuple(Section(s["heading"], tuple(Field(f["label"], f["value"], bool(f["secret"]))
                                                       for f in s["fields"])) for s in data["sections"]),
            notes=tuple(data.get("notes", ())), seal_registration_number=data.get("seal_registration_number"))

    def public_digest(self) -> str:
        """SHA-256 of the content with secrets masked: printed on the paper and shown when verifying."""
        canonical = json.dumps(self.to_dict(reveal=False), ensure_ascii=False, sort_keys=True,
                               separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()

    @property
    def has_secret(self) -> bool:
        return any(f.secret for s in self.sections for f in s.fields)


# --- Japanese dates -----------------------------------------------------------------------------------

_ERAS = ((date(2019, 5, 1), "令和"), (date(1989, 1, 8), "平成"), (date(1926, 12, 25), "昭和"),
         (date(1912, 7, 30), "大正"), (date(1873, 1, 1), "明治"))


def wareki(day: date) -> str:
    """A date in the Japanese calendar as certificates print it: 令和8年4月6日, 平成元年1月8日."""
    for start, name in _ERAS:
        if day >= start:
            year = day.year - start.year + 1
            return f"{name}{'元' if year == 1 else year}年{day.month}月{day.day}日"
    return f"{day.year}年{day.month}月{day.day}日"


def kanji_digits(text: str) -> str:
    """Full-width digits for a printed certificate (NFKC is the inverse)."""
    return "".join(chr(ord(ch) + 0xFEE0) if "0" <= ch <= "9" else ch for ch in text)


def normalise(text: str) -> str:
    return unicodedata.normalize("NFKC", text)


@dataclass(frozen=True)
class Quote:
    """The fee for an order."""

    fee_yen: int
    copies: int
    total_yen: int = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "total_yen", self.fee_yen * self.copies)


@dataclass(frozen=True)
class OrderDecision:
    """What the centre does with a paid order (:func:`decide_order`); exactly one of the flags holds."""

    accept: bool = False
    """Take it: move the request to rendering at ``fee_yen``, made by ``issuing_municipality``."""
    redeliver: bool = False
    """The same order again after its release (a retry): hand over the document already made."""
    busy: str | None = None
    """Not now (a conflict, nothing changes): the request is being processed or past ordering."""
    refusal: RefusalReason | None = None
    """Refused with this reason; with ``ends_request`` the request is aborted too (nothing can follow)."""
    ends_request: bool = False
    detail: str | None = None
    fee_yen: int = 0
    issuing_municipality: str = ""


def decide_order(state: SessionState, same_order: bool, stored_refusal: str | None, expired: bool,
                 offer: Mapping[str, Sequence[Any]], kind: DocumentKind, copies: int,
                 paid_yen: int) -> OrderDecision:
    """Why an order is refused, or what it costs: the rule behind :meth:`~mynacard.kiosk.centre.Centre.order`,
    in the order it applies. ``offer`` is what the menu showed, by kind: ``(fee per copy, issuing town)``."""
    if state is SessionState.RELEASED and same_order:
        return OrderDecision(redeliver=True)
    if state is SessionState.ABORTED:
        if stored_refusal is not None and stored_refusal in RefusalReason._value2member_map_:
            return OrderDecision(refusal=RefusalReason(stored_refusal))
        return OrderDecision(refusal=RefusalReason.ABORTED)
    if state is SessionState.RENDERING:
        return OrderDecision(busy="the request is being processed")
    if state is not SessionState.AUTHENTICATED:
        return OrderDecision(busy=f"the request is {state.value}")
    if expired:
        return OrderDecision(refusal=RefusalReason.SESSION_EXPIRED, ends_request=True)
    if kind.value not in offer:
        return OrderDecision(refusal=RefusalReason.NOT_OFFERED, ends_request=True)
    fee, issuing = offer[kind.value]
    total = Quote(int(fee), copies).total_yen
    if paid_yen < total:
        return OrderDecision(refusal=RefusalReason.WRONG_FEE, detail=f"{total} yen due, {paid_yen} paid")
    return OrderDecision(accept=True, fee_yen=total, issuing_municipality=str(issuing))

