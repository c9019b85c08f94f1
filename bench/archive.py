"""Bulk-history benchmark: years of 1m candles from Binance's public archive into the yearly history objects.

The history asset builds each year × symbol from the archive's monthly zips: download, checksum,
parse, the REST path's cleaning, then one parquet object per year (pipeline.compaction.compact_year).
Here the archive is the replay exchange's copy (the same paths, zips and CHECKSUM files), served
from memory on loopback after one untimed pass that builds every file, as data.binance.vision
serves static files; the object store is SeaweedFS (S3) started on free loopback ports as
`coin stack up` starts it.

The reference is the REST path's ceiling, from Binance's own numbers: 2,400 request weight a
minute, and a 1,500-candle klines page weighs 10, so 6,000 candles a second from one IP, before any
processing. The goal is 100,000 candles a second on these 2 cores, so the 790 M candles of
300 symbols × 5 years take under 3 hours here.

Reported: `build` (first build of every year × symbol: everything downloaded), `rebuild` (the same
again: every file's checksum unchanged, so its rows are kept; what the daily schedule pays), and
the pieces of one year × symbol timed apart (download and verify, parse, clean, encode and write).

    python bench/archive.py                       # 3 symbols × 2 years of 1m (~3 M candles, ~1 minute)
    python bench/archive.py --symbols 1 --years 1 --json-out result.json
"""

from __future__ import annotations

import argparse
import datetime as dt
import tempfile
import time
from pathlib import Path

import polars as pl
from report import emit  # bench/report.py, beside this script

from coin_platform.binance.weights import WeightLimiter
from coin_platform.local import stack
from coin_platform.local.replay import ReplayServer
from coin_platform.local.replay.public_archive import archive_zip
from coin_platform.local.replay.synthetic import DEFAULT_SYMBOLS, MAX_LIMIT
from coin_platform.market.klines import clean_klines, kline_request_weight
from coin_platform.market.public_archive import PublicArchiveClient, plan_archive_files, read_download
from coin_platform.pipeline.compaction import compact_year
from coin_platform.storage.archive import day_versions, to_history, write_archive
from coin_platform.storage.object_store import ObjectStore

INTERVAL = "1m"
BUCKET = "coin-bench-archive"
GOAL_CANDLES_PER_S = 100_000
UNIVERSE_CANDLES = 790_000_000  # 300 symbols × 5 years of 1m
WEIGHT_LIMIT = WeightLimiter().limit  # Binance's published limit, which the client starts from


def rest_ceiling_candles_per_s() -> float:
    """Candles a second through REST at Binance's weight limit, full pages."""
    return WEIGHT_LIMIT / 60 / kline_request_weight(MAX_LIMIT) * MAX_LIMIT


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--symbols", type=int, default=3, help="replay symbols (default 3)")
    parser.add_argument("--years", type=int, default=2, help="closed years ending last year (default 2)")
    parser.add_argument("--json-out", type=Path, help="also write the JSON here")
    return parser.parse_args(argv)


def pieces(store: ObjectStore, client: PublicArchiveClient, symbol: str, year: int) -> dict[str, float]:
    """One year × symbol, each step of compact_year's archive path timed on its own."""
    first, last = dt.date(year, 1, 1), dt.date(year, 12, 31)
    files = plan_archive_files(symbol, INTERVAL, first, last, today=dt.datetime.now(dt.UTC).date())
    started = time.perf_counter()
    downloads = [client.fetch(file) for file in files]
    fetched = time.perf_counter()
    raw = pl.concat([read_download(d) for d in downloads if d is not None])
    parsed = time.perf_counter()
    cleaned = clean_klines(raw, INTERVAL, now=dt.datetime.now(dt.UTC)).frame
    cleaned_at = time.perf_counter()
    write_archive(
        store,
        INTERVAL,
        f"PIECES{symbol}",
        year,
        to_history(cleaned, symbol, INTERVAL),
        last,
        day_versions(cleaned, first, last),
    )
    written = time.perf_counter()
    return {
        "candles": cleaned.height,
        "download_and_verify_s": round(fetched - started, 3),
        "parse_s": round(parsed - fetched, 3),
        "clean_s": round(cleaned_at - parsed, 3),
        "encode_and_write_s": round(written - cleaned_at, 3),
    }


def build_all(store: ObjectStore, client: PublicArchiveClient, symbols: list[str], years: list[int]) -> dict:
    started = time.perf_counter()
    candles = files = downloaded = 0
    for symbol in symbols:
        for year in years:
            done = compact_year(store, INTERVAL, symbol, year, through=dt.date(year, 12, 31), public_archive=client)
            candles += done.rows
            files += done.files_downloaded + done.files_reused
            downloaded += done.bytes_downloaded
    seconds = time.perf_counter() - started
    return {
        "candles": candles,
        "archive_files": files,
        "megabytes_downloaded": round(downloaded / 1e6, 1),
        "seconds": round(seconds, 2),
        "candles_per_s": round(candles / seconds),
    }


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    symbols = list(DEFAULT_SYMBOLS[: args.symbols])
    last_year = dt.datetime.now(dt.UTC).year - 1
    years = list(range(last_year - args.years + 1, last_year + 1))
    with tempfile.TemporaryDirectory(prefix="coin-bench-archive-") as temporary, ReplayServer() as replay:
        workdir = Path(temporary)
        for symbol in symbols:  # the archive's files exist before anyone downloads them
            for year in years:
                for file in plan_archive_files(
                    symbol, INTERVAL, dt.date(year, 1, 1), dt.date(year, 12, 31), today=dt.datetime.now(dt.UTC).date()
                ):
                    archive_zip(file)
        with stack.throwaway_seaweedfs(workdir, (BUCKET,)) as s3, PublicArchiveClient(replay.url) as client:
            store = s3.object_store(BUCKET)
            split = pieces(store, client, symbols[0], years[-1])
            build = build_all(store, client, symbols, years)
            rebuild = build_all(store, client, symbols, years)
    ceiling = rest_ceiling_candles_per_s()
    return emit(
        {
            "bench": "archive",
            "reference": f"REST at Binance's weight ceiling: {WEIGHT_LIMIT} weight/min, "
            f"{MAX_LIMIT}-candle pages of weight {kline_request_weight(MAX_LIMIT)}",
            "params": {"symbols": symbols, "years": years, "interval": INTERVAL},
            "rest_ceiling_candles_per_s": round(ceiling),
            "goal_candles_per_s": GOAL_CANDLES_PER_S,
            "build": build,
            "rebuild": rebuild,
            "pieces_one_year": split,
            "speedup_over_rest_ceiling": round(build["candles_per_s"] / ceiling, 1),
            "universe_hours_here": round(UNIVERSE_CANDLES / build["candles_per_s"] / 3600, 2),
            "universe_hours_rest_ceiling": round(UNIVERSE_CANDLES / ceiling / 3600, 1),
            "goal_met": build["candles_per_s"] >= GOAL_CANDLES_PER_S,
        },
        args.json_out,
    )


if __name__ == "__main__":
    raise SystemExit(main())
