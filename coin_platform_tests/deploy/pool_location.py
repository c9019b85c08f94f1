"""A code location for the run monitoring test: two jobs whose one step each needs the `clickhouse` pool.

`hold_the_slot` touches HOLDING_MARKER once its step holds the slot, then works until its process is
killed; `wait_for_the_slot` is the next ClickHouse run, queued behind it.
"""

import os
import time
from pathlib import Path

import dagster as dg

# The code location's CLICKHOUSE_POOL (the test checks they agree); not imported, so the server starts in seconds.
POOL = "clickhouse"


@dg.op(pool=POOL)
def hold_the_slot_step() -> None:
    Path(os.environ["HOLDING_MARKER"]).touch()
    while True:
        time.sleep(1)


@dg.op(pool=POOL)
def wait_for_the_slot_step() -> None:
    """Done as soon as it gets the slot."""


@dg.job
def hold_the_slot():
    hold_the_slot_step()


@dg.job
def wait_for_the_slot():
    wait_for_the_slot_step()


defs = dg.Definitions(jobs=[hold_the_slot, wait_for_the_slot])
