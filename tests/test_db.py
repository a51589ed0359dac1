"""mynacard.db: the membership filter, read connections and the idle ping, on both databases."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import event, select

from mynacard import db as dbmod
from mynacard.context import Context
from mynacard.registry.tables import municipalities


def test_any_of_binds_new_values_each_time_and_compiles_once(ctx: Context) -> None:
    compiled: list[str] = []

    def count(conn: Any, clauseelement: Any, multiparams: Any, params: Any, options: Any, result: Any) -> None:
        compiled.append(result.context.cache_hit.name if hasattr(result.context, "cache_hit") else "?")

    event.listen(ctx.db.engine, "after_execute", count)
    try:
        with ctx.db.connect() as conn:
            def codes(values: list[str]) -> set[str]:
                query = select(municipalities.c.code).where(dbmod.any_of(municipalities.c.code, values))
                return set(conn.execute(query).scalars())

            assert codes(["131016"]) == {"131016"}
            assert codes(["011002", "131016", "999999"]) == {"011002", "131016"}
            assert codes([]) == set()
            assert codes(["472018"]) == {"472018"}
    finally:
        event.remove(ctx.db.engine, "after_execute", count)
    # the statement was compiled for the first call and taken from the cache after (the empty list may differ)
    assert compiled[-1] == "CACHE_HIT", compiled


def test_read_connections_run_without_a_transaction_on_postgresql(pg_ctx: Context) -> None:
    with pg_ctx.db.connect() as conn:
        conn.exec_driver_sql("SELECT 1")
        assert conn.connection.dbapi_connection.autocommit is True  # type: ignore[union-attr]
    with pg_ctx.db.begin() as conn:
        conn.exec_driver_sql("SELECT 1")
        assert conn.connection.dbapi_connection.autocommit is False  # type: ignore[union-attr]


def test_an_idle_connection_is_pinged_and_a_dead_one_replaced(pg_ctx: Context,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    with pg_ctx.db.connect() as victim, pg_ctx.db.connect() as killer:
        dead = victim.exec_driver_sql("SELECT pg_backend_pid()").scalar()
        killer.exec_driver_sql(f"SELECT pg_terminate_backend({dead})")
    # both go back to the pool; the dead one looks idle at once, so its next check-out pings and reconnects
    monkeypatch.setattr(dbmod, "PING_AFTER_IDLE_S", 0.0)
    with pg_ctx.db.connect() as one, pg_ctx.db.connect() as two:
        pids = {c.exec_driver_sql("SELECT pg_backend_pid()").scalar() for c in (one, two)}
    assert dead not in pids and len(pids) == 2
