"""The USD-M universe: perpetuals from exchangeInfo, filtered, with delisted members kept as retired."""

import datetime as dt
import json

import pytest

from coin_platform.core.universe import Member, Universe, UniverseFileError, read_universe, write_universe
from coin_platform.market.universe import (
    DELISTED,
    Listing,
    MalformedExchangeInfoError,
    UniverseChange,
    UniverseFilter,
    perpetual_listings,
    refreshed_universe,
)
from coin_platform_tests.shared_data import load_json

NOW = dt.datetime(2026, 6, 1, 0, 20, tzinfo=dt.UTC)
OLD = dt.date(2020, 1, 1)
USDT_30_DAYS = UniverseFilter(frozenset({"USDT"}), 30, frozenset())
NO_CHANGE = UniverseChange((), (), ())


def _member(universe: Universe, symbol: str) -> Member:
    (member,) = [m for m in universe.members if m.symbol == symbol]
    return member


def _entry(symbol: str, *, status="TRADING", quote="USDT", contract="PERPETUAL", onboard=OLD) -> dict:
    onboard_ms = int(dt.datetime.combine(onboard, dt.time(), dt.UTC).timestamp() * 1000)
    return {
        "symbol": symbol,
        "status": status,
        "quoteAsset": quote,
        "contractType": contract,
        "onboardDate": onboard_ms,
    }


def test_the_recorded_exchange_info_gives_its_two_perpetuals_and_leaves_the_quarterly_contract_out():
    info = load_json("binance/api_samples/nautilus_trader/http_futures_market_exchange_info.json")
    listings = perpetual_listings(info)
    assert [(x.symbol, x.quote_asset, x.status, x.onboard_date) for x in listings] == [
        ("BTCUSDT", "USDT", "TRADING", dt.date(2019, 9, 25)),
        ("ETHUSDT", "USDT", "TRADING", dt.date(2019, 9, 25)),
    ]


@pytest.mark.parametrize(
    ("info", "message"),
    [
        ({}, "no symbols list"),
        ({"symbols": ["BTCUSDT"]}, r"symbols\[0\] is not an object"),
        ({"symbols": [{"contractType": "PERPETUAL", "symbol": "BTCUSDT"}]}, r"symbols\[0\] has no quoteAsset"),
        ({"symbols": [_entry("btc-usdt")]}, "'btc-usdt' is not a symbol"),
        ({"symbols": [{**_entry("BTCUSDT"), "onboardDate": "2019"}]}, "onboardDate '2019' is not epoch ms"),
    ],
)
def test_a_malformed_exchange_info_names_the_entry_and_field(info, message):
    with pytest.raises(MalformedExchangeInfoError, match=message):
        perpetual_listings(info)


def test_the_filter_admits_trading_perpetuals_of_the_quote_asset_listed_long_enough_and_not_excluded():
    info = {
        "symbols": [
            _entry("BTCUSDT"),
            _entry("ETHUSDC", quote="USDC"),
            _entry("NEWUSDT", onboard=NOW.date() - dt.timedelta(days=29)),
            _entry("AGEDUSDT", onboard=NOW.date() - dt.timedelta(days=30)),
            _entry("HALTUSDT", status="SETTLING"),
            _entry("SKIPUSDT"),
        ]
    }
    rules = UniverseFilter(frozenset({"USDT"}), 30, frozenset({"SKIPUSDT"}))
    universe, change = refreshed_universe(None, perpetual_listings(info), rules, NOW)
    assert universe.live == ("AGEDUSDT", "BTCUSDT")
    assert universe.retired == ()
    assert change.added == ("AGEDUSDT", "BTCUSDT")


