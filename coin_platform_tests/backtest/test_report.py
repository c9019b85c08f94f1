"""render_report and the PNG charts, on a seeded synthetic backtest in the engine's contract."""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import io
import json
from html.parser import HTMLParser

import matplotlib.image
import numpy as np
import polars as pl
import pytest

from coin_platform.backtest.metrics import METRIC_LABELS
from coin_platform.backtest.report import (
    MAX_POINTS_PER_SERIES,
    MAX_TRADES_SHOWN,
    PNG_DPI,
    PNG_SIZE_INCHES,
    downsample_line,
    downsample_ohlc,
    format_metric,
    markdown_image,
    rank_leaderboard,
    render_heatmap,
    render_leaderboard,
    render_report,
)
from coin_platform_tests.backtest.synthetic import synthetic_backtest

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
PNG_SHAPE = (int(PNG_SIZE_INCHES[1] * PNG_DPI), int(PNG_SIZE_INCHES[0] * PNG_DPI))
MAX_PNG_BYTES = 150_000
SYMBOLS = ("BTCUSDT", "ETHUSDT")


class _Page(HTMLParser):
    """What the tests read from a page: external references, inline scripts, and each table's cell texts."""

    def __init__(self, page: str):
        super().__init__()
        self.references: list[str] = []
        self.inline_scripts: list[str] = []
        self.json_scripts: list[str] = []
        self.tables: dict[str, list[list[str]]] = {}
        self.headings: list[str] = []
        self._script: dict[str, str | None] | None = None
        self._table: str | None = None
        self._cell: list[str] | None = None
        self._heading: list[str] | None = None
        self.feed(page)
        self.close()

    def handle_starttag(self, tag, attrs):
        attributes = dict(attrs)
        for name in ("src", "href", "data"):
            if attributes.get(name):
                self.references.append(attributes[name])
        if tag == "script":
            self._script = attributes
            self.inline_scripts.append("")
        elif tag == "table":
            self._table = attributes["id"]
            self.tables[self._table] = []
        elif tag == "tr" and self._table:
            self.tables[self._table].append([])
        elif tag in ("td", "th"):
            self._cell = []
        elif tag == "h1":
            self._heading = []

    def handle_endtag(self, tag):
        if tag == "script" and self._script is not None:
            if self._script.get("type") == "application/json":
                self.json_scripts.append(self.inline_scripts.pop())
            self._script = None
        elif tag == "table":
            self._table = None
        elif tag in ("td", "th") and self._cell is not None:
            self.tables[self._table][-1].append("".join(self._cell))
            self._cell = None
        elif tag == "h1" and self._heading is not None:
            self.headings.append("".join(self._heading))
            self._heading = None

    def handle_data(self, data):
        if self._script is not None:
            self.inline_scripts[-1] += data
        elif self._cell is not None:
            self._cell.append(data)
        elif self._heading is not None:
            self._heading.append(data)


def _plotted_rows(page: _Page) -> dict[str, int]:
    """Rows of every named Bokeh data source in the page's embedded document."""
    found: dict[str, int] = {}

    def walk(node):
        if isinstance(node, dict):
            if node.get("name") == "ColumnDataSource" and node.get("attributes", {}).get("name"):
                entries = node["attributes"]["data"]["entries"]
                first = entries[0][1]
                found[node["attributes"]["name"]] = first["shape"][0] if isinstance(first, dict) else len(first)
            for child in node.values():
                walk(child)
        elif isinstance(node, list):
            for child in node:
                walk(child)

    for script in page.json_scripts:
        walk(json.loads(script))
    return found


@pytest.fixture(scope="module")
def small():
    result, candles = synthetic_backtest(SYMBOLS, bars=2_000)
    return result, candles, render_report(result, title="EMA cross <10/30> & co", candles=candles)


def test_the_page_is_one_self_contained_file(small):
    _, _, report = small
    page = _Page(report.html)
    assert page.references == []  # no script src, stylesheet link or image to fetch
    assert any("Bokeh" in script and len(script) > 500_000 for script in page.inline_scripts), "BokehJS inlined"
    assert len(page.json_scripts) == 1  # the charts' document


def test_the_page_lists_every_trade(small):
    result, _, report = small
    rows = _Page(report.html).tables["trades"]
    header, body = rows[0], rows[1:]
    assert header[:2] == ["Symbol", "Side"] and header[-1] == "Exit reason"
    trades = result.trades.sort("entry_time")
    assert len(body) == trades.height
    for cells, trade in zip(body, trades.iter_rows(named=True), strict=True):
        assert cells[0] == trade["symbol"] and cells[1] == trade["side"] and cells[-1] == trade["exit_reason"]
        assert cells[2] == trade["entry_time"].strftime("%Y-%m-%d %H:%M:%S")
        assert float(cells[3]) == pytest.approx(trade["entry_price"], rel=1e-7)
        assert float(cells[9]) == pytest.approx(trade["pnl"], rel=1e-7)
        assert float(cells[10]) == pytest.approx(trade["return"] * 100, abs=0.005)


