"""The issuance window as a pure model: identity documents and who may collect a card, the steps of one
window issuance (窓口交付) and the states of its record. No I/O, no clock.

Rules from reference/operations-and-incidents.md §1.6 (pickup), §1.8 (suspension), §1.10 (endorsement):

* the person: **one from list A, or two from list B** (本人確認書類: A = photo documents issued by a public
  body, B = the others showing name and date of birth or address);
* a legal representative (法定代理人, for under-15s or 成年被後見人) comes **with** the person: the person's
  documents as above, the representative's own (one A or two B) and proof of authority (a 戸籍謄本 etc.,
  not needed when the relationship can be confirmed in the town's own records);
* a proxy (任意代理人) only when the person genuinely cannot come (出頭困難: illness, disability, care
  facility, 75+, pregnancy …, with evidence): the person's documents **two A, or A + B, or three B of which
  one has a photo**, and the proxy's **two A, or A + B**.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum

from mynacard.errors import InvalidInput

__all__ = [
    "STEPS",
    "Attendance",
    "Document",
    "IdentityCheck",
    "IssuanceStatus",
    "NotificationCard",
    "ProxyReason",
    "check_identity",
    "documents_problem",
    "proxy_reason_label",
]


class Document(StrEnum):
    """本人確認書類."""

    DRIVING_LICENCE = "driving_licence"
    """運転免許証 (A)."""
    DRIVING_RECORD_CERTIFICATE = "driving_record_certificate"
    """運転経歴証明書 (A)."""
    PASSPORT = "passport"
    """旅券 (A)."""
    DISABILITY_HANDBOOK = "disability_handbook"
    """身体障害者手帳・療育手帳・精神障害者保健福祉手帳 (A)."""
    RESIDENCE_CARD = "residence_card"
    """在留カード (A)."""
    SPECIAL_PERMANENT_RESIDENT = "special_permanent_resident"
    """特別永住者証明書 (A)."""
    HEALTH_INSURANCE = "health_insurance"
    """健康保険証・資格確認書 (B)."""
    PENSION_BOOK = "pension_book"
    """年金手帳・年金証書 (B)."""
    EMPLOYEE_ID = "employee_id"
    """社員証 (B)."""
    STUDENT_ID = "student_id"
    """学生証 (B)."""
    OTHER_B = "other_b"
    """その他 氏名と生年月日または住所が記載されたもの (B)."""

    @property
    def list_a(self) -> bool:
        return self in _LIST_A

    @property
    def label(self) -> str:
        return _LABELS[self]


_LIST_A = frozenset({Document.DRIVING_LICENCE, Document.DRIVING_RECORD_CERTIFICATE, Document.PASSPORT,
                     Document.DISABILITY_HANDBOOK, Document.RESIDENCE_CARD, Document.SPECIAL_PERMANENT_RESIDENT})
_LABELS = {
    Document.DRIVING_LICENCE: "運転免許証", Document.DRIVING_RECORD_CERTIFICATE: "運転経歴証明書",
    Document.PASSPORT: "旅券", Document.DISABILITY_HANDBOOK: "障害者手帳", Document.RESIDENCE_CARD: "在留カード",
    Document.SPECIAL_PERMANENT_RESIDENT: "特別永住者証明書", Document.HEALTH_INSURANCE: "健康保険証・資格確認書",
    Document.PENSION_BOOK: "年金手帳", Document.EMPLOYEE_ID: "社員証", Document.STUDENT_ID: "学生証",
    Document.OTHER_B: "その他(B)",
}


class Attendance(StrEnum):
    """Who is at the window."""

    IN_PERSON = "in_person"
    """本人."""
    LEGAL_REPRESENTATIVE = "legal_representative"
    """法定代理人 (with the person)."""
    PROXY = "proxy"
    """任意代理人 (the person cannot come)."""


class ProxyReason(StrEnum):
    """来庁困難な理由 accepted for a proxy pickup."""

    ILLNESS = "illness"
    """病気・身体の障害."""
    CARE_FACILITY = "care_facility"
    """入院・施設入所."""
    CARE_NEED = "care_need"
    """要介護・要支援認定."""
    AGE_75 = "age_75"
    """75歳以上."""
    PREGNANCY = "pregnancy"
    """妊婦."""
    CHILD = "child"
    """中学生以下."""
    ABROAD = "abroad"
    """長期出張・留学・船員."""
    WITHDRAWAL = "withdrawal"
    """ひきこもり."""


_REASON_LABELS = {"illness": "病気・身体の障害", "care_facility": "入院・施設入所", "care_need": "要介護・要支援認定",
                  "age_75": "75歳以上", "pregnancy": "妊婦", "child": "中学生以下", "abroad": "長期出張・留学・船員",
                  "withdrawal": "ひきこもり"}


def proxy_reason_label(reason: ProxyReason) -> str:
    """The reason in Japanese, as the form lists it."""
    return _REASON_LABELS[reason.value]


class NotificationCard(StrEnum):
    """What happened to the old notification card (通知カード) at the window."""

    COLLECTED = "collected"
    """回収した."""
    NONE = "none"
    """持っていない (issued after 2020-05-25, or never had one)."""
    LOST = "lost"
    """紛失 (届出を受けた)."""


@dataclass(frozen=True)
class IdentityCheck:
    """What the clerk saw at the window."""

    person_documents: Sequence[Document]
    attendance: Attendance = Attendance.IN_PERSON
    agent_documents: Sequence[Document] = ()
    """The representative's or proxy's own documents."""
    authority_confirmed: bool = False
    """法定代理人: proof of authority shown, or the relationship confirmed in the town's records."""
    proxy_reason: ProxyReason | None = None
    evidence_of_inability: bool = False
    """来庁困難を証する書類 seen."""
    photo_among_b: bool = False
    """Proxy with three B documents: one of them carries the person's photo (顔写真証明書 etc.)."""
    notes: str = field(default="")

    def to_record(self) -> dict[str, object]:
        """What the issuance record keeps (document kinds, never document numbers)."""
        return {"attendance": self.attendance.value, "person": [d.value for d in self.person_documents],
                "agent": [d.value for d in self.agent_documents], "authority": self.authority_confirmed,
                "proxy_reason": self.proxy_reason.value if self.proxy_reason else None,
                "evidence": self.evidence_of_inability}


