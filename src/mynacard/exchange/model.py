"""The information provision network (情報提供ネットワークシステム) as a pure domain model.

Agencies (情報照会者・情報提供者) keep their own records; the hub links them through agency codes
(機関別符号), a keyed derivation per agency that no two agencies can join without the hub. Only the
exchanges listed in :data:`PERMITTED_EXCHANGES` (in the spirit of 番号法 別表第二) may flow; every
exchange is one entry of a hash-chained log (情報提供等記録) that the person reads in Mynaportal.

No I/O and no clock: times come in as arguments. The code derivations use ``hashlib``/``hmac`` only. How the
log's entries are linked and how a chain is walked is the one hash-chain rule of every audit log
(:mod:`mynacard.hashchain`), applied here to per-person chains with signed checkpoints and retention anchors.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from enum import StrEnum
from typing import Any

from mynacard import numbers
from mynacard.hashchain import GENESIS, ChainWalk, Fault, link
from mynacard.registry.model import BasicFacts, Resident, ResidentStatus, normalize_kana

__all__ = [
    "CHECKPOINT_EVERY",
    "HOLDS",
    "LOG_CHAINS",
    "LOG_RETENTION_YEARS",
    "PERMITTED_EXCHANGES",
    "PORTAL_AGENCY_ID",
    "Agency",
    "AgencyCode",
    "AgencyId",
    "AgencyKind",
    "AgencyStatus",
    "ChainBreak",
    "ChainVerifier",
    "EnrolmentDecision",
    "EnrolmentVerdict",
    "ExchangeKind",
    "ExchangeStatus",
    "InfoItem",
    "LinkStatus",
    "LogEntry",
    "PermittedExchange",
    "Procedure",
    "SubmittedFacts",
    "chain_hash",
    "chain_of",
    "check_record_data",
    "decide_enrolment",
    "derive_agency_code",
    "find_permission",
    "first_break",
    "log_cutoff",
    "provider_kinds_for",
]

PORTAL_AGENCY_ID = "mynaportal"
"""Mynaportal's place on the network (情報提供等記録開示システム); its codes are 開示システム用符号."""

LOG_RETENTION_YEARS = 7
"""情報提供等記録 are kept seven years (番号法施行令; Mynaportal shows the last seven years)."""

CHECKPOINT_EVERY = 1000
"""Every this many log entries the hub signs a checkpoint, so that a rewritten stretch can be located."""

# --- identifiers --------------------------------------------------------------------------------------------

_AGENCY_ID = re.compile(r"[a-z0-9]+(?:-[a-z0-9]+)*")


class AgencyId(str):
    """An agency on the network: lower-case letters and digits in hyphen-separated words, 3–40 characters,
    e.g. ``131016-tax`` (千代田区 税務課) or ``nenkin`` (日本年金機構). Hyphens only, never underscores, so
    that the agency's own store name (``agency_131016_tax``) maps back to exactly one agency."""

    __slots__ = ()

    def __new__(cls, value: str) -> AgencyId:
        if not isinstance(value, str) or not 3 <= len(value) <= 40 or not _AGENCY_ID.fullmatch(value):
            raise ValueError(f"not an agency ID: {value!r} (3–40 of a-z, 0-9 in hyphen-separated words)")
        return super().__new__(cls, value)

    @property
    def store_name(self) -> str:
        """Name of the agency's own store (its PostgreSQL schema, or its table prefix on SQLite)."""
        return "agency_" + self.replace("-", "_")


_CODE = re.compile(r"[A-Z2-7]{26}")


class AgencyCode(str):
    """機関別符号: 26 base32 characters (128 bits), meaningful only to the hub and the agency holding it."""

    __slots__ = ()

    def __new__(cls, value: str) -> AgencyCode:
        if not isinstance(value, str) or not _CODE.fullmatch(value):
            raise ValueError("an agency code (符号) has 26 characters A–Z and 2–7")
        return super().__new__(cls, value)


def derive_agency_code(root: bytes, agency_id: str, resident_code: str, generation: int) -> AgencyCode:
    """The code the hub issues to ``agency_id`` for the person with ``resident_code`` (住民票コード).

    HMAC-SHA256 under a per-agency key (itself an HMAC of the hub's secret root), so that codes of two
    agencies for one person share nothing an outsider could join; ``generation`` gives a fresh code after a
    link was undone, so that a code once withdrawn never comes back for another person.
    """
    if len(root) < 32:
        raise ValueError("the code root must have at least 32 bytes")
    if generation < 0:
        raise ValueError("generation must be >= 0")
    agency_key = hmac.new(root, b"fugo-agency:" + AgencyId(agency_id).encode(), hashlib.sha256).digest()
    mac = hmac.new(agency_key, f"{resident_code}:{generation}".encode(), hashlib.sha256).digest()
    return AgencyCode(base64.b32encode(mac[:16]).decode().rstrip("="))


