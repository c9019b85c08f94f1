"""The compiled backtest engine: a strategy's live signals, filled bar by bar in one numba pass.

`run_backtest(candles, strategy)` evaluates `strategy.signals` (the code live candidate
detection runs) and hands the frame to `simulate`, which takes any frame already carrying
the four Boolean signal columns. The loop over bars is `_simulate_kernel`, compiled with
numba and cached on disk, so only the first process ever compiles it.

Conventions (each has its own test in coin_platform_tests/backtest/test_engine.py):

* Fills. A signal on bar t's close fills at bar t+1's open, with slippage against the
  trader: a buy at open × (1 + slippage), a sell at open × (1 − slippage). A signal on a
  symbol's last bar is not filled.
* Fees. fee × fill notional on each side, entry and exit.
* Sides. Long and short; a strategy with `can_short=False` emits no short signals, so never
  shorts. One position per symbol. An entry signal is taken only without the same side's
  exit on that bar (enter_long & exit_long cancel, as in freqtrade and vectorbt), and when
  flat only if the other side's entry does not fire too. An entry while already in that
  direction does nothing; so does the opposite entry alone.
* Exits and reversals. The position's exit signal (exit_long when long, exit_short when
  short) exits at the next open with exit_reason "signal"; when the opposite entry fires on
  the same bar it reverses: the exit ("reverse") and the new entry fill at the same open.
* Stop-loss / take-profit, fractions of the entry fill price (long: stop at entry × (1 − sl),
  target at entry × (1 + tp); short mirrored). They are checked on every bar's high/low from
  the entry bar on: the entry fills at that bar's open, so its whole range lies after the
  entry (backtesting.py checks the entry bar too). When one bar touches both, the stop wins
  (the pessimistic order). A bar that opens through the stop fills at the open (worse than
  the stop); a stop fill is a market order and pays slippage. A take-profit is a resting
  limit: it fills at the target, or at a better open it gaps to, without slippage.
* Liquidation, isolated margin (coin_platform.backtest.margin): margin = notional / leverage
  and the liquidation price LP is fixed at entry from Binance's formula and the notional
  bracket. A bar whose low (long) / high (short) reaches LP liquidates at LP with exit_reason
  "liquidation", unless a stop-loss between the entry and LP is touched first (a stop beyond
  LP never fills: the position is gone before). A liquidation costs the whole isolated
  margin: Binance closes at LP and keeps what is left of the margin as its liquidation
  clearance fee, so the trade's fees hold the entry fee plus that clearance fee and its pnl
  is −margin − entry fee + funding, even when the bar gapped beyond LP. Funding does not
  move LP, and the bracket's maximum leverage is not enforced.
* Funding (USD-M perpetuals). At each funding_time of a symbol, a position held across that
  instant (entered before it, exited at or after it) receives −side × quantity × price ×
  rate: longs pay when the rate is positive. price is the row's mark_price, or without one
  the open of the first bar opening at or after funding_time (the bar starting at it when
  times line up). The payment is applied at that bar's open, before its fills, and goes to
  the trade's `funding` and to the sleeve's equity. Funding rows of other symbols, and
  those after a symbol's last bar, are ignored.
* End of data. A position still open on a symbol's last bar is closed at that bar's close
  (with slippage and fee, as any market order) with exit_reason "end_of_data".
* Sizing. `EquityFraction(f)` commits f of the sleeve's equity at the fill: margin plus
  entry fee = f × equity, so quantity = f × equity / (price × (1/leverage + fee)); at
  leverage 1 this is backtesting.py's fractional size and vectorbt's size=inf. It
  compounds. `FixedNotional(usdt)` opens usdt of notional (quantity = usdt / price), as live
  trading's `order_notional_usdt`; an entry whose margin plus fee exceeds the sleeve's equity
  is skipped, as a broker would refuse it (so is any entry once a sleeve's equity is ≤ 0).
* Symbols. Each symbol trades its own sleeve of initial_cash / n_symbols and never touches
  another's (vectorbt's cash_sharing=False). Total equity is the sum of the sleeves at each
  open time of any symbol; a sleeve counts its cash before its first bar and its final
  equity after its last.
* Times. entry_time / exit_time are the open times of the bars in which the fills happen
  (the next bar's open for a signal; the bar itself for stops, targets and liquidations;
  the last bar for end_of_data).

Features. A strategy reads either candle columns or stored feature columns
(coin_platform.features: zones, for instance, exist only there). `run_backtest` first
evaluates the strategy on the frame's zero-row slice: polars resolves every column before it
computes anything, so a missing column raises at once (≈1 ms). Only then does it run
`compute_features` (the feature assets' code) and join the features; otherwise the
strategy computes its indicators from the candles, which gives the same values (see
`strategies.base.feature_or`). Measured on 525,600 1m candles: EMA(10/30) signals ≈ 11 ms,
compute_features ≈ 1.9 s; computing features always would make the engine 100× slower for
strategies that never read them.

Compiled code. numba caches the compiled kernel in `__pycache__` beside this module, or —
when the package directory is read-only, as in an installed image — in the user's cache
directory (numba's own fallback); NUMBA_CACHE_DIR overrides both.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np
import polars as pl
from numba import njit

from coin_platform.backtest.errors import BacktestInputError
from coin_platform.backtest.margin import BTCUSDT_BRACKETS, MarginBrackets
from coin_platform.backtest.result import (
    EXIT_REASONS,
    SIDES,
    BacktestResult,
)
from coin_platform.core.intervals import INTERVAL_MS, normalize_interval
from coin_platform.core.signals import SIGNALS
from coin_platform.core.time import UTC_MS
from coin_platform.features import INDICATOR_COLUMNS, compute_features
from coin_platform.strategies import Strategy

PRICE_COLUMNS = ("open", "high", "low", "close")
CANDLE_COLUMNS = ("open_time", *PRICE_COLUMNS, "volume")
FUNDING_COLUMNS = ("symbol", "funding_time", "funding_rate", "mark_price")
MAX_LEVERAGE = 125

# Exit reason codes, the kernel's indices into EXIT_REASONS.
_SIGNAL, _REVERSE, _STOP_LOSS, _TAKE_PROFIT, _LIQUIDATION, _END_OF_DATA = range(len(EXIT_REASONS))
_EQUITY_FRACTION, _FIXED_NOTIONAL = 0, 1
# Columns of the kernel's trade records.
_INT_FIELDS = ("symbol", "side", "entry_bar", "exit_bar", "reason")
_FLOAT_FIELDS = ("entry_price", "exit_price", "size", "fees", "funding", "pnl", "return", "liquidation_price")


@dataclass(frozen=True)
class EquityFraction:
    """Each entry commits `fraction` of the sleeve's equity (margin plus entry fee)."""

    fraction: float = 1.0

    def __post_init__(self) -> None:
        if not (isinstance(self.fraction, int | float) and 0 < self.fraction <= 1):
            raise BacktestInputError(f"EquityFraction.fraction must lie in (0, 1], got {self.fraction!r}")


