"""Benchmark of issuance plans on PostgreSQL with 13 million cards: the national report, the actuals
snapshot, live and national forecasts, each printed beside a peer measured in the same run.

    .venv/bin/python bench/plans.py [--cards 13000000] [--admin-url postgresql+psycopg://postgres@127.0.0.1/postgres]

A bench-only loader fills the real tables of a fresh database (``mynacard_bench_plans_*``, migrated to heads)
with ``INSERT … SELECT generate_series``: one resident and one card per applicant across the 1,741
municipalities (sized like them: designated cities and Tokyo's wards large, villages small), applied for
between 2015-10-05 and 2016-06-16, and each card's full history in ``card_events`` (applied → … → issued)
with times that follow its municipality's pace, so that on 2016-06-17 about a fifth of the cards wait at the
municipalities as in the deck. Application IDs carry no valid check digit and names are placeholders: the
rows are load, not people. Foreign-key triggers are off during the load (``session_replication_role =
replica``; every reference is consistent by construction) and the secondary indexes are rebuilt after it.
The plans are the deck's 2016-06-17 plans (``tests/plans/deck2016.py``) with means for every municipality.
The database is dropped at the end, whatever happens.
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import random
import signal
import statistics
import sys
import time
import uuid
from collections.abc import Callable
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, text

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.plans import deck2016  # noqa: E402

from mynacard.bootstrap import build_context  # noqa: E402
from mynacard.cards import service as cards  # noqa: E402
from mynacard.clock import JST  # noqa: E402
from mynacard.migrate import upgrade  # noqa: E402
from mynacard.plans import service  # noqa: E402
from mynacard.principal import Principal  # noqa: E402

OPERATOR = Principal.system("bench")
AS_OF = date(2016, 6, 17)
NOW = datetime(2016, 6, 17, 20, 0, tzinfo=JST)


def timed(fn: Callable[[], Any], runs: int = 1) -> tuple[float, Any]:
    """Median wall time of ``runs`` calls (seconds) and the last result."""
    times, result = [], None
    for _ in range(runs):
        t = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times), result


def machine() -> str:
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return f"{os.cpu_count()} cores ({cpu}), {mem:.0f} GiB, {platform.system()} {platform.release()}"


# --- the loader ---------------------------------------------------------------------------------------------

def _weights() -> list[tuple[str, float, float]]:
    """(code, share of applicants, lateness 0–1) per municipality; larger towns tend to be later."""
    rows = []
    for code, name in deck2016.municipalities():
        size = deck2016._size(code, name)
        rng = random.Random(f"bench:{code}")
        rows.append((code, size, math.log(size) + rng.gauss(0, 1.2)))
    total = sum(s for _, s, _ in rows)
    late = sorted(r[2] for r in rows)
    return [(code, size / total, late.index(score) / (len(late) - 1)) for code, size, score in rows]


def _hash(expr: str, salt: int) -> str:
    """A uniform number in [0, 1) from an integer SQL expression (a multiplicative hash)."""
    scrambled = f"(({expr})::bigint * {2654435761 + 2 * salt} + {salt * 97}) % 4294967296"
    return f"(({scrambled})::float8 / 4294967296.0)"


SECONDARY_INDEXES = {
    "cards": ["ix_cards_resident_id", "ix_cards_box_id", "ix_cards_state_id", "ix_cards_municipality_state",
              "ix_cards_print_batch"],
    "card_events": ["ix_card_events_card_id"],
    "residents": ["ix_residents_household_id", "ix_residents_municipality_status"],
}


def load(engine: Any, total: int) -> dict[str, float]:
    """Fill residents, cards and card_events; returns seconds per step."""
    steps: dict[str, float] = {}
    weights = _weights()
    bounds, start = [], 1
    for i, (code, share, lateness) in enumerate(weights):
        n = round(share * total) if i < len(weights) - 1 else total - start + 1
        n = max(1, n)
        bounds.append({"code": code, "lo": start, "hi": start + n - 1, "late": lateness})
        start += n
    with engine.begin() as conn:
        saved = {}
        for names in SECONDARY_INDEXES.values():
            for name in names:
                saved[name] = conn.execute(text("SELECT indexdef FROM pg_indexes WHERE indexname = :n"),
                                           {"n": name}).scalar_one()
                conn.execute(text(f'DROP INDEX "{name}"'))
        conn.execute(text("CREATE UNLOGGED TABLE bench_muni (code text, lo bigint, hi bigint, late float8)"))
        conn.execute(text("INSERT INTO bench_muni VALUES (:code, :lo, :hi, :late)"), bounds)

    def step(name: str, sql: str) -> None:
        t = time.perf_counter()
        with engine.begin() as conn:
            conn.execute(text("SET LOCAL synchronous_commit = off"))
            conn.execute(text("SET LOCAL session_replication_role = replica"))
            conn.execute(text(sql))
        steps[name] = time.perf_counter() - t
        print(f"  {name}: {steps[name]:.1f} s", flush=True)

    # Per applicant: when they applied, and how long each stage took. Applications surge in January; a
    # municipality's cards wait longer before their notice the later (busier) the municipality is.
    wait = f"(2 + {_hash('i', 3)} * (8 + 90 * m.late * m.late))::int"
    step("timeline (staging)", f"""
        CREATE UNLOGGED TABLE bench_times AS
        SELECT i AS id, m.code, a.applied,
               a.applied + interval '1 day' AS accepted,
               a.applied + interval '2 days' AS ordered,
               a.applied + interval '5 days' AS made,
               a.applied + interval '6 days' AS shipped,
               a.applied + interval '9 days' AS received,
               a.applied + interval '9 days' + make_interval(days => {wait}) AS notified,
               a.applied + interval '9 days' + make_interval(days => {wait})
                 + make_interval(days => (1 + {_hash('i', 4)} * 45)::int) AS issued,
               {_hash('i', 5)} AS fate
        FROM bench_muni m, generate_series(m.lo, m.hi) AS i,
             LATERAL (SELECT timestamptz '2015-10-05 00:00+09' + make_interval(secs =>
                      (power({_hash('i', 1)}, 1.15) * 255 * 86400)::int + 32400) AS applied) a""")
    ranks = ("applied", "accepted", "print_ordered", "manufactured", "shipped", "received",
             "pre_issuance_set", "notice_sent", "issued")
    state_sql = f"""CASE
            WHEN t.fate < 0.010 THEN 'rejected'
            WHEN t.fate < 0.015 THEN 'in_review'
            WHEN t.issued <= timestamptz '{AS_OF} 23:59+09' THEN 'issued'
            WHEN t.notified <= timestamptz '{AS_OF} 23:59+09' THEN 'notice_sent'
            WHEN t.received <= timestamptz '{AS_OF} 23:59+09' THEN
                 CASE WHEN t.fate < 0.3 THEN 'pre_issuance_set' ELSE 'received' END
            WHEN t.shipped <= timestamptz '{AS_OF} 23:59+09' THEN 'shipped'
            WHEN t.made <= timestamptz '{AS_OF} 23:59+09' THEN 'manufactured'
            WHEN t.ordered <= timestamptz '{AS_OF} 23:59+09' THEN 'print_ordered'
            WHEN t.accepted <= timestamptz '{AS_OF} 23:59+09' THEN 'accepted'
            ELSE 'applied' END"""
    step("residents", f"""
        INSERT INTO residents (id, resident_code, municipality_code, relationship, family_name, given_name,
                               family_kana, given_kana, birth_date, sex, address, status, version, updated_at)
        SELECT t.id, lpad(t.id::text, 11, '0'), t.code, '世帯主', '番', 'B' || t.id, 'バン', 'ベンチ',
               date '1935-01-01' + (({_hash('t.id', 6)}) * 29000)::int,
               CASE WHEN {_hash('t.id', 7)} < 0.5 THEN '1' ELSE '2' END, 'bench ' || t.code, 'active', 1,
               timestamptz '2015-10-01 09:00+09'
        FROM bench_times t""")
    unmade = "'applied', 'accepted', 'print_ordered', 'rejected', 'in_review'"
    step("cards", f"""
        INSERT INTO cards (id, application_id, resident_id, municipality_code, state, channel,
                           family_name, given_name, birth_date, sex, address, photo_sha256,
                           wants_sign_cert, wants_auth_cert, applied_at, updated_at, print_count, version,
                           card_serial, issued_on)
        SELECT t.id, t.code || lpad(t.id::text, 16, '0') || '0', t.id, t.code, s.state, 'online', '番',
               'B' || t.id, date '1935-01-01' + (({_hash('t.id', 6)}) * 29000)::int,
               CASE WHEN {_hash('t.id', 7)} < 0.5 THEN '1' ELSE '2' END, 'bench ' || t.code,
               md5(t.id::text) || md5(t.code || t.id), true, true, t.applied,
               CASE s.state WHEN 'issued' THEN t.issued WHEN 'notice_sent' THEN t.notified
                    WHEN 'pre_issuance_set' THEN t.received WHEN 'received' THEN t.received
                    WHEN 'shipped' THEN t.shipped WHEN 'manufactured' THEN t.made
                    WHEN 'print_ordered' THEN t.ordered WHEN 'accepted' THEN t.accepted
                    WHEN 'rejected' THEN t.accepted WHEN 'in_review' THEN t.accepted ELSE t.applied END,
               CASE WHEN s.state IN ('applied', 'accepted', 'rejected', 'in_review') THEN 0 ELSE 1 END, 1,
               CASE WHEN s.state IN ({unmade}) THEN NULL
                    ELSE 'B' || lpad(t.id::text, 10, '0') || '01' END,
               CASE WHEN s.state IN ({unmade}) THEN NULL ELSE (t.made AT TIME ZONE 'Asia/Tokyo')::date END
        FROM bench_times t, LATERAL (SELECT {state_sql} AS state) s""")
    moves = [("applied", None, "t.applied"), ("accepted", "applied", "t.accepted"),
             ("print_ordered", "accepted", "t.ordered"), ("manufactured", "print_ordered", "t.made"),
             ("shipped", "manufactured", "t.shipped"), ("received", "shipped", "t.received"),
             ("pre_issuance_set", "received", "t.received + interval '2 hours'"),
             ("notice_sent", "pre_issuance_set", "t.notified"), ("issued", "notice_sent", "t.issued")]
    values = ", ".join(f"({i}, {'NULL' if f is None else repr(f)}, '{to}', {at})"
                       for i, (to, f, at) in enumerate(moves))
    rank_case = "CASE c.state " + " ".join(f"WHEN '{s}' THEN {i}" for i, s in enumerate(ranks)) + \
        " WHEN 'rejected' THEN 1 WHEN 'in_review' THEN 1 END"
    step("card_events", f"""
        INSERT INTO card_events (card_id, from_state, to_state, actor, at, reason)
        SELECT c.id, v.from_state, CASE WHEN c.state IN ('rejected', 'in_review') AND v.step = 1
                                        THEN c.state ELSE v.to_state END, 'bench', v.at, NULL
        FROM cards c JOIN bench_times t ON t.id = c.id,
             LATERAL (VALUES {values}) AS v(step, from_state, to_state, at)
        WHERE v.step <= {rank_case}
        ORDER BY c.id, v.step""")
    t0 = time.perf_counter()
    with engine.begin() as conn:
        for definition in saved.values():
            conn.execute(text(definition))
        for table in ("residents", "cards", "card_events"):
            conn.execute(text(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                              f"(SELECT coalesce(max(id), 1) FROM {table}))"))
        conn.execute(text("DROP TABLE bench_times"))
        conn.execute(text("DROP TABLE bench_muni"))
    steps["secondary indexes"] = time.perf_counter() - t0
    print(f"  secondary indexes: {steps['secondary indexes']:.1f} s", flush=True)
    t0 = time.perf_counter()
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("VACUUM ANALYZE residents, cards, card_events"))
    steps["vacuum analyze"] = time.perf_counter() - t0
    print(f"  vacuum analyze: {steps['vacuum analyze']:.1f} s", flush=True)
    return steps


def means_csv() -> bytes:
    lines = ["municipality_code,site,terminals,staff,saturdays"]
    for code, share, _ in _weights():
        terminals = max(1, round(share * 4000))
        lines.append(f"{code},本庁,{terminals},{terminals + 1},{'2;4' if terminals > 3 else 'none'}")
    return ("\n".join(lines) + "\n").encode()


# --- the run ------------------------------------------------------------------------------------------------

def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cards", type=int, default=13_000_000)
    parser.add_argument("--admin-url", default=os.environ.get(
        "MYNACARD_TEST_POSTGRES", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"))
    parser.add_argument("--keep", action="store_true", help="Keep the bench database (to look at it).")
    parser.add_argument("--reuse", help="Measure an existing bench database (kept with --keep) instead.")
    args = parser.parse_args()

    name = args.reuse or f"mynacard_bench_plans_{uuid.uuid4().hex[:8]}"
    admin = create_engine(args.admin_url, isolation_level="AUTOCOMMIT")
    url = args.admin_url.rsplit("/", 1)[0] + "/" + name
    with admin.connect() as conn:
        if not args.reuse:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        version = conn.execute(text("SHOW server_version")).scalar()
    print(f"machine: {machine()}; PostgreSQL {version}; database {name}", flush=True)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # so that the database is dropped
    try:
        run(url, args.cards, load_data=not args.reuse)
    finally:
        if not args.keep and not args.reuse:
            with admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            print(f"dropped {name}")
        admin.dispose()


def run(url: str, total: int, load_data: bool = True) -> None:
    import tempfile

    home = Path(tempfile.mkdtemp(prefix="mynacard-bench-"))
    ctx = build_context(home=home, database_url=url)
    load_time = 0.0
    if load_data:
        upgrade(ctx.db)
        print(f"loading {total:,} applicants (residents, cards, card history)…", flush=True)
        t0 = time.perf_counter()
        load(ctx.db.engine, total)
        load_time = time.perf_counter() - t0
    with ctx.db.connect() as conn:
        n_cards = conn.execute(text("SELECT count(*) FROM cards")).scalar_one()
        n_events = conn.execute(text("SELECT count(*) FROM card_events")).scalar_one()
        states = dict(conn.execute(text("SELECT state, count(*) FROM cards GROUP BY state")).all())
        size = conn.execute(text("SELECT pg_size_pretty(pg_database_size(current_database()))")).scalar_one()
    backlog = states.get("received", 0) + states.get("pre_issuance_set", 0)
    print(f"loaded {n_cards:,} cards and {n_events:,} events in {load_time:.0f} s ({size}); "
          f"backlog {backlog:,} ({backlog / n_cards:.1%}), issued {states.get('issued', 0):,}", flush=True)

    targets, monthly = deck2016.build()
    t_import, result = timed(lambda: service.import_plans(
        ctx, OPERATOR, [("targets.csv", targets), ("monthly.csv", monthly), ("means.csv", means_csv())],
        as_of=AS_OF, now=NOW))
    rows: list[tuple[str, float, str, float]] = []

    def peer_sql(sql: str) -> Callable[[], Any]:
        def run_sql() -> Any:
            with ctx.db.connect() as conn:
                return conn.execute(text(sql)).all()
        return run_sql

    t_refresh, refreshed = timed(lambda: service.refresh_actuals(ctx, OPERATOR, NOW, forecasts=False))
    t_scan, _ = timed(peer_sql("SELECT count(*) FROM card_events"))
    rows.append((f"actuals snapshot (refresh, {refreshed.rows:,} rows)", t_refresh,
                 "SELECT count(*) FROM card_events", t_scan))
    t_nightly, nightly = timed(lambda: service.refresh_actuals(ctx, OPERATOR, NOW))
    rows.append((f"nightly refresh: snapshot and {nightly.forecasts:,} forecasts kept", t_nightly,
                 "the snapshot alone (above)", t_refresh))

    t_report, report = timed(lambda: service.national_report_for(ctx, OPERATOR, as_of=AS_OF), runs=5)
    t_states, _ = timed(lambda: cards.counts_by_municipality_and_state(ctx, OPERATOR), runs=3)
    rows.append((f"national report ({report.with_plan:,} plans)", t_report,
                 "cards by municipality and state (cards dashboard)", t_states))

    from fastapi.testclient import TestClient

    from mynacard.web.app import create_app

    client = TestClient(create_app(ctx))
    t_page, response = timed(lambda: client.get("/plans?as_of=2016-06-17"), runs=3)
    assert response.status_code == 200
    t_csv, _ = timed(lambda: client.get("/plans/national.csv?as_of=2016-06-17"), runs=3)
    rows.append(("national page /plans (table, charts, map)", t_page, "national CSV /plans/national.csv",
                 t_csv))

    with ctx.db.connect() as conn:
        by_size = conn.execute(text("SELECT municipality_code FROM cards GROUP BY municipality_code "
                                    "ORDER BY count(*) DESC")).scalars().all()
    biggest, median_code = by_size[0], by_size[len(by_size) // 2]
    for code in (biggest, median_code):
        t_live, live = timed(lambda c=code: service.live_status(ctx, OPERATOR, c, NOW), runs=3)
        t_fc, fc = timed(lambda c=code, lv=live: service.forecast_for(ctx, OPERATOR, c, NOW, live=lv), runs=3)
        rows.append((f"forecast of {code} ({live.backlog_total:,} waiting; model only)", t_fc,
                     "its live queue and history (live_status)", t_live))
        print(f"  {code}: {fc.status.value} {fc.low} / {fc.median} / {fc.high}", flush=True)

    t_national_fc, forecasts = timed(lambda: service.national_forecasts(ctx, OPERATOR, runs=200))
    t_backlog, _ = timed(lambda: cards.counts_by_application_month(ctx, OPERATOR, service.BACKLOG_STATES))
    rows.append((f"national forecasts ({len(forecasts):,} municipalities, 200 runs each)", t_national_fc,
                 "backlog by municipality and application month", t_backlog))

    print(f"\nplans imported: {result.rows:,} rows for {result.municipalities:,} municipalities "
          f"in {t_import:.2f} s")
    width = max(len(r[0]) for r in rows)
    print(f"\n{'measure':<{width}}  {'seconds':>8}   peer (same run)")
    for what, seconds, peer, peer_seconds in rows:
        print(f"{what:<{width}}  {seconds:8.3f}   {peer}: {peer_seconds:.3f} s")
    late = sum(1 for f in forecasts.values() if f.median is None or f.median > date(2016, 8, 31))
    print(f"\nforecasts finishing after August or never: {late:,} of {len(forecasts):,}")
    print(f"measured {datetime.now(UTC):%Y-%m-%d %H:%M} UTC")


if __name__ == "__main__":
    main()
