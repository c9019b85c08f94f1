"""A backtest's report: one self-contained interactive HTML file and small PNGs for Dagster metadata.

The HTML is drawn with Bokeh and its JavaScript inlined (`bokeh.resources.INLINE`):
the report opens offline, from an object store or an e-mail, and fetches nothing.
Bokeh rather than Plotly because of that inlined size: a Bokeh page carries about
1.3 MB of JavaScript, a Plotly page 4.8 MB (plotly.min.js), for the same charts;
backtesting.py draws its plots with Bokeh too. Tables are plain HTML, readable
without JavaScript.

Charts stay bounded whatever the backtest's length: prices are resampled to at most
MAX_POINTS_PER_SERIES OHLC candles per symbol, equity and drawdown lines keep
each bucket's lowest and highest point (so the deepest drawdown is still drawn),
and at most MAX_TRADES_SHOWN trades (the latest) are listed and marked.

PNGs are rendered with matplotlib's Agg canvas (no pyplot state, safe in threads)
at fixed pixel sizes, small enough to embed as a base64 data URI in markdown
metadata (see `markdown_image`).
"""

from __future__ import annotations

import base64
import datetime as dt
import html
import io
import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import polars as pl
from bokeh.embed import file_html
from bokeh.layouts import column
from bokeh.models import ColumnDataSource, HoverTool, Range
from bokeh.palettes import Category10_10
from bokeh.plotting import figure
from bokeh.resources import INLINE
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import TwoSlopeNorm
from matplotlib.figure import Figure

from coin_platform.backtest.metrics import DURATION_METRICS, METRIC_LABELS, MetricValue

MAX_POINTS_PER_SERIES = 5_000
MAX_TRADES_SHOWN = 5_000
# Pixel size of every PNG (inches x dpi); wide enough for a Dagster metadata panel.
PNG_DPI = 100
PNG_SIZE_INCHES = (9.0, 5.0)
# A heatmap writes the value into each cell up to this many cells.
MAX_ANNOTATED_CELLS = 400

SIDE_COLOURS = {"long": "#1f77b4", "short": "#ff7f0e"}
OUTCOME_COLOURS = {"win": "#2ca02c", "loss": "#d62728"}
_UP_COLOUR, _DOWN_COLOUR = "#26a69a", "#ef5350"

TRADE_COLUMNS = (
    "symbol",
    "side",
    "entry_time",
    "entry_price",
    "exit_time",
    "exit_price",
    "size",
    "fees",
    "funding",
    "pnl",
    "return",
    "exit_reason",
)
_OHLC = ("open", "high", "low", "close")
CANDLE_COLUMNS = ("open_time", "symbol", *_OHLC)


class BacktestResultLike(Protocol):
    """What a report reads from a backtest result (the engine's result satisfies it)."""

    @property
    def trades(self) -> pl.DataFrame: ...

    @property
    def equity(self) -> pl.DataFrame: ...  # open_time, symbol, equity

    @property
    def total_equity(self) -> pl.DataFrame: ...  # open_time, equity, drawdown

    @property
    def metrics(self) -> Mapping[str, MetricValue]: ...

    @property
    def metrics_by_symbol(self) -> pl.DataFrame: ...

    @property
    def params(self) -> Mapping[str, object]: ...


@dataclass(frozen=True)
class Report:
    """The HTML page and the PNGs ("equity_drawdown", "returns_by_symbol") of one backtest."""

    html: str
    pngs: dict[str, bytes]


def _require_columns(frame: pl.DataFrame, columns: Sequence[str], name: str) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ValueError(f"{name} lacks column(s) {missing}; it has {frame.columns}")


# --- downsampling ------------------------------------------------------------------------------------------------


def _period_ms(times: pl.Series) -> int:
    """The series' bar period: the median gap between open times (1 ms for a single bar)."""
    gaps = times.dt.epoch("ms").diff().drop_nulls()
    return max(int(gaps.median()), 1) if len(gaps) else 1