def _counts(documents: Sequence[Document]) -> tuple[int, int]:
    kinds = set(documents)
    a = sum(1 for d in kinds if d.list_a)
    b = sum(1 for d in kinds if not d.list_a)
    if len(kinds) != len(documents):
        raise InvalidInput("同じ種類の書類が重複しています (the same document twice)")
    return a, b


def documents_problem(documents: Sequence[Document], *, strict: bool = False,
                      photo_among_b: bool = False) -> str | None:
    """Why ``documents`` do not identify someone, or None. ``strict`` is the proxy rule for the person."""
    a, b = _counts(documents)
    if not strict:
        if a >= 1 or b >= 2:
            return None
        return "本人確認書類が足りません: A 1点、または B 2点 (one from list A, or two from list B)"
    if a >= 2 or (a >= 1 and b >= 1) or (b >= 3 and photo_among_b):
        return None
    return ("本人確認書類が足りません: A 2点、A 1点+B 1点、または写真付きを含む B 3点 "
            "(two A, A + B, or three B with a photo)")


def check_identity(check: IdentityCheck) -> None:
    """Raise :class:`InvalidInput` with every reason the identity check fails; return when it passes."""
    problems: list[str] = []
    if check.attendance is Attendance.IN_PERSON:
        if check.agent_documents:
            problems.append("本人来庁では代理人の書類は不要です (no agent documents when the person comes)")
        if p := documents_problem(check.person_documents):
            problems.append(p)
    elif check.attendance is Attendance.LEGAL_REPRESENTATIVE:
        if p := documents_problem(check.person_documents):
            problems.append(f"本人: {p}")
        if p := documents_problem(check.agent_documents):
            problems.append(f"法定代理人: {p}")
        if not check.authority_confirmed:
            problems.append("代理権の確認が必要です (proof of the representative's authority)")
    else:
        if check.proxy_reason is None:
            problems.append("任意代理人は来庁困難な理由がある場合に限られます (a proxy needs a reason)")
        if not check.evidence_of_inability:
            problems.append("来庁困難を証する書類が必要です (evidence that the person cannot come)")
        if p := documents_problem(check.person_documents, strict=True, photo_among_b=check.photo_among_b):
            problems.append(f"本人: {p}")
        a, b = _counts(check.agent_documents)
        if not (a >= 2 or (a >= 1 and b >= 1)):
            problems.append("任意代理人: A 2点、または A 1点+B 1点 (the proxy: two A, or A + B)")
    if problems:
        raise InvalidInput("本人確認ができません (identity not established)", problems)


class IssuanceStatus(StrEnum):
    """The saga record of one window issuance (交付処理記録)."""

    STARTED = "started"
    """The card is in the reader; its pre-issuance image is kept for a rollback."""
    PINS_SET = "pins_set"
    """暗証番号設定済 on the chip (not yet issued)."""
    ACTIVATED = "activated"
    """The chip's certificates matched the CA's good ones (電子証明書の有効化)."""
    COLLECTED = "collected"
    """The old notification card dealt with."""
    ISSUED = "issued"
    """Committed: the card is issued — final."""
    ROLLED_BACK = "rolled_back"
    """Abandoned: the chip restored to its pre-issuance image, the card still waiting — a new attempt may
    start again."""

    @property
    def open(self) -> bool:
        return self not in (IssuanceStatus.ISSUED, IssuanceStatus.ROLLED_BACK)


STEPS: tuple[str, ...] = ("started", "pin_auth", "pin_sign", "pin_card_info", "pin_residence", "pins_set",
                          "activated", "collected", "committed")
"""The step boundaries of one window issuance, in order; a fault hook is called after each (crash tests)."""
