"""The migrations produce exactly the schema the tables declare, on both databases."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from mynacard.context import Context
from mynacard.schema import metadata


def test_migrated_schema_matches_the_tables(ctx: Context) -> None:
    with ctx.db.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), metadata)
    assert diff == []


def test_municipalities_are_loaded_by_the_first_migration(ctx: Context) -> None:
    from mynacard.registry import service as registry

    towns = registry.list_municipalities(ctx)
    assert len(towns) == 1741
    assert registry.get_municipality(ctx, "131016").full_name == "東京都千代田区"
    assert len(registry.list_municipalities(ctx, "13")) == 62
