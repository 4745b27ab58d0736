"""Results stores the operator reads (progress, summaries) and probes write: one per URL.

The URL comes from a Secret and is never logged: a failure is reported without it.
"""

from __future__ import annotations

import logging
import threading

from slam.store import Store

log = logging.getLogger("slam_operator.stores")

_stores: dict[str, Store] = {}
_lock = threading.Lock()


def store_for(url: str) -> Store | None:
    """One open Store per URL for the whole operator (reconciles and probes share it); None,
    with a warning, when it cannot be opened (progress is best effort: the Job does the work)."""
    try:
        with _lock:
            if url not in _stores:
                _stores[url] = Store.open(url)
            return _stores[url]
    except Exception as e:  # noqa: BLE001 - any driver error: report it without the URL
        log.warning("results store unavailable: %s: %s", type(e).__name__,
                    str(e).replace(url, "<store URL>")[:300])
        return None
