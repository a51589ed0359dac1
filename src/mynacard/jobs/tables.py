"""The job runner's tables: one row per job (its lease and last outcome) and the history of runs."""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, Index, Integer, String, Table, Text

from mynacard.db import UtcDateTime, metadata

__all__ = ["job_runs", "job_state"]

job_state = Table(
    "job_state",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("lease_holder", String(128), nullable=True),
    Column("lease_until", UtcDateTime(), nullable=True),
    Column("next_due_at", UtcDateTime(), nullable=False),
    Column("run_requested_at", UtcDateTime(), nullable=True),
    Column("failures", Integer(), nullable=False),
    Column("last_started_at", UtcDateTime(), nullable=True),
    Column("last_finished_at", UtcDateTime(), nullable=True),
    Column("last_outcome", String(16), nullable=True),
    Column("last_detail", Text(), nullable=True),
    Column("last_duration_ms", Integer(), nullable=True),
)

job_runs = Table(
    "job_runs",
    metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("name", String(64), nullable=False),
    Column("runner", String(128), nullable=False),
    Column("started_at", UtcDateTime(), nullable=False),
    Column("finished_at", UtcDateTime(), nullable=False),
    Column("outcome", String(16), nullable=False),
    Column("detail", Text(), nullable=False),
    Column("duration_ms", Integer(), nullable=False),
    Index("ix_job_runs_name", "name", "id"),
)
