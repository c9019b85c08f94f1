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
