"""The results store: SQLAlchemy 2 over SQLite (embedded default) or PostgreSQL (psycopg 3)."""

from slam.store.store import Store, default_url, describe_error, display_url

__all__ = ["Store", "default_url", "describe_error", "display_url"]
