"""A fix to kopf's start-up gate, applied when the handlers are imported.

When kopf starts it holds every object's handlers until every indexed object of every watched
kind has been indexed: a `ToggleSet(all)` with a toggle per listed object, and each object's
worker waiting on it (`operator_indexed.wait_for(True)`). kopf 1.45 wakes *every* waiting
worker whenever a toggle is added to or dropped from the set (`notify_all`), although adding or
dropping a toggle changes what they wait for only when it changes the set's state. With N
listed objects that is about 2N wake-ups of up to N workers: a restarted operator with 2,000
ModelDeployments (8,000 objects with their Deployments, Services and pods) spent over two
minutes only waking workers before its first reconcile (py-spy: `Condition.notify` and
`call_soon` under `ToggleSet.make_toggle`; bench/README, issue 17).

The fix notifies only when the set's state (on/off) changes. That is exact: a waiter waits for
the state, so when it does not change no waiter could proceed; a toggle turned on or off still
notifies through `Toggle.turn_to`, unchanged. It replaces two methods of
`kopf._cogs.aiokits.aiotoggles.ToggleSet` and checks first that the class still has the shape
it was written for; if a kopf release changes it, the fix is skipped with a warning (and kopf
behaves as it ships).
"""

from __future__ import annotations

import inspect
import logging

log = logging.getLogger(__name__)


def apply() -> bool:
    """Patch kopf's ToggleSet to notify its waiters only when its state changes; whether it did
    (False: this kopf is not the shape the fix was written for; nothing is changed)."""
    try:
        from kopf._cogs.aiokits import aiotoggles
    except ImportError:
        log.warning("kopf's start-up gate is not where this fix expects it; not applied")
        return False
    cls = aiotoggles.ToggleSet
    if getattr(cls, "_slam_fixed", False):
        return True
    expected = {"make_toggle": "notify_all", "drop_toggle": "notify_all",
                "drop_toggles": "notify_all", "is_on": "_toggles"}
    for name, needle in expected.items():
        method = getattr(cls, name, None)
        if method is None or needle not in inspect.getsource(method):
            log.warning("kopf's ToggleSet.%s is not the one this fix was written for; "
                        "not applied", name)
            return False

    async def make_toggle(self, __val: bool = False, *, name: str | None = None):
        toggle = aiotoggles.Toggle(__val, name=name, condition=self._condition)
        async with self._condition:
            before = self.is_on()
            self._toggles.add(toggle)
            if self.is_on() != before:
                self._condition.notify_all()
        return toggle

    async def drop_toggle(self, toggle) -> None:
        async with self._condition:
            before = self.is_on()
            self._toggles.discard(toggle)
            if self.is_on() != before:
                self._condition.notify_all()

    async def drop_toggles(self, toggles) -> None:
        async with self._condition:
            before = self.is_on()
            self._toggles.difference_update(toggles)
            if self.is_on() != before:
                self._condition.notify_all()

    cls.make_toggle = make_toggle
    cls.drop_toggle = drop_toggle
    cls.drop_toggles = drop_toggles
    cls._slam_fixed = True
    return True
