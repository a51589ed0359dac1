"""Fixtures of the exchange (and portal) tests: a clean database per test on SQLite and on PostgreSQL, like
the shared ``ctx`` — and demonstration networks that are built once per session and cloned for each test
that asks for one (a file copy on SQLite, ``CREATE DATABASE … TEMPLATE`` on PostgreSQL), so that every such
test still starts from exactly the same, untouched network.

A test that takes ``world``/``people`` (32 residents, two towns), ``small_world`` (12 residents, one town) or
``town`` (16 residents, one town) gets a ``ctx`` on its own clone of that network.
"""

from __future__ import annotations

import copy
import shutil
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from mynacard import numbers
from mynacard.bootstrap import build_context
from mynacard.context import Context
from mynacard.exchange import demo
from mynacard.migrate import upgrade
from mynacard.registry import service as registry
from mynacard.registry.model import BasicFacts, Resident
from mynacard.sealing import Sealer
from mynacard.sim.population import generate_residents
from tests.conftest import NOW, PG_ADMIN_URL, _truncate_all
from tests.helpers import SYSTEM


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


# --- the networks, built once -------------------------------------------------------------------------------

def _world(ctx: Context) -> tuple[demo.World, list[Resident]]:
    """24 residents of 千代田区 and 8 of 札幌市; national bodies hold 70 % of everyone, each town's five
    divisions their own residents; copies of most items."""
    people = register_people(ctx, "131016", 24) + register_people(ctx, "011002", 8)
    return demo.build_world(ctx, ["131016", "011002"], people, NOW, numbers=numbers_of(ctx, people)), people


def _small_world(ctx: Context) -> tuple[demo.World, list[Resident]]:
    """12 residents of 千代田区, its five divisions and the national bodies (everyone enrolled everywhere)."""
    people = register_people(ctx, "131016", 12, seed=3)
    return demo.build_world(ctx, ["131016"], people, NOW, national_share=1.0, record_share=1.0,
                            numbers=numbers_of(ctx, people)), people


def _town(ctx: Context) -> tuple[demo.World, list[Resident]]:
    """16 residents of 千代田区, enrolled at its five divisions and the national bodies, with copies."""
    people = register_people(ctx, "131016", 16, seed=5)
    return demo.build_world(ctx, ["131016"], people, NOW, national_share=1.0, record_share=1.0,
                            numbers=numbers_of(ctx, people)), people


FLAVORS: dict[str, Callable[[Context], tuple[demo.World, list[Resident]]]] = {
    "world": _world, "people": _world, "small_world": _small_world, "town": _town}


@dataclass
class Template:
    kind: str
    home: Path
    """Holds ``keys/``: clones must open what the template sealed."""
    target: str
    """The SQLite file, or the PostgreSQL template database's name."""
    world: demo.World
    people: list[Resident]


def _pg_url(name: str) -> str:
    return PG_ADMIN_URL.rsplit("/", 1)[0] + "/" + name


@pytest.fixture(scope="session")
def network_templates() -> Iterator[dict[tuple[str, str], Template]]:
    cache: dict[tuple[str, str], Template] = {}
    yield cache
    pg = [t.target for t in cache.values() if t.kind == "postgresql"]
    if pg:
        admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            for name in pg:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def _template(kind: str, flavor: str, cache: dict[tuple[str, str], Template], sqlite_template: Path,
              factory: pytest.TempPathFactory) -> Template:
    builder = FLAVORS[flavor]
    key = (kind, builder.__name__)
    if key in cache:
        return cache[key]
    home = factory.mktemp(f"network-{builder.__name__.strip('_')}-{kind}")
    if kind == "sqlite":
        target = str(home / "network.db")
        shutil.copy(sqlite_template, target)
        ctx = build_context(home=home, database_url=f"sqlite:///{target}")
    else:
        target = f"mynacard_tpl_{uuid.uuid4().hex[:10]}"
        admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{target}"'))
        admin.dispose()
        ctx = build_context(home=home, database_url=_pg_url(target))
        upgrade(ctx.db)
    world, people = builder(ctx)
    ctx.db.dispose()  # the last connection to close checkpoints SQLite's WAL; PostgreSQL needs none open
    cache[key] = Template(kind, home, target, world, people)
    return cache[key]


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def ctx(request: pytest.FixtureRequest, tmp_path: Path, sqlite_template: Path,
        network_templates: dict[tuple[str, str], Template],
        tmp_path_factory: pytest.TempPathFactory) -> Iterator[Context]:
    """A service context on an empty, migrated database — or on a fresh clone of the network the test asks
    for — on SQLite and on PostgreSQL (agency stores included: on PostgreSQL they are schemas of their own)."""
    kind = request.param
    if kind == "postgresql":
        request.getfixturevalue("pg_url")  # skips with a reason locally, fails under CI=true, without PostgreSQL
    flavor = next((f for f in FLAVORS if f in request.fixturenames), None)
    clone: str | None = None
    if flavor is None:
        if kind == "sqlite":
            shutil.copy(sqlite_template, tmp_path / "test.db")
            context = build_context(home=tmp_path, database_url=f"sqlite:///{tmp_path / 'test.db'}")
        else:
            context = build_context(home=tmp_path, database_url=request.getfixturevalue("pg_url"))
            _truncate_all(context)  # also drops the agency stores
    else:
        template = _template(kind, flavor, network_templates, sqlite_template, tmp_path_factory)
        shutil.copytree(template.home / "keys", tmp_path / "keys")
        if kind == "sqlite":
            shutil.copy(template.target, tmp_path / "test.db")
            context = build_context(home=tmp_path, database_url=f"sqlite:///{tmp_path / 'test.db'}")
        else:
            clone = f"mynacard_clone_{uuid.uuid4().hex[:10]}"
            admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
            with admin.connect() as conn:
                conn.execute(text(f'CREATE DATABASE "{clone}" TEMPLATE "{template.target}"'))
            admin.dispose()
            context = build_context(home=tmp_path, database_url=_pg_url(clone))
        request.node.network_template = template
    yield context
    context.db.dispose()
    if clone is not None:
        admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{clone}" WITH (FORCE)'))
        admin.dispose()


def _cloned(request: pytest.FixtureRequest) -> Template:
    template: Template = request.node.network_template
    return template


@pytest.fixture
def world(ctx: Context, request: pytest.FixtureRequest) -> demo.World:
    """The two-town network (see :func:`_world`), on this test's own clone."""
    return copy.deepcopy(_cloned(request).world)


@pytest.fixture
def people(ctx: Context, request: pytest.FixtureRequest) -> list[Resident]:
    """The residents of ``world``."""
    return list(_cloned(request).people)


@pytest.fixture
def small_world(ctx: Context, request: pytest.FixtureRequest) -> demo.World:
    """The one-town network (see :func:`_small_world`), on this test's own clone."""
    return copy.deepcopy(_cloned(request).world)


@pytest.fixture
def town(ctx: Context, request: pytest.FixtureRequest) -> tuple[demo.World, list[Resident]]:
    """The portal's town (see :func:`_town`): the network and its residents, on this test's own clone."""
    template = _cloned(request)
    return copy.deepcopy(template.world), list(template.people)
