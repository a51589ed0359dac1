"""An agency's own store: its own PostgreSQL schema (``agency_<id>``), or its own prefixed tables on SQLite.

This is the agency side of the network (the 中間サーバー of a municipality, or a national body's own system):
its persons with their code, the copies of items it may provide (副本), its own record of every exchange it
took part in (番号法 §23 asks both sides to keep one), its inbox of applications, and its key pair (sealed).
The hub's tables never hold any of this; an agency's store is created when the agency registers and is not
part of the network's Alembic schema (agencies come and go as data, not as releases).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property, lru_cache
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    Connection,
    Date,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    and_,
    bindparam,
    inspect,
    select,
    text,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.schema import CreateSchema

from mynacard.db import UtcDateTime
from mynacard.exchange.model import AgencyId

__all__ = ["AgencyStore", "drop_all_agency_stores", "store_for"]

_ID = BigInteger().with_variant(Integer, "sqlite")


@dataclass(frozen=True)
class AgencyStore:
    """The tables of one agency's own store, for one database dialect."""

    agency_id: AgencyId
    schema: str | None
    metadata: MetaData
    keys: Table
    persons: Table
    records: Table
    exchanges: Table
    inbox: Table

    def create(self, conn: Connection) -> None:
        """Create the store (idempotent)."""
        if self.schema is not None:
            conn.execute(CreateSchema(self.schema, if_not_exists=True))
        self.metadata.create_all(conn, checkfirst=True)

    def exists(self, conn: Connection) -> bool:
        return inspect(conn).has_table(self.keys.name, schema=self.schema)

    # Statements on the hot path, built once per store and run with bind parameters.

    @cached_property
    def code_of_ref(self) -> Any:
        """(code, link_status) of the record ``ref``."""
        p = self.persons.c
        return select(p.code, p.link_status).where(p.local_ref == bindparam("ref"))

    @cached_property
    def ref_of_active_code(self) -> Any:
        """The record that holds the active code ``code``."""
        p = self.persons.c
        return select(p.local_ref).where(p.code == bindparam("code"), p.link_status == "active")

    @cached_property
    def ref_and_record(self) -> Any:
        """(local_ref, data, updated_at) of the record holding the active ``code``, with its ``item`` if any."""
        p, r = self.persons.c, self.records.c
        joined = self.persons.outerjoin(self.records, and_(r.local_ref == p.local_ref, r.item == bindparam("item")))
        return select(p.local_ref, r.data, r.updated_at).select_from(joined).where(
            p.code == bindparam("code"), p.link_status == "active")

    @cached_property
    def record_of(self) -> Any:
        """(data, updated_at) of item ``item`` of record ``ref``."""
        r = self.records.c
        return select(r.data, r.updated_at).where(r.local_ref == bindparam("ref"), r.item == bindparam("item"))

    @cached_property
    def add_exchange(self) -> Any:
        """Insert one own exchange record; a replay of the same message adds nothing."""
        dialect = postgresql if self.schema is not None else sqlite
        return dialect.insert(self.exchanges).on_conflict_do_nothing()


@lru_cache(maxsize=4096)
def store_for(agency_id: str, dialect: str) -> AgencyStore:
    """The store of ``agency_id`` on a database of ``dialect`` (``postgresql`` or ``sqlite``)."""
    agency = AgencyId(agency_id)
    name = agency.store_name
    if dialect == "postgresql":
        schema: str | None = name
        prefix = ""
    else:
        schema = None
        prefix = name + "__"
    md = MetaData()

    def t(table: str, *columns: object) -> Table:
        return Table(prefix + table, md, *columns, schema=schema)  # type: ignore[call-overload]

    keys = t("keys",
             Column("version", Integer, primary_key=True, autoincrement=False),
             Column("sealed_private", LargeBinary, nullable=False),
             Column("created_at", UtcDateTime(), nullable=False))
    persons = t("persons",
                # 団体内統合宛名番号 or the agency's own person number.
                Column("local_ref", String(64), primary_key=True),
                Column("code", String(26), nullable=True, unique=True),
                Column("link_status", String(16), nullable=True),
                Column("sealed_number", LargeBinary, nullable=True),
                Column("family_name", String(60), nullable=False),
                Column("given_name", String(60), nullable=False),
                Column("family_kana", String(120), nullable=True),
                Column("given_kana", String(120), nullable=True),
                Column("birth_date", Date, nullable=False),
                Column("sex", String(1), nullable=False),
                Column("address", Text, nullable=False),
                Column("updated_at", UtcDateTime(), nullable=False))
    records = t("records",
                Column("local_ref", String(64), primary_key=True),
                Column("item", String(40), primary_key=True),
                Column("data", Text, nullable=False),
                Column("version", Integer, nullable=False),
                Column("updated_at", UtcDateTime(), nullable=False))
    exchanges = t("exchanges",
                  Column("id", _ID, primary_key=True, autoincrement=True),
                  Column("message_id", String(64), nullable=False),
                  Column("role", String(16), nullable=False),
                  Column("counterpart", String(40), nullable=True),
                  Column("kind", String(20), nullable=False),
                  Column("procedure", String(40), nullable=True),
                  Column("item", String(40), nullable=True),
                  Column("local_ref", String(64), nullable=True),
                  Column("status", String(16), nullable=False),
                  Column("log_seq", BigInteger, nullable=True),
                  Column("at", UtcDateTime(), nullable=False),
                  UniqueConstraint("message_id", "role", "counterpart", name=f"uq_{name}_exchanges_msg"))
    inbox = t("inbox",
              Column("id", _ID, primary_key=True, autoincrement=True),
              Column("message_id", String(64), nullable=False),
              Column("sender", String(40), nullable=False),
              Column("kind", String(20), nullable=False),
              Column("code", String(26), nullable=True),
              Column("reply_handle", String(32), nullable=True),
              Column("local_ref", String(64), nullable=True),
              Column("title", String(200), nullable=True),
              Column("payload", Text, nullable=False),
              Column("status", String(16), nullable=False),
              Column("status_note", Text, nullable=True),
              Column("received_at", UtcDateTime(), nullable=False),
              Column("read_at", UtcDateTime(), nullable=True),
              Column("updated_at", UtcDateTime(), nullable=False),
              UniqueConstraint("sender", "message_id", name=f"uq_{name}_inbox_msg"),
              Index(f"ix_{name}_inbox_code", "code"))
    return AgencyStore(agency, schema, md, keys, persons, records, exchanges, inbox)


def drop_all_agency_stores(conn: Connection) -> int:
    """Drop every agency store in the database (tests and a full reset only); returns how many."""
    if conn.dialect.name == "postgresql":
        schemas = list(conn.execute(text(
            "SELECT nspname FROM pg_namespace WHERE nspname LIKE 'agency\\_%'")).scalars())
        for schema in schemas:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        return len(schemas)
    tables = list(conn.execute(text(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name LIKE 'agency\\_%' ESCAPE '\\'"
    )).scalars())
    for table in tables:
        conn.execute(text(f'DROP TABLE "{table}"'))
    return len({t.split("__", 1)[0] for t in tables})
