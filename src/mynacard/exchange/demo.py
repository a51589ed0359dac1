"""A demonstration network built through the services only: a municipality's divisions and the national
bodies, persons enrolled from the registry with a full match, plausible copies of their items, and a day of
permitted exchanges. Used by ``mynacard exchange seed``, the benchmark and the tests.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from mynacard.context import Context
from mynacard.exchange import service
from mynacard.exchange.model import PERMITTED_EXCHANGES, Agency, AgencyKind, InfoItem, PermittedExchange
from mynacard.principal import Principal, Role
from mynacard.registry import service as registry
from mynacard.registry.model import Resident

__all__ = ["World", "build_network", "build_world", "enrol_residents", "load_records", "municipal_agencies",
           "national_agencies", "permitted_pairs", "run_exchanges", "sample_record"]

SYSTEM = Principal.system("exchange-demo")
OPERATOR = Principal(Role.OPERATOR, "exchange-demo-operator")

_MUNICIPAL = (
    ("resident", AgencyKind.MUNICIPAL_RESIDENT, "市民課", "resident registry division"),
    ("tax", AgencyKind.MUNICIPAL_TAX, "税務課", "tax division"),
    ("welfare", AgencyKind.MUNICIPAL_WELFARE, "福祉課", "welfare division"),
    ("child", AgencyKind.MUNICIPAL_CHILD, "子育て支援課", "child-rearing support division"),
    ("health", AgencyKind.MUNICIPAL_HEALTH, "保健センター", "health centre"),
)

_NATIONAL = (
    ("nenkin", AgencyKind.PENSION, "日本年金機構", "Japan Pension Service"),
    ("hellowork", AgencyKind.HELLO_WORK, "公共職業安定所 (厚生労働省)", "Hello Work (MHLW)"),
    ("kyoukaikenpo", AgencyKind.HEALTH_INSURER, "全国健康保険協会", "Japan Health Insurance Association"),
    ("saigai-shien", AgencyKind.DISASTER_SUPPORT, "被災者生活再建支援法人", "Disaster recovery support fund"),
)


def municipal_agencies(ctx: Context, municipality_code: str) -> list[service.AgencyRegistration]:
    """The five divisions of one municipality that take part in the demonstration."""
    town = registry.get_municipality(ctx, municipality_code)
    return [service.AgencyRegistration(f"{municipality_code}-{suffix}", f"{town.full_name} {ja}",
                                       f"{town.full_name} {en}", kind.value, municipality_code)
            for suffix, kind, ja, en in _MUNICIPAL]


def national_agencies() -> list[service.AgencyRegistration]:
    return [service.AgencyRegistration(i, ja, en, kind.value) for i, kind, ja, en in _NATIONAL]


@dataclass
class World:
    """What :func:`build_network` made: agencies by id, and each resident's reference at each agency."""

    agencies: dict[str, Agency]
    refs: dict[str, dict[int, str]]
    """agency id → resident id → the agency's local reference for that resident."""


def build_network(ctx: Context, municipality_codes: Sequence[str], now: datetime) -> dict[str, Agency]:
    """Register the national bodies and the divisions of each municipality (idempotent)."""
    out: dict[str, Agency] = {}
    registrations = national_agencies() + [r for c in municipality_codes for r in municipal_agencies(ctx, c)]
    for agency in service.register_agencies(ctx, OPERATOR, registrations, now):
        out[agency.id] = agency
    return out


def enrol_residents(ctx: Context, agencies: Sequence[Agency], residents: Sequence[Resident], now: datetime,
                    *, share: float = 1.0, seed: int = 8,
                    numbers: dict[int, str] | None = None) -> dict[str, dict[int, str]]:
    """Enrol residents at agencies as those agencies hold them (a full match: the registry's own facts).
    Municipal divisions enrol their own residents; national bodies a ``share`` of everyone. Numbers not
    given are asked of the registry (each disclosure is recorded there)."""
    rng = random.Random(seed)
    numbers = dict(numbers or {})
    for r in residents:
        if r.id not in numbers:
            numbers[r.id] = registry.individual_number_of(ctx, SYSTEM, r.id, "情報連携: 符号取得 (demo)", now)
    refs: dict[str, dict[int, str]] = {}
    for agency in agencies:
        if agency.kind is AgencyKind.PORTAL:
            continue
        people = [r for r in residents if (agency.municipality_code == r.municipality_code
                                           if agency.kind.municipal else rng.random() < share)]
        requests = [service.EnrolmentRequest(
            f"{agency.id[:8]}-{r.id:08d}", numbers[r.id], r.facts.family_name, r.facts.given_name,
            r.facts.birth_date, r.facts.sex.value, r.facts.address, r.family_kana, r.given_kana)
            for r in people]
        mine = refs.setdefault(agency.id, {})
        for i in range(0, len(requests), 500):
            for req, person, result in zip(requests[i:i + 500], people[i:i + 500], service.enrol(
                    ctx, SYSTEM, agency.id, requests[i:i + 500], now), strict=True):
                if result.outcome in ("linked", "already_linked"):
                    mine[person.id] = req.local_ref
    return refs