# --- agencies, items, procedures ----------------------------------------------------------------------------

class AgencyKind(StrEnum):
    """What an agency is; the permitted-exchange table is written in these terms, as 別表第二 is."""

    MUNICIPAL_RESIDENT = "municipal_resident"
    """市区町村長 (住民基本台帳部門) — holds 住民票関係情報."""
    MUNICIPAL_TAX = "municipal_tax"
    """市区町村長 (税務部門) — holds 地方税関係情報."""
    MUNICIPAL_WELFARE = "municipal_welfare"
    """市区町村長 (福祉事務所・障害福祉部門) — 生活保護関係情報, 障害者関係情報."""
    MUNICIPAL_CHILD = "municipal_child"
    """市区町村長 (子育て支援部門) — 児童手当, 保育, 児童扶養手当."""
    MUNICIPAL_HEALTH = "municipal_health"
    """市区町村長 (保健部門) — 母子保健関係情報."""
    PENSION = "pension"
    """日本年金機構 — 年金給付関係情報."""
    HEALTH_INSURER = "health_insurer"
    """医療保険者 (健康保険組合, 協会けんぽ, 国民健康保険) — 医療保険給付関係情報."""
    HELLO_WORK = "hello_work"
    """厚生労働大臣 (公共職業安定所) — 雇用保険給付関係情報."""
    DISASTER_SUPPORT = "disaster_support"
    """被災者生活再建支援法人 — 被災者関係情報."""
    PORTAL = "portal"
    """情報提供等記録開示システム (Mynaportal) — the person's own window onto the network."""

    @property
    def municipal(self) -> bool:
        """Municipal divisions belong to one municipality; national bodies to none."""
        return self.value.startswith("municipal_")

    @property
    def label_ja(self) -> str:
        return _KIND_JA[self]


_KIND_JA = {
    AgencyKind.MUNICIPAL_RESIDENT: "市区町村 住民基本台帳担当",
    AgencyKind.MUNICIPAL_TAX: "市区町村 税務担当",
    AgencyKind.MUNICIPAL_WELFARE: "市区町村 福祉担当",
    AgencyKind.MUNICIPAL_CHILD: "市区町村 子育て支援担当",
    AgencyKind.MUNICIPAL_HEALTH: "市区町村 保健担当",
    AgencyKind.PENSION: "日本年金機構",
    AgencyKind.HEALTH_INSURER: "医療保険者",
    AgencyKind.HELLO_WORK: "公共職業安定所",
    AgencyKind.DISASTER_SUPPORT: "被災者生活再建支援法人",
    AgencyKind.PORTAL: "マイナポータル",
}


class InfoItem(StrEnum):
    """特定個人情報の項目 — what may be asked for."""

    RESIDENT_RECORD = "resident_record"
    """住民票関係情報 (世帯構成, 住所の異動)."""
    LOCAL_TAX = "local_tax"
    """地方税関係情報 (所得, 課税額)."""
    PENSION_BENEFIT = "pension_benefit"
    """年金給付関係情報."""
    EMPLOYMENT_INSURANCE = "employment_insurance"
    """雇用保険給付関係情報."""
    HEALTH_INSURANCE = "health_insurance"
    """医療保険給付関係情報 (被保険者資格, 給付)."""
    PUBLIC_ASSISTANCE = "public_assistance"
    """生活保護関係情報."""
    DISABILITY = "disability"
    """障害者関係情報 (手帳, 福祉サービス)."""
    CHILD_ALLOWANCE = "child_allowance"
    """児童手当関係情報."""
    SINGLE_PARENT_ALLOWANCE = "single_parent_allowance"
    """児童扶養手当関係情報."""
    MATERNAL_CHILD_HEALTH = "maternal_child_health"
    """母子保健関係情報 (妊婦健診, 乳幼児健診)."""
    DISASTER_VICTIM = "disaster_victim"
    """被災者関係情報 (り災証明, 支援金)."""

    @property
    def label_ja(self) -> str:
        return _ITEM_JA[self]