def test_a_member_that_leaves_the_market_or_settles_is_retired_and_kept_and_one_back_trading_is_live_again():
    first, _ = refreshed_universe(
        None, perpetual_listings({"symbols": [_entry(s) for s in ("AUSDT", "BUSDT", "CUSDT")]}), USDT_30_DAYS, NOW
    )
    later = NOW + dt.timedelta(days=3)
    second, change = refreshed_universe(
        first,
        perpetual_listings({"symbols": [_entry("AUSDT"), _entry("BUSDT", status="SETTLING")]}),
        USDT_30_DAYS,
        later,
    )
    assert (second.live, second.retired) == (("AUSDT",), ("BUSDT", "CUSDT"))
    assert (change.added, change.retired, change.returned) == ((), ("BUSDT", "CUSDT"), ())
    assert _member(second, "CUSDT") == Member("CUSDT", "USDT", OLD, DELISTED, later.date())
    assert _member(second, "BUSDT").status == "SETTLING"

    # Still gone a day later: retired on the day it left, not again.
    third, change = refreshed_universe(
        second, perpetual_listings({"symbols": [_entry("AUSDT")]}), USDT_30_DAYS, later + dt.timedelta(days=1)
    )
    assert _member(third, "CUSDT").retired_on == later.date() and change == NO_CHANGE

    back, change = refreshed_universe(
        third,
        perpetual_listings({"symbols": [_entry("AUSDT"), _entry("CUSDT")]}),
        USDT_30_DAYS,
        later + dt.timedelta(days=2),
    )
    assert back.live == ("AUSDT", "CUSDT") and change.returned == ("CUSDT",)
    assert _member(back, "CUSDT").status == "TRADING"


def test_a_member_the_filter_now_excludes_is_retired_not_forgotten():
    first, _ = refreshed_universe(None, [Listing("AUSDT", "USDT", "TRADING", OLD)], USDT_30_DAYS, NOW)
    excluding = UniverseFilter(frozenset({"USDT"}), 30, frozenset({"AUSDT"}))
    second, change = refreshed_universe(first, [Listing("AUSDT", "USDT", "TRADING", OLD)], excluding, NOW)
    assert second.retired == ("AUSDT",) and change.retired == ("AUSDT",)


def test_the_snapshot_round_trips_and_a_rewrite_replaces_it_whole(tmp_path):
    path = tmp_path / "universe" / "usdm_perpetuals.json"
    assert read_universe(path) is None
    universe = Universe((Member("AUSDT", "USDT", OLD, "TRADING"), Member("BUSDT", "USDT", OLD, DELISTED, NOW.date())))
    write_universe(path, universe)
    assert read_universe(path) == universe
    write_universe(path, Universe(universe.members[:1]))
    assert read_universe(path).live == ("AUSDT",)
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no partial file left behind


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{", "cannot be read"),
        ('{"format": 99, "members": []}', "not a universe snapshot of format 1"),
        ('{"format": 1, "members": {}}', "members is not a list"),
        (
            '{"format": 1, "refreshed_at": "2026-06-01T00:00:00+00:00", "members": [{"symbol": "AUSDT"}]}',
            r"members\[0\] has no 'quote_asset'",
        ),
        (
            '{"format": 1, "members": [{"symbol": "AUSDT", "quote_asset": "USDT", "status": "TRADING", '
            '"onboard_date": "2020-02-30"}]}',
            r"members\[0\]: day is out of range",
        ),
    ],
)
def test_a_damaged_snapshot_names_the_field(tmp_path, text, message):
    path = tmp_path / "usdm_perpetuals.json"
    path.write_text(text)
    with pytest.raises(UniverseFileError, match=message):
        read_universe(path)


def test_a_snapshot_listing_a_symbol_twice_is_refused(tmp_path):
    member = {"symbol": "AUSDT", "quote_asset": "USDT", "onboard_date": "2020-01-01", "status": "TRADING"}
    path = tmp_path / "usdm_perpetuals.json"
    path.write_text(json.dumps({"format": 1, "members": [member, member]}))
    with pytest.raises(UniverseFileError, match=r"\['AUSDT'\] are listed twice"):
        read_universe(path)
