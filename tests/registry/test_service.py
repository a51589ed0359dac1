"""Registry services on both databases: registration, numbers, scope, life events."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from mynacard import numbers
from mynacard.context import Context
from mynacard.errors import Forbidden, InvalidInput, NotFound
from mynacard.principal import Principal, Role
from mynacard.registry import service as registry
from mynacard.registry.model import BasicFacts, ResidentStatus
from mynacard.registry.tables import individual_numbers, registry_events, residents
from mynacard.sealing import Sealer
from tests.conftest import NOW
from tests.helpers import CHIYODA, SAPPORO, SYSTEM, clerk, make_residents


def _count(ctx: Context, table: object) -> int:
    with ctx.db.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(table)).scalar_one())  # type: ignore[arg-type]


def test_registration_assigns_valid_unique_sealed_numbers(ctx: Context) -> None:
    ids = make_residents(ctx, 60, NOW)
    assert len(set(ids)) == 60
    assert _count(ctx, individual_numbers) == 60
    got = {registry.individual_number_of(ctx, clerk(), rid, "番号法9条 社会保障", NOW) for rid in ids}
    assert len(got) == 60 and all(numbers.is_valid_individual_number(n) for n in got)
    # stored sealed: the plain number appears nowhere in the table
    with ctx.db.connect() as conn:
        sealed = conn.execute(select(individual_numbers.c.sealed_number)).scalars().all()
    assert not any(n.encode() in blob for n in got for blob in sealed)
    number = next(iter(got))
    with ctx.db.connect() as conn:
        assert registry.resident_id_for_number(conn, Sealer(ctx.settings.data_key), number) in ids
    # every disclosure is recorded with its purpose
    with ctx.db.connect() as conn:
        purposes = conn.execute(select(registry_events.c.details).where(
            registry_events.c.kind == "number_disclosed")).scalars().all()
    assert len(purposes) == 60 and "社会保障" in json.loads(purposes[0])["purpose"]


def test_a_number_held_by_the_index_is_never_assigned_again(ctx: Context) -> None:
    sealer = Sealer(ctx.settings.data_key)
    code = "12345678903"
    first = numbers.derive_individual_number(ctx.settings.number_secret, code, 0)
    with ctx.db.begin() as conn:  # a retired number from long ago occupies attempt 0
        conn.execute(individual_numbers.insert().values(
            number_hash=sealer.lookup_hash(first), resident_code="99999999990", attempt=0,
            sealed_number=b"x", assigned_at=NOW, retired_at=NOW))
        assigned = registry.assign_individual_numbers(conn, ctx.settings.number_secret, sealer, [code], NOW)
    second = numbers.derive_individual_number(ctx.settings.number_secret, code, 1)
    assert assigned[code] == sealer.lookup_hash(second) != sealer.lookup_hash(first)


def test_a_code_taken_by_a_concurrent_registration_is_drawn_again(ctx: Context,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    first = make_residents(ctx, 3, NOW)
    taken = registry.residents_by_id(ctx, SYSTEM, first)[first[0]].resident_code
    fresh_codes = registry._new_resident_codes
    calls: list[int] = []

    def racing(conn: object, count: int) -> list[str]:
        # the first draw hands out a code that another transaction committed after the check
        calls.append(count)
        codes = fresh_codes(conn, count)  # type: ignore[arg-type]
        return [taken, *codes[1:]] if len(calls) == 1 else codes

    monkeypatch.setattr(registry, "_new_resident_codes", racing)
    ids = make_residents(ctx, 4, NOW, seed=2)
    assert len(calls) == 2 and len(ids) == 4
    codes = [r.resident_code for r in registry.residents_by_id(ctx, SYSTEM, ids).values()]
    assert taken not in codes and len(set(codes)) == 4
    assert _count(ctx, residents) == 7 and _count(ctx, individual_numbers) == 7  # the failed draw kept nothing

    monkeypatch.setattr(registry, "_new_resident_codes", lambda conn, count: [taken] * count)
    with pytest.raises(IntegrityError):  # a code that stays taken is not retried for ever
        make_residents(ctx, 1, NOW, seed=3)
    assert _count(ctx, residents) == 7


def test_clerks_see_only_their_municipality(ctx: Context) -> None:
    chiyoda = make_residents(ctx, 3, NOW, CHIYODA)
    sapporo = make_residents(ctx, 3, NOW, SAPPORO, seed=2)
    assert registry.get_resident(ctx, clerk(CHIYODA), chiyoda[0]).municipality_code == CHIYODA
    with pytest.raises(NotFound):
        registry.get_resident(ctx, clerk(CHIYODA), sapporo[0])
    assert registry.count_residents(ctx, clerk(SAPPORO)) == 3
    assert registry.get_resident(ctx, Principal(Role.RESIDENT, str(chiyoda[1])), chiyoda[1]).id == chiyoda[1]
    with pytest.raises(NotFound):
        registry.get_resident(ctx, Principal(Role.RESIDENT, str(chiyoda[1])), chiyoda[0])
    with pytest.raises(Forbidden):
        registry.individual_number_of(ctx, Principal(Role.KIOSK, "k1"), chiyoda[0], "x", NOW)
    with pytest.raises(Forbidden):
        registry.register_residents(ctx, clerk(CHIYODA), [registry.NewResident(
            SAPPORO, BasicFacts.parse("山田", "花子", NOW.date() - timedelta(days=9000), "2", "北海道札幌市1"),
            "ヤマダ", "ハナコ")], NOW)


def test_bad_input_is_refused_and_changes_nothing(ctx: Context) -> None:
    before = _count(ctx, residents)
    facts = BasicFacts.parse("山田", "花子", NOW.date() - timedelta(days=9000), "2", "東京都千代田区1")
    for code in ("999999", "131017"):
        with pytest.raises(InvalidInput):
            registry.register_residents(ctx, SYSTEM, [registry.NewResident(code, facts, "ヤマダ", "ハナコ")], NOW)
    with pytest.raises(InvalidInput, match="kana"):
        registry.register_residents(ctx, SYSTEM, [
            registry.NewResident(CHIYODA, facts, "ヤマダ", "ハナコ"),
            registry.NewResident(CHIYODA, facts, "Yamada", "Hanako")], NOW)
    assert _count(ctx, residents) == before
    assert _count(ctx, individual_numbers) == 0


def test_life_events_change_the_record_and_are_published(ctx: Context) -> None:
    a, b, c, d = make_residents(ctx, 4, NOW)
    moved = registry.move_resident(ctx, clerk(), a, "東京都千代田区丸の内1-1", None, NOW)
    assert moved.facts.address == "東京都千代田区丸の内1-1"
    away = registry.move_resident(ctx, clerk(), b, "北海道札幌市中央区北1条西2丁目", SAPPORO, NOW)
    assert away.municipality_code == SAPPORO
    with pytest.raises(NotFound):  # Chiyoda no longer sees the resident who moved away
        registry.get_resident(ctx, clerk(), b)
    renamed = registry.change_name(ctx, clerk(), c, "佐藤", "花子", "サトウ", "ハナコ", NOW, keep_maiden_name=True)
    assert renamed.facts.family_name == "佐藤" and renamed.maiden_name is not None
    assert registry.record_death(ctx, clerk(), d, NOW).status is ResidentStatus.DECEASED
    with pytest.raises(InvalidInput, match="not active"):
        registry.move_resident(ctx, clerk(), d, "東京都千代田区1", None, NOW)
    with pytest.raises(InvalidInput, match="unknown municipality"):
        registry.move_resident(ctx, clerk(), a, "どこか", "999997", NOW)
    from mynacard.bus import domain_events
    with ctx.db.connect() as conn:
        kinds = [k for k, in conn.execute(select(domain_events.c.kind).order_by(domain_events.c.id))]
        payload = json.loads(conn.execute(select(domain_events.c.payload)).scalars().first())
    assert kinds == ["registry.resident_moved", "registry.resident_moved", "registry.name_changed",
                     "registry.resident_died"]
    assert payload["basic_facts_changed"] is True and payload["within_municipality"] is True
    assert all("number" not in key for key in payload)


def test_household_of_reads_the_resident_and_their_household_in_one_query(ctx: Context) -> None:
    ids = make_residents(ctx, 30, NOW)
    people = registry.residents_by_id(ctx, SYSTEM, ids)
    by_household: dict[int, list[int]] = {}
    for r in people.values():
        if r.household_id is not None:
            by_household.setdefault(r.household_id, []).append(r.id)
    shared = next(members for members in by_household.values() if len(members) > 1)
    statements: list[str] = []
    with ctx.db.connect() as conn:
        from sqlalchemy import event

        event.listen(conn, "before_cursor_execute", lambda *a: statements.append(a[2]))
        holder, household = registry.household_of(conn, shared[-1])
        assert registry.household_of(conn, 10**9) == (None, [])
    assert len([s for s in statements if s.startswith("SELECT")]) == 2
    assert holder is not None and holder.id == shared[-1]
    assert sorted(r.id for r in household) == sorted(shared)
    assert household[0].relationship == "世帯主" or all(r.relationship != "世帯主" for r in household)
    with ctx.db.connect() as conn:
        # the same people as the two reads it replaces, in the same order
        assert household == registry.household_members(conn, holder.household_id)  # type: ignore[arg-type]
