"""Progress of a run: rich bars in a terminal, periodic log lines in a Job's pod log."""

from __future__ import annotations

import logging
import time

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from slam import goodput
from slam.generate import RequestRecord
from slam.runner import Listener

log = logging.getLogger("slam.run")


class Bars(Listener):
    """One bar per target: done/total, failures, elapsed and remaining time."""

    def __init__(self, console: Console):
        self.progress = Progress(
            TextColumn("{task.fields[target]:<14}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("[red]{task.fields[failed]} failed[/red]"),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=console,
            transient=False,
        )
        self.tasks: dict[str, TaskID] = {}
        self.failed: dict[str, int] = {}

    def __enter__(self) -> Bars:
        self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()

    def start(self, target: str, total: int, already: int) -> None:
        self.failed[target] = 0
        self.tasks[target] = self.progress.add_task(
            target, total=total, completed=already, target=target, failed=0
        )

    def task(self, label: str, total: int):
        """A bar for another stage (scoring); returns the per-item callback."""
        task = self.progress.add_task(label, total=total, target=label, failed=0)
        return lambda: self.progress.update(task, advance=1)

    def record(self, record: RequestRecord) -> None:
        if not record.ok:
            self.failed[record.target] += 1
        self.progress.update(self.tasks[record.target], advance=1,
                             failed=self.failed[record.target])

    def capacity(self, target: str, probe: goodput.Probe, slo: goodput.Slo) -> None:
        self.progress.console.print(capacity_line(target, probe, slo), highlight=False,
                                    soft_wrap=True)

    def store_unavailable(self, seconds: float, waiting: int, error: str) -> None:
        self.progress.console.print(
            f"[yellow]warning[/yellow] {unavailable(seconds, waiting, error)}", highlight=False,
            soft_wrap=True)

    def store_available(self, seconds: float, waiting: int) -> None:
        self.progress.console.print(available(seconds, waiting), highlight=False)

    def store_unsaved(self, count: int, error: str) -> None:
        self.progress.console.print(f"[red]error[/red] {unsaved(count, error)}",
                                    highlight=False, soft_wrap=True)


def capacity_line(target: str, probe: goodput.Probe, slo: goodput.Slo) -> str:
    att = "–" if probe.attainment is None else f"{probe.attainment:.0%}"
    return (f"capacity {target}: concurrency {probe.concurrency}, {probe.requests} requests "
            f"({probe.failed} failed) in {probe.seconds:.1f} s, {att} within the SLO, goodput "
            f"{probe.goodput_rps:.2f}/s: {'meets' if probe.passed(slo) else 'misses'} "
            f"{slo.describe()}")


def unavailable(seconds: float, waiting: int, error: str) -> str:
    return (f"the results store is not answering ({seconds:.0f} s; {error}): {waiting} "
            "answer(s) wait in memory and are saved when it is back; generation pauses while "
            "they are at the limit")


def unsaved(count: int, error: str) -> str:
    return (f"{count} answer(s) could not be stored before the run stopped ({error}); the next "
            "run asks for them again")


def available(seconds: float, waiting: int) -> str:
    return f"the results store answers again after {seconds:.0f} s; {waiting} answer(s) waiting"


class LogLines(Listener):
    """A line per target every `every` seconds and at the end: for pod logs and CI."""

    def __init__(self, every: float = 10.0):
        self.every = every
        self.totals: dict[str, int] = {}
        self.done: dict[str, int] = {}
        self.failed: dict[str, int] = {}
        self.last = 0.0

    def start(self, target: str, total: int, already: int) -> None:
        self.totals[target], self.done[target], self.failed[target] = total, already, 0
        log.info("target %s: %d requests, %d already in the store", target, total, already)

    def task(self, label: str, total: int):
        state = {"done": 0, "last": 0.0}
        log.info("%s: %d to do", label, total)

        def tick() -> None:
            state["done"] += 1
            now = time.monotonic()
            if state["done"] == total or now - state["last"] >= self.every:
                state["last"] = now
                log.info("progress %s %d/%d", label, state["done"], total)
        return tick

    def record(self, record: RequestRecord) -> None:
        self.done[record.target] += 1
        self.failed[record.target] += 0 if record.ok else 1
        now = time.monotonic()
        finished = self.done[record.target] == self.totals[record.target]
        if finished or now - self.last >= self.every:
            self.last = now
            for t in self.totals:
                log.info("progress %s %d/%d (%d failed)", t, self.done[t], self.totals[t],
                         self.failed[t])

    def capacity(self, target: str, probe: goodput.Probe, slo: goodput.Slo) -> None:
        log.info("%s", capacity_line(target, probe, slo))

    def store_unavailable(self, seconds: float, waiting: int, error: str) -> None:
        log.warning("%s", unavailable(seconds, waiting, error))

    def store_available(self, seconds: float, waiting: int) -> None:
        log.info("%s", available(seconds, waiting))

    def store_unsaved(self, count: int, error: str) -> None:
        log.error("%s", unsaved(count, error))