def sample_record(item: InfoItem, resident: Resident, rng: random.Random, year: int) -> dict[str, Any]:
    """A plausible copy (副本) of one item; never an individual number."""
    if item is InfoItem.LOCAL_TAX:
        income = rng.randrange(0, 9_000_000, 1000)
        return {"課税年度": year, "総所得金額": income, "住民税所得割額": int(income * 0.1),
                "扶養人数": rng.randint(0, 3)}
    if item is InfoItem.RESIDENT_RECORD:
        return {"世帯主との続柄": resident.relationship, "住所": resident.facts.address,
                "住民となった日": f"{rng.randint(1990, year)}-04-01"}
    if item is InfoItem.PENSION_BENEFIT:
        return {"年金の種類": rng.choice(["老齢基礎年金", "障害基礎年金", "遺族基礎年金", "受給なし"]),
                "年額": rng.randrange(0, 2_400_000, 100)}
    if item is InfoItem.EMPLOYMENT_INSURANCE:
        return {"被保険者区分": rng.choice(["一般", "高年齢", "短期雇用特例"]),
                "基本手当日額": rng.randint(2000, 8000)}
    if item is InfoItem.HEALTH_INSURANCE:
        return {"保険者番号": "01130012", "資格取得日": f"{rng.randint(2000, year)}-04-01",
                "高額療養費該当": rng.random() < 0.1}
    if item is InfoItem.PUBLIC_ASSISTANCE:
        return {"保護の状況": rng.choice(["受給中", "廃止", "申請中"]), "扶助の種類": "生活扶助"}
    if item is InfoItem.DISABILITY:
        return {"手帳の種類": rng.choice(["身体障害者手帳", "療育手帳", "精神障害者保健福祉手帳"]),
                "等級": rng.randint(1, 6)}
    if item is InfoItem.CHILD_ALLOWANCE:
        return {"支給対象児童数": rng.randint(1, 3), "月額": rng.choice([10000, 15000, 30000])}
    if item is InfoItem.SINGLE_PARENT_ALLOWANCE:
        return {"認定": rng.choice(["全部支給", "一部支給", "支給停止"]), "対象児童数": rng.randint(1, 2)}
    if item is InfoItem.MATERNAL_CHILD_HEALTH:
        return {"健診": rng.choice(["妊婦健康診査", "乳児健康診査", "1歳6か月児健康診査"]),
                "受診日": f"{year}-0{rng.randint(1, 9)}-15"}
    return {"り災証明": rng.choice(["全壊", "大規模半壊", "半壊"]),
            "支援金": rng.choice([1_000_000, 500_000])}


def load_records(ctx: Context, agency: Agency, residents: dict[int, Resident], refs: dict[int, str],
                 now: datetime, *, share: float = 0.8, seed: int = 8) -> int:
    """Give a ``share`` of an agency's persons a copy of each item the agency holds."""
    rng = random.Random(f"{seed}:{agency.id}")
    items = [service.RecordInput(ref, item.value, sample_record(item, residents[rid], rng, now.year - 1))
             for rid, ref in sorted(refs.items()) for item in _holds(agency) if rng.random() < share]
    done = 0
    for i in range(0, len(items), 1000):
        done += service.register_records(ctx, SYSTEM, agency.id, items[i:i + 1000], now)
    return done


def _holds(agency: Agency) -> list[InfoItem]:
    return [item for item in InfoItem if agency.holds(item)]


def permitted_pairs(agencies: dict[str, Agency]) -> list[tuple[Agency, Agency, PermittedExchange]]:
    """Every (requester, provider, row) the permitted table allows among ``agencies``."""
    out = []
    for row in PERMITTED_EXCHANGES:
        for a in agencies.values():
            if a.kind is not row.requester:
                continue
            for b in agencies.values():
                same_town = not (a.kind.municipal and b.kind.municipal) or (
                    a.municipality_code == b.municipality_code)
                if b.kind is row.provider and b.id != a.id and same_town:
                    out.append((a, b, row))
    return out


def run_exchanges(ctx: Context, world: World, count: int, now: datetime, *,
                  seed: int = 8) -> list[service.QueryOutcome]:
    """``count`` permitted queries about persons both agencies hold (the rest of the demo's traffic)."""
    rng = random.Random(seed)
    pairs = [(a, b, row) for a, b, row in permitted_pairs(world.agencies)
             if set(world.refs.get(a.id, {})) & set(world.refs.get(b.id, {}))]
    out = []
    for _ in range(count):
        a, b, row = rng.choice(pairs)
        rid = rng.choice(sorted(set(world.refs[a.id]) & set(world.refs[b.id])))
        out.append(service.query(ctx, SYSTEM, a.id, service.QueryRequest(
            b.id, row.procedure.value, row.item.value, world.refs[a.id][rid]), now))
    return out


def build_world(ctx: Context, municipality_codes: Sequence[str], residents: Sequence[Resident], now: datetime,
                *, national_share: float = 0.7, record_share: float = 0.8, seed: int = 8,
                numbers: dict[int, str] | None = None) -> World:
    """Agencies, enrolments and record copies for ``residents`` (who must live in ``municipality_codes``)."""
    agencies = build_network(ctx, municipality_codes, now)
    refs = enrol_residents(ctx, list(agencies.values()), residents, now, share=national_share, seed=seed,
                           numbers=numbers)
    by_id = {r.id: r for r in residents}
    for agency in agencies.values():
        if refs.get(agency.id):
            load_records(ctx, agency, by_id, refs[agency.id], now, share=record_share, seed=seed)
    return World(agencies, refs)
