"""Where the serving processes keep their metrics. prometheus-client's multiprocess mode has each
process write its counters to files in PROMETHEUS_MULTIPROC_DIR, and /metrics, answered by any
one worker, sums them all. The library reads the variable when it is first imported, so it is
set here, before anything imports it, and inherited by every worker Sanic spawns."""

from __future__ import annotations

import os
import shutil

from alphabet.settings import Settings

VARIABLE = "PROMETHEUS_MULTIPROC_DIR"


def prepare(settings: Settings) -> None:
    """Start from an empty directory: files left by an earlier run would be summed into this
    one's counters (and a dead process's gauges would count forever)."""
    directory = settings.data_dir / "metrics"
    shutil.rmtree(directory, ignore_errors=True)
    directory.mkdir(parents=True)
    os.environ[VARIABLE] = str(directory.resolve())