_ITEM_JA = {
    InfoItem.RESIDENT_RECORD: "住民票関係情報",
    InfoItem.LOCAL_TAX: "地方税関係情報",
    InfoItem.PENSION_BENEFIT: "年金給付関係情報",
    InfoItem.EMPLOYMENT_INSURANCE: "雇用保険給付関係情報",
    InfoItem.HEALTH_INSURANCE: "医療保険給付関係情報",
    InfoItem.PUBLIC_ASSISTANCE: "生活保護関係情報",
    InfoItem.DISABILITY: "障害者関係情報",
    InfoItem.CHILD_ALLOWANCE: "児童手当関係情報",
    InfoItem.SINGLE_PARENT_ALLOWANCE: "児童扶養手当関係情報",
    InfoItem.MATERNAL_CHILD_HEALTH: "母子保健関係情報",
    InfoItem.DISASTER_VICTIM: "被災者関係情報",
}


class Procedure(StrEnum):
    """事務 — the task for which information is asked."""

    PENSION_PREMIUM_EXEMPTION = "pension_premium_exemption"
    """国民年金保険料の免除に関する事務."""
    PENSION_BENEFIT = "pension_benefit"
    """年金給付の支給に関する事務."""
    EMPLOYMENT_INSURANCE_BENEFIT = "employment_insurance_benefit"
    """雇用保険法による失業等給付の支給に関する事務."""
    HIGH_COST_MEDICAL = "high_cost_medical"
    """高額療養費の支給に関する事務."""
    HEALTH_INSURANCE_QUALIFICATION = "health_insurance_qualification"
    """医療保険の資格の取得・喪失に関する事務."""
    PUBLIC_ASSISTANCE = "public_assistance"
    """生活保護の決定及び実施に関する事務."""
    DISABILITY_SERVICES = "disability_services"
    """障害福祉サービスの支給決定に関する事務."""
    LOCAL_TAX_ASSESSMENT = "local_tax_assessment"
    """地方税の賦課徴収に関する事務."""
    CHILD_ALLOWANCE = "child_allowance"
    """児童手当の支給に関する事務."""
    CHILDCARE_ADMISSION = "childcare_admission"
    """保育所等の利用 (子ども・子育て支援法による支給認定) に関する事務."""
    SINGLE_PARENT_ALLOWANCE = "single_parent_allowance"
    """児童扶養手当の支給に関する事務."""
    MATERNAL_CHILD_HEALTH = "maternal_child_health"
    """母子保健法による健康診査・保健指導に関する事務."""
    DISASTER_RECOVERY_SUPPORT = "disaster_recovery_support"
    """被災者生活再建支援金の支給に関する事務."""
    DISASTER_CONDOLENCE = "disaster_condolence"
    """災害弔慰金の支給・災害援護資金の貸付に関する事務."""

    @property
    def label_ja(self) -> str:
        return _PROCEDURE_JA[self]


_PROCEDURE_JA = {
    Procedure.PENSION_PREMIUM_EXEMPTION: "国民年金保険料の免除",
    Procedure.PENSION_BENEFIT: "年金給付の支給",
    Procedure.EMPLOYMENT_INSURANCE_BENEFIT: "雇用保険の失業等給付の支給",
    Procedure.HIGH_COST_MEDICAL: "高額療養費の支給",
    Procedure.HEALTH_INSURANCE_QUALIFICATION: "医療保険の資格の取得・喪失",
    Procedure.PUBLIC_ASSISTANCE: "生活保護の決定及び実施",
    Procedure.DISABILITY_SERVICES: "障害福祉サービスの支給決定",
    Procedure.LOCAL_TAX_ASSESSMENT: "地方税の賦課徴収",
    Procedure.CHILD_ALLOWANCE: "児童手当の支給",
    Procedure.CHILDCARE_ADMISSION: "保育所等の利用",
    Procedure.SINGLE_PARENT_ALLOWANCE: "児童扶養手当の支給",
    Procedure.MATERNAL_CHILD_HEALTH: "母子保健 (健康診査・保健指導)",
    Procedure.DISASTER_RECOVERY_SUPPORT: "被災者生活再建支援金の支給",
    Procedure.DISASTER_CONDOLENCE: "災害弔慰金・災害援護資金",
}

class AgencyStatus(StrEnum):
    """Whether an agency may take part in exchanges."""

    ACTIVE = "active"
    SUSPENDED = "suspended"
    """停止 — its messages are refused (a breach, a decommissioned system); its links and log stay."""


@dataclass(frozen=True)
class Agency:
    """An agency registered with the network, as the directory shows it (public keys only)."""

    id: AgencyId
    name: str
    """Japanese name, e.g. 千代田区 税務課."""
    name_en: str
    kind: AgencyKind
    municipality_code: str | None
    """The municipality of a municipal division; None for national bodies."""
    status: AgencyStatus
    key_version: int
    sign_public_key: bytes
    """Ed25519 key that verifies what the agency sends."""
    enc_public_key: bytes
    """X25519 key that messages to the agency are encrypted to."""

    @property
    def active(self) -> bool:
        return self.status is AgencyStatus.ACTIVE

    def holds(self, item: InfoItem) -> bool:
        return item in HOLDS[self.kind]


