"""kopf's start-up gate with the operator's fix (kopffix.py): every object's worker waits until
every listed object is indexed, and is woken when that happens, not once per object listed (a
restarted operator with 2,000 ModelDeployments spent minutes in those wake-ups)."""

from __future__ import annotations

import asyncio
from importlib.metadata import version

from kopf._cogs.aiokits import aiotoggles
from kopf._cogs.aiokits.aiotoggles import ToggleSet

from slam_operator import kopffix


def test_the_fix_applies_to_the_installed_kopf() -> None:
    """Fails when a kopf upgrade changed what the fix replaces (the fix would then be skipped
    silently at start-up): re-check the fix against the new kopf, or drop it if kopf has it."""
    assert kopffix.mismatches(ToggleSet) == [], version("kopf")
    assert kopffix.apply() is True
    assert ToggleSet._slam_fixed


def test_a_changed_kopf_is_left_as_it_ships(monkeypatch) -> None:
    """A ToggleSet whose methods differ from those the fix was written for is not patched."""
    class Changed(ToggleSet):
        async def make_toggle(self, __val: bool = False, *, name: str | None = None):
            return await super().make_toggle(__val, name=name)

    ours = vars(Changed)["make_toggle"]
    monkeypatch.setattr(aiotoggles, "ToggleSet", Changed)
    assert kopffix.mismatches(Changed) == ["make_toggle"]
    assert kopffix.apply() is False
    assert vars(Changed)["make_toggle"] is ours
    assert "_slam_fixed" not in vars(Changed)


kopffix.apply()  # as the operator's start-up does, for the behaviour tests below


def startup(objects: int) -> tuple[int, list[str]]:
    """kopf's start-up, as its watchers and workers drive the gate: one toggle per listed object,
    dropped once the object is indexed, after which its worker waits for the whole set.
    (Times a waiter re-checked the gate, the order things happened in.)"""
    async def main():
        gate = ToggleSet(all)
        checks = 0
        is_on = gate.is_on

        def counted() -> bool:
            nonlocal checks
            checks += 1
            return is_on()

        gate.is_on = counted
        blocker = await gate.make_toggle(name="orchestration blocker")
        order: list[str] = []

        async def worker(i: int, toggle) -> None:
            await gate.drop_toggle(toggle)
            await gate.wait_for(True)
            order.append(f"handled {i}")

        workers = []
        for i in range(objects):
            toggle = await gate.make_toggle(name=f"object {i}")
            workers.append(asyncio.create_task(worker(i, toggle)))
            await asyncio.sleep(0)
        for _ in range(5):
            await asyncio.sleep(0)
        order.append("all listed")
        await gate.drop_toggle(blocker)
        await asyncio.wait_for(asyncio.gather(*workers), 30)
        return checks, order

    return asyncio.run(main())


def test_no_object_is_handled_before_every_object_is_indexed_and_then_all_are() -> None:
    _, order = startup(50)
    assert order[0] == "all listed"
    assert sorted(order[1:]) == sorted(f"handled {i}" for i in range(50))


def test_waiting_workers_are_woken_once_not_once_per_object_listed() -> None:
    objects = 400
    checks, _ = startup(objects)
    # Each object's worker checks the gate when it starts waiting and when it is woken; the gate
    # itself checks before and after each change. Waking every waiter on every change (kopf as
    # it ships) made about objects**2 = 160,000 checks here.
    assert checks <= 10 * objects, checks


def test_a_gate_that_stays_off_still_wakes_a_waiter_when_a_toggle_turns_on() -> None:
    async def main():
        paused = ToggleSet(any)
        a = await paused.make_toggle(name="peer a")
        await paused.make_toggle(name="peer b")
        woken = asyncio.create_task(paused.wait_for(True))
        await asyncio.sleep(0)
        assert not woken.done()
        await a.turn_to(True)
        await asyncio.wait_for(woken, 5)
        resumed = asyncio.create_task(paused.wait_for(False))
        await paused.drop_toggle(a)
        await asyncio.wait_for(resumed, 5)

    asyncio.run(main())
