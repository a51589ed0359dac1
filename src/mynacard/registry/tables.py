"""Tables of the resident registry. Other parts use :mod:`mynacard.registry.service`, never these."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    Date,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Table,
    Text,
)

from mynacard.db import UtcDateTime, metadata

_ID = BigInteger().with_variant(Integer, "sqlite")

municipalities = Table(
    "municipalities",
    metadata,
    Column("code", String(6), primary_key=True),
    Column("prefecture_code", String(2), nullable=False, index=True),
    Column("prefecture", String(8), nullable=False),
    Column("name", String(32), nullable=False),
    Column("kana", String(64), nullable=False),
    Column("lat", Float, nullable=True),
    Column("lng", Float, nullable=True),
)

households = Table(
    "households",
    metadata,
    Column("id", _ID, primary_key=True, autoincrement=True),
    Column("municipality_code", ForeignKey("municipalities.code"), nullable=False, index=True),
    Column("address", Text, nullable=False),
)

residents = Table(
    "residents",
    metadata,
    Column("id", _ID, primary_key=True, autoincrement=True),
    Column("resident_code", String(11), nullable=False, unique=True),
    Column("municipality_code", ForeignKey("municipalities.code"), nullable=False),
    Column("household_id", ForeignKey("households.id"), nullable=True, index=True),
    Column("relationship", String(16), nullable=False, default="世帯主"),
    Column("family_name", String(60), nullable=False),
    Column("given_name", String(60), nullable=False),
    Column("family_kana", String(120), nullable=False),
    Column("given_kana", String(120), nullable=False),
    Column("maiden_name", String(60), nullable=True),
    Column("birth_date", Date, nullable=False),
    Column("sex", String(1), nullable=False),
    Column("address", Text, nullable=False),
    Column("status", String(16), nullable=False),
    Column("number_hash", String(64), nullable=True, unique=True),
    Column("version", Integer, nullable=False, default=1),
    Column("updated_at", UtcDateTime(), nullable=False),
    Index("ix_residents_municipality_status", "municipality_code", "status"),
)

individual_numbers = Table(
    "individual_numbers",
    metadata,
    # Keyed hash of the number: the unique index that makes a number impossible to assign twice, ever.
    Column("number_hash", String(64), primary_key=True),
    Column("resident_code", String(11), nullable=False, index=True),
    Column("attempt", Integer, nullable=False),
    Column("sealed_number", LargeBinary, nullable=False),
    Column("assigned_at", UtcDateTime(), nullable=False),
    Column("retired_at", UtcDateTime(), nullable=True),
)

registry_events = Table(
    "registry_events",
    metadata,
    Column("id", _ID, primary_key=True, autoincrement=True),
    Column("resident_id", ForeignKey("residents.id"), nullable=False, index=True),
    Column("kind", String(32), nullable=False),
    Column("actor", String(64), nullable=False),
    Column("at", UtcDateTime(), nullable=False),
    Column("details", Text, nullable=False),
)