HOLDS: Mapping[AgencyKind, frozenset[InfoItem]] = {
    AgencyKind.MUNICIPAL_RESIDENT: frozenset({InfoItem.RESIDENT_RECORD}),
    AgencyKind.MUNICIPAL_TAX: frozenset({InfoItem.LOCAL_TAX}),
    AgencyKind.MUNICIPAL_WELFARE: frozenset({InfoItem.PUBLIC_ASSISTANCE, InfoItem.DISABILITY}),
    AgencyKind.MUNICIPAL_CHILD: frozenset({InfoItem.CHILD_ALLOWANCE, InfoItem.SINGLE_PARENT_ALLOWANCE}),
    AgencyKind.MUNICIPAL_HEALTH: frozenset({InfoItem.MATERNAL_CHILD_HEALTH}),
    AgencyKind.PENSION: frozenset({InfoItem.PENSION_BENEFIT}),
    AgencyKind.HEALTH_INSURER: frozenset({InfoItem.HEALTH_INSURANCE}),
    AgencyKind.HELLO_WORK: frozenset({InfoItem.EMPLOYMENT_INSURANCE}),
    AgencyKind.DISASTER_SUPPORT: frozenset({InfoItem.DISASTER_VICTIM}),
    AgencyKind.PORTAL: frozenset(),
}
"""Which items an agency of each kind holds and may register copies (副本) of."""


@dataclass(frozen=True)
class PermittedExchange:
    """One row of the permitted-exchange table (別表第二): who may ask whom for what, for which task."""

    row: str
    """A stable label of the row (our numbering, not the law's item numbers, which amendments moved)."""
    requester: AgencyKind
    """情報照会者."""
    procedure: Procedure
    """事務."""
    provider: AgencyKind
    """情報提供者."""
    item: InfoItem
    """特定個人情報."""


def _p(row: str, requester: AgencyKind, procedure: Procedure, provider: AgencyKind,
       item: InfoItem) -> PermittedExchange:
    return PermittedExchange(row, requester, procedure, provider, item)


K, P, It = AgencyKind, Procedure, InfoItem

