"""Schema migrations (Alembic), run programmatically: no alembic.ini to ship or find.

`upgrade(engine)` brings any store to the current schema; it runs every time a store is opened,
under a lock on PostgreSQL so that parallel scoring pods do not race.
"""

from __future__ import annotations

import threading
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, text

MIGRATIONS = Path(__file__).parent / "migrations"
# Any constant: serialises concurrent upgrades of the same PostgreSQL database.
PG_LOCK_KEY = 7_1_0_5_4_2
# Alembic's `context` is a module-level proxy: two threads migrating at once (the operator's
# reconcile and probe threads) would see each other's configuration.
_THREAD_LOCK = threading.Lock()


def config(connection=None) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["connection"] = connection
    return cfg


def upgrade(engine: Engine, revision: str = "head") -> None:
    with _THREAD_LOCK, engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": PG_LOCK_KEY})
        command.upgrade(config(conn), revision)


def revision(engine: Engine, message: str) -> None:
    """Autogenerate a new migration from the difference between schema.py and `engine`."""
    with engine.begin() as conn:
        command.revision(config(conn), message=message, autogenerate=True)
