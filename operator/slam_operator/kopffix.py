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
notifies through `Toggle.turn_to`, unchanged. It replaces the three methods of
`kopf._cogs.aiokits.aiotoggles.ToggleSet` that add or drop toggles, and checks first that they
are still the ones it was written for; if a kopf release changes them, the fix is skipped with a
warning (and kopf behaves as it ships).
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
                "drop_toggles": "notify_all", "__init__": "_toggles"}
    for name, needle in expected.items():
        try:
            shaped = needle in inspect.getsource(getattr(cls, name))
        except (AttributeError, OSError, TypeError):
            shaped = False
        if not shaped:
            log.warning("kopf's ToggleSet.%s is not the one this fix was written for; "
                        "not applied", name)
            return False

    async def changed(self, change) -> None:
        """Change the set's toggles; wake the waiters only if that turned the set on or off."""
        async with self._condition:
            before = self.is_on()
            change()
            if self.is_on() != before:
                self._condition.notify_all()

    async def make_toggle(self, __val: bool = False, *, name: str | None = None):
        toggle = aiotoggles.Toggle(__val, name=name, condition=self._condition)
        await changed(self, lambda: self._toggles.add(toggle))
        return toggle

    async def drop_toggle(self, toggle) -> None:
        await changed(self, lambda: self._toggles.discard(toggle))

    async def drop_toggles(self, toggles) -> None:
        await changed(self, lambda: self._toggles.difference_update(toggles))

    cls.make_toggle = make_toggle
    cls.drop_toggle = drop_toggle
    cls.drop_toggles = drop_toggles
    cls._slam_fixed = True
    return True