@dataclass(frozen=True)
class FixedNotional:
    """Each entry opens `usdt` of notional, as live trading's order_notional_usdt."""

    usdt: float

    def __post_init__(self) -> None:
        if not (isinstance(self.usdt, int | float) and math.isfinite(self.usdt) and self.usdt > 0):
            raise BacktestInputError(f"FixedNotional.usdt must be a finite number > 0, got {self.usdt!r}")


Sizing = EquityFraction | FixedNotional


def run_backtest(
    candles: pl.DataFrame,
    strategy: Strategy,
    *,
    fee: float = 0.001,
    slippage: float = 0.0002,
    initial_cash: float = 10_000.0,
    sizing: Sizing = EquityFraction(1.0),  # noqa: B008 - frozen, so one shared default is safe
    stop_loss: float | None = None,
    take_profit: float | None = None,
    leverage: float = 1.0,
    funding: pl.DataFrame | None = None,
    brackets: MarginBrackets = BTCUSDT_BRACKETS,
    interval: str | None = None,
) -> BacktestResult:
    """Backtest `strategy` on OHLCV `candles` (one symbol, or many in a `symbol` column).

    `interval` is only needed when features must be computed and the candles' spacing does
    not tell it. See the module docstring for every convention.
    """
    frame, features_computed = strategy_signals(candles, strategy, interval=interval)
    result = simulate(
        frame,
        fee=fee,
        slippage=slippage,
        initial_cash=initial_cash,
        sizing=sizing,
        stop_loss=stop_loss,
        take_profit=take_profit,
        leverage=leverage,
        funding=funding,
        brackets=brackets,
    )
    strategy_params = {name: getattr(strategy, name) for name in strategy.param_names()}
    result.params.update(
        strategy={"name": strategy.name, "kind": strategy.kind, **strategy_params},
        features_computed=features_computed,
    )
    return result


def strategy_signals(
    candles: pl.DataFrame, strategy: Strategy, *, interval: str | None = None
) -> tuple[pl.DataFrame, bool]:
    """`candles` sorted by (symbol, open_time) plus the strategy's four signals, and whether
    features had to be computed for it (see the module docstring)."""
    _require_columns(candles, CANDLE_COLUMNS, "candles")
    frame = _ordered(candles)
    try:
        strategy.signals(frame.head(0))
        features_computed = False
    except pl.exceptions.ColumnNotFoundError:
        frame = _with_features(frame, interval)
        features_computed = True
    return strategy.signals(frame), features_computed


def simulate(
    frame: pl.DataFrame,
    *,
    fee: float = 0.001,
    slippage: float = 0.0002,
    initial_cash: float = 10_000.0,
    sizing: Sizing = EquityFraction(1.0),  # noqa: B008 - frozen, so one shared default is safe
    stop_loss: float | None = None,
    take_profit: float | None = None,
    leverage: float = 1.0,
    funding: pl.DataFrame | None = None,
    brackets: MarginBrackets = BTCUSDT_BRACKETS,
) -> BacktestResult:
    """Fill the signals of `frame` (open_time, open, high, low, close, the four Boolean SIGNALS,
    optionally symbol) and account for them; the compiled core of `run_backtest`.

    The kernel checks the bars (open times later than the bar before within a symbol, prices
    finite and > 0) block by block just before it fills them, so a sorted, valid frame is read
    once; when a block fails, the frame is sorted (or the problem raised) and run again. The
    result's frames are built from the kernel's arrays when first read.
    """
    _check_parameters(fee, slippage, initial_cash, sizing, stop_loss, take_profit, leverage)
    _require_columns(frame, ("open_time", *PRICE_COLUMNS, *SIGNALS), "frame")
    frame = _normalized(frame)
    if "symbol" in frame.columns and not frame.get_column("symbol").is_sorted():
        frame = _ordered(frame)
    costs = _costs(fee, slippage, sizing, stop_loss, take_profit, leverage)
    run = _run_kernel(frame, funding, initial_cash, costs, brackets)
    if run is None:  # the kernel checks each block of bars just before it fills them, and one failed:
        frame = _ordered(frame)  # sorted when the times were not, or a candle given twice raises
        for name in PRICE_COLUMNS:
            _prices(frame, name)  # a bad price raises, naming it
        run = _run_kernel(frame, funding, initial_cash, costs, brackets)
        if run is None:
            raise AssertionError("the kernel refused bars that the checks passed")
    symbols, sleeve, funding_bar, (segment_bars, segment_values, trade_ints, trade_floats) = run
    params = {
        "fee": fee,
        "slippage": slippage,
        "initial_cash": initial_cash,
        "sizing": {"kind": type(sizing).__name__, **asdict(sizing)},
        "stop_loss": stop_loss,
        "take_profit": take_profit,
        "leverage": leverage,
        "margin_brackets": brackets.symbol,
        "funding_events": int(len(funding_bar)),
        "symbols": symbols,
        "bars": frame.height,
    }
    segments = (segment_bars, segment_values)
    frames = _KernelFrames(frame, symbols, segments, trade_ints, trade_floats, sleeve, float(leverage))
    return BacktestResult.lazy(frames, initial_cash=float(initial_cash), params=params)


