"""A fix to kopf's start-up gate, applied by the operator's start-up handler (before kopf lists
anything).

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
are, to the character, the ones it was written for (kopf 1.45; pyproject.toml bounds kopf to
that minor version): if a kopf release changes them, the fix is skipped with a warning (kopf
then behaves as it ships) and tests/operator/test_kopffix.py fails, so an upgrade of kopf is a
decision, not an accident.

The change, as it would be proposed upstream (nolar/kopf, `kopf/_cogs/aiokits/aiotoggles.py`):

    ToggleSet.make_toggle/drop_toggle/drop_toggles: notify the condition's waiters only when
    the set's overall state (`is_on()`) changes. Waiters wait for a state (`wait_for`); a
    change of membership that leaves the state as it was cannot release any of them. With N
    objects listed at start-up the current `notify_all` per change costs O(N^2) wake-ups.
    Toggle.turn_to keeps notifying on every flip.

Drop this module when kopf ships that (the test then fails on the changed sources: remove the
fix and the test's source check together).
"""

from __future__ import annotations

import hashlib
import inspect
import logging

log = logging.getLogger(__name__)

# sha256 (first 16 hex digits) of the source of each ToggleSet method the fix relies on or
# replaces, as in kopf 1.45.2.
WRITTEN_FOR = {
    "__init__": "e359f1392c56d4ce",
    "make_toggle": "354b83ba5188615f",
    "drop_toggle": "434b23b721ea2e78",
    "drop_toggles": "497f86cc1160dd77",
}


def fingerprint(method: object) -> str:
    return hashlib.sha256(inspect.getsource(method).encode()).hexdigest()[:16]


def mismatches(cls: type) -> list[str]:
    """The methods of `cls` (kopf's ToggleSet) that are not the ones the fix was written for."""
    out = []
    replaced = getattr(cls, "_slam_replaced", {})  # once fixed: the methods kopf shipped
    own = vars(cls)
    for name, expected in WRITTEN_FOR.items():
        mine = name in own and not own.get("_slam_fixed", False)
        try:
            found = fingerprint(own[name] if mine else replaced.get(name) or getattr(cls, name))
        except (AttributeError, OSError, TypeError):
            found = None
        if found != expected:
            out.append(name)
    return out


def apply() -> bool:
    """Patch kopf's ToggleSet to notify its waiters only when its state changes; whether it did
    (False: this kopf is not the shape the fix was written for; nothing is changed)."""
    try:
        from kopf._cogs.aiokits import aiotoggles
    except ImportError:
        log.warning("kopf's start-up gate is not where this fix expects it; not applied")
        return False
    cls = aiotoggles.ToggleSet
    if vars(cls).get("_slam_fixed", False):
        return True
    changed_methods = mismatches(cls)
    if changed_methods:
        log.warning("kopf's ToggleSet.%s is not the one this fix was written for (kopf 1.45); "
                    "not applied", ", ".join(changed_methods))
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

    cls._slam_replaced = {name: vars(cls)[name] for name in
                          ("make_toggle", "drop_toggle", "drop_toggles")}
    cls.make_toggle = make_toggle
    cls.drop_toggle = drop_toggle
    cls.drop_toggles = drop_toggles
    cls._slam_fixed = True
    return True