def _bucket_width_ms(times: pl.Series, max_buckets: int) -> int:
    """A whole number of bar periods wide enough that the series' span fits in `max_buckets` buckets."""
    period = _period_ms(times)
    epoch = times.dt.epoch("ms")
    span = int(epoch.max() - epoch.min())
    wide_enough = max(period, -(-(span + 1) // max_buckets))
    return -(-wide_enough // period) * period


def _with_bucket(frame: pl.DataFrame, width_ms: int) -> pl.DataFrame:
    start = frame["open_time"].dt.epoch("ms").min()
    return frame.with_columns(_bucket=(pl.col("open_time").dt.epoch("ms") - start) // width_ms)


def downsample_ohlc(candles: pl.DataFrame, max_points: int = MAX_POINTS_PER_SERIES) -> pl.DataFrame:
    """One symbol's candles (open_time, open, high, low, close) resampled to at most `max_points` candles.

    Buckets are a whole number of bars wide; each keeps its first open, highest high,
    lowest low and last close, labelled with its first open time; `width_ms` is the bucket width.
    """
    if max_points < 1:
        raise ValueError(f"max_points must be at least 1, got {max_points}")
    if candles.height == 0:
        raise ValueError("no candles to downsample")
    ordered = candles.sort("open_time").select("open_time", *_OHLC)
    if ordered.height <= max_points:
        return ordered.with_columns(width_ms=pl.lit(_period_ms(ordered["open_time"]), pl.Int64))
    width = _bucket_width_ms(ordered["open_time"], max_points)
    return (
        _with_bucket(ordered, width)
        .group_by("_bucket", maintain_order=True)
        .agg(
            pl.col("open_time").first(),
            pl.col("open").first(),
            pl.col("high").max(),
            pl.col("low").min(),
            pl.col("close").last(),
        )
        .select("open_time", *_OHLC, width_ms=pl.lit(width, pl.Int64))
    )


def downsample_line(frame: pl.DataFrame, value: str, max_points: int = MAX_POINTS_PER_SERIES) -> pl.DataFrame:
    """At most `max_points` rows of (open_time, value): each time bucket's lowest and highest row, in time order."""
    if max_points < 2:
        raise ValueError(f"max_points must be at least 2, got {max_points}")
    ordered = frame.select("open_time", value).sort("open_time")
    if ordered.height <= max_points:
        return ordered
    keyed = _with_bucket(ordered, _bucket_width_ms(ordered["open_time"], max_points // 2))
    position = pl.int_range(pl.len()).over("_bucket")
    extreme = (position == pl.col(value).arg_min().over("_bucket")) | (
        position == pl.col(value).arg_max().over("_bucket")
    )
    return keyed.filter(extreme).drop("_bucket")


# --- HTML ----------------------------------------------------------------------------------------------------------


def format_metric(key: str, value: MetricValue) -> str:
    """How the report shows a metric: durations as d hh:mm:ss, counts whole, other numbers with two decimals."""
    if value is None:
        return "—"
    if key in DURATION_METRICS:
        return str(dt.timedelta(seconds=round(float(value))))
    if isinstance(value, int):
        return str(value)
    return f"{value:,.2f}"


def _format_number(value: float | None) -> str:
    return "—" if value is None or not math.isfinite(value) else f"{value:.8g}"


def _format_time(value: dt.datetime) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S")


def _table(table_id: str, header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in rows)
    return f'<table id="{table_id}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def _metrics_table(metrics: Mapping[str, MetricValue]) -> str:
    rows = [(label, format_metric(key, metrics.get(key))) for key, label in METRIC_LABELS.items()]
    return _table("metrics", ("Metric", "Value"), rows)


def _symbol_metrics_table(by_symbol: pl.DataFrame) -> str:
    keys = [k for k in METRIC_LABELS if k in by_symbol.columns]
    rows = [
        (row["symbol"], *(format_metric(k, row[k]) for k in keys))
        for row in by_symbol.sort("symbol").iter_rows(named=True)
    ]
    return _table("metrics-by-symbol", ("Symbol", *(METRIC_LABELS[k] for k in keys)), rows)


def _params_table(params: Mapping[str, object]) -> str:
    return _table("params", ("Parameter", "Value"), [(str(k), str(v)) for k, v in params.items()])


def _trade_rows(trades: pl.DataFrame) -> list[tuple[str, ...]]:
    return [
        (
            t["symbol"],
            t["side"],
            _format_time(t["entry_time"]),
            _format_number(t["entry_price"]),
            _format_time(t["exit_time"]),
            _format_number(t["exit_price"]),
            _format_number(t["size"]),
            _format_number(t["fees"]),
            _format_number(t["funding"]),
            _format_number(t["pnl"]),
            f"{t['return'] * 100:.2f}",
            t["exit_reason"],
        )
        for t in trades.iter_rows(named=True)
    ]


_TRADE_HEADER = (
    "Symbol",
    "Side",
    "Entry time (UTC)",
    "Entry price",
    "Exit time (UTC)",
    "Exit price",
    "Size",
    "Fees",
    "Funding",
    "PnL",
    "Return [%]",
    "Exit reason",
)

_PAGE = """
{% block postamble %}
<style>
  body { font-family: system-ui, sans-serif; margin: 1em 2em; }
  html, body { height: auto; }
  table { border-collapse: collapse; margin: 0.5em 0 1.5em; font-size: 0.85em; }
  th, td { border: 1px solid #ddd; padding: 2px 8px; text-align: right; white-space: nowrap; }
  th { background: #f4f4f4; }
  td:first-child, th:first-child { text-align: left; }
  .wide { overflow-x: auto; }
</style>
{% endblock %}
{% block contents %}
<h1>{{ title | e }}</h1>
<h2>Parameters</h2>
{{ params_table }}
<h2>Metrics</h2>
{{ metrics_table }}
<h2>Metrics by symbol</h2>
<div class="wide">{{ symbol_metrics_table }}</div>
<h2>Charts</h2>
{{ super() }}
<h2>Trades</h2>
<p>{{ trades_note | e }}</p>
<div class="wide">{{ trades_table }}</div>
{% endblock %}
"""


# --- Bokeh charts --------------------------------------------------------------------------------------------------


def _time_values(series: pl.Series) -> np.ndarray:
    return series.dt.replace_time_zone(None).to_numpy()


def _price_figure(symbol: str, candles: pl.DataFrame, trades: pl.DataFrame, x_range: Range | None):
    bars = downsample_ohlc(candles)
    rising = (bars["close"] >= bars["open"]).to_numpy()
    source = ColumnDataSource(
        {
            "open_time": _time_values(bars["open_time"]),
            **{c: bars[c].to_numpy() for c in _OHLC},
            "colour": np.where(rising, _UP_COLOUR, _DOWN_COLOUR),
        },
        name=f"price:{symbol}",
    )
    options = {"x_range": x_range} if x_range is not None else {}
    chart = figure(
        title=_price_title(symbol, candles.height, bars),
        x_axis_type="datetime",
        height=360,
        sizing_mode="stretch_width",
        tools="xpan,xwheel_zoom,box_zoom,reset,save",
        **options,
    )
    chart.segment("open_time", "high", "open_time", "low", source=source, color="colour")
    width = int(bars["width_ms"][0]) * 0.8
    chart.vbar("open_time", width, "open", "close", source=source, fill_color="colour", line_color="colour")
    if trades.height:
        _add_trade_markers(chart, symbol, trades)
        chart.legend.location = "top_left"
        chart.legend.click_policy = "hide"
    return chart


def _price_title(symbol: str, bar_count: int, drawn: pl.DataFrame) -> str:
    if drawn.height == bar_count:
        return f"{symbol} price, {bar_count:,} bars"
    width = dt.timedelta(milliseconds=int(drawn["width_ms"][0]))
    return f"{symbol} price, {bar_count:,} bars drawn as {drawn.height:,} candles of {width}"


def _add_trade_markers(chart, symbol: str, trades: pl.DataFrame) -> None:
    """Entries as triangles coloured by side, exits as circles coloured by win/loss, joined by a dashed line."""
    outcome = np.where(trades["pnl"].to_numpy() > 0, "win", "loss")
    side = trades["side"].to_numpy()
    columns = {
        "entry_time": _time_values(trades["entry_time"]),
        "exit_time": _time_values(trades["exit_time"]),
        "entry_price": trades["entry_price"].to_numpy(),
        "exit_price": trades["exit_price"].to_numpy(),
        "pnl": trades["pnl"].to_numpy(),
        "return_pct": trades["return"].to_numpy() * 100,
        "exit_reason": trades["exit_reason"].to_numpy(),
        "side": side,
        "outcome": outcome,
        "side_colour": np.where(side == "long", SIDE_COLOURS["long"], SIDE_COLOURS["short"]),
        "outcome_colour": np.where(outcome == "win", OUTCOME_COLOURS["win"], OUTCOME_COLOURS["loss"]),
        "marker": np.where(side == "long", "triangle", "inverted_triangle"),
    }
    source = ColumnDataSource(columns, name=f"trades:{symbol}")
    chart.segment(
        "entry_time",
        "entry_price",
        "exit_time",
        "exit_price",
        source=source,
        color="outcome_colour",
        line_dash="dashed",
        line_width=1,
    )
    entries = chart.scatter(
        "entry_time",
        "entry_price",
        source=source,
        marker="marker",
        size=9,
        fill_color="side_colour",
        line_color="side_colour",
        legend_field="side",
    )
    exits = chart.scatter(
        "exit_time",
        "exit_price",
        source=source,
        marker="circle",
        size=7,
        fill_color="outcome_colour",
        line_color="black",
        legend_field="outcome",
    )
    chart.add_tools(
        HoverTool(
            renderers=[entries, exits],
            tooltips=[
                ("side", "@side"),
                ("entry", "@entry_time{%F %T} @ @entry_price{0.[00000000]}"),
                ("exit", "@exit_time{%F %T} @ @exit_price{0.[00000000]}"),
                ("pnl", "@pnl{0,0.00}"),
                ("return", "@return_pct{0.00}%"),
                ("exit reason", "@exit_reason"),
            ],
            formatters={"@entry_time": "datetime", "@exit_time": "datetime"},
        )
    )


def _line_source(name: str, line: pl.DataFrame, value: str) -> ColumnDataSource:
    return ColumnDataSource({"open_time": _time_values(line["open_time"]), value: line[value].to_numpy()}, name=name)


def _equity_figure(total_equity: pl.DataFrame, equity: pl.DataFrame, x_range: Range | None):
    options = {"x_range": x_range} if x_range is not None else {}
    chart = figure(
        title="Equity (USDT)",
        x_axis_type="datetime",
        height=280,
        sizing_mode="stretch_width",
        tools="xpan,xwheel_zoom,box_zoom,reset,save",
        **options,
    )
    lines = [("total", total_equity, "black", 2)]
    symbols = sorted(equity["symbol"].unique().to_list())
    for colour, symbol in zip(itertools.cycle(Category10_10), symbols):
        lines.append((symbol, equity.filter(pl.col("symbol") == symbol), colour, 1))
    for label, series, colour, width in lines:
        source = _line_source(f"equity:{label}", downsample_line(series, "equity"), "equity")
        chart.line("open_time", "equity", source=source, color=colour, line_width=width, legend_label=label)
    chart.legend.location = "top_left"
    chart.legend.click_policy = "hide"
    return chart


def _drawdown_figure(total_equity: pl.DataFrame, x_range: Range):
    chart = figure(
        title="Drawdown [%]",
        x_axis_type="datetime",
        height=200,
        sizing_mode="stretch_width",
        x_range=x_range,
        tools="xpan,xwheel_zoom,box_zoom,reset,save",
    )
    drawdown = downsample_line(total_equity, "drawdown").with_columns(pl.col("drawdown") * 100)
    source = _line_source("drawdown", drawdown, "drawdown")
    chart.varea("open_time", 0, "drawdown", source=source, color="#d62728", fill_alpha=0.4)
    return chart


# --- PNGs ----------------------------------------------------------------------------------------------------------


def _new_figure() -> Figure:
    chart = Figure(figsize=PNG_SIZE_INCHES, dpi=PNG_DPI, layout="constrained")
    FigureCanvasAgg(chart)
    return chart


def _png(chart: Figure) -> bytes:
    buffer = io.BytesIO()
    chart.savefig(buffer, format="png", dpi=PNG_DPI)
    return buffer.getvalue()


def _equity_drawdown_png(total_equity: pl.DataFrame, title: str) -> bytes:
    chart = _new_figure()
    equity_axes, drawdown_axes = chart.subplots(2, 1, sharex=True, height_ratios=(3, 1))
    width_px = int(PNG_SIZE_INCHES[0] * PNG_DPI)
    equity = downsample_line(total_equity, "equity", width_px)
    drawdown = downsample_line(total_equity, "drawdown", width_px)
    equity_axes.plot(_time_values(equity["open_time"]), equity["equity"].to_numpy(), color="black", linewidth=1)
    equity_axes.set_title(title)
    equity_axes.set_ylabel("equity (USDT)")
    drawdown_axes.fill_between(
        _time_values(drawdown["open_time"]), drawdown["drawdown"].to_numpy() * 100, 0, color="#d62728", alpha=0.5
    )
    drawdown_axes.set_ylabel("drawdown [%]")
    for axes in (equity_axes, drawdown_axes):
        axes.grid(alpha=0.3)
    return _png(chart)


def _bars_png(labels: Sequence[str], values: Sequence[float], title: str, xlabel: str) -> bytes:
    """Horizontal bars, first label on top, green for >= 0 and red below, each bar labelled with its value."""
    chart = _new_figure()
    axes = chart.subplots()
    positions = np.arange(len(labels))
    colours = [OUTCOME_COLOURS["win"] if v >= 0 else OUTCOME_COLOURS["loss"] for v in values]
    bars = axes.barh(positions, values, color=colours)
    axes.bar_label(bars, labels=[f"{v:,.2f}" for v in values], padding=3, fontsize=8)
    axes.set_yticks(positions, labels=labels, fontsize=8)
    axes.invert_yaxis()
    axes.axvline(0, color="black", linewidth=0.8)
    axes.set_title(title)
    axes.set_xlabel(xlabel)
    axes.margins(x=0.15)
    axes.grid(axis="x", alpha=0.3)
    return _png(chart)


def _returns_by_symbol_png(by_symbol: pl.DataFrame) -> bytes:
    ranked = by_symbol.filter(pl.col("total_return_pct").is_not_null()).sort("total_return_pct", descending=True)
    return _bars_png(
        ranked["symbol"].to_list(),
        ranked["total_return_pct"].to_list(),
        "Return by symbol",
        METRIC_LABELS["total_return_pct"],
    )


def markdown_image(png: bytes, alt: str) -> str:
    """Markdown that shows `png` inline (a base64 data URI), as Dagster's markdown metadata renders it."""
    if not png.startswith(b"\x89PNG\r\n\x1a\n"):
        raise ValueError("markdown_image takes PNG bytes")
    return f"![{alt}](data:image/png;base64,{base64.b64encode(png).decode()})"


# --- public entry points -------------------------------------------------------------------------------------------


def _validate(result: BacktestResultLike, candles: pl.DataFrame) -> None:
    _require_columns(result.trades, TRADE_COLUMNS, "result.trades")
    _require_columns(result.equity, ("open_time", "symbol", "equity"), "result.equity")
    _require_columns(result.total_equity, ("open_time", "equity", "drawdown"), "result.total_equity")
    _require_columns(result.metrics_by_symbol, ("symbol", "total_return_pct"), "result.metrics_by_symbol")
    _require_columns(candles, CANDLE_COLUMNS, "candles")
    if result.total_equity.height == 0:
        raise ValueError("result.total_equity is empty: nothing to report")
    sides = set(result.trades["side"].unique()) - set(SIDE_COLOURS)
    if sides:
        raise ValueError(f"result.trades has side(s) {sorted(sides)}; a side is 'long' or 'short'")
    missing = sorted(set(result.equity["symbol"].unique()) - set(candles["symbol"].unique()))
    if missing:
        raise ValueError(f"candles lack symbol(s) {missing} that the result traded")


def render_report(result: BacktestResultLike, *, title: str, candles: pl.DataFrame) -> Report:
    """The HTML report (prices with trades, equity, drawdown, metrics, trades) and the PNGs of one backtest.

    `candles` (open_time, symbol, open, high, low, close) are the bars the backtest ran on;
    each symbol's chart covers its equity's time window.
    """
    _validate(result, candles)
    symbols = sorted(result.equity["symbol"].unique().to_list())
    trades = result.trades.sort("entry_time")
    shown = trades.tail(MAX_TRADES_SHOWN)
    price_charts = []
    x_range = None
    for symbol in symbols:
        sleeve = result.equity.filter(pl.col("symbol") == symbol)
        window = pl.col("open_time").is_between(sleeve["open_time"].min(), sleeve["open_time"].max())
        symbol_candles = candles.filter((pl.col("symbol") == symbol) & window)
        if symbol_candles.height == 0:
            raise ValueError(f"candles of {symbol} do not cover its backtest window")
        chart = _price_figure(symbol, symbol_candles, shown.filter(pl.col("symbol") == symbol), x_range)
        x_range = chart.x_range
        price_charts.append(chart)
    equity_chart = _equity_figure(result.total_equity, result.equity, x_range)
    charts = column(
        *price_charts,
        equity_chart,
        _drawdown_figure(result.total_equity, equity_chart.x_range),
        sizing_mode="stretch_width",
    )
    note = (
        f"All {trades.height:,} trades."
        if shown.height == trades.height
        else f"The latest {shown.height:,} of {trades.height:,} trades (charts mark the same ones)."
    )
    page = file_html(
        charts,
        INLINE,
        title,
        template=_PAGE,
        template_variables={
            "params_table": _params_table(result.params),
            "metrics_table": _metrics_table(result.metrics),
            "symbol_metrics_table": _symbol_metrics_table(result.metrics_by_symbol),
            "trades_note": note,
            "trades_table": _table("trades", _TRADE_HEADER, _trade_rows(shown)),
        },
    )
    pngs = {
        "equity_drawdown": _equity_drawdown_png(result.total_equity, title),
        "returns_by_symbol": _returns_by_symbol_png(result.metrics_by_symbol),
    }
    return Report(html=page, pngs=pngs)


def rank_leaderboard(
    rows: pl.DataFrame, *, metric: str = "sharpe", top: int = 20, descending: bool = True
) -> pl.DataFrame:
    """The `top` strategy x symbol rows by `metric`, best first; rows without a finite value are left out."""
    _require_columns(rows, ("strategy", "symbol", metric), "leaderboard rows")
    if top < 1:
        raise ValueError(f"top must be at least 1, got {top}")
    value = pl.col(metric).cast(pl.Float64)
    ranked = rows.filter(value.is_finite()).sort(value, descending=descending).head(top)
    if ranked.height == 0:
        raise ValueError(f"no leaderboard row has a value for {metric!r}")
    return ranked


def render_leaderboard(rows: pl.DataFrame, *, metric: str = "sharpe", top: int = 20, descending: bool = True) -> bytes:
    """PNG of rank_leaderboard: one bar per strategy x symbol, best on top."""
    ranked = rank_leaderboard(rows, metric=metric, top=top, descending=descending)
    labels = [f"{strategy} · {symbol}" for strategy, symbol in ranked.select("strategy", "symbol").rows()]
    label = METRIC_LABELS.get(metric, metric)
    return _bars_png(labels, ranked[metric].cast(pl.Float64).to_list(), f"Leaderboard by {label}", label)


def render_heatmap(frame: pl.DataFrame, x: str, y: str, value: str) -> bytes:
    """PNG heatmap of `value` over a parameter grid (one row per x, y pair); missing cells stay blank."""
    _require_columns(frame, (x, y, value), "heatmap frame")
    if frame.height == 0:
        raise ValueError("heatmap frame is empty")
    duplicates = frame.group_by(x, y).len().filter(pl.col("len") > 1)
    if duplicates.height:
        raise ValueError(f"heatmap frame has several rows for ({x}, {y}) = {duplicates.select(x, y).row(0)}")
    xs = frame[x].unique().sort().to_list()
    ys = frame[y].unique().sort().to_list()
    grid = np.full((len(ys), len(xs)), np.nan)
    column_of = {v: i for i, v in enumerate(xs)}
    row_of = {v: i for i, v in enumerate(ys)}
    for x_value, y_value, cell in frame.select(x, y, pl.col(value).cast(pl.Float64)).rows():
        grid[row_of[y_value], column_of[x_value]] = np.nan if cell is None else cell
    finite = grid[np.isfinite(grid)]
    chart = _new_figure()
    axes = chart.subplots()
    norm = None
    if len(finite) and finite.min() < 0 < finite.max():
        norm = TwoSlopeNorm(vcenter=0, vmin=finite.min(), vmax=finite.max())
    image = axes.imshow(np.ma.masked_invalid(grid), origin="lower", aspect="auto", cmap="RdYlGn", norm=norm)
    label = METRIC_LABELS.get(value, value)
    chart.colorbar(image, ax=axes, label=label)
    axes.set_xticks(range(len(xs)), labels=[str(v) for v in xs], fontsize=8, rotation=45)
    axes.set_yticks(range(len(ys)), labels=[str(v) for v in ys], fontsize=8)
    axes.set_xlabel(x)
    axes.set_ylabel(y)
    axes.set_title(f"{label} by {x} and {y}")
    if grid.size <= MAX_ANNOTATED_CELLS:
        for (row, col), cell in np.ndenumerate(grid):
            if np.isfinite(cell):
                axes.text(col, row, f"{cell:.2f}", ha="center", va="center", fontsize=7)
    return _png(chart)