def _run_kernel(
    frame: pl.DataFrame, funding: pl.DataFrame | None, initial_cash: float, costs: np.ndarray, brackets: MarginBrackets
) -> tuple[list[str], float, np.ndarray, tuple[np.ndarray, np.ndarray, np.ndarray]] | None:
    """(symbols, sleeve cash, funding event bars, the kernel's equity segments and trade records) of `frame`,
    whose symbols are sorted; None when a bar fails the kernel's checks (disordered or duplicate
    open times, a price not finite and > 0)."""
    times = _epoch_ms(frame.get_column("open_time"))
    symbols, starts = _symbol_blocks(frame)
    prices = [_float64(frame.get_column(name)).to_numpy() for name in PRICE_COLUMNS]  # no copy if it can
    signals = [_signal(frame, name) for name in SIGNALS]
    funding_bar, funding_rate, funding_price = _funding_events(funding, symbols, starts, times)
    sleeve = initial_cash / len(symbols)
    *arrays, passed = _simulate_kernel(
        *map(_read_only, (*prices, times, starts, *signals, funding_bar, funding_rate, funding_price)),
        sleeve,
        costs,
        _bracket_rows(brackets),
    )
    return (symbols, sleeve, funding_bar, tuple(arrays)) if passed else None


# --- input checks and preparation -------------------------------------------------------------


def _check_parameters(
    fee: float,
    slippage: float,
    initial_cash: float,
    sizing: Sizing,
    stop_loss: float | None,
    take_profit: float | None,
    leverage: float,
) -> None:
    def number(value: object) -> bool:
        return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)

    checks = [
        ("fee", fee, number(fee) and 0 <= fee < 0.1, "a number in [0, 0.1)"),
        ("slippage", slippage, number(slippage) and 0 <= slippage < 0.1, "a number in [0, 0.1)"),
        ("initial_cash", initial_cash, number(initial_cash) and initial_cash > 0, "a number > 0"),
        ("stop_loss", stop_loss, stop_loss is None or (number(stop_loss) and 0 < stop_loss < 1), "None or in (0, 1)"),
        ("take_profit", take_profit, take_profit is None or (number(take_profit) and take_profit > 0), "None or > 0"),
        ("leverage", leverage, number(leverage) and 1 <= leverage <= MAX_LEVERAGE, f"in [1, {MAX_LEVERAGE}]"),
    ]
    for name, value, ok, expected in checks:
        if not ok:
            raise BacktestInputError(f"{name} must be {expected}, got {value!r}")
    if not isinstance(sizing, EquityFraction | FixedNotional):
        raise BacktestInputError(f"sizing must be EquityFraction or FixedNotional, got {sizing!r}")


def _costs(
    fee: float,
    slippage: float,
    sizing: Sizing,
    stop_loss: float | None,
    take_profit: float | None,
    leverage: float,
) -> np.ndarray:
    """The kernel's `costs` array (see `_simulate_series`)."""
    sizing_kind, sizing_value = (
        (_EQUITY_FRACTION, sizing.fraction) if isinstance(sizing, EquityFraction) else (_FIXED_NOTIONAL, sizing.usdt)
    )
    no = math.nan
    values = [
        fee,
        slippage,
        sizing_kind,
        sizing_value,
        no if stop_loss is None else stop_loss,
        no if take_profit is None else take_profit,
        leverage,
    ]
    return _read_only(np.array(values, dtype=np.float64))


def _require_columns(frame: pl.DataFrame, columns: tuple[str, ...], what: str) -> None:
    present = set(frame.columns)
    missing = [name for name in columns if name not in present]
    if missing:
        raise BacktestInputError(f"{what} lacks columns {missing}")
    dtype = frame.get_column("open_time").dtype  # not frame.schema: that builds the whole schema
    if not isinstance(dtype, pl.Datetime):
        raise BacktestInputError(f"{what}.open_time must be a Datetime, got {dtype}")


def _normalized(frame: pl.DataFrame) -> pl.DataFrame:
    """`frame` with UTC ms open times; raises on a null open time or symbol."""
    if frame.get_column("open_time").dtype != UTC_MS:
        frame = frame.with_columns(pl.col("open_time").cast(UTC_MS))
    if frame.get_column("open_time").null_count():
        raise BacktestInputError("open_time has nulls")
    if "symbol" in frame.columns and frame.get_column("symbol").null_count():
        raise BacktestInputError("symbol has nulls")
    return frame


def _ordered(frame: pl.DataFrame) -> pl.DataFrame:
    """`frame` sorted by (symbol, open_time) with UTC ms open times; sorts only when it is not.

    Raises on a null open time or symbol, or an open time given twice for a symbol.
    """
    frame = _normalized(frame)
    has_symbol = "symbol" in frame.columns
    if not _increasing_per_symbol(frame):
        frame = frame.sort(["symbol", "open_time"] if has_symbol else "open_time", maintain_order=True)
        if not _increasing_per_symbol(frame):
            keys = ["symbol", "open_time"] if has_symbol else ["open_time"]
            twice = frame.filter(pl.struct(keys).is_duplicated()).row(0, named=True)
            raise BacktestInputError(f"a candle is given twice: {twice}")
    return frame


