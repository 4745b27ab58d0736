"""Results stores the operator reads (progress, summaries) and probes write: one per URL.

The URL comes from a Secret and is never logged or written: a failure is described with the
URL's password masked and the driver's first line (Store.describe_error).
"""

from __future__ import annotations

import logging
import threading

from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError

from slam.store import Store, describe_error, display_url

log = logging.getLogger("slam_operator.stores")

_stores: dict[str, Store] = {}
_lock = threading.Lock()


def open_store(url: str) -> tuple[Store | None, str | None]:
    """One open Store per URL for the whole operator (reconciles and probes share it), or None
    and why it cannot be opened: the masked URL and the error, for a condition's message. A
    store that could not be opened is tried again on the next call."""
    try:
        with _lock:
            if url not in _stores:
                _stores[url] = Store.open(url)
            return _stores[url], None
    except Exception as e:  # noqa: BLE001 - any driver or URL error becomes the problem
        return None, unreachable(url, e)


def unreachable(url: str, e: BaseException) -> str:
    """'<URL, password masked>: <error>', the password nowhere."""
    try:
        shown, password = display_url(url), make_url(url).password
    except Exception:  # noqa: BLE001 - not even a URL
        shown, password = "(the Secret's value is not a SQLAlchemy URL)", None
    return f"{shown}: {describe_error(e, password).replace(url, shown)}"[:400]


def store_for(url: str) -> Store | None:
    """The Store for `url`, or None with a warning (for the probes, which are best effort)."""
    store, problem = open_store(url)
    if problem:
        log.warning("results store unavailable: %s", problem)
    return store


STORE_ERRORS = (SQLAlchemyError, OSError)  # what a store read raises when the store is away
