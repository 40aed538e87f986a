"""Where the CPU went during a measurement, per request: the product's processes (every
instance's whole tree), the PostgreSQL backends serving its database, wrk, and the rest of the
machine (other work sharing the cores). Read from /proc before and after a run; on two cores
shared by all of them, this says what a figure is limited by."""

from __future__ import annotations

import os
from dataclasses import dataclass
from urllib.parse import urlsplit

from bench.server import cpu_seconds, descendants, machine_cpu_seconds, processes


@dataclass(frozen=True)
class Reading:
    product: float
    postgres: float
    children: float  # processes we waited for (wrk), as the kernel adds them to us
    machine: float


class CpuMeter:
    def __init__(self, roots: list[int], event_store: str | None) -> None:
        self.roots = roots
        # A backend's command line is "postgres: user database host(port) state".
        self.database = urlsplit(event_store).path.lstrip("/") if event_store else None

    def read(self) -> Reading:
        running = processes()
        product = sum(cpu_seconds(pid) for root in self.roots
                      for pid in descendants(root, running))
        postgres = 0.0
        if self.database:
            postgres = sum(cpu_seconds(pid) for pid, (_, command) in running.items()
                           if command.startswith("postgres: ")
                           and f" {self.database} " in command)
        mine = os.times()
        return Reading(product, postgres, mine.children_user + mine.children_system,
                       machine_cpu_seconds())


def per_request(before: Reading, after: Reading, requests: int) -> dict[str, float]:
    """Microseconds of CPU per answered request, by whom."""
    if not requests:
        return {}
    spent = {
        "product": after.product - before.product,
        "postgres": after.postgres - before.postgres,
        "wrk": after.children - before.children,
    }
    spent["other"] = max(0.0, after.machine - before.machine - sum(spent.values()))
    return {name: round(seconds / requests * 1e6, 1) for name, seconds in spent.items()}