PERMITTED_EXCHANGES: tuple[PermittedExchange, ...] = (
    # pension (年金)
    _p("P-01", K.PENSION, P.PENSION_PREMIUM_EXEMPTION, K.MUNICIPAL_TAX, It.LOCAL_TAX),
    _p("P-02", K.PENSION, P.PENSION_BENEFIT, K.MUNICIPAL_RESIDENT, It.RESIDENT_RECORD),
    _p("P-03", K.PENSION, P.PENSION_BENEFIT, K.MUNICIPAL_TAX, It.LOCAL_TAX),
    # employment (雇用)
    _p("E-01", K.HELLO_WORK, P.EMPLOYMENT_INSURANCE_BENEFIT, K.PENSION, It.PENSION_BENEFIT),
    _p("E-02", K.HELLO_WORK, P.EMPLOYMENT_INSURANCE_BENEFIT, K.MUNICIPAL_RESIDENT, It.RESIDENT_RECORD),
    # health insurance (医療保険)
    _p("H-01", K.HEALTH_INSURER, P.HIGH_COST_MEDICAL, K.MUNICIPAL_TAX, It.LOCAL_TAX),
    _p("H-02", K.HEALTH_INSURER, P.HEALTH_INSURANCE_QUALIFICATION, K.HEALTH_INSURER, It.HEALTH_INSURANCE),
    _p("H-03", K.HEALTH_INSURER, P.HEALTH_INSURANCE_QUALIFICATION, K.MUNICIPAL_RESIDENT, It.RESIDENT_RECORD),
    _p("H-04", K.HEALTH_INSURER, P.HIGH_COST_MEDICAL, K.MUNICIPAL_WELFARE, It.PUBLIC_ASSISTANCE),
    # welfare (福祉)
    _p("W-01", K.MUNICIPAL_WELFARE, P.PUBLIC_ASSISTANCE, K.MUNICIPAL_TAX, It.LOCAL_TAX),
    _p("W-02", K.MUNICIPAL_WELFARE, P.PUBLIC_ASSISTANCE, K.PENSION, It.PENSION_BENEFIT),
    _p("W-03", K.MUNICIPAL_WELFARE, P.PUBLIC_ASSISTANCE, K.HELLO_WORK, It.EMPLOYMENT_INSURANCE),
    _p("W-04", K.MUNICIPAL_WELFARE, P.PUBLIC_ASSISTANCE, K.HEALTH_INSURER, It.HEALTH_INSURANCE),
    _p("W-05", K.MUNICIPAL_WELFARE, P.DISABILITY_SERVICES, K.MUNICIPAL_TAX, It.LOCAL_TAX),
    _p("W-06", K.MUNICIPAL_WELFARE, P.DISABILITY_SERVICES, K.MUNICIPAL_RESIDENT, It.RESIDENT_RECORD),
    # local tax (地方税)
    _p("T-01", K.MUNICIPAL_TAX, P.LOCAL_TAX_ASSESSMENT, K.PENSION, It.PENSION_BENEFIT),
    _p("T-02", K.MUNICIPAL_TAX, P.LOCAL_TAX_ASSESSMENT, K.MUNICIPAL_WELFARE, It.PUBLIC_ASSISTANCE),
    _p("T-03", K.MUNICIPAL_TAX, P.LOCAL_TAX_ASSESSMENT, K.MUNICIPAL_TAX, It.LOCAL_TAX),
    _p("T-04", K.MUNICIPAL_TAX, P.LOCAL_TAX_ASSESSMENT, K.MUNICIPAL_WELFARE, It.DISABILITY),
    # child allowance and child-rearing (児童手当・子育て)
    _p("C-01", K.MUNICIPAL_CHILD, P.CHILD_ALLOWANCE, K.MUNICIPAL_TAX, It.LOCAL_TAX),
    _p("C-02", K.MUNICIPAL_CHILD, P.CHILD_ALLOWANCE, K.MUNICIPAL_RESIDENT, It.RESIDENT_RECORD),
    _p("C-03", K.MUNICIPAL_CHILD, P.CHILD_ALLOWANCE, K.MUNICIPAL_CHILD, It.CHILD_ALLOWANCE),
    _p("C-04", K.MUNICIPAL_CHILD, P.CHILDCARE_ADMISSION, K.MUNICIPAL_TAX, It.LOCAL_TAX),
    _p("C-05", K.MUNICIPAL_CHILD, P.SINGLE_PARENT_ALLOWANCE, K.MUNICIPAL_TAX, It.LOCAL_TAX),
    _p("C-06", K.MUNICIPAL_CHILD, P.SINGLE_PARENT_ALLOWANCE, K.PENSION, It.PENSION_BENEFIT),
    _p("C-07", K.MUNICIPAL_CHILD, P.SINGLE_PARENT_ALLOWANCE, K.MUNICIPAL_RESIDENT, It.RESIDENT_RECORD),
    _p("C-08", K.MUNICIPAL_HEALTH, P.MATERNAL_CHILD_HEALTH, K.MUNICIPAL_HEALTH, It.MATERNAL_CHILD_HEALTH),
    # disaster support (被災者支援)
    _p("D-01", K.DISASTER_SUPPORT, P.DISASTER_RECOVERY_SUPPORT, K.MUNICIPAL_RESIDENT, It.RESIDENT_RECORD),
    _p("D-02", K.DISASTER_SUPPORT, P.DISASTER_RECOVERY_SUPPORT, K.MUNICIPAL_TAX, It.LOCAL_TAX),
    _p("D-03", K.MUNICIPAL_WELFARE, P.DISASTER_CONDOLENCE, K.MUNICIPAL_RESIDENT, It.RESIDENT_RECORD),
    _p("D-04", K.MUNICIPAL_WELFARE, P.DISASTER_CONDOLENCE, K.DISASTER_SUPPORT, It.DISASTER_VICTIM),
)
"""Representative rows in the spirit of 番号法 別表第二; anything not listed is refused and logged."""

del K, P, It

_PERMISSIONS = {(p.requester, p.procedure, p.provider, p.item): p for p in PERMITTED_EXCHANGES}


def find_permission(requester: AgencyKind, procedure: Procedure, provider: AgencyKind,
                    item: InfoItem) -> PermittedExchange | None:
    """The row that allows this exchange, or None (then the exchange must be refused)."""
    return _PERMISSIONS.get((requester, procedure, provider, item))


def provider_kinds_for(requester: AgencyKind, procedure: Procedure) -> list[tuple[AgencyKind, InfoItem]]:
    """What a requester may ask for in a procedure: (provider kind, item) pairs."""
    return [(p.provider, p.item) for p in PERMITTED_EXCHANGES
            if p.requester is requester and p.procedure is procedure]


# --- record copies (副本) -----------------------------------------------------------------------------------

