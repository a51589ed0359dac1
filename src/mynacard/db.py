"""Engine, transactions and the SQLite/PostgreSQL switch.

SQLite (a file in WAL mode) is the embedded default; PostgreSQL is production. Code that needs the two to
behave differently asks :attr:`Database.is_postgres` here rather than testing URLs elsewhere.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
from sqlalchemy import (
    Column,
    Connection,
    DateTime,
    Dialect,
    Engine,
    MetaData,
    Table,
    create_engine,
    event,
    insert,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DisconnectionError, IntegrityError
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.pool import ConnectionPoolEntry, PoolProxiedConnection
from sqlalchemy.sql import ColumnElement, any_, bindparam
from sqlalchemy.sql.visitors import InternalTraversal
from sqlalchemy.types import Boolean, TypeDecorator

from mynacard.private_files import tighten

__all__ = ["Database", "UtcDateTime", "any_of", "bulk_insert", "bulk_insert_ignore", "metadata"]

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)
"""The one MetaData every part's ``tables.py`` registers its tables on."""


class UtcDateTime(TypeDecorator[datetime]):
    """A moment in time, stored in UTC and always read back timezone-aware (SQLite keeps no zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime: pass an aware time (services take `now` with a zone)")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.close()


def _sqlite_begin(conn: Connection) -> None:
    # Writers take the write lock at BEGIN; readers (``Database.connect``) stay deferred and never block.
    conn.exec_driver_sql("BEGIN" if conn.get_execution_options().get("readonly") else "BEGIN IMMEDIATE")


PING_AFTER_IDLE_S = 5.0
"""A pooled PostgreSQL connection idle for longer than this is pinged before it is handed out."""


def _note_checkin(dbapi_conn: Any, record: ConnectionPoolEntry) -> None:
    record.info["idle_since"] = time.monotonic()


def _ping_if_idle(dbapi_conn: Any, record: ConnectionPoolEntry, proxy: PoolProxiedConnection) -> None:
    # SQLAlchemy's pool_pre_ping costs a round trip at every check-out (a kiosk session checks out eleven
    # times). A connection in steady use is known alive; only one that sat idle — through a server restart
    # or a network drop — is asked first. A connection that died within the window fails its statement,
    # and SQLAlchemy then invalidates the whole pool, so a restart costs at most one request per process.
    idle_since = record.info.get("idle_since")
    if idle_since is None or time.monotonic() - idle_since < PING_AFTER_IDLE_S:
        return
    autocommit = dbapi_conn.autocommit
    try:
        dbapi_conn.autocommit = True  # the ping must not leave a transaction open
        dbapi_conn.execute("SELECT 1")
        dbapi_conn.autocommit = autocommit
    except psycopg.Error as exc:
        raise DisconnectionError("idle connection is gone") from exc  # the pool connects afresh


def _private_sqlite_file(database: str | None) -> None:
    """Create the SQLite file 0600 before SQLite does (it would make it 0644; its -wal and -shm files take the
    database file's mode), and take the group's and others' access from the files of an older home."""
    if not database or database == ":memory:" or database.startswith("file:"):
        return
    path = Path(database)
    try:
        os.close(os.open(path, os.O_RDONLY | os.O_CREAT, 0o600))
    except OSError:
        return  # no such folder, or not ours: SQLite reports it when it connects
    for each in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        tighten(each, 0o600)


class Database:
    """One database: its engine and how to open a transaction on it."""

    def __init__(self, url: str, *, echo: bool = False, pool_size: int = 10) -> None:
        self.url = make_url(url)
        if self.url.get_backend_name() == "sqlite":
            _private_sqlite_file(self.url.database)
            # The sqlite3 module's own transaction handling is disabled so that BEGIN IMMEDIATE can take the
            # write lock up front: a reader that later writes would otherwise fail with "database is locked".
            engine = create_engine(self.url, echo=echo, connect_args={"timeout": 30, "isolation_level": None})
            event.listen(engine, "connect", _sqlite_pragmas)
            event.listen(engine, "begin", _sqlite_begin)
        else:
            engine = create_engine(self.url, echo=echo, pool_size=pool_size, max_overflow=pool_size)
            event.listen(engine, "checkin", _note_checkin)
            event.listen(engine, "checkout", _ping_if_idle)
        self.engine: Engine = engine

    @property
    def is_postgres(self) -> bool:
        return self.url.get_backend_name() == "postgresql"

    @property
    def is_sqlite(self) -> bool:
        return self.url.get_backend_name() == "sqlite"

    @contextmanager
    def begin(self) -> Iterator[Connection]:
        """A connection inside one transaction: committed on success, rolled back whole on any error."""
        with self.engine.begin() as conn:
            yield conn

    @contextmanager
    def read_transaction(self) -> Iterator[Connection]:
        """A connection for one read that needs a transaction of its own on PostgreSQL — to ``SET LOCAL`` a
        setting for it — and a plain read connection on SQLite (where a transaction would take the write lock)."""
        if self.is_postgres:
            with self.begin() as conn:
                yield conn
        else:
            with self.connect() as conn:
                yield conn

    @contextmanager
    def connect(self) -> Iterator[Connection]:
        """A connection for reads that need no transaction of their own.

        On PostgreSQL it runs in autocommit: at READ COMMITTED every statement takes its own snapshot inside a
        transaction too, so BEGIN and ROLLBACK would only cost two round trips. (Writes belong in
        :meth:`begin`; here they would take effect at once.) SQLite keeps a deferred read transaction, which
        gives its statements one snapshot."""
        options: dict[str, Any] = {"readonly": True}
        if self.is_postgres:
            options["isolation_level"] = "AUTOCOMMIT"
        with self.engine.connect().execution_options(**options) as conn:
            yield conn

    def dispose(self) -> None:
        self.engine.dispose()


# --- bulk writes -------------------------------------------------------------------------------------------
# PostgreSQL takes big batches fastest through COPY; building multi-row INSERTs costs more in the driver than
# in the server. SQLite's executemany is already in-process and fast. Callers pass plain dict rows.

def _pg_copy(conn: Connection, table: str, columns: list[str], rows: Sequence[dict[str, Any]]) -> None:
    cursor = conn.connection.cursor()
    statement = f'COPY {table} ({", ".join(columns)}) FROM STDIN'
    try:
        with cursor.copy(statement) as copy:
            for row in rows:
                copy.write_row([row[c] for c in columns])
    except psycopg.IntegrityError as exc:
        # the raw cursor bypasses SQLAlchemy: raise what an INSERT through it would, so callers catch one type
        raise IntegrityError(statement, None, exc) from None


def bulk_insert(conn: Connection, table: Table, rows: Sequence[dict[str, Any]], *,
                return_ids: bool = False) -> list[int]:
    """Insert many rows; with ``return_ids`` the new primary keys, in the order of ``rows``."""
    if not rows:
        return []
    if conn.dialect.name != "postgresql":
        if return_ids:
            pk: Column[Any] = next(iter(table.primary_key.columns))
            return list(conn.execute(insert(table).returning(pk, sort_by_parameter_order=True), rows).scalars())
        conn.execute(insert(table), rows)
        return []
    columns = list(rows[0])
    ids: list[int] = []
    if return_ids:
        pk = next(iter(table.primary_key.columns))
        ids = list(conn.execute(text(f"SELECT nextval(pg_get_serial_sequence('{table.name}', '{pk.name}')) "
                                     "FROM generate_series(1, :n)"), {"n": len(rows)}).scalars())
        rows = [{**row, pk.name: i} for row, i in zip(rows, ids, strict=True)]
        columns = [pk.name, *columns]
    _pg_copy(conn, table.name, columns, rows)
    return ids


def bulk_insert_ignore(conn: Connection, table: Table, rows: Sequence[dict[str, Any]], key: str) -> set[Any]:
    """Insert many rows, skipping those whose key is already taken; returns the keys that went in."""
    if not rows:
        return set()
    if conn.dialect.name != "postgresql":
        from sqlalchemy.dialects.sqlite import insert as sqlite_insert

        stmt = sqlite_insert(table).on_conflict_do_nothing().returning(table.c[key])
        return set(conn.execute(stmt, rows).scalars())
    columns = list(rows[0])
    scratch = f"tmp_{table.name}"
    conn.execute(text(f"CREATE TEMP TABLE IF NOT EXISTS {scratch} (LIKE {table.name}) ON COMMIT DROP"))
    conn.execute(text(f"TRUNCATE {scratch}"))
    _pg_copy(conn, scratch, columns, rows)
    names = ", ".join(columns)
    return set(conn.execute(text(
        f"INSERT INTO {table.name} ({names}) SELECT {names} FROM {scratch} ON CONFLICT DO NOTHING "
        f"RETURNING {key}")).scalars())


# --- membership in a big list ------------------------------------------------------------------------------

class _AnyOf(ColumnElement[bool]):
    """``column IN (values)``, sent to PostgreSQL as ``column = ANY(:array)``: one bound parameter instead of
    thousands, which the driver and the planner both handle far faster.

    Both forms are built up front and are part of the cache key, so SQLAlchemy compiles a statement with this
    filter once and thereafter only binds new values; each dialect renders (and binds) one of the two."""

    inherit_cache = True
    _traverse_internals = [("in_list", InternalTraversal.dp_clauseelement),  # noqa: RUF012 (SQLAlchemy's)
                           ("equals_any", InternalTraversal.dp_clauseelement)]
    type = Boolean()

    def __init__(self, column: ColumnElement[Any], values: Sequence[Any]) -> None:
        values = list(values)
        self.in_list = column.in_(values)
        self.equals_any = column == any_(bindparam(None, values, type_=ARRAY(column.type)))


@compiles(_AnyOf)
def _any_of_default(element: _AnyOf, compiler: Any, **kw: Any) -> str:
    return str(compiler.process(element.in_list, **kw))


@compiles(_AnyOf, "postgresql")
def _any_of_postgresql(element: _AnyOf, compiler: Any, **kw: Any) -> str:
    return str(compiler.process(element.equals_any, **kw))


def any_of(column: ColumnElement[Any], values: Sequence[Any]) -> ColumnElement[bool]:
    """A filter for ``column`` being one of ``values`` (any length) on either database."""
    return _AnyOf(column, values)