def test_the_page_shows_every_metric(small):
    result, candles, _ = small
    metrics = {**result.metrics, "sharpe": 1.5, "max_drawdown_duration_s": 90_061.0, "sortino": None}
    report = render_report(dataclasses.replace(result, metrics=metrics), title="t", candles=candles)
    tables = _Page(report.html).tables
    shown = dict(tables["metrics"][1:])
    assert list(shown) == list(METRIC_LABELS.values())
    assert shown["Sharpe Ratio"] == "1.50"
    assert shown["Max. Drawdown Duration"] == "1 day, 1:01:01"
    assert shown["Sortino Ratio"] == "—"
    assert shown["# Trades"] == str(result.trades.height)
    assert all(shown[label] == format_metric(key, metrics[key]) for key, label in METRIC_LABELS.items())
    by_symbol = tables["metrics-by-symbol"]
    assert [row[0] for row in by_symbol[1:]] == list(SYMBOLS)
    assert by_symbol[0][1] == "Return [%]"
    assert dict(tables["params"][1:]) == {k: str(v) for k, v in result.params.items()}


def test_a_backtest_without_trades_still_reports(small):
    result, candles, _ = small
    idle = dataclasses.replace(result, trades=result.trades.head(0))
    page = _Page(render_report(idle, title="idle", candles=candles).html)
    assert page.tables["trades"] == [page.tables["trades"][0]]  # the header only
    assert "trades:BTCUSDT" not in _plotted_rows(page)


def test_the_title_is_escaped(small):
    _, _, report = small
    assert _Page(report.html).headings == ["EMA cross <10/30> & co"]
    assert "<10/30>" not in report.html


def test_the_charts_plot_each_symbol_with_its_trades(small):
    result, _, report = small
    rows = _plotted_rows(_Page(report.html))
    for symbol in SYMBOLS:
        assert rows[f"price:{symbol}"] == 2_000  # under the cap every bar is drawn
        assert rows[f"trades:{symbol}"] == result.trades.filter(pl.col("symbol") == symbol).height
        assert rows[f"equity:{symbol}"] == 2_000
    assert rows["equity:total"] == rows["drawdown"] == 2_000


def _decoded_shape(png: bytes) -> tuple[int, int]:
    assert png.startswith(PNG_SIGNATURE)
    return matplotlib.image.imread(io.BytesIO(png), format="png").shape[:2]


def test_the_pngs_decode_at_their_size_and_fit_markdown_metadata(small):
    _, _, report = small
    assert set(report.pngs) == {"equity_drawdown", "returns_by_symbol"}
    for png in report.pngs.values():
        assert _decoded_shape(png) == PNG_SHAPE
        assert len(png) < MAX_PNG_BYTES