_DIGITS12 = re.compile(r"(?<![0-9])[0-9]{12}(?![0-9])")
_MAX_RECORD_BYTES = 16_384


def check_record_data(data: Any) -> dict[str, Any]:
    """Validate the copy of one item an agency registers: a flat JSON object of at most 64 fields with text,
    number, boolean or null values, under 16 KiB — and never anything that looks like an individual number,
    so that one cannot travel in an exchange by accident (12 digits with a valid check digit are refused).
    """
    if not isinstance(data, dict) or not data:
        raise ValueError("record data must be a non-empty JSON object")
    if len(data) > 64:
        raise ValueError("record data has more than 64 fields")
    for key, value in data.items():
        if not isinstance(key, str) or not 1 <= len(key) <= 64:
            raise ValueError("record field names are 1–64 characters of text")
        if value is not None and not isinstance(value, str | int | float | bool):
            raise ValueError(f"field {key!r}: values are text, numbers, booleans or null")
        for text in (key, value if isinstance(value, str) else str(value) if isinstance(value, int) else ""):
            compact = text.replace("-", "").replace(" ", "")
            if any(numbers.is_valid_individual_number(m) for m in _DIGITS12.findall(compact)):
                raise ValueError(f"field {key!r} looks like an individual number, which never goes into a "
                                 "record that can be exchanged")
    if len(json.dumps(data, ensure_ascii=False).encode()) > _MAX_RECORD_BYTES:
        raise ValueError("record data is larger than 16 KiB")
    return dict(data)


# --- enrolment: the full match (基本4情報の完全一致) --------------------------------------------------------

@dataclass(frozen=True)
class SubmittedFacts:
    """The basic four facts as the enrolling agency holds them, with kana when it has them."""

    facts: BasicFacts
    family_kana: str | None = None
    given_kana: str | None = None

    @classmethod
    def parse(cls, family_name: str, given_name: str, birth_date: date, sex: str, address: str,
              family_kana: str | None = None, given_kana: str | None = None) -> SubmittedFacts:
        """Normalise as the registry does; raises ``ValueError`` with a clear message."""
        facts = BasicFacts.parse(family_name, given_name, birth_date, sex, address)
        if (family_kana is None) != (given_kana is None):
            raise ValueError("give both kana parts or neither")
        return cls(facts, normalize_kana(family_kana) if family_kana else None,
                   normalize_kana(given_kana) if given_kana else None)


class EnrolmentDecision(StrEnum):
    """What the hub does with one enrolment request."""

    LINK = "link"
    """Full match: issue (or return) the agency's code for the person."""
    REVIEW = "review"
    """Anything less: a person looks at it; nothing is linked."""


@dataclass(frozen=True)
class EnrolmentVerdict:
    decision: EnrolmentDecision
    reasons: tuple[str, ...] = ()
    """Why it went to review: ``unknown_number``, ``record_closed``, ``name``, ``birth_date``, ``sex``,
    ``address``, ``kana``, ``person_linked_to_other_record``, ``record_linked_to_other_person``."""


def decide_enrolment(submitted: SubmittedFacts, resident: Resident | None, *,
                     person_linked_elsewhere: bool = False,
                     record_linked_to_other: bool = False) -> EnrolmentVerdict:
    """Link only on a full match of the basic four facts (and kana, when given) with the registry record the
    number leads to, and only when neither side is already linked to someone else; otherwise review.

    The number alone is never enough (reference §6 #12, #13): a number returned for partial facts, or a
    family member's number written on a form (#14), is caught here and goes to a person.
    """
    if resident is None:
        return EnrolmentVerdict(EnrolmentDecision.REVIEW, ("unknown_number",))
    reasons = list(submitted.facts.mismatches(resident.facts))
    if submitted.family_kana is not None and (submitted.family_kana, submitted.given_kana) != (
            resident.family_kana, resident.given_kana):
        reasons.append("kana")
    if resident.status is not ResidentStatus.ACTIVE:
        reasons.append("record_closed")
    if person_linked_elsewhere:
        reasons.append("person_linked_to_other_record")
    if record_linked_to_other:
        reasons.append("record_linked_to_other_person")
    if reasons:
        return EnrolmentVerdict(EnrolmentDecision.REVIEW, tuple(reasons))
    return EnrolmentVerdict(EnrolmentDecision.LINK)


class LinkStatus(StrEnum):
    """State of one agency's link to a person."""

    ACTIVE = "active"
    """The code is in use."""
    SUSPENDED = "suspended"
    """Reconciliation found the agency's facts no longer match: no exchange until a person decides."""
    UNLINKED = "unlinked"
    """Withdrawn (a wrong link, or the agency no longer holds the person); the code is never reissued."""


