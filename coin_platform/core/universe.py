"""The symbol universe snapshot: which USD-M perpetuals are collected live and which are only kept.

config.yaml's `symbols: all` resolves against this file (settings.py reads it; market/universe.py
computes it from exchangeInfo; `coin universe refresh` and the `usdm_universe` asset write it; the
settings validate its symbols as they do listed ones). A
member that leaves the market, or no longer passes the configured filter, stays as retired: its
partitions and history remain, its live schedules stop.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from dataclasses import dataclass
from pathlib import Path

UNIVERSE_FORMAT = 1


class UniverseFileError(ValueError):
    """The snapshot file exists but is not one this code wrote; the message names the file and the field."""


@dataclass(frozen=True)
class Member:
    """One symbol the platform has collected: live, or retired on a day (left the market or the filter)."""

    symbol: str
    quote_asset: str
    onboard_date: dt.date
    status: str  # exchangeInfo's status at the last refresh; DELISTED once exchangeInfo no longer lists it
    retired_on: dt.date | None = None

    @property
    def live(self) -> bool:
        return self.retired_on is None


@dataclass(frozen=True)
class Universe:
    members: tuple[Member, ...]

    @property
    def live(self) -> tuple[str, ...]:
        """Live symbols, sorted: the symbol partitions' first block, so a range over them is one rectangle."""
        return tuple(sorted(m.symbol for m in self.members if m.live))

    @property
    def retired(self) -> tuple[str, ...]:
        return tuple(sorted(m.symbol for m in self.members if not m.live))


def _member_to_json(member: Member) -> dict[str, object]:
    return {
        "symbol": member.symbol,
        "quote_asset": member.quote_asset,
        "onboard_date": member.onboard_date.isoformat(),
        "status": member.status,
        "retired_on": member.retired_on.isoformat() if member.retired_on else None,
    }


def _member_from_json(path: Path, index: int, item: object) -> Member:
    where = f"{path.name}: members[{index}]"
    if not isinstance(item, dict):
        raise UniverseFileError(f"{where} is not an object")
    try:
        symbol, quote, status = str(item["symbol"]), str(item["quote_asset"]), str(item["status"])
        onboard = dt.date.fromisoformat(str(item["onboard_date"]))
        retired = item.get("retired_on")
        retired_on = dt.date.fromisoformat(str(retired)) if retired is not None else None
    except KeyError as exc:
        raise UniverseFileError(f"{where} has no {exc.args[0]!r}") from None
    except ValueError as exc:
        raise UniverseFileError(f"{where}: {exc}") from None
    return Member(symbol, quote, onboard, status, retired_on)


def read_universe(path: Path) -> Universe | None:
    """The snapshot at `path`, or None when it has not been written yet."""
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise UniverseFileError(f"universe snapshot {path.name} cannot be read: {exc}") from None
    if not isinstance(raw, dict) or raw.get("format") != UNIVERSE_FORMAT:
        raise UniverseFileError(f"{path.name} is not a universe snapshot of format {UNIVERSE_FORMAT}")
    items = raw.get("members")
    if not isinstance(items, list):
        raise UniverseFileError(f"{path.name}: members is not a list")
    members = tuple(_member_from_json(path, i, item) for i, item in enumerate(items))
    symbols = [m.symbol for m in members]
    if twice := sorted({s for s in symbols if symbols.count(s) > 1}):
        raise UniverseFileError(f"{path.name}: {twice} are listed twice")
    return Universe(members)


def write_universe(path: Path, universe: Universe) -> None:
    """Replace the snapshot atomically: a reader sees the old file or the new one, never a part."""
    body = {
        "format": UNIVERSE_FORMAT,
        "members": [_member_to_json(m) for m in sorted(universe.members, key=lambda m: m.symbol)],
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.{os.getpid()}.partial")
    partial.write_text(json.dumps(body, indent=1) + "\n", encoding="utf-8")
    os.replace(partial, path)