def test_half_a_million_bars_render_within_bounds():
    bars = 500_000
    result, candles = synthetic_backtest(SYMBOLS, bars=bars, every=100, hold=60)
    assert result.trades.height > MAX_TRADES_SHOWN
    report = render_report(result, title="500k", candles=candles)
    assert len(report.html.encode()) < 6_000_000
    page = _Page(report.html)
    rows = _plotted_rows(page)
    assert max(rows.values()) <= MAX_POINTS_PER_SERIES
    for symbol in SYMBOLS:
        assert rows[f"price:{symbol}"] > MAX_POINTS_PER_SERIES // 2  # resampled, not thinned to a handful
        bucket = dt.timedelta(minutes=bars // MAX_POINTS_PER_SERIES)  # 1m bars, whole minutes per candle
        assert f"{symbol} price, {bars:,} bars drawn as {rows[f'price:{symbol}']:,} candles of {bucket}" in report.html
    assert sum(rows[f"trades:{symbol}"] for symbol in SYMBOLS) == MAX_TRADES_SHOWN
    assert len(page.tables["trades"]) - 1 == MAX_TRADES_SHOWN
    assert f"The latest {MAX_TRADES_SHOWN:,} of {result.trades.height:,} trades" in report.html
    for png in report.pngs.values():
        assert _decoded_shape(png) == PNG_SHAPE
        assert len(png) < MAX_PNG_BYTES


def test_downsample_ohlc_keeps_the_extremes_and_the_ends():
    _, candles = synthetic_backtest(("BTCUSDT",), bars=10_007)
    bars = downsample_ohlc(candles, max_points=100)
    assert 50 < bars.height <= 100
    assert bars["open_time"].is_sorted()
    assert bars["high"].max() == candles["high"].max() and bars["low"].min() == candles["low"].min()
    assert bars["open"][0] == candles["open"][0] and bars["close"][-1] == candles["close"][-1]
    assert bars["width_ms"][0] % 60_000 == 0  # a whole number of 1m bars
    # A bucket is the aggregate of its bars: the first one holds the first width_ms of candles.
    first = candles.filter(pl.col("open_time") < bars["open_time"][1])
    assert bars.row(0)[1:5] == (first["open"][0], first["high"].max(), first["low"].min(), first["close"][-1])
    untouched = downsample_ohlc(candles.head(50), max_points=100)
    assert untouched.drop("width_ms").equals(candles.head(50).drop("symbol"))
    assert untouched["width_ms"][0] == 60_000


def test_downsample_line_keeps_the_deepest_drawdown():
    result, _ = synthetic_backtest(("BTCUSDT",), bars=20_000)
    line = downsample_line(result.total_equity, "drawdown", max_points=500)
    assert line.height <= 500
    assert line["open_time"].is_sorted()
    assert line["drawdown"].min() == result.total_equity["drawdown"].min()
    assert line["drawdown"].max() == result.total_equity["drawdown"].max()


def test_bad_input_is_named(small):
    result, candles, _ = small
    with pytest.raises(ValueError, match=r"candles lack symbol\(s\) \['ETHUSDT'\]"):
        render_report(result, title="t", candles=candles.filter(pl.col("symbol") == "BTCUSDT"))
    with pytest.raises(ValueError, match=r"result.trades lacks column\(s\) \['exit_reason'\]"):
        render_report(dataclasses.replace(result, trades=result.trades.drop("exit_reason")), title="t", candles=candles)
    sideways = result.trades.with_columns(side=pl.lit("buy"))
    with pytest.raises(ValueError, match=r"result.trades has side\(s\) \['buy'\]"):
        render_report(dataclasses.replace(result, trades=sideways), title="t", candles=candles)
    late = candles.with_columns(pl.col("open_time") + pl.duration(days=30))
    with pytest.raises(ValueError, match="candles of BTCUSDT do not cover its backtest window"):
        render_report(result, title="t", candles=late)


LEADERBOARD = pl.DataFrame(
    {
        "strategy": ["ema_cross", "ema_cross", "rsi", "rsi", "breakout"],
        "symbol": ["BTCUSDT", "ETHUSDT", "BTCUSDT", "ETHUSDT", "BTCUSDT"],
        "sharpe": [1.2, -0.4, 2.5, None, float("nan")],
        "max_drawdown_pct": [-10.0, -30.0, -5.0, -20.0, -1.0],
    }
)


def test_the_leaderboard_ranks_best_first_without_undefined_rows():
    ranked = rank_leaderboard(LEADERBOARD, metric="sharpe")
    assert ranked.select("strategy", "symbol").rows() == [
        ("rsi", "BTCUSDT"),
        ("ema_cross", "BTCUSDT"),
        ("ema_cross", "ETHUSDT"),
    ]
    assert rank_leaderboard(LEADERBOARD, metric="max_drawdown_pct", top=2)["max_drawdown_pct"].to_list() == [-1, -5]
    png = render_leaderboard(LEADERBOARD, metric="sharpe")
    assert _decoded_shape(png) == PNG_SHAPE and len(png) < MAX_PNG_BYTES


def test_the_leaderboard_names_what_is_missing():
    with pytest.raises(ValueError, match=r"leaderboard rows lack.*\['sortino'\]"):
        rank_leaderboard(LEADERBOARD, metric="sortino")
    with pytest.raises(ValueError, match="no leaderboard row has a value for 'sharpe'"):
        rank_leaderboard(LEADERBOARD.filter(pl.col("strategy") == "breakout"), metric="sharpe")


def test_the_heatmap_draws_a_parameter_grid_with_gaps():
    fast, slow = np.meshgrid([5, 10, 20], [30, 50, 100, 200])
    sweep = pl.DataFrame({"fast": fast.ravel(), "slow": slow.ravel(), "sharpe": np.linspace(-1.0, 2.0, fast.size)})
    png = render_heatmap(sweep.slice(1), "fast", "slow", "sharpe")  # one cell missing
    assert _decoded_shape(png) == PNG_SHAPE and len(png) < MAX_PNG_BYTES
    with pytest.raises(ValueError, match=r"several rows for \(fast, slow\)"):
        render_heatmap(pl.concat([sweep, sweep.head(1)]), "fast", "slow", "sharpe")
    with pytest.raises(ValueError, match=r"lacks column\(s\) \['calmar'\]"):
        render_heatmap(sweep, "fast", "slow", "calmar")


def test_markdown_image_embeds_the_png(small):
    _, _, report = small
    png = report.pngs["equity_drawdown"]
    markdown = markdown_image(png, "equity")
    prefix = "![equity](data:image/png;base64,"
    assert markdown.startswith(prefix) and markdown.endswith(")")
    assert base64.b64decode(markdown[len(prefix) : -1]) == png
    with pytest.raises(ValueError, match="takes PNG bytes"):
        markdown_image(b"GIF89a", "x")
