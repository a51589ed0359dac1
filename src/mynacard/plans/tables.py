"""Tables of issuance plans. Other parts use :mod:`mynacard.plans.service`, never these.

A plan is append-only: every change is a new revision (``plan_revisions``) with its targets and monthly
figures, so a report can be drawn as of any day and the plans published in June stay comparable with what
happened after.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Date,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    Text,
    UniqueConstraint,
)

from mynacard.db import UtcDateTime, metadata

_ID = BigInteger().with_variant(Integer, "sqlite")

plan_imports = Table(
    "plan_imports",
    metadata,
    Column("id", _ID, primary_key=True, autoincrement=True),
    # Digest of the files' contents and the plan day: importing the same files again changes nothing.
    Column("sha256", String(64), nullable=False, unique=True),
    Column("as_of", Date, nullable=False),
    Column("files", Text, nullable=False),
    Column("municipalities", Integer, nullable=False),
    Column("rows", Integer, nullable=False),
    Column("imported_at", UtcDateTime(), nullable=False),
    Column("imported_by", String(64), nullable=False),
)

plan_revisions = Table(
    "plan_revisions",
    metadata,
    Column("id", _ID, primary_key=True, autoincrement=True),
    Column("municipality_code", ForeignKey("municipalities.code"), nullable=False),
    Column("revision", Integer, nullable=False),
    Column("as_of", Date, nullable=False),
    Column("target_month", Date, nullable=True),  # first day of the clearance month; NULL = nothing left
    Column("source", String(16), nullable=False),  # import | drafted
    Column("import_id", ForeignKey("plan_imports.id"), nullable=True, index=True),
    Column("means", Text, nullable=True),  # JSON of model.Means
    Column("backlog_total", Integer, nullable=True),
    Column("arrivals_per_day", Float, nullable=True),
    Column("required_per_day", Integer, nullable=True),
    Column("capacity_per_day", Float, nullable=True),
    Column("shortfall_per_day", Integer, nullable=True),
    Column("bottleneck", String(16), nullable=True),
    Column("note", Text, nullable=True),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("created_by", String(64), nullable=False),
    UniqueConstraint("municipality_code", "revision"),
    Index("ix_plan_revisions_as_of", "as_of"),
)

plan_targets = Table(
    "plan_targets",
    metadata,
    Column("revision_id", ForeignKey("plan_revisions.id"), primary_key=True),
    Column("application_month", Date, primary_key=True),
    Column("target_month", Date, nullable=True),  # NULL = done (送付済)
    Column("backlog", Integer, nullable=True),
)

plan_months = Table(
    "plan_months",
    metadata,
    Column("revision_id", ForeignKey("plan_revisions.id"), primary_key=True),
    Column("month", Date, primary_key=True),
    Column("notices_sent_cumulative", BigInteger, nullable=False),
    Column("applications_cumulative", BigInteger, nullable=False),
    Column("planned", Boolean, nullable=False),
)

plan_settings = Table(
    "plan_settings",
    metadata,
    Column("key", String(32), primary_key=True),
    Column("value", Text, nullable=False),
    Column("updated_at", UtcDateTime(), nullable=False),
    Column("updated_by", String(64), nullable=False),
)

# A snapshot of the card pipeline's history for national pages, rebuilt whole by `mynacard plans refresh`:
# entries into a state per municipality and JST month (daily = false) or JST day (daily = true).
plan_actuals = Table(
    "plan_actuals",
    metadata,
    Column("municipality_code", String(6), primary_key=True),
    Column("daily", Boolean, primary_key=True),
    Column("period", Date, primary_key=True),
    Column("state", String(24), primary_key=True),
    Column("count", BigInteger, nullable=False),
)

# The national batch forecast made with each snapshot: one row per municipality (the pages show it beside
# the plan; a single town's page forecasts live).
plan_forecasts = Table(
    "plan_forecasts",
    metadata,
    Column("municipality_code", String(6), primary_key=True),
    Column("as_of", Date, nullable=False),
    Column("status", String(16), nullable=False),
    Column("low", Date, nullable=True),
    Column("median", Date, nullable=True),
    Column("high", Date, nullable=True),
    Column("backlog", Integer, nullable=False),
    Column("throughput_per_day", Float, nullable=False),
    Column("arrivals_per_day", Float, nullable=False),
)
