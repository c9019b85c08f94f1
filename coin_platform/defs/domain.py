"""What a domain's builder hands back: its Definitions, and per interval what other domains build on."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Generic, TypeVar

import dagster as dg

T = TypeVar("T")


@dataclass(frozen=True)
class Domain(Generic[T]):
    """One domain of the code location: `defs` to merge, `by_interval` for the domains downstream."""

    defs: dg.Definitions
    by_interval: dict[str, T]


# The steps from a closed candle to its published candidate (fetch and clean, features, candidates): an ingest
# run executes its steps one at a time, and among the steps ready to run the higher priority goes first, so
# the hot-store load and the checks (which nothing on the way to an order waits for) run after the candidates
# are out instead of before them.
CANDLE_TO_CANDIDATE_OP_TAGS = {"dagster/priority": "10"}
# The runs on the way from a candle close to its order (the live ingest run, the trade run): the run queue
# hands them out before backfills, hot-store loads and reports that were queued earlier.
LIVE_PATH_RUN_TAGS = {"dagster/priority": "10"}
