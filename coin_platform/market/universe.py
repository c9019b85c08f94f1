"""The USD-M perpetual universe from exchangeInfo: which symbols config.yaml's `symbols: all` collects.

A symbol joins when it is a TRADING perpetual that passes the filter (quote asset, minimum age since
listing, not excluded). A member that stops passing (delisted, settling, filtered out) is retired,
never dropped: its partitions and history stay, only its live collection stops. One that passes
again is live again.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from coin_platform.core.symbols import is_binance_symbol
from coin_platform.core.universe import Member, Universe

PERPETUAL = "PERPETUAL"
TRADING = "TRADING"
DELISTED = "DELISTED"  # our status for a member exchangeInfo no longer lists


class MalformedExchangeInfoError(ValueError):
    """exchangeInfo's symbol list is not what Binance documents; the message names the entry and field."""


@dataclass(frozen=True)
class Listing:
    """One perpetual contract as exchangeInfo lists it."""

    symbol: str
    quote_asset: str
    status: str
    onboard_date: dt.date


@dataclass(frozen=True)
class UniverseFilter:
    quote_assets: frozenset[str]
    min_age_days: int
    exclude: frozenset[str]

    def admits(self, listing: Listing, today: dt.date) -> bool:
        return (
            listing.status == TRADING
            and listing.quote_asset in self.quote_assets
            and listing.onboard_date <= today - dt.timedelta(days=self.min_age_days)
            and listing.symbol not in self.exclude
        )


@dataclass(frozen=True)
class UniverseChange:
    added: tuple[str, ...]
    retired: tuple[str, ...]
    returned: tuple[str, ...]


def perpetual_listings(info: Mapping[str, Any]) -> list[Listing]:
    """The perpetual contracts of an exchangeInfo answer (quarterly contracts are left out)."""
    symbols = info.get("symbols")
    if not isinstance(symbols, list):
        raise MalformedExchangeInfoError("exchangeInfo has no symbols list")
    listings = []
    for index, entry in enumerate(symbols):
        if not isinstance(entry, dict):
            raise MalformedExchangeInfoError(f"exchangeInfo symbols[{index}] is not an object")
        if entry.get("contractType") != PERPETUAL:
            continue
        try:
            symbol, quote, status, onboard_ms = (
                entry["symbol"],
                entry["quoteAsset"],
                entry["status"],
                entry["onboardDate"],
            )
        except KeyError as exc:
            raise MalformedExchangeInfoError(f"exchangeInfo symbols[{index}] has no {exc.args[0]}") from None
        if not (isinstance(symbol, str) and is_binance_symbol(symbol)):
            raise MalformedExchangeInfoError(f"exchangeInfo symbols[{index}]: {symbol!r} is not a symbol")
        if not (isinstance(onboard_ms, int) and onboard_ms >= 0) or isinstance(onboard_ms, bool):
            raise MalformedExchangeInfoError(f"exchangeInfo {symbol}: onboardDate {onboard_ms!r} is not epoch ms")
        onboard = dt.datetime.fromtimestamp(onboard_ms / 1000, dt.UTC).date()
        listings.append(Listing(symbol, str(quote), str(status), onboard))
    return listings


def refreshed_universe(
    previous: Universe | None, listings: Iterable[Listing], rules: UniverseFilter, now: dt.datetime
) -> tuple[Universe, UniverseChange]:
    """The universe after a look at exchangeInfo: members updated, new admitted, the rest retired."""
    today = now.astimezone(dt.UTC).date()
    listed = {listing.symbol: listing for listing in listings}
    members: dict[str, Member] = {m.symbol: m for m in previous.members} if previous else {}
    added, retired, returned = [], [], []
    for symbol, member in list(members.items()):
        listing = listed.get(symbol)
        admitted = listing is not None and rules.admits(listing, today)
        status = listing.status if listing else DELISTED
        if admitted and not member.live:
            returned.append(symbol)
            members[symbol] = replace(member, status=status, retired_on=None)
        elif not admitted and member.live:
            retired.append(symbol)
            members[symbol] = replace(member, status=status, retired_on=today)
        else:
            members[symbol] = replace(member, status=status)
    for symbol, listing in listed.items():
        if symbol not in members and rules.admits(listing, today):
            added.append(symbol)
            members[symbol] = Member(symbol, listing.quote_asset, listing.onboard_date, listing.status)
    universe = Universe(tuple(sorted(members.values(), key=lambda m: m.symbol)))
    return universe, UniverseChange(tuple(sorted(added)), tuple(sorted(retired)), tuple(sorted(returned)))
