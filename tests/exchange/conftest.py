"""Fixtures of the exchange tests: a clean database per test (agency stores included), a town of residents,
and a demonstration network over them."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date

import pytest

from mynacard import numbers
from mynacard.context import Context
from mynacard.exchange import demo
from mynacard.exchange.store import drop_all_agency_stores
from mynacard.registry import service as registry
from mynacard.registry.model import BasicFacts, Resident
from mynacard.sealing import Sealer
from mynacard.sim.population import generate_residents
from tests.conftest import NOW
from tests.helpers import SYSTEM


@pytest.fixture
def ctx(ctx: Context) -> Iterator[Context]:
    """The shared ``ctx`` (SQLite and PostgreSQL), without agency stores left by an earlier test: on
    PostgreSQL they are schemas of their own, outside the tables the shared fixture truncates."""
    if ctx.db.is_postgres:
        with ctx.db.begin() as conn:
            drop_all_agency_stores(conn)
    yield ctx


def numbers_of(ctx: Context, residents: list[Resident]) -> dict[int, str]:
    """Individual numbers of many residents at once, derived as the registry derives them (attempt 0) and
    confirmed through the registry's own look-up; the rare collision is asked for the slow way."""
    sealer = Sealer(ctx.settings.data_key)
    out: dict[int, str] = {}
    with ctx.db.connect() as conn:
        for r in residents:
            n = numbers.derive_individual_number(ctx.settings.number_secret, r.resident_code, 0)
            if registry.resident_id_for_number(conn, sealer, n) == r.id:
                out[r.id] = n
    for r in residents:
        if r.id not in out:
            out[r.id] = registry.individual_number_of(ctx, SYSTEM, r.id, "test", NOW)
    return out


def register_people(ctx: Context, code: str, count: int, seed: int = 8) -> list[Resident]:
    town = registry.get_municipality(ctx, code)
    ids = registry.register_residents(ctx, SYSTEM, list(generate_residents(town, count, NOW.date(), seed)), NOW)
    found = registry.residents_by_id(ctx, SYSTEM, ids)
    return [found[i] for i in ids]


def register_one(ctx: Context, family: str, given: str, born: date, sex: str, address: str,
                 kana: tuple[str, str] = ("ヤマダ", "タロウ"), code: str = "131016") -> Resident:
    (rid,) = registry.register_residents(ctx, SYSTEM, [registry.NewResident(
        code, BasicFacts.parse(family, given, born, sex, address), *kana)], NOW)
    return registry.get_resident(ctx, SYSTEM, rid)


@pytest.fixture
def people(ctx: Context) -> list[Resident]:
    """24 residents of 千代田区 and 8 of 札幌市."""
    return register_people(ctx, "131016", 24) + register_people(ctx, "011002", 8)


@pytest.fixture
def world(ctx: Context, people: list[Resident]) -> demo.World:
    """The demonstration network over ``people``: national bodies (70 % of everyone enrolled) and the five
    divisions of each town (their own residents), with copies of most items."""
    return demo.build_world(ctx, ["131016", "011002"], people, NOW, numbers=numbers_of(ctx, people))


@pytest.fixture
def small_world(ctx: Context) -> demo.World:
    """12 residents of 千代田区, its five divisions and the national bodies (everyone enrolled everywhere)."""
    people = register_people(ctx, "131016", 12, seed=3)
    return demo.build_world(ctx, ["131016"], people, NOW, national_share=1.0, record_share=1.0,
                            numbers=numbers_of(ctx, people))