def _epoch_ms(open_time: pl.Series) -> np.ndarray:
    """UTC ms open times (no nulls) as int64 epoch ms: a view of polars' memory, not dt.epoch's
    query (~30 µs each call, whatever the length)."""
    return open_time.to_numpy().view(np.int64)


def _increasing_per_symbol(frame: pl.DataFrame) -> bool:
    times = _epoch_ms(frame.get_column("open_time"))
    if "symbol" not in frame.columns:
        return _first_disorder(_read_only(times), _read_only(np.zeros(0, np.uint32))) < 0
    symbol = frame.get_column("symbol")
    if not symbol.is_sorted():
        return False
    return _first_disorder(_read_only(times), _read_only(symbol.rle_id().to_numpy())) < 0


def _symbol_blocks(frame: pl.DataFrame) -> tuple[list[str], np.ndarray]:
    """The symbols in order and the row where each one's block starts (plus the row count)."""
    if frame.height == 0:
        raise BacktestInputError("no candles")
    if "symbol" not in frame.columns:
        return [""], np.array([0, frame.height], dtype=np.int64)
    runs = frame.get_column("symbol").rle()
    lengths = runs.struct.field("len").to_numpy().astype(np.int64)
    starts = np.concatenate(([0], np.cumsum(lengths))).astype(np.int64)
    return [str(s) for s in runs.struct.field("value").to_list()], starts


def _read_only(values: np.ndarray) -> np.ndarray:
    """`values` C-contiguous and read-only: zero-copy views of polars memory are read-only, and
    numba compiles (and caches) one kernel per array layout, so every call passes one layout."""
    values = np.ascontiguousarray(values)
    values.flags.writeable = False
    return values


@functools.lru_cache(maxsize=32)
def _bracket_rows(brackets: MarginBrackets) -> np.ndarray:
    """The kernel's `brackets` (MarginBrackets.arrays() as rows), built once per table: it is read-only."""
    return _read_only(np.stack(brackets.arrays()))


def _float64(column: pl.Series) -> pl.Series:
    return column if column.dtype == pl.Float64 else column.cast(pl.Float64)


def _prices(frame: pl.DataFrame, name: str) -> np.ndarray:
    values = _float64(frame.get_column(name)).to_numpy()
    if _bad_prices(_read_only(values)):
        bad = int(np.flatnonzero(~(np.isfinite(values) & (values > 0)))[0])
        raise BacktestInputError(f"{name} must be finite and > 0; row {bad} has {float(values[bad])!r}")
    return values


def _signal(frame: pl.DataFrame, name: str) -> np.ndarray:
    """The signal as one 0/1 byte per bar (null = 0), unpacked from the Arrow bitmap polars holds:
    ten times faster than converting the Boolean column."""
    column = frame.get_column(name)
    if column.dtype != pl.Boolean:
        raise BacktestInputError(f"signal column {name} must be Boolean, got {column.dtype}")
    if column.null_count():
        column = column.fill_null(False)
    bits = column.rechunk().to_arrow()
    packed = np.frombuffer(bits.buffers()[1], dtype=np.uint8)
    return np.unpackbits(packed, bitorder="little")[bits.offset : bits.offset + len(bits)]


def _with_features(frame: pl.DataFrame, interval: str | None) -> pl.DataFrame:
    """`frame` plus the indicator columns compute_features gives (those it lacks), row for row."""
    interval = normalize_interval(interval) if interval is not None else _interval_of(frame)
    features = compute_features(
        frame.select("symbol", *CANDLE_COLUMNS) if "symbol" in frame.columns else frame, interval
    )
    return frame.hstack(features.select(c for c in INDICATOR_COLUMNS if c not in frame.columns))


def _interval_of(frame: pl.DataFrame) -> str:
    """The kline interval whose length is the smallest step between a symbol's candles."""
    keys = ["symbol"] if "symbol" in frame.columns else []
    steps = frame.select(
        step=pl.col("open_time").dt.epoch("ms").diff().over(keys) if keys else pl.col("open_time").dt.epoch("ms").diff()
    ).get_column("step")
    step = steps.filter(steps > 0).min()
    by_length = {ms: name for name, ms in INTERVAL_MS.items()}
    if step not in by_length:
        raise BacktestInputError(f"cannot tell the candles' interval from their spacing ({step} ms): pass interval=")
    return by_length[step]


