"""Schema migrations (Alembic), run programmatically: no alembic.ini to ship or find.

`upgrade(engine)` brings any store to the current schema; it runs every time a store is opened,
under a lock on PostgreSQL so that parallel scoring pods do not race. An upgrade logs one line.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path

from sqlalchemy import Engine, text

MIGRATIONS = Path(__file__).parent / "migrations"
# Any constant: serialises concurrent upgrades of the same PostgreSQL database.
PG_LOCK_KEY = 7_1_0_5_4_2
# Alembic's `context` is a module-level proxy: two threads migrating at once (the operator's
# reconcile and probe threads) would see each other's configuration.
_THREAD_LOCK = threading.Lock()
# Every store open checks the schema; Alembic's INFO lines ("setup plugin ...", "Context impl")
# would fill the operator's and the scoring Job's logs at each open. Upgrades still log a warning
# line of our own (INFO, below).
logging.getLogger("alembic").setLevel(logging.WARNING)
log = logging.getLogger(__name__)


def config(connection=None):
    from alembic.config import Config  # imported after the logger level is set (see above)
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["connection"] = connection
    return cfg


def upgrade(engine: Engine, revision: str = "head") -> None:
    with _THREAD_LOCK, engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": PG_LOCK_KEY})
        from alembic import command
        cfg = config(conn)
        before = _current(conn)
        command.upgrade(cfg, revision)
        after = _current(conn)
        if before != after:
            log.info("results store schema upgraded: %s -> %s", before or "empty", after)


def _current(conn) -> str | None:
    from alembic.migration import MigrationContext
    return MigrationContext.configure(conn).get_current_revision()


def revision(engine: Engine, message: str) -> None:
    """Autogenerate a new migration from the difference between schema.py and `engine`."""
    from alembic import command
    with engine.begin() as conn:
        command.revision(config(conn), message=message, autogenerate=True)
