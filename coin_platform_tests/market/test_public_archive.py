"""Binance's public kline archive: the files a range needs, verified downloads, and the CSV parser,
against the real data.binance.vision CSVs in shared/data and the replay server's copy of the archive."""

import datetime as dt
import hashlib
import io
import zipfile

import polars as pl
import pytest
import requests

from coin_platform.binance.http import RetryPolicy
from coin_platform.local.replay import ReplayServer
from coin_platform.local.replay.public_archive import CSV_HEADER
from coin_platform.market.klines import RAW_KLINE_SCHEMA, parse_kline_rows
from coin_platform.market.public_archive import (
    ArchiveFile,
    ArchiveUnavailableError,
    ChecksumMismatchError,
    MalformedArchiveError,
    PublicArchiveClient,
    parse_archive_csv,
    parse_archive_file_name,
    parse_checksum,
    plan_archive_files,
    read_archive_zip,
    read_download,
)
from coin_platform_tests.shared_data import shared_file

REAL_CSV = "binance/nautilus/ADABTC-1m-2021-11-27.csv"
MARCH = ArchiveFile("BTCUSDT", "1h", "monthly", dt.date(2024, 3, 1))


def _zip(members: dict[str, bytes]) -> bytes:
    sink = io.BytesIO()
    with zipfile.ZipFile(sink, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return sink.getvalue()


def _as_microseconds(csv: bytes) -> bytes:
    lines = []
    for line in csv.decode().splitlines():
        fields = line.split(",")
        fields[0], fields[6] = fields[0] + "000", fields[6] + "000"
        lines.append(",".join(fields))
    return "\n".join(lines).encode()


@pytest.fixture(scope="module")
def real_csv() -> bytes:
    return shared_file(REAL_CSV).read_bytes()


def test_a_real_archive_csv_parses_to_its_values(real_csv):
    frame = parse_archive_csv(real_csv, REAL_CSV)
    assert frame.schema == pl.Schema(RAW_KLINE_SCHEMA)
    assert frame.height == 10
    first = frame.row(0, named=True)
    assert first["open_time"] == dt.datetime(2021, 11, 27, tzinfo=dt.UTC)
    assert first["close_time"] == dt.datetime(2021, 11, 27, 0, 0, 59, 999000, tzinfo=dt.UTC)
    assert (first["open"], first["high"], first["low"], first["close"]) == (2.853e-05, 2.854e-05, 2.851e-05, 2.854e-05)
    assert (first["volume"], first["quote_volume"], first["trades"]) == (36304.2, 1.03547608, 79)
    assert (first["taker_buy_volume"], first["taker_buy_quote_volume"], first["ignore"]) == (19523.0, 0.55694227, "0")
    assert frame["open_time"].diff().drop_nulls().unique().to_list() == [dt.timedelta(minutes=1)]


def test_the_archive_and_rest_rows_of_the_same_candles_parse_alike(real_csv):
    """The parser's output is what the REST path's parser makes of the same 12 fields."""
    rows = [line.split(",") for line in real_csv.decode().splitlines()]
    rest = [[int(r[0]), *r[1:6], int(r[6]), r[7], int(r[8]), r[9], r[10], r[11]] for r in rows]
    assert parse_archive_csv(real_csv, REAL_CSV).equals(parse_kline_rows(rest))


def test_a_header_line_and_microsecond_timestamps_read_the_same(real_csv):
    plain = parse_archive_csv(real_csv, REAL_CSV)
    assert parse_archive_csv(f"{CSV_HEADER}\n".encode() + real_csv, REAL_CSV).equals(plain)
    assert parse_archive_csv(_as_microseconds(real_csv), REAL_CSV).equals(plain)
    assert parse_archive_csv(f"{CSV_HEADER}\n".encode() + _as_microseconds(real_csv), REAL_CSV).equals(plain)


@pytest.mark.parametrize(
    ("csv", "problem"),
    [
        (b"1637971200000,0.1,0.2,0.1,0.2,5,1637971259999,1,3,1,1\n", "11 columns, expected 12"),
        (b"1637971200000,0.1,0.2,0.1,zero,5,1637971259999,1,3,1,1,0\n", "not a 12-field kline CSV"),
    ],
)
def test_a_malformed_csv_is_refused_naming_the_file(csv, problem):
    with pytest.raises(MalformedArchiveError, match=rf"BTCUSDT-1m-2024-01.zip (is|has) .*{problem}"):
        parse_archive_csv(csv, "BTCUSDT-1m-2024-01.zip")


def test_a_zip_must_hold_exactly_one_csv(real_csv):
    assert read_archive_zip(_zip({"a.csv": real_csv}), "a.zip") == real_csv
    with pytest.raises(MalformedArchiveError, match="a.zip holds 2 files"):
        read_archive_zip(_zip({"a.csv": real_csv, "b.csv": real_csv}), "a.zip")
    with pytest.raises(MalformedArchiveError, match="a.zip is not a readable zip"):
        read_archive_zip(b"<html>not found</html>", "a.zip")


def test_a_checksum_file_gives_its_sha256_for_its_own_file():
    digest = hashlib.sha256(b"x").hexdigest()
    assert parse_checksum(f"{digest}  a.zip\n".encode(), "a.zip") == digest
    with pytest.raises(MalformedArchiveError, match="a.zip.CHECKSUM is the checksum of 'b.zip'"):
        parse_checksum(f"{digest}  b.zip\n".encode(), "a.zip")
    with pytest.raises(MalformedArchiveError, match="holds no sha256"):
        parse_checksum(b"<Error>NoSuchKey</Error>", "a.zip")


def test_closed_months_are_monthly_files_and_the_rest_daily_up_to_yesterday():
    files = plan_archive_files("BTCUSDT", "1m", dt.date(2024, 1, 30), dt.date(2024, 4, 10), today=dt.date(2024, 4, 3))
    assert [f.name for f in files] == [
        "BTCUSDT-1m-2024-01-30.zip",
        "BTCUSDT-1m-2024-01-31.zip",
        "BTCUSDT-1m-2024-02.zip",
        "BTCUSDT-1m-2024-03.zip",
        "BTCUSDT-1m-2024-04-01.zip",
        "BTCUSDT-1m-2024-04-02.zip",
    ]
    assert files[2].path == "/data/futures/um/monthly/klines/BTCUSDT/1m/BTCUSDT-1m-2024-02.zip"
    assert files[2].last_day == dt.date(2024, 2, 29) and len(files[2].days()) == 29
    assert parse_archive_file_name("BTCUSDT-1m-2024-02.zip") == files[2]
    assert parse_archive_file_name("BTCUSDT-1m-2024-04-01.zip") == files[4]
    with pytest.raises(ValueError, match="not an archive file name"):
        parse_archive_file_name("BTCUSDT-1m-2024-13.zip")


@pytest.fixture(scope="module")
def archive_server():
    with ReplayServer() as server:
        yield server


@pytest.fixture
def client(archive_server):
    archive_server.set_faults("")
    archive_server.reset()
    waits: list[float] = []
    with PublicArchiveClient(archive_server.url, sleep=waits.append, policy=RetryPolicy(max_retries=2)) as client:
        client.waits = waits  # type: ignore[attr-defined]
        yield client


def test_the_replay_archive_serves_the_candles_its_rest_endpoint_serves(archive_server, client):
    day = ArchiveFile("ETHUSDT", "15m", "daily", dt.date(2024, 3, 5))
    archived = read_download(client.fetch(day))
    start_ms = int(dt.datetime(2024, 3, 5, tzinfo=dt.UTC).timestamp() * 1000)
    rest = requests.get(
        f"{archive_server.url}/fapi/v1/klines",
        params={"symbol": "ETHUSDT", "interval": "15m", "startTime": start_ms, "limit": 96},
        timeout=10,
    ).json()
    assert archived.height == 96
    assert archived.equals(parse_kline_rows(rest))


def test_files_from_2022_carry_the_header_line_and_older_ones_none(client):
    new = client.fetch(ArchiveFile("BTCUSDT", "1h", "daily", dt.date(2022, 1, 1)))
    old = client.fetch(ArchiveFile("BTCUSDT", "1h", "daily", dt.date(2021, 12, 31)))
    assert read_archive_zip(new.data, "new").startswith(CSV_HEADER.encode() + b"\n")
    assert read_archive_zip(old.data, "old")[:1].isdigit()
    assert read_download(new).height == read_download(old).height == 24


def test_a_file_not_published_yet_is_none_and_not_retried(archive_server, client):
    today = dt.datetime.now(dt.UTC).date()
    assert client.fetch(ArchiveFile("BTCUSDT", "1m", "daily", today)) is None
    assert client.fetch(ArchiveFile("BTCUSDT", "1m", "monthly", today.replace(day=1))) is None
    assert client.fetch(ArchiveFile("NOSUCHUSDT", "1m", "daily", dt.date(2024, 1, 1))) is None
    assert client.stats["retries"] == 0 and client.waits == []


def test_a_corrupt_download_is_fetched_again_and_verified(archive_server, client):
    archive_server.set_faults("corrupt_zip:on=archive:at=2")  # request 1 is the CHECKSUM, 2 the zip
    download = client.fetch(MARCH)
    assert download.attempts == 2
    assert hashlib.sha256(download.data).hexdigest() == download.sha256 == client.checksum(MARCH)
    assert read_download(download).height == 31 * 24


def test_a_file_that_never_matches_its_checksum_is_refused_naming_it(archive_server, client):
    archive_server.set_faults(f"corrupt_zip:file={MARCH.name}")
    with pytest.raises(ChecksumMismatchError, match=rf"{MARCH.name}: sha256 \w+ is not the published \w+, 3 downloads"):
        client.fetch(MARCH)


def test_server_errors_and_429_are_retried_with_backoff(archive_server, client):
    archive_server.set_faults("503:on=archive:first=1,429:on=archive:at=3")
    assert client.fetch(MARCH) is not None
    assert client.stats["retries"] == 2 and len(client.waits) == 2


def test_a_file_that_keeps_failing_names_the_file_and_the_last_problem(archive_server, client):
    archive_server.set_faults("502:on=archive:every=1")
    with pytest.raises(ArchiveUnavailableError, match=rf"{MARCH.name}.CHECKSUM failed 3 times; last problem: HTTP 502"):
        client.fetch(MARCH)


def test_a_file_withdrawn_on_request_answers_404(archive_server, client):
    archive_server.set_faults(f"unpublished:file={MARCH.name}")
    assert client.fetch(MARCH) is None
    assert client.checksum(ArchiveFile("BTCUSDT", "1h", "monthly", dt.date(2024, 4, 1))) is not None
    assert archive_server.stats()["faults_injected"] == {"archive:unpublished": 1}
