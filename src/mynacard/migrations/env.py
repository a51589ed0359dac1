"""Alembic environment: runs the migrations against the URL the caller configured (see mynacard.migrate)."""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine

from mynacard.schema import metadata

config = context.config
url = config.get_main_option("sqlalchemy.url") or ""


def run() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
        with context.begin_transaction():
            context.run_migrations()
        return
    engine = create_engine(url)
    with engine.connect() as conn:
        context.configure(connection=conn, target_metadata=metadata, render_as_batch=True)
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


run()
