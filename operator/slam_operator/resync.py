"""Which ModelDeployments the periodic resync visits (pure).

The resync is a safety net: every object is reconciled at least once per period, whatever the
watches reported. An object an event reconciled less than a period ago has had that check
already, so the pass skips it. While thousands of objects converge they all have fresh events,
and the resync adds no load to the API server; in a quiet steady state it visits each once.
"""

from __future__ import annotations

from collections.abc import Iterable, MutableMapping

Key = tuple[str, str]  # (namespace, name)


def due(known: Iterable[Key], last: MutableMapping[Key, float], now: float,
        period: float) -> list[Key]:
    """The objects of `known` not reconciled within `period` seconds before `now`, in a stable
    order. Entries of `last` for objects no longer known (deleted) are dropped.

    An object never reconciled is not due: its create or resume handler has not run yet. kopf
    runs it once it has listed every watched kind; before that the operator's view of the
    children is incomplete, and a reconcile would take the missing ones for deleted."""
    known = set(known)
    for key in [k for k in list(last) if k not in known]:  # handler threads add to it
        del last[key]
    return sorted(k for k in known if k in last and now - last[k] >= period)
