"""What each certificate says, built from the records (pure: no I/O, no clock).

The certificate issuing server loads the records and calls one builder here; the result
(:class:`~mynacard.kiosk.model.DocumentContent`) is the single source of the PDF and of the verification page.
The individual number appears only on a resident record copy and only when the resident asked for it; it is
marked secret so that everything but the paper shows it masked.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date

from mynacard.kiosk.model import DocumentContent, DocumentKind, DocumentOptions, Field, Section, wareki
from mynacard.registry.model import Resident

__all__ = [
    "AddressEntry",
    "FamilyRegister",
    "Issuer",
    "RegisterMember",
    "SealRegistration",
    "TaxRecord",
    "build",
    "family_register_all",
    "family_register_attachment",
    "family_register_individual",
    "income_tax",
    "resident_record",
    "resident_record_entry",
    "seal_registration",
]


@dataclass(frozen=True)
class Issuer:
    """The municipality that certifies."""

    code: str
    full_name: str
    """e.g. 東京都千代田区."""
    mayor_name: str | None = None

    @property
    def title(self) -> str:
        """e.g. 東京都千代田区長 (with the mayor's name when recorded)."""
        return f"{self.full_name}長" + (f"　{self.mayor_name}" if self.mayor_name else "")


@dataclass(frozen=True)
class SealRegistration:
    """印鑑登録: the registered seal's number and impression."""

    resident_id: int
    registration_number: str
    registered_on: date
    impression_png: bytes


@dataclass(frozen=True)
class TaxRecord:
    """One fiscal year's income and tax (所得・課税), in yen."""

    resident_id: int
    fiscal_year: int
    total_income: int
    employment_income: int
    deductions: int
    taxable_income: int
    municipal_tax: int
    prefectural_tax: int


@dataclass(frozen=True)
class RegisterMember:
    """One person's entry in a family register (戸籍)."""

    position: int
    family_name: str
    given_name: str
    birth_date: date
    sex: str
    relationship: str
    """父母との続柄 or the entry's role: 夫, 妻, 長男, 長女 …"""
    father: str | None
    mother: str | None
    events: tuple[str, ...]
    """身分事項: 出生, 婚姻 … one line each."""
    removed: bool = False
    """除籍 (married out, died): kept and shown as removed."""
    resident_id: int | None = None


@dataclass(frozen=True)
class FamilyRegister:
    """A family register (戸籍) at the municipality of the registered domicile (本籍地)."""

    id: int
    municipality_code: str
    domicile: str
    """本籍."""
    head_name: str
    """筆頭者氏名."""
    members: tuple[RegisterMember, ...]
    pending_filing: bool = False


@dataclass(frozen=True)
class AddressEntry:
    """One line of the family register attachment (戸籍の附票): an address and when it was set."""

    resident_id: int
    address: str
    since: date


def _yen(amount: int) -> str:
    return f"{amount:,}円"


def _sex(code: str) -> str:
    return {"1": "男", "2": "女"}.get(code, "")


def _person_fields(r: Resident) -> list[Field]:
    f = r.facts
    return [Field("氏名", f"{f.family_name}　{f.given_name}"),
            Field("フリガナ", f"{r.family_kana}　{r.given_kana}"),
            Field("生年月日", wareki(f.birth_date)),
            Field("性別", r.facts.sex.label_ja)]


def _format_number(number: str) -> str:
    return f"{number[:4]} {number[4:8]} {number[8:]}"


def resident_record(issuer: Issuer, today: date, options: DocumentOptions, subjects: Sequence[Resident],
                    head: Resident | None, domiciles: Mapping[int, FamilyRegister],
                    numbers: Mapping[int, str], household_size: int) -> DocumentContent:
    """住民票の写し for some or all members of one household."""
    sections = []
    for i, r in enumerate(subjects, 1):
        fields = _person_fields(r)
        if options.include_relationship:
            fields.append(Field("続柄", r.relationship))
        fields.append(Field("住所", r.facts.address))
        if options.include_domicile:
            reg = domiciles[r.id]
            fields += [Field("本籍", reg.domicile), Field("筆頭者", reg.head_name)]
        if options.include_individual_number:
            fields.append(Field("個人番号", _format_number(numbers[r.id]), secret=True))
        sections.append(Section(f"{i}　{r.facts.family_name}　{r.facts.given_name}", tuple(fields)))
    header = [Field("住所", subjects[0].facts.address)]
    if options.include_relationship and head is not None:
        header.append(Field("世帯主", f"{head.facts.family_name}　{head.facts.given_name}"))
    whole = len(subjects) == household_size
    notes = ["この写しは、" + ("世帯全員" if whole else "世帯の一部") + "の住民票です。"]
    notes.append("世帯主・続柄の記載" + ("あり" if options.include_relationship else "省略") + "、本籍・筆頭者の記載"
                 + ("あり" if options.include_domicile else "省略") + "、個人番号の記載"
                 + ("あり" if options.include_individual_number else "省略") + "。")
    return DocumentContent(
        kind=DocumentKind.RESIDENT_RECORD, title="住民票の写し", municipality_code=issuer.code,
        municipality_name=issuer.full_name, issuer=issuer.title, issued_on=today,
        certification="この写しは、住民票の原本と相違ないことを証明する。",
        sections=(Section("世帯", tuple(header)), *sections), notes=tuple(notes))


def resident_record_entry(issuer: Issuer, today: date, holder: Resident) -> DocumentContent:
    """住民票記載事項証明書: name, date of birth, sex and address of the holder."""
    fields = (*_person_fields(holder), Field("住所", holder.facts.address))
    return DocumentContent(
        kind=DocumentKind.RESIDENT_RECORD_ENTRY, title="住民票記載事項証明書", municipality_code=issuer.code,
        municipality_name=issuer.full_name, issuer=issuer.title, issued_on=today,
        certification="上記の事項は、住民基本台帳に記載されている事項と相違ないことを証明する。",
        sections=(Section("記載事項", fields),))


def seal_registration(issuer: Issuer, today: date, holder: Resident, seal: SealRegistration) -> DocumentContent:
    """印鑑登録証明書."""
    fields = (Field("登録番号", seal.registration_number), *_person_fields(holder),
              Field("住所", holder.facts.address), Field("登録年月日", wareki(seal.registered_on)))
    return DocumentContent(
        kind=DocumentKind.SEAL_REGISTRATION, title="印鑑登録証明書", municipality_code=issuer.code,
        municipality_name=issuer.full_name, issuer=issuer.title, issued_on=today,
        certification="この写しは、登録されている印影と相違ないことを証明する。",
        sections=(Section("登録事項", fields),), seal_registration_number=seal.registration_number)


def income_tax(issuer: Issuer, today: date, holder: Resident, tax: TaxRecord) -> DocumentContent:
    """所得・課税証明書 for the current fiscal year."""
    fiscal = wareki(date(tax.fiscal_year, 4, 1)).split("年")[0] + "年度"
    income_year = wareki(date(tax.fiscal_year - 1, 1, 1)).split("年")[0] + "年"
    person = (*_person_fields(holder), Field("住所", holder.facts.address))
    amounts = (Field("対象年", f"{income_year}分の所得"), Field("総所得金額", _yen(tax.total_income)),
               Field("給与収入に係る所得", _yen(tax.employment_income)), Field("所得控除合計", _yen(tax.deductions)),
               Field("課税標準額", _yen(tax.taxable_income)), Field("市町村民税", _yen(tax.municipal_tax)),
               Field("道府県民税", _yen(tax.prefectural_tax)),
               Field("年税額", _yen(tax.municipal_tax + tax.prefectural_tax)))
    return DocumentContent(
        kind=DocumentKind.INCOME_TAX, title=f"所得・課税証明書（{fiscal}）", municipality_code=issuer.code,
        municipality_name=issuer.full_name, issuer=issuer.title, issued_on=today,
        certification="上記のとおり相違ないことを証明する。",
        sections=(Section("納税義務者", person), Section(f"{fiscal}　所得・課税の状況", amounts)))


def _member_section(m: RegisterMember) -> Section:
    fields = [Field("氏名", f"{m.family_name}　{m.given_name}"), Field("生年月日", wareki(m.birth_date)),
              Field("性別", _sex(m.sex)), Field("続柄", m.relationship)]
    if m.father:
        fields.append(Field("父", m.father))
    if m.mother:
        fields.append(Field("母", m.mother))
    fields += [Field("身分事項", e) for e in m.events]
    heading = f"戸籍に記録されている者　{m.family_name}　{m.given_name}" + ("　【除籍】" if m.removed else "")
    return Section(heading, tuple(fields))


def _register_header(reg: FamilyRegister) -> Section:
    return Section("本籍・筆頭者", (Field("本籍", reg.domicile), Field("氏名", reg.head_name)))


def family_register_all(issuer: Issuer, today: date, reg: FamilyRegister) -> DocumentContent:
    """戸籍全部事項証明書: every entry of the register."""
    return DocumentContent(
        kind=DocumentKind.FAMILY_REGISTER_ALL, title="戸籍全部事項証明書", municipality_code=issuer.code,
        municipality_name=issuer.full_name, issuer=issuer.title, issued_on=today,
        certification="これは、戸籍に記録されている事項の全部を証明した書面である。",
        sections=(_register_header(reg), *(_member_section(m) for m in reg.members)))


def family_register_individual(issuer: Issuer, today: date, reg: FamilyRegister,
                               holder_id: int) -> DocumentContent:
    """戸籍個人事項証明書: the holder's entry."""
    member = next(m for m in reg.members if m.resident_id == holder_id)
    return DocumentContent(
        kind=DocumentKind.FAMILY_REGISTER_INDIVIDUAL, title="戸籍個人事項証明書", municipality_code=issuer.code,
        municipality_name=issuer.full_name, issuer=issuer.title, issued_on=today,
        certification="これは、戸籍中の一部の者について記録されている事項を証明した書面である。",
        sections=(_register_header(reg), _member_section(member)))


def family_register_attachment(issuer: Issuer, today: date, reg: FamilyRegister,
                               history: Mapping[int, Sequence[AddressEntry]]) -> DocumentContent:
    """戸籍の附票の写し: each person's addresses, oldest first."""
    sections = []
    for m in reg.members:
        if m.removed or m.resident_id is None:
            continue
        entries = history.get(m.resident_id, ())
        fields = [Field("氏名", f"{m.family_name}　{m.given_name}"), Field("生年月日", wareki(m.birth_date))]
        fields += [Field(f"住所（{wareki(e.since)}〜）", e.address) for e in entries]
        sections.append(Section(f"附票に記録されている者　{m.family_name}　{m.given_name}", tuple(fields)))
    return DocumentContent(
        kind=DocumentKind.FAMILY_REGISTER_ATTACHMENT, title="戸籍の附票の写し", municipality_code=issuer.code,
        municipality_name=issuer.full_name, issuer=issuer.title, issued_on=today,
        certification="この写しは、戸籍の附票の原本と相違ないことを証明する。",
        sections=(_register_header(reg), *sections))


def build(kind: DocumentKind, issuer: Issuer, today: date, **records: object) -> DocumentContent:
    """Dispatch on ``kind`` (a convenience for callers that hold the records in a mapping)."""
    builders = {
        DocumentKind.RESIDENT_RECORD: resident_record,
        DocumentKind.RESIDENT_RECORD_ENTRY: resident_record_entry,
        DocumentKind.SEAL_REGISTRATION: seal_registration,
        DocumentKind.INCOME_TAX: income_tax,
        DocumentKind.FAMILY_REGISTER_ALL: family_register_all,
        DocumentKind.FAMILY_REGISTER_INDIVIDUAL: family_register_individual,
        DocumentKind.FAMILY_REGISTER_ATTACHMENT: family_register_attachment,
    }
    return builders[kind](issuer, today, **records)  # type: ignore[operator]