# --- the exchange log (情報提供等記録) ----------------------------------------------------------------------

class ExchangeKind(StrEnum):
    """What crossed the hub."""

    QUERY = "query"
    """情報照会・情報提供."""
    SELF_INFORMATION = "self_information"
    """自己情報提供 — an agency's records shown to the person in Mynaportal."""
    NOTICE = "notice"
    """お知らせ — an agency's notice to the person."""
    APPLICATION = "application"
    """電子申請 — the person's application delivered to an agency."""


class ExchangeStatus(StrEnum):
    """How an exchange ended."""

    PROVIDED = "provided"
    """提供済 — the provider answered with the item."""
    NO_RECORD = "no_record"
    """該当なし — the provider holds the person but not the item."""
    NOT_ENROLLED = "not_enrolled"
    """The provider holds no active code for the person."""
    REFUSED = "refused"
    """拒否 — not a permitted exchange, or a code that is not the requester's."""
    DELIVERED = "delivered"
    """配信済 — a notice or application reached its recipient."""


@dataclass(frozen=True)
class LogEntry:
    """One 情報提供等記録: who asked, who provided, which item, for which procedure, when."""

    seq: int
    """The entry's number across the whole log (increasing; a rolled-back exchange may leave a gap)."""
    chain: int
    """Which of the :data:`LOG_CHAINS` hash chains the entry is linked into (see :func:`chain_of`)."""
    chain_seq: int
    """Its position in that chain: 1, 2, 3 … without gaps, so that a removed entry shows."""
    kind: ExchangeKind
    message_id: str
    """The sender's message ID (idempotency key; a retried request is not logged twice)."""
    requester: str
    """The agency that sent the message (情報照会者; Mynaportal for self-information and applications)."""
    provider: str | None
    """The agency that answered or received it (情報提供者)."""
    procedure: str | None
    item: str | None
    subject_code: str | None
    """The person's Mynaportal code (開示システム用符号) — how the person finds their records; None when the
    requester's code named nobody."""
    status: ExchangeStatus
    reason: str | None
    requested_at: datetime
    completed_at: datetime

    def canonical(self) -> bytes:
        """The bytes the chain hashes: every field, in a fixed order, times in UTC to the microsecond."""
        fields = [self.seq, self.chain, self.chain_seq, self.kind.value, self.message_id, self.requester,
                  self.provider, self.procedure, self.item, self.subject_code, self.status.value, self.reason,
                  _utc(self.requested_at), _utc(self.completed_at)]
        return json.dumps(fields, ensure_ascii=False, separators=(",", ":")).encode()


LOG_CHAINS = 16
"""The log is this many hash chains, so that exchanges about different people do not wait for one another
(each chain has its own head, locked only by appenders to that chain). Chain 0 holds the entries about
nobody (a requester's code that named no one); a person's entries are always in the same chain."""

_B32 = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"


def chain_of(subject_code: str | None) -> int:
    """The chain of the entries about the person with this Mynaportal code (codes are uniform base32)."""
    if not subject_code:
        return 0
    return 1 + _B32.index(subject_code[0]) % (LOG_CHAINS - 1)


def _utc(moment: datetime) -> str:
    if moment.tzinfo is None:
        raise ValueError("naive datetime in a log entry")
    return moment.astimezone(UTC).isoformat(timespec="microseconds")


def chain_hash(prev_hash: str, entry: LogEntry) -> str:
    """The entry's hash: :func:`~mynacard.hashchain.link` of the previous entry's hash (in the same chain) and
    this entry's canonical bytes."""
    return link(prev_hash, entry.canonical())


def log_cutoff(now: datetime) -> datetime:
    """Entries completed before this moment are past the seven-year retention."""
    try:
        return now.replace(year=now.year - LOG_RETENTION_YEARS)
    except ValueError:  # 29 February
        return now.replace(year=now.year - LOG_RETENTION_YEARS, day=28)


@dataclass(frozen=True)
class ChainBreak:
    """Where a chain stops being whole, and why, in words an auditor can act on."""

    chain: int
    chain_seq: int
    """The position in the chain where the break shows."""
    seq: int | None
    """The log entry there, when it still exists (None for entries that are gone)."""
    kind: str
    """``altered`` (contents no longer match their hash), ``relinked`` (an entry no longer follows the
    previous one: altered and rehashed, inserted or reordered), ``missing`` (entries removed),
    ``checkpoint`` (a signed checkpoint disagrees), ``head`` (the signed head disagrees)."""
    detail: str

    @property
    def where(self) -> str:
        entry = f"entry {self.seq} " if self.seq is not None else ""
        return f"{entry}(chain {self.chain}, position {self.chain_seq})"


