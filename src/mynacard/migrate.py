"""Schema migrations (Alembic) for `mynacard db upgrade`, the demo and the tests.

Each part of the domain keeps its migrations on its own Alembic branch (``branch_labels``), depending on
the foundation; ``upgrade heads`` applies them all, so parts can add tables without editing each other's
revision chains.
"""

from __future__ import annotations

from importlib.resources import files

from alembic import command
from alembic.config import Config

from mynacard.db import Database

__all__ = ["alembic_config", "upgrade"]


def alembic_config(url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(files("mynacard") / "migrations"))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def upgrade(db: Database) -> None:
    """Bring the database to the newest revision of every branch."""
    cfg = alembic_config(db.url.render_as_string(hide_password=False))
    with db.engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "heads")
