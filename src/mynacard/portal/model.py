"""Mynaportal (マイナポータル, 情報提供等記録開示システム) as a pure model: what a card login yields, resident
sessions, the one-stop child-rearing application (子育てワンストップ) and the exports of the person's own
information. No I/O and no clock: time comes in as ``now``.

Login is with the card's authentication certificate (利用者証明用電子証明書), never the individual number: JPKI's
card authentication (:mod:`mynacard.jpki.card_auth`, through :mod:`mynacard.portal.card_login`) verifies a
challenge signed by the card and hands this part a :class:`CardLogin`.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from enum import StrEnum
from typing import Any

__all__ = [
    "FORMS",
    "SESSION_IDLE",
    "SESSION_LIFETIME",
    "CardLogin",
    "ChildProcedure",
    "FormField",
    "LoginChallenge",
    "SessionState",
    "export_csv",
    "export_json",
    "session_state",
    "validate_form",
]

SESSION_IDLE = timedelta(minutes=15)
"""A session unused this long is over (a shared terminal left logged in, reference §6 #9)."""
SESSION_LIFETIME = timedelta(hours=1)
"""No session lasts longer, used or not."""


@dataclass(frozen=True)
class CardLogin:
    """What the JPKI relying party established: this authentication certificate signed our challenge, it is
    valid and not revoked, and it belongs to this resident's card."""

    auth_cert_serial: str
    """Serial number of the 利用者証明用電子証明書 (hex); the certificate carries no personal facts."""
    resident_id: int
    """The resident whose card holds the certificate (from the CA's issuance records)."""
    verified_at: datetime


@dataclass(frozen=True)
class LoginChallenge:
    """A single-use challenge for the card to sign, issued by the relying party."""

    id: str
    nonce: bytes
    expires_at: datetime


class SessionState(StrEnum):
    ACTIVE = "active"
    IDLE = "idle"
    """Unused for longer than :data:`SESSION_IDLE`."""
    EXPIRED = "expired"
    """Older than :data:`SESSION_LIFETIME`."""
    CLOSED = "closed"
    """Logged out."""


def session_state(created_at: datetime, last_seen_at: datetime, closed_at: datetime | None,
                  now: datetime) -> SessionState:
    if closed_at is not None:
        return SessionState.CLOSED
    if now - created_at >= SESSION_LIFETIME:
        return SessionState.EXPIRED
    if now - last_seen_at >= SESSION_IDLE:
        return SessionState.IDLE
    return SessionState.ACTIVE


# --- the one-stop child-rearing application (子育てワンストップ) --------------------------------------------------

class ChildProcedure(StrEnum):
    """The four child-rearing procedures of the one-stop service (deck p.24; reference §4.1)."""

    CHILD_ALLOWANCE = "child_allowance"
    """児童手当 認定請求."""
    CHILDCARE = "childcare_admission"
    """保育所等 利用申込."""
    SINGLE_PARENT = "single_parent_allowance"
    """児童扶養手当 認定請求 (ひとり親支援)."""
    MATERNAL_CHILD_HEALTH = "maternal_child_health"
    """妊娠届 (母子健康手帳の交付)."""

    @property
    def label_ja(self) -> str:
        return {"child_allowance": "児童手当 (認定請求)", "childcare_admission": "保育所等の利用申込",
                "single_parent_allowance": "児童扶養手当 (ひとり親)",
                "maternal_child_health": "妊娠の届出 (母子健康手帳)"}[self.value]

    @property
    def label_en(self) -> str:
        return {"child_allowance": "Child allowance", "childcare_admission": "Childcare place",
                "single_parent_allowance": "Single-parent allowance",
                "maternal_child_health": "Pregnancy notification (maternal and child health handbook)"}[self.value]

    @property
    def agency_kind(self) -> str:
        """The kind of agency, in the applicant's municipality, that handles it."""
        return "municipal_health" if self is ChildProcedure.MATERNAL_CHILD_HEALTH else "municipal_child"


@dataclass(frozen=True)
class FormField:
    name: str
    label_ja: str
    label_en: str
    kind: str
    """``text``, ``kana``, ``date``, ``month``, ``int`` or ``choice``."""
    required: bool = True
    choices: tuple[str, ...] = ()
    max_length: int = 60


_CHILD_NAME = FormField("child_name", "児童の氏名", "Child's name", "text")
_CHILD_KANA = FormField("child_kana", "児童の氏名 (フリガナ)", "Child's name (kana)", "kana")
_CHILD_BIRTH = FormField("child_birth_date", "児童の生年月日", "Child's date of birth", "date")

FORMS: Mapping[ChildProcedure, tuple[FormField, ...]] = {
    ChildProcedure.CHILD_ALLOWANCE: (
        _CHILD_NAME, _CHILD_KANA, _CHILD_BIRTH,
        FormField("relationship", "請求者との続柄", "Relationship to the claimant", "choice",
                  choices=("子", "孫", "その他")),
        FormField("payee_account", "受取口座", "Account for payment", "choice",
                  choices=("公金受取口座を利用する", "別の口座を届け出る")),
    ),
    ChildProcedure.CHILDCARE: (
        _CHILD_NAME, _CHILD_KANA, _CHILD_BIRTH,
        FormField("start_month", "利用開始希望月", "Month to start", "month"),
        FormField("reason", "保育を必要とする理由", "Why care is needed", "choice",
                  choices=("就労", "妊娠・出産", "疾病・障害", "介護", "求職活動", "就学")),
        FormField("preferred_facilities", "希望する施設", "Preferred facilities", "text", required=False,
                  max_length=200),
    ),
    ChildProcedure.SINGLE_PARENT: (
        _CHILD_NAME, _CHILD_BIRTH,
        FormField("reason", "支給要件", "Grounds", "choice",
                  choices=("父母の離婚", "父又は母の死亡", "未婚", "父又は母の障害", "その他")),
        FormField("children", "対象児童の人数", "Number of children", "int"),
    ),
    ChildProcedure.MATERNAL_CHILD_HEALTH: (
        FormField("due_date", "出産予定日", "Expected date of delivery", "date"),
        FormField("pregnancies", "妊娠回数 (今回を含む)", "Pregnancies including this one", "int"),
        FormField("clinic", "受診している医療機関", "Clinic or hospital", "text", required=False, max_length=100),
    ),
}
"""The fields each procedure asks for (the applicant's own name, address and date of birth are filled in from
the registry record the session belongs to, as the card's input-support application would)."""

_KANA = re.compile(r"[\u30a0-\u30ff\u3041-\u3096\s\u3000]+")
_MONTH = re.compile(r"(\d{4})-(\d{2})")


def _check(field: FormField, raw: str, today: date) -> Any:
    if field.kind in ("text", "kana"):
        if len(raw) > field.max_length:
            raise ValueError(f"at most {field.max_length} characters")
        if field.kind == "kana" and not _KANA.fullmatch(raw):
            raise ValueError("kana only")
        if any(ch in raw for ch in "<>\x00"):
            raise ValueError("must not contain < > or control characters")
        return raw
    if field.kind == "date":
        try:
            value = date.fromisoformat(raw)
        except ValueError:
            raise ValueError("a date (YYYY-MM-DD)") from None
        if field.name == "due_date":
            if not today <= value <= today + timedelta(days=310):
                raise ValueError("within the next ten months")
        elif not today - timedelta(days=18 * 366) <= value <= today:
            raise ValueError("a child's date of birth (not in the future, under 18)")
        return value.isoformat()
    if field.kind == "month":
        m = _MONTH.fullmatch(raw)
        if not m or not 1 <= int(m.group(2)) <= 12:
            raise ValueError("a month (YYYY-MM)")
        if (int(m.group(1)), int(m.group(2))) < (today.year, today.month):
            raise ValueError("not in the past")
        return raw
    if field.kind == "int":
        if not raw.isascii() or not raw.isdigit() or not 1 <= int(raw) <= 20:
            raise ValueError("a number from 1 to 20")
        return int(raw)
    if raw not in field.choices:
        raise ValueError("one of: " + ", ".join(field.choices))
    return raw


def validate_form(procedure: ChildProcedure, raw: Mapping[str, str], today: date) -> dict[str, Any]:
    """Check one procedure's form; raises ``ValueError`` whose args[0] lists every problem (one per line)."""
    problems = []
    out: dict[str, Any] = {}
    for field in FORMS[procedure]:
        value = (raw.get(field.name) or "").strip()
        if not value:
            if field.required:
                problems.append(f"{field.label_ja}: 入力してください (required)")
            continue
        try:
            out[field.name] = _check(field, value, today)
        except ValueError as exc:
            problems.append(f"{field.label_ja}: {exc}")
    if problems:
        raise ValueError("\n".join(problems))
    return out


# --- exports of the person's own information ------------------------------------------------------------------

_CSV_COLUMNS = ("agency_id", "agency", "item", "item_label", "field", "value", "updated_at", "fetched_at")


def export_json(rows: Sequence[Mapping[str, Any]], resident_name: str, now: datetime) -> bytes:
    """自己情報 as JSON: one object per (agency, item) with its fields, and when it was produced."""
    doc = {"format": "mynaportal-self-information/1", "generated_at": now.isoformat(), "name": resident_name,
           "records": [{k: r[k] for k in ("agency_id", "agency", "item", "item_label", "data", "updated_at",
                                          "fetched_at")} for r in rows]}
    return json.dumps(doc, ensure_ascii=False, indent=2, sort_keys=False).encode()


def export_csv(rows: Sequence[Mapping[str, Any]]) -> bytes:
    """自己情報 as CSV (UTF-8 with a byte-order mark, so spreadsheet programs read the Japanese right): one
    line per field. Cells that a spreadsheet would run as a formula are quoted with a leading apostrophe."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(_CSV_COLUMNS)
    for r in rows:
        for field, value in r["data"].items():
            writer.writerow([_safe(x) for x in (r["agency_id"], r["agency"], r["item"], r["item_label"], field,
                                                "" if value is None else value, r["updated_at"], r["fetched_at"])])
    return ("\ufeff" + out.getvalue()).encode()


def _safe(value: object) -> str:
    text = str(value)
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") and not _NUMBER.fullmatch(text) else text


_NUMBER = re.compile(r"-?\d+(\.\d+)?")