@dataclass
class ChainVerifier:
    """Feeds on one chain's rows in ``chain_seq`` order and collects every break (streaming): the walk is
    :class:`~mynacard.hashchain.ChainWalk`; this adds the chain an entry claims, the hub's checkpoints and the
    words for an auditor."""

    chain: int = 0
    anchor_seq: int = 0
    """The chain position before the first expected one (0, or the last one purged after seven years)."""
    anchor_hash: str = GENESIS
    checkpoints: Mapping[int, str] = field(default_factory=dict)
    """chain position → row hash the hub signed (signatures are checked by the caller)."""
    max_breaks: int = 50
    breaks: list[ChainBreak] = field(default_factory=list)
    _walk: ChainWalk = field(init=False)
    _last_entry: int | None = None
    _last_good_checkpoint: int = 0

    def __post_init__(self) -> None:
        self._walk = ChainWalk(self.anchor_seq, self.anchor_hash)
        self._last_good_checkpoint = self.anchor_seq

    @property
    def entries(self) -> int:
        """Entries fed."""
        return self._walk.entries

    def _break(self, pos: int, seq: int | None, kind: str, detail: str) -> None:
        if len(self.breaks) < self.max_breaks:
            self.breaks.append(ChainBreak(self.chain, pos, seq, kind, detail))

    def feed(self, entry: LogEntry, prev_hash: str, row_hash: str) -> None:
        pos, seq = entry.chain_seq, entry.seq
        if entry.chain != self.chain:
            self._break(pos, seq, "relinked", f"entry {seq} claims chain {entry.chain}, found in {self.chain}")
        last_pos = self._walk.pos
        for fault in self._walk.step(pos, prev_hash, entry.canonical(), row_hash):
            if fault is Fault.GAP:
                gap = f"position {last_pos + 1}" if pos == last_pos + 2 else f"positions {last_pos + 1}–{pos - 1}"
                after = f" after entry {self._last_entry}" if self._last_entry is not None else ""
                self._break(last_pos + 1, seq, "missing",
                            f"chain {self.chain}: {gap}{after} and before entry {seq} are missing "
                            "(deleted from the log)")
            elif fault is Fault.OUT_OF_ORDER:
                self._break(pos, seq, "relinked", f"entry {seq} appears out of order in chain {self.chain}")
            elif fault is Fault.RELINKED:
                self._break(pos, seq, "relinked", f"entry {seq} does not follow the entry before it in chain "
                                                  f"{self.chain}: one of them was altered and rehashed, or an "
                                                  "entry was inserted")
            else:
                self._break(pos, seq, "altered", f"entry {seq} was altered: its contents no longer match its hash")
        expected = self.checkpoints.get(pos)
        if expected is not None:
            if expected != row_hash:
                self._break(pos, seq, "checkpoint",
                            f"the checkpoint signed at entry {seq} (chain {self.chain}, position {pos}) does not "
                            f"match: positions {self._last_good_checkpoint + 1}–{pos} of chain {self.chain} were "
                            "rewritten after it was signed")
            else:
                self._last_good_checkpoint = pos
        self._last_entry = seq

    def finish(self, head_pos: int | None, head_hash: str | None) -> list[ChainBreak]:
        """Compare the end of the chain with its signed head; returns every break found."""
        last_pos = self._walk.pos
        if head_pos is not None and head_hash is not None:
            fault = self._walk.end(head_pos, head_hash)
            if fault is Fault.TRUNCATED:
                after = f" after entry {self._last_entry}" if self._last_entry is not None else ""
                self._break(last_pos + 1, None, "missing",
                            f"chain {self.chain}: positions {last_pos + 1}–{head_pos}{after} are missing "
                            "from the end of the chain")
            elif fault is Fault.HEAD:
                self._break(head_pos, self._last_entry, "head",
                            f"the signed head of chain {self.chain} names position {head_pos}, but the chain "
                            f"ends at {last_pos} with another hash")
        for pos in sorted(self.checkpoints):
            if pos > last_pos:
                self._break(pos, None, "missing", f"checkpoint at position {pos} of chain {self.chain} names an "
                                                  "entry that is no longer in the log")
        return self.breaks


def first_break(breaks: Iterable[ChainBreak]) -> ChainBreak | None:
    """The earliest break by log entry (what the verifier reports as 'where')."""
    return min(breaks, key=lambda b: (b.seq if b.seq is not None else 1 << 62, b.chain, b.chain_seq),
               default=None)