def _funding_events(
    funding: pl.DataFrame | None, symbols: list[str], starts: np.ndarray, times: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(bar, rate, price) per funding event that falls on a symbol's bars, ordered by bar.

    bar is the first bar opening at or after funding_time; price is NaN where no mark_price
    is given (the kernel then takes that bar's open).
    """
    empty = (np.empty(0, np.int64), np.empty(0, np.float64), np.empty(0, np.float64))
    if funding is None:
        return empty
    missing = [c for c in FUNDING_COLUMNS[:3] if c not in funding.columns]
    if missing:
        raise BacktestInputError(f"funding lacks columns {missing}")
    if not isinstance(funding.schema["funding_time"], pl.Datetime):
        raise BacktestInputError(f"funding.funding_time must be a Datetime, got {funding.schema['funding_time']}")
    rows = funding.select(
        pl.col("symbol").cast(pl.String),
        pl.col("funding_time").cast(UTC_MS).dt.epoch("ms").alias("time"),
        pl.col("funding_rate").cast(pl.Float64).alias("rate"),
        (pl.col("mark_price").cast(pl.Float64) if "mark_price" in funding.columns else pl.lit(None, pl.Float64))
        .fill_null(math.nan)
        .alias("price"),
    )
    if rows.select(pl.any_horizontal(pl.col("symbol", "time", "rate").is_null().any())).item():
        raise BacktestInputError("funding has nulls in symbol, funding_time or funding_rate")
    if not rows.get_column("rate").is_finite().all():
        raise BacktestInputError("funding_rate must be finite")
    if symbols == [""]:  # one unnamed series: the funding rows must be of one symbol
        if rows.get_column("symbol").n_unique() > 1:
            raise BacktestInputError("candles without a symbol column need funding of one symbol")
        rows = rows.with_columns(symbol=pl.lit(""))
    if rows.select(pl.struct("symbol", "time").is_duplicated().any()).item():
        raise BacktestInputError("funding lists a (symbol, funding_time) twice")
    bars, rates, prices = [], [], []
    for index, symbol in enumerate(symbols):
        own = rows.filter(pl.col("symbol") == symbol).sort("time")
        start, end = starts[index], starts[index + 1]
        position = np.searchsorted(times[start:end], own.get_column("time").to_numpy(), side="left")
        inside = position < end - start
        bars.append(start + position[inside])
        rates.append(own.get_column("rate").to_numpy()[inside])
        prices.append(own.get_column("price").to_numpy()[inside])
    if not bars:
        return empty
    return (
        np.concatenate(bars).astype(np.int64),
        np.concatenate(rates).astype(np.float64),
        np.concatenate(prices).astype(np.float64),
    )


# --- results ----------------------------------------------------------------------------------------


class _KernelFrames:
    """The kernel's arrays, made into a BacktestResult's frames when one is first read (BacktestResult.lazy).

    Holds the sorted frame's open_time, symbol and close columns (polars memory, not copies) and
    the kernel's own arrays: the trade records and the equity segments, from which the equity per
    bar is built once, when equity or total_equity is first read. Nothing here is mutated, so each
    frame is built at most once per result.
    """

    def __init__(
        self,
        frame: pl.DataFrame,
        symbols: list[str],
        segments: tuple[np.ndarray, np.ndarray],
        ints: np.ndarray,
        floats: np.ndarray,
        sleeve: float,
        leverage: float,
    ) -> None:
        self.symbols = symbols
        self._open_time = frame.get_column("open_time")
        self._symbol = frame.get_column("symbol") if "symbol" in frame.columns else None
        self._segments = segments
        self._close = _float64(frame.get_column("close")).to_numpy()  # the kernel's close
        self._ints = ints
        self._floats = floats
        self._sleeve = sleeve
        self._leverage = leverage

    def trades(self) -> pl.DataFrame:
        code = dict(zip(_INT_FIELDS, self._ints.T, strict=True))
        floats = self._floats
        times = _epoch_ms(self._open_time)

        def lookup(name: str, names: Sequence[str], codes: np.ndarray) -> pl.Series:
            return pl.Series(name, names, dtype=pl.String).gather(pl.Series(codes.astype(np.uint32)))  # no cast

        def at(name: str, bars: np.ndarray) -> pl.Series:
            return pl.Series(name, times[bars]).cast(UTC_MS)

        def value(name: str, nan_to_null: bool = False) -> pl.Series:
            column = floats[:, _FLOAT_FIELDS.index(name)]
            return pl.Series(name, column, dtype=pl.Float64, nan_to_null=nan_to_null)  # not fill_nan: a query

        columns = [
            lookup("symbol", self.symbols, code["symbol"]),
            lookup("side", SIDES, code["side"] < 0),
            at("entry_time", code["entry_bar"]),
            value("entry_price"),
            at("exit_time", code["exit_bar"]),
            value("exit_price"),
            value("size"),
            value("fees"),
            value("funding"),
            value("pnl"),
            value("return"),
            lookup("exit_reason", EXIT_REASONS, code["reason"]),
            pl.Series("leverage", np.full(len(floats), self._leverage)),
            value("liquidation_price", nan_to_null=True),
        ]
        return pl.DataFrame(columns)  # from Series: no schema to check (TRADES_SCHEMA, as a test asserts)

    @functools.cached_property
    def _equity(self) -> np.ndarray:
        return _equity_from_segments(_read_only(self._close), *map(_read_only, self._segments))

    def equity(self) -> pl.DataFrame:
        symbol = (
            self._symbol.cast(pl.String)
            if self._symbol is not None
            else pl.Series("symbol", self.symbols, dtype=pl.String).new_from_index(0, len(self._open_time))
        )
        return pl.DataFrame(
            [self._open_time.alias("open_time"), symbol.alias("symbol"), pl.Series("equity", self._equity)]
        )

    def total_equity(self) -> pl.DataFrame:
        """Sum of the sleeves at every open time of any symbol, and the drawdown from the running peak."""
        if len(self.symbols) == 1:
            times, total = self._open_time, self._equity
        else:
            wide = (
                pl.DataFrame({"open_time": self._open_time, "symbol": self._symbol, "e": self._equity})
                .pivot(on="symbol", index="open_time", values="e")
                .sort("open_time")
            )
            sleeves = [pl.col(s).forward_fill().fill_null(self._sleeve) for s in self.symbols]
            summed = wide.select("open_time", total=pl.sum_horizontal(sleeves))
            times, total = summed.get_column("open_time"), summed.get_column("total").to_numpy()
        total = np.ascontiguousarray(total, dtype=np.float64)
        columns = [times.alias("open_time"), pl.Series("equity", total), pl.Series("drawdown", _drawdown(total))]
        return pl.DataFrame(columns)  # from Series: no schema to check (TOTAL_EQUITY_SCHEMA, as a test asserts)


# --- the compiled core ------------------------------------------------------------------------------


@njit(cache=True)
def _simulate_kernel(
    open_,
    high,
    low,
    close,
    times,
    starts,
    enter_long,
    exit_long,
    enter_short,
    exit_short,
    funding_bar,
    funding_rate,
    funding_price,
    sleeve_cash,
    costs,
    brackets,
):
    """Every symbol's block of bars in turn, each its own sleeve (`_simulate_series`).

    Returns the equity segments (see `_equity_from_segments`), the trade records (ints: symbol,
    side, entry bar, exit bar, reason; floats: _FLOAT_FIELDS) and whether every bar passed the checks.
    """
    n_bars = len(open_)
    n_symbols = len(starts) - 1
    no_equity = np.empty(0)  # the equity per bar is built from the segments when it is read
    # Every trade enters at the open after a bar with an entry signal, so their count bounds the trades.
    # A tight bound, not one row per bar: the records stay small enough for malloc to reuse their pages.
    capacity = 0
    for i in range(n_bars):
        capacity += (enter_long[i] != 0) | (enter_short[i] != 0)
    ints = np.empty((capacity, 5), np.int64)
    floats = np.empty((capacity, 8))
    # A sleeve's state changes only on bars with an entry, an exit or a funding payment.
    segment_bars = np.empty(n_symbols + 2 * capacity + len(funding_bar), np.int64)
    segment_values = np.empty((len(segment_bars), 3))
    count = 0
    event = 0
    segment = 0
    for s in range(n_symbols):
        count, event, segment = _simulate_series(
            open_,
            high,
            low,
            close,
            enter_long,
            exit_long,
            enter_short,
            exit_short,
            starts[s],
            starts[s + 1],
            s,
            funding_bar,
            funding_rate,
            funding_price,
            event,
            sleeve_cash,
            costs,
            brackets,
            no_equity,
            ints,
            floats,
            count,
            times,
            True,
            segment_bars,
            segment_values,
            segment,
        )
        if count < 0:  # a bar failed the checks: the caller finds which and says so
            return segment_bars[:0], segment_values[:0], ints[:0], floats[:0], False
    return segment_bars[:segment], segment_values[:segment], ints[:count], floats[:count], True


@njit(cache=True)
def _simulate_series(
    open_,
    high,
    low,
    close,
    enter_long,
    exit_long,
    enter_short,
    exit_short,
    start,
    end,
    symbol,
    funding_bar,
    funding_rate,
    funding_price,
    event,
    sleeve_cash,
    costs,
    brackets,
    equity,
    ints,
    floats,
    count,
    times,
    check,
    segment_bars,
    segment_values,
    segment,
):
    """One sleeve over bars [start, end): funding, fills at the open, intrabar exits, mark at the close.

    `costs` is (fee, slippage, sizing kind, sizing value, stop_loss, take_profit, leverage), NaN for
    no stop or target; `brackets` the rows of MarginBrackets.arrays(). Writes the trades from row
    `count` on, and the equity: marked into equity[start:end] when `equity` is not empty (the
    sweep's metrics read every bar), else as segments from row `segment` on, one per bar whose state
    (cash, side × quantity, entry price) changed (`_equity_from_segments`). With `check`, it checks
    each block of bars (`_bars_pass`) before it fills them and returns count -1 at a failed one.
    Returns the next free trade row, the first funding event at or after `end` and the next segment.

    Indices. Bars are read through unsigned copies of their index (`u`, `k`): numba wraps a signed
    index that may be negative on every access (a compare and a conditional move per array), which
    made the quiet loops below 2.5× longer; bar indices here are never negative.
    """
    fee, slippage, sizing_value, stop_loss, take_profit, leverage = (
        costs[0],
        costs[1],
        costs[3],
        costs[4],
        costs[5],
        costs[6],
    )
    sizing_kind = int(costs[2])
    committed_per_notional = 1.0 / leverage + fee  # margin plus entry fee per unit of notional
    floors, caps, ratios, cums = brackets[0], brackets[1], brackets[2], brackets[3]
    last_bracket = len(floors) - 1
    cash = sleeve_cash
    side = 0
    quantity = entry_price = margin = entry_fee = funding_total = 0.0
    liquidation = stop = target = adverse = favourable = math.nan
    has_liquidation = has_stop = False
    entry_bar = -1
    exit_next = -1  # the exit reason to fill at the next open, or -1
    enter_next = 0  # the side to enter at the next open, or 0
    while event < len(funding_bar) and funding_bar[event] < start:
        event += 1
    checked = start if check else end  # bars [start, checked) passed `_bars_pass`
    marks = len(equity) > 0  # mark every bar into `equity`, or record the segments of constant state
    first_segment = segment
    i = start - 1
    while i < end - 1:
        i += 1
        u = np.uint64(i)  # see `Indices` in the docstring
        if i == checked:
            checked = min(checked + _CHECK_BLOCK, end)
            if not _bars_pass(open_, high, low, close, times, start, i, checked):
                return -1, event, segment
        while event < len(funding_bar) and funding_bar[event] <= i:  # those of skipped flat bars too
            if side != 0:
                price = funding_price[event]
                if math.isnan(price):
                    price = open_[u]
                payment = -side * quantity * price * funding_rate[event]
                cash += payment
                funding_total += payment
            event += 1

        if exit_next >= 0 and side != 0:
            fill = open_[u] * (1.0 - side * slippage)
            exit_fee = fee * quantity * fill
            gross = side * quantity * (fill - entry_price)
            cash += gross - exit_fee
            pnl = gross - entry_fee - exit_fee + funding_total
            _record(
                ints,
                floats,
                count,
                (symbol, side, entry_bar, i, exit_next),
                (entry_price, fill, quantity, entry_fee + exit_fee, funding_total, pnl, pnl / margin, liquidation),
            )
            count += 1
            side = 0
        exit_next = -1

        if enter_next != 0:
            fill = open_[u] * (1.0 + enter_next * slippage)
            available = cash  # flat here: the equity is the cash
            if sizing_kind == _EQUITY_FRACTION:
                size = sizing_value * available / (fill * committed_per_notional)
            else:
                size = sizing_value / fill
                if size * fill * committed_per_notional > available:
                    size = 0.0
            if available > 0 and size > 0:
                side = enter_next
                quantity = size
                entry_price = fill
                entry_bar = i
                margin = size * fill / leverage
                entry_fee = fee * size * fill
                funding_total = 0.0
                cash -= entry_fee
                # The liquidation price: margin.liquidation_price_nb's walk written out, bit for bit the same
                # (a test holds them equal). Called, it spilled the kernel's registers; inlined, numba
                # refcounted the four bracket arrays around it (12 atomic operations a trade). A bracket
                # whose numerator and denominator have opposite signs gives LP <= 0, whose notional lies
                # below every floor, so the walk moves down without dividing (a 1x long never divides).
                liquidation = math.nan
                notional = size * fill
                b = 0
                for kb in range(last_bracket):  # caps increase: counting those below finds the entry bracket
                    b += notional > caps[kb]
                for _ in range(last_bracket + 1):
                    ub = np.uint64(b)
                    numerator = margin + cums[ub] - side * size * fill
                    denominator = size * ratios[ub] - side * size
                    if (numerator >= 0 and denominator < 0) or (numerator <= 0 and denominator > 0):
                        liquidation = -1.0  # <= 0, as the division would give
                        if b == 0:
                            break
                        b -= 1
                        continue
                    liquidation = numerator / denominator
                    if b > 0 and size * liquidation <= floors[ub]:
                        b -= 1
                    elif b < last_bracket and size * liquidation > caps[ub]:
                        b += 1
                    else:
                        break
                if not liquidation > 0:
                    liquidation = math.nan  # no price liquidates the position
                stop = fill * (1.0 - side * stop_loss)  # NaN without a stop-loss
                target = fill * (1.0 + side * take_profit)
                has_liquidation = not math.isnan(liquidation)
                # A stop beyond LP never fills: the position is liquidated before it.
                has_stop = not math.isnan(stop) and (not has_liquidation or side * (stop - liquidation) >= 0)
                # The nearest adverse level and the target, so an untouched bar costs two comparisons.
                adverse = -side * math.inf
                if has_stop:
                    adverse = stop
                if has_liquidation and (not has_stop or side * (liquidation - adverse) > 0):
                    adverse = liquidation
                favourable = side * math.inf if math.isnan(target) else target
            enter_next = 0

        touched = False
        if side == 1:
            touched = low[u] <= adverse or high[u] >= favourable
        elif side == -1:
            touched = high[u] >= adverse or low[u] <= favourable
        if touched or (side != 0 and i == end - 1):
            reason = -1
            fill = exit_fee = 0.0
            worst = low[u] if side == 1 else high[u]
            best = high[u] if side == 1 else low[u]
            if has_liquidation and side * (open_[u] - liquidation) <= 0:
                reason = _LIQUIDATION
            elif has_stop and side * (worst - stop) <= 0:
                reason = _STOP_LOSS
                fill = (open_[u] if side * (open_[u] - stop) < 0 else stop) * (1.0 - side * slippage)
            elif has_liquidation and side * (worst - liquidation) <= 0:
                reason = _LIQUIDATION
            elif not math.isnan(target) and side * (best - target) >= 0:
                reason = _TAKE_PROFIT
                fill = open_[u] if side * (open_[u] - target) > 0 else target
            elif i == end - 1:
                reason = _END_OF_DATA
                fill = close[u] * (1.0 - side * slippage)
            if reason == _LIQUIDATION:
                # Closed at LP; what is left of the isolated margin is the clearance fee.
                fill = liquidation
                exit_fee = margin + side * quantity * (liquidation - entry_price)
            elif reason >= 0:
                exit_fee = fee * quantity * fill
            if reason >= 0:
                gross = side * quantity * (fill - entry_price)
                cash += gross - exit_fee
                pnl = gross - entry_fee - exit_fee + funding_total
                _record(
                    ints,
                    floats,
                    count,
                    (symbol, side, entry_bar, i, reason),
                    (
                        entry_price,
                        fill,
                        quantity,
                        entry_fee + exit_fee,
                        funding_total,
                        pnl,
                        pnl / margin,
                        liquidation,
                    ),
                )
                count += 1
                side = 0

        if marks:
            equity[u] = cash + side * quantity * (close[u] - entry_price) if side != 0 else cash
        else:
            held = side * quantity if side != 0 else 0.0
            last = segment - 1
            if (
                segment == first_segment
                or cash != segment_values[last, 0]
                or held != segment_values[last, 1]
                or (held != 0.0 and entry_price != segment_values[last, 2])
            ):
                segment_bars[segment] = i
                segment_values[segment, 0] = cash
                segment_values[segment, 1] = held
                segment_values[segment, 2] = entry_price
                segment += 1
        if i == end - 1:
            continue
        wants_long = enter_long[u] != 0 and exit_long[u] == 0
        wants_short = enter_short[u] != 0 and exit_short[u] == 0
        if side == 1:
            if exit_long[u] != 0:
                exit_next = _REVERSE if wants_short else _SIGNAL
                enter_next = -1 if wants_short else 0
        elif side == -1:
            if exit_short[u] != 0:
                exit_next = _REVERSE if wants_long else _SIGNAL
                enter_next = 1 if wants_long else 0
        elif wants_long != wants_short:
            enter_next = 1 if wants_long else -1
        if exit_next >= 0 or enter_next != 0:
            continue
        # Nothing pending: mark the bars on which nothing can happen (most of them) in a tight loop.
        quiet_until = min(end - 1, checked, funding_bar[event] if event < len(funding_bar) else end)
        j = i + 1
        if side == 1:
            while j < quiet_until:
                k = np.uint64(j)
                if not (low[k] > adverse and high[k] < favourable and exit_long[k] == 0):
                    break
                if marks:
                    equity[k] = cash + quantity * (close[k] - entry_price)
                j += 1
        elif side == -1:
            while j < quiet_until:
                k = np.uint64(j)
                if not (high[k] < adverse and low[k] > favourable and exit_short[k] == 0):
                    break
                if marks:
                    equity[k] = cash - quantity * (close[k] - entry_price)
                j += 1
        else:
            while j < min(end - 1, checked):
                k = np.uint64(j)
                if not (enter_long[k] == 0 and enter_short[k] == 0):
                    break
                if marks:
                    equity[k] = cash
                j += 1
        i = j - 1
    while event < len(funding_bar) and funding_bar[event] < end:
        event += 1
    return count, event, segment


_CHECK_BLOCK = 2048  # bars checked at once, just before they are simulated: they stay in the L2 cache


@njit(cache=True)
def _bars_pass(open_, high, low, close, times, start, lo, hi):
    """Whether bars [lo, hi) of the series starting at `start` have finite prices > 0 and open
    times later than the bar before (within the series), in one vectorized pass over the block."""
    o, h, l_, c = open_.view(np.int64), high.view(np.int64), low.view(np.int64), close.view(np.int64)
    bad = 0
    for k in range(np.uint64(lo), np.uint64(hi)):
        bad += (o[k] <= 0) | (o[k] >= _INF_BITS) | (h[k] <= 0) | (h[k] >= _INF_BITS)
        bad += (l_[k] <= 0) | (l_[k] >= _INF_BITS) | (c[k] <= 0) | (c[k] >= _INF_BITS)
    for k in range(np.uint64(max(lo, start + 1)), np.uint64(hi)):
        bad += times[k] <= times[k - np.uint64(1)]
    return bad == 0


@njit(cache=True)
def _first_disorder(times, runs):
    """The first row not later than the row before it in the same run (of `runs`, if any), or -1.

    Counts first, in a loop LLVM vectorizes (shifted slices, no early exit: ≈0.05 ms a year of 1m
    bars), and looks for the row only when there is one.
    """
    later, earlier = times[1:], times[:-1]
    disorders = 0
    if len(runs) == 0:
        for i in range(len(later)):
            disorders += later[i] <= earlier[i]
    else:
        same_later, same_earlier = runs[1:], runs[:-1]
        for i in range(len(later)):
            disorders += (later[i] <= earlier[i]) & (same_later[i] == same_earlier[i])
    if disorders == 0:
        return -1
    for i in range(1, len(times)):
        if times[i] <= times[i - 1] and (len(runs) == 0 or runs[i] == runs[i - 1]):
            return i
    return -1


# A float64's bits as int64 lie in (0, _INF_BITS) exactly when it is finite and > 0 (NaN and −x are outside).
_INF_BITS = 0x7FF0000000000000


@njit(cache=True)
def _bad_prices(values):
    """How many values are not finite and > 0, in one vectorized pass over their bits."""
    bits = values.view(np.int64)
    bad = 0
    for i in range(len(bits)):
        bad += (bits[i] <= 0) | (bits[i] >= _INF_BITS)
    return bad


@njit(cache=True)
def _equity_from_segments(close, segment_bars, segment_values):
    """The equity per bar, from the kernel's segments: from segment_bars[s] to the next segment's bar
    (or the last bar) a sleeve holds segment_values[s] = (cash, side × quantity, entry price), so its
    equity is cash + held × (close − entry price), or the cash when flat: what the kernel's loop
    marks, bit for bit."""
    equity = np.empty(len(close))
    for s in range(len(segment_bars)):
        lo = np.uint64(segment_bars[s])  # unsigned: no negative-index wraparound
        hi = np.uint64(segment_bars[s + 1] if s + 1 < len(segment_bars) else len(close))
        cash, held, entry_price = segment_values[s, 0], segment_values[s, 1], segment_values[s, 2]
        if held == 0.0:
            for i in range(lo, hi):
                equity[i] = cash
        else:
            for i in range(lo, hi):
                equity[i] = cash + held * (close[i] - entry_price)
    return equity


@njit(cache=True, error_model="numpy")  # numpy's: x / 0 is not checked, so the division vectorizes
def _drawdown(equity):
    """equity / running peak − 1: the peaks in one pass, the divisions in a second, vectorized one."""
    drawdown = np.empty(len(equity))
    peak = -math.inf
    for i in range(len(equity)):
        peak = max(peak, equity[i])
        drawdown[i] = peak
    for i in range(len(equity)):
        drawdown[i] = equity[i] / drawdown[i] - 1.0
    return drawdown


@njit(cache=True)
def _record(ints, floats, k, codes, values):
    """Write trade k: codes (symbol, side, entry bar, exit bar, reason), values in _FLOAT_FIELDS order."""
    for j in range(len(codes)):
        ints[k, j] = codes[j]
    for j in range(len(values)):
        floats[k, j] = values[j]
