"""`symbols: all`: the universe from the replay exchange's exchangeInfo, its partitions and live schedules,
and a delisted symbol that keeps its partitions while its live collection stops."""

import datetime as dt
from pathlib import Path

import dagster as dg
from click.testing import CliRunner

from coin_platform.core.universe import read_universe
from coin_platform.definitions import build_definitions
from coin_platform.local.cli import main as coin
from coin_platform.local.replay.synthetic import DEFAULT_SYMBOLS
from coin_platform.settings import Settings, load_settings

LISTED_LATER = "ZZZUSDT"  # an extra replay listing, absent from the default server: delisted there


def _environ(tmp_path: Path, replay_url: str, config: str) -> dict[str, str]:
    path = tmp_path / "config.yaml"
    path.write_text(config + "intervals: [1m]\nhistory_start: 2025-01-01\n")
    return {
        "COIN_CONFIG": str(path),
        "COIN_HOME": str(tmp_path / ".coin"),
        "MARKET_SOURCE": "replay",
        "REPLAY_URL": replay_url,
    }


def _refresh(environ: dict[str, str], *args: str) -> str:
    result = CliRunner().invoke(coin, ["universe", "refresh", *args], env=environ, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


def _symbols(defs: dg.Definitions, asset: str) -> list[str]:
    (symbols,) = [d for d in defs.get_assets_def(asset).partitions_def.partitions_defs if d.name == "symbol"]
    return symbols.partitions_def.get_partition_keys()


def _live_range(defs: dg.Definitions) -> tuple[str, str]:
    """The first and last symbol of the live 1m schedule's run (its partition range)."""
    schedule = defs.get_repository_def().get_schedule_def("live_1m_schedule")
    partitions_def = defs.get_assets_def("ohlcv_1m").partitions_def
    with dg.build_schedule_context(scheduled_execution_time=dt.datetime(2026, 6, 1, 12, 1, tzinfo=dt.UTC)) as context:
        (request,) = schedule.evaluate_tick(context).run_requests
    ends = (request.tags[f"dagster/asset_partition_range_{end}"] for end in ("start", "end"))
    first, last = (partitions_def.get_partition_key_from_str(key).keys_by_dimension["symbol"] for key in ends)
    return first, last


def test_symbols_all_collects_every_trading_perpetual_and_a_delisted_one_keeps_its_partitions(tmp_path, start_replay):
    listing = start_replay(symbols=(LISTED_LATER,))
    environ = _environ(tmp_path, listing.url, "symbols: all\nuniverse: {min_age_days: 30}\n")
    output = _refresh(environ)
    everything = tuple(sorted({*DEFAULT_SYMBOLS, LISTED_LATER}))
    assert f"universe: {len(everything)} live, 0 retired perpetuals" in output
    assert "exists" in _refresh(environ, "--if-missing")

    settings: Settings = load_settings(environ)
    assert settings.config.symbols == everything
    defs = build_definitions(settings)
    dg.Definitions.validate_loadable(defs)
    assert _symbols(defs, "ohlcv_1m") == list(everything) == _symbols(defs, "history_1m")
    assert _live_range(defs) == (everything[0], everything[-1])
    assert {"refresh_universe"} <= {j.name for j in defs.get_repository_def().get_all_jobs()}

    # The market moves on: the next refresh (the asset's daily run) finds the extra listing gone.
    delisted = start_replay()
    environ["REPLAY_URL"] = delisted.url
    result = defs.resolve_job_def("refresh_universe").execute_in_process(
        instance=dg.DagsterInstance.ephemeral(),
        resources={"binance": _binance(load_settings(environ))},
    )
    metadata = result.asset_materializations_for_node("usdm_universe")[0].metadata
    assert metadata["retired"].value == [LISTED_LATER]
    assert metadata["reload_needed"].value is True
    assert metadata["live_symbols"].value == len(DEFAULT_SYMBOLS)
    (delisted,) = [m for m in read_universe(settings.universe_path).members if m.symbol == LISTED_LATER]
    assert (delisted.status, delisted.retired_on) == ("DELISTED", dt.datetime.now(dt.UTC).date())

    reloaded = build_definitions(load_settings(environ))
    live = tuple(sorted(DEFAULT_SYMBOLS))
    assert _symbols(reloaded, "ohlcv_1m") == [*live, LISTED_LATER]  # history kept
    assert _live_range(reloaded) == (live[0], live[-1])  # the live block ends before it


def _binance(settings: Settings):
    from coin_platform.defs.resources import BinanceResource

    return BinanceResource(base_url=settings.market_base_url, source=settings.market_source)


def test_listed_symbols_define_no_universe_asset_and_the_refresh_says_so(tmp_path, replay_server):
    environ = _environ(tmp_path, replay_server.url, "symbols: [BTCUSDT]\n")
    assert "symbols are listed in config.yaml" in _refresh(environ)
    assert not (tmp_path / ".coin" / "universe").exists()
    defs = build_definitions(load_settings(environ))
    assert "refresh_universe" not in {j.name for j in defs.get_repository_def().get_all_jobs()}


def test_a_refresh_that_cannot_reach_the_exchange_fails_clearly_and_keeps_the_last_snapshot(tmp_path, start_replay):
    listing = start_replay()
    environ = _environ(tmp_path, listing.url, "symbols: all\n")
    _refresh(environ)
    before = (tmp_path / ".coin" / "universe" / "usdm_perpetuals.json").read_bytes()
    listing.stop()
    result = CliRunner().invoke(coin, ["universe", "refresh"], env=environ)
    assert result.exit_code == 1
    assert "Error: universe refresh: /fapi/v1/exchangeInfo failed" in result.output and "Traceback" not in result.output
    assert (tmp_path / ".coin" / "universe" / "usdm_perpetuals.json").read_bytes() == before


def test_a_new_deployment_with_symbols_all_writes_its_first_snapshot_when_the_code_location_loads(
    tmp_path, replay_server
):
    """Compose, Helm and `dagster dev` load coin_platform.definitions and nothing else first."""
    import os
    import subprocess
    import sys

    environ = _environ(tmp_path, replay_server.url, "symbols: all\n")
    loaded = subprocess.run(
        [
            sys.executable,
            "-c",
            "from coin_platform.definitions import defs; "
            "print(len(defs.get_assets_def('ohlcv_1m').partitions_def.partitions_defs[1].partitions_def.get_partition_keys()))",
        ],
        env={**os.environ, **environ},
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert loaded.returncode == 0, loaded.stderr[-2000:]
    assert loaded.stdout.split()[-1] == str(len(DEFAULT_SYMBOLS))
    assert read_universe(load_settings(environ).universe_path).live == tuple(sorted(DEFAULT_SYMBOLS))
