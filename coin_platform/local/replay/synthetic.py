"""Deterministic synthetic USD-M futures candles for any symbol, interval and time.

The replay server serves these instead of Binance's, so they must look like a
market to a strategy (trends, volatility clusters, volume that follows
volatility and the time of day) and behave like Binance's data to a client
(exact aggregation, fixed decimals, the last candle still open).

How a candle comes about, and why:

* Randomness comes from a counter-based generator (Philox) keyed by a SHA-256
  of the symbol, with the counter set to (day, stream). The candle at a given
  open time therefore never depends on which window a client asks for, on
  the order of requests, or on the process.
* A day-level log-price path runs from ``EPOCH_MS`` (the listing date of
  every symbol): regime-switching drift (trends), regime-switching volatility
  times a GARCH(1,1) variance (clusters), fat-tailed shocks, and a pull back
  towards the symbol's base price so prices stay in a plausible range for decades.
* Within a day, a Brownian bridge with an intraday volatility profile and a
  smooth random volatility factor joins one day's open level to the next
  day's, so a minute's open is the previous minute's close across midnight.
* Prices are integer price units (``10**-price_decimals``) on the tick grid,
  quantities integer lot steps, quote volumes exact sums of price x quantity.
  Coarser candles are reductions of the 1m integer arrays, so 15m/1h/1d rows
  equal the aggregate of their 1m rows exactly.
* Funding every 8 hours at 00:00, 08:00 and 16:00 UTC, stamped a few ms after the
  hour as Binance does, with Binance's formula F = P + clamp(I − P, ±0.05 %): the
  interest I is 0.01 %, so most rates are exactly 0.0001, and the premium P leans
  with the day's move (trends pay); the mark price is the symbol's price at the time.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from coin_platform.core.intervals import DAY_MS, INTERVAL_MS, UnknownIntervalError
from coin_platform.core.symbols import is_binance_symbol

EPOCH_MS = 1_483_228_800_000  # 2017-01-01T00:00:00Z: the first candle of every symbol
MINUTE_MS = 60_000
HOUR_MS = 3_600_000
MINUTES_PER_DAY = DAY_MS // MINUTE_MS
MAX_LIMIT = 1500
QUOTE_ASSETS = ("USDT", "USDC")

_CHUNK_DAYS = 1024  # the day path is generated (and cached) in chunks of this many days

# Day-level dynamics.
_TREND_SWITCH = 1 / 25  # daily probability of drawing a new trend regime (trends of ~25 days)
_TREND_DRIFT = (-0.4, 0.0, 0.4)  # drift per day, in units of the symbol's daily volatility
_VOL_SWITCH = 1 / 30
_VOL_LEVELS = tuple(level / math.sqrt((0.65**2 + 1.0**2 + 1.8**2) / 3) for level in (0.65, 1.0, 1.8))
_GARCH_ALPHA, _GARCH_BETA = 0.08, 0.90
_MEAN_REVERSION = 0.015  # per day, towards log(base price): a half-life of ~46 days
_SHOCK_DF = 5  # Student-t degrees of freedom of daily and minute shocks

# Intraday dynamics.
_INTRADAY_VOL_OF_VOL = 0.45
_INTRADAY_VOL_MEMORY = 0.985  # per-minute persistence of the intraday volatility factor
_WICK_SCALE = 0.6  # wick length relative to the minute's volatility
_VOLUME_NOISE = 0.3  # log-normal noise of minute volume

# symbol -> (base price, tick size, step size, daily volatility, daily quote volume in USDT)
_KNOWN_INSTRUMENTS: dict[str, tuple[str, str, str, float, float]] = {
    "BTCUSDT": ("62000", "0.10", "0.001", 0.030, 12e9),
    "ETHUSDT": ("3000", "0.01", "0.001", 0.038, 6e9),
    "BNBUSDT": ("580", "0.010", "0.01", 0.035, 6e8),
    "SOLUSDT": ("150", "0.0100", "1", 0.050, 2.5e9),
    "XRPUSDT": ("0.6", "0.0001", "0.1", 0.045, 1.2e9),
    "DOGEUSDT": ("0.15", "0.000010", "1", 0.055, 1.5e9),
    "ADAUSDT": ("0.45", "0.00010", "1", 0.048, 4e8),
    "AVAXUSDT": ("30", "0.0010", "1", 0.055, 4e8),
    "LINKUSDT": ("15", "0.001", "0.01", 0.050, 4e8),
    "DOTUSDT": ("6.5", "0.001", "0.1", 0.048, 2.5e8),
    "LTCUSDT": ("80", "0.01", "0.001", 0.042, 4e8),
    "BCHUSDT": ("400", "0.01", "0.001", 0.045, 3e8),
    "TRXUSDT": ("0.12", "0.00001", "1", 0.030, 1.5e8),
    "NEARUSDT": ("5", "0.0010", "1", 0.058, 2.5e8),
    "ATOMUSDT": ("8", "0.001", "0.01", 0.048, 1.5e8),
    "UNIUSDT": ("9", "0.0010", "1", 0.055, 1.5e8),
    "ETCUSDT": ("25", "0.001", "0.01", 0.048, 1.5e8),
    "FILUSDT": ("5", "0.001", "0.1", 0.055, 1.2e8),
    "APTUSDT": ("9", "0.00010", "0.1", 0.060, 1.5e8),
    "ARBUSDT": ("0.9", "0.00010", "0.1", 0.060, 2e8),
}
DEFAULT_SYMBOLS: tuple[str, ...] = tuple(_KNOWN_INSTRUMENTS)


def _decimals(text: str) -> int:
    return len(text.partition(".")[2])


def _units(text: str) -> int:
    return int(text.replace(".", ""))


def format_units(value: int, decimals: int) -> str:
    """An integer count of ``10**-decimals`` as Binance writes it: fixed decimals, no exponent."""
    if decimals == 0:
        return str(value)
    whole, fraction = divmod(value, 10**decimals)
    return f"{whole}.{fraction:0{decimals}d}"


@dataclass(frozen=True)
class Instrument:
    """What exchangeInfo says about a symbol, plus the parameters of its synthetic market."""

    symbol: str
    base_asset: str
    quote_asset: str
    price_decimals: int  # pricePrecision; prices are integers of 10**-price_decimals
    tick_units: int  # tick size in price units
    quantity_decimals: int  # quantityPrecision; the lot step is one 10**-quantity_decimals
    base_price: float
    daily_volatility: float
    daily_quote_volume: float

    @property
    def tick_size(self) -> str:
        return format_units(self.tick_units, self.price_decimals)

    @property
    def step_size(self) -> str:
        return format_units(1, self.quantity_decimals)

    @property
    def tick_value(self) -> float:
        return self.tick_units / 10**self.price_decimals

    @property
    def step_value(self) -> float:
        return 10.0**-self.quantity_decimals

    @property
    def average_trade_quote(self) -> float:
        """Typical notional of one trade: larger on deeper markets, as on Binance."""
        return 2000.0 * (self.daily_quote_volume / 1e9) ** 0.4

    def format_price(self, units: int) -> str:
        return format_units(units, self.price_decimals)

    def format_quantity(self, units: int) -> str:
        return format_units(units, self.quantity_decimals)

    def format_quote(self, units: int) -> str:
        return format_units(units, self.price_decimals + self.quantity_decimals)


def _symbol_key(symbol: str) -> int:
    """128-bit Philox key from the symbol: stable across processes (unlike hash())."""
    digest = hashlib.sha256(f"coin_platform.synthetic:{symbol}".encode()).digest()
    return int.from_bytes(digest[:16], "little")


def _generator(symbol: str, index: int, stream: int) -> np.random.Generator:
    return np.random.Generator(np.random.Philox(key=_symbol_key(symbol), counter=[0, index, stream, 0]))


def _split_symbol(symbol: str) -> tuple[str, str]:
    for quote in QUOTE_ASSETS:
        if symbol.endswith(quote) and len(symbol) > len(quote):
            return symbol[: -len(quote)], quote
    return symbol, "USDT"


@lru_cache(maxsize=1024)
def instrument(symbol: str) -> Instrument:
    """The instrument for any well-formed symbol; unknown ones get parameters from its hash."""
    if not is_binance_symbol(symbol):
        raise ValueError(f"invalid symbol {symbol!r}: expected 2-30 upper-case letters or digits")
    base_asset, quote_asset = _split_symbol(symbol)
    if symbol in _KNOWN_INSTRUMENTS:
        price, tick, step, volatility, quote_volume = _KNOWN_INSTRUMENTS[symbol]
        return Instrument(
            symbol=symbol,
            base_asset=base_asset,
            quote_asset=quote_asset,
            price_decimals=_decimals(tick),
            tick_units=_units(tick),
            quantity_decimals=_decimals(step),
            base_price=float(price),
            daily_volatility=volatility,
            daily_quote_volume=quote_volume,
        )
    draws = _generator(symbol, 0, 0).random(3)
    price = 10 ** (-1.3 + 3.8 * draws[0])  # 0.05 .. 300, log-uniform
    magnitude = math.floor(math.log10(price))
    return Instrument(
        symbol=symbol,
        base_asset=base_asset,
        quote_asset=quote_asset,
        price_decimals=max(0, 4 - magnitude),  # about five significant digits
        tick_units=1,
        quantity_decimals=min(3, max(0, magnitude + 1)),
        base_price=float(f"{price:.5g}"),
        daily_volatility=0.04 + 0.03 * float(draws[1]),
        daily_quote_volume=10 ** (7.5 + 1.5 * float(draws[2])),
    )


@dataclass(frozen=True)
class _DayPath:
    """Day-level state for one chunk of days: log price at each day's open and the day's volatility."""

    log_open: np.ndarray  # len = days + 1: the last entry is the next chunk's first open
    volatility: np.ndarray  # daily standard deviation of the log return, per day
    garch_variance: float  # state carried into the next chunk
    last_shock: float
    trend: int
    vol_regime: int


@lru_cache(maxsize=256)
def _day_path(symbol: str, chunk: int) -> _DayPath:
    """Days [chunk*_CHUNK_DAYS, (chunk+1)*_CHUNK_DAYS) since EPOCH_MS; each chunk continues the previous one."""
    spec = instrument(symbol)
    sigma = spec.daily_volatility
    anchor = math.log(spec.base_price)
    if chunk == 0:
        log_price, variance, shock, trend, vol_regime = anchor, sigma**2, 0.0, 1, 1
    else:
        previous = _day_path(symbol, chunk - 1)
        log_price = float(previous.log_open[-1])
        variance, shock = previous.garch_variance, previous.last_shock
        trend, vol_regime = previous.trend, previous.vol_regime
    rng = _generator(symbol, chunk, 1)
    switches = rng.random((_CHUNK_DAYS, 2)).tolist()
    shocks = (rng.standard_t(_SHOCK_DF, _CHUNK_DAYS) * math.sqrt((_SHOCK_DF - 2) / _SHOCK_DF)).tolist()
    omega = sigma**2 * (1 - _GARCH_ALPHA - _GARCH_BETA)
    log_open = [log_price]
    volatility = []
    for (trend_draw, vol_draw), z in zip(switches, shocks, strict=True):
        if trend_draw < _TREND_SWITCH:
            trend = int(trend_draw / _TREND_SWITCH * len(_TREND_DRIFT))
        if vol_draw < _VOL_SWITCH:
            vol_regime = int(vol_draw / _VOL_SWITCH * len(_VOL_LEVELS))
        variance = omega + _GARCH_ALPHA * shock**2 + _GARCH_BETA * variance
        shock = math.sqrt(variance) * z
        day_volatility = _VOL_LEVELS[vol_regime] * math.sqrt(variance)
        drift = _TREND_DRIFT[trend] * sigma - _MEAN_REVERSION * (log_price - anchor)
        log_price += drift + _VOL_LEVELS[vol_regime] * shock
        log_open.append(log_price)
        volatility.append(day_volatility)
    return _DayPath(
        log_open=np.array(log_open),
        volatility=np.array(volatility),
        garch_variance=variance,
        last_shock=shock,
        trend=trend,
        vol_regime=vol_regime,
    )


def _day_state(symbol: str, day: int) -> tuple[float, float, float]:
    """(log open of the day, log open of the next day, the day's volatility)."""
    path = _day_path(symbol, day // _CHUNK_DAYS)
    offset = day % _CHUNK_DAYS
    return float(path.log_open[offset]), float(path.log_open[offset + 1]), float(path.volatility[offset])


def _intraday_profiles() -> tuple[np.ndarray, np.ndarray]:
    """Per-minute volatility (mean square 1) and volume (mean 1) profiles of a UTC day.

    Busier around the US session and the Asian open, quiet in the European
    early morning, with a jolt at each hour's first minute (funding, bars
    closing on every chart).
    """
    hour = np.arange(MINUTES_PER_DAY) / 60.0
    volatility = (
        1.0
        + 0.7 * np.exp(-(((hour - 14.5) / 1.6) ** 2))
        + 0.3 * np.exp(-(((hour - 1.0) / 1.5) ** 2))
        - 0.3 * np.exp(-(((hour - 6.0) / 2.0) ** 2))
    )
    volatility[::60] *= 1.6
    volatility /= np.sqrt(np.mean(volatility**2))
    volume = volatility**1.3
    return volatility, volume / volume.mean()


_VOLATILITY_PROFILE, _VOLUME_PROFILE = _intraday_profiles()
_MEMORY_KERNEL = _INTRADAY_VOL_MEMORY ** np.arange(300)
_MEMORY_KERNEL /= np.sqrt(np.sum(_MEMORY_KERNEL**2))


@dataclass(frozen=True)
class Bars:
    """Candles as integer column arrays: prices in price units, quantities in lot steps."""

    open_time: np.ndarray
    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    volume: np.ndarray
    quote_volume: np.ndarray
    trades: np.ndarray
    taker_buy_volume: np.ndarray
    taker_buy_quote_volume: np.ndarray

    def __len__(self) -> int:
        return len(self.open_time)

    def slice(self, start: int, stop: int) -> Bars:
        return Bars(*(getattr(self, name)[start:stop] for name in _BAR_FIELDS))

    def aggregate(self, minutes_per_bar: int) -> Bars:
        """Bars of ``minutes_per_bar`` consecutive rows (the last may be partial), exactly."""
        if minutes_per_bar == 1:
            return self
        starts = np.arange(0, len(self), minutes_per_bar)
        ends = np.append(starts[1:], len(self)) - 1
        return Bars(
            open_time=self.open_time[starts],
            open=self.open[starts],
            high=np.maximum.reduceat(self.high, starts),
            low=np.minimum.reduceat(self.low, starts),
            close=self.close[ends],
            volume=np.add.reduceat(self.volume, starts),
            quote_volume=np.add.reduceat(self.quote_volume, starts),
            trades=np.add.reduceat(self.trades, starts),
            taker_buy_volume=np.add.reduceat(self.taker_buy_volume, starts),
            taker_buy_quote_volume=np.add.reduceat(self.taker_buy_quote_volume, starts),
        )


_BAR_FIELDS = tuple(Bars.__dataclass_fields__)


def _concat(parts: list[Bars]) -> Bars:
    return Bars(*(np.concatenate([getattr(part, name) for part in parts]) for name in _BAR_FIELDS))


def _price_ticks(spec: Instrument, log_price: float) -> int:
    """A day boundary's price in ticks, in scalar arithmetic so both days compute the same value."""
    return max(1, round(math.exp(log_price) / spec.tick_value))


def _minute_bars(symbol: str, day: int) -> Bars:
    """The 1440 one-minute candles of day ``day`` since EPOCH_MS."""
    spec = instrument(symbol)
    log_open, log_next, day_volatility = _day_state(symbol, day)
    rng = _generator(symbol, day, 2)
    n = MINUTES_PER_DAY

    memory = np.convolve(rng.standard_normal(n + len(_MEMORY_KERNEL) - 1), _MEMORY_KERNEL, "valid")
    minute_vol = _VOLATILITY_PROFILE * np.exp(_INTRADAY_VOL_OF_VOL * memory)
    minute_vol *= day_volatility / np.sqrt(np.sum(minute_vol**2))

    shocks = rng.standard_t(_SHOCK_DF, n) * math.sqrt((_SHOCK_DF - 2) / _SHOCK_DF)
    walk = np.cumsum(minute_vol * shocks)
    elapsed_variance = np.cumsum(minute_vol**2) / np.sum(minute_vol**2)
    bridge = walk - elapsed_variance * (walk[-1] - (log_next - log_open))
    returns = np.diff(bridge, prepend=0.0)

    close = np.maximum(1, np.rint(np.exp(log_open + bridge) / spec.tick_value)).astype(np.int64)
    close[-1] = _price_ticks(spec, log_next)  # exactly what the next day opens at
    open_ = np.concatenate([[_price_ticks(spec, log_open)], close[:-1]])
    price = close * spec.tick_value
    wick_up, wick_down = (
        np.rint(np.abs(rng.standard_normal(n)) * _WICK_SCALE * minute_vol * price / spec.tick_value).astype(
            np.int64
        )
        for _ in range(2)
    )
    high = np.maximum(open_, close) + wick_up
    low = np.maximum(1, np.minimum(open_, close) - wick_down)

    activity = np.abs(returns) / minute_vol
    day_move = abs(log_next - log_open) / day_volatility
    day_activity = day_volatility / spec.daily_volatility * (0.7 + 0.35 * min(day_move, 4.0))
    notional = (
        spec.daily_quote_volume
        / n
        * _VOLUME_PROFILE
        * day_activity
        * np.exp(0.8 * _INTRADAY_VOL_OF_VOL * memory)
        * (0.6 + 0.5 * np.minimum(activity, 6.0))
        * np.exp(_VOLUME_NOISE * rng.standard_normal(n) - _VOLUME_NOISE**2 / 2)
    )
    volume = np.maximum(1, np.rint(notional / price / spec.step_value)).astype(np.int64)
    trades = np.rint(notional / spec.average_trade_quote * np.exp(0.25 * rng.standard_normal(n)))
    trades = np.clip(trades, 1, volume).astype(np.int64)
    taker_share = np.clip(
        0.5 + 0.18 * np.tanh(returns / minute_vol) + 0.06 * rng.standard_normal(n), 0.03, 0.97
    )
    taker_buy = np.floor(volume * taker_share).astype(np.int64)
    typical = (high + low + 2 * close) // 4 * spec.tick_units  # a VWAP stand-in, inside [low, high]

    day_start = EPOCH_MS + day * DAY_MS
    return Bars(
        open_time=day_start + MINUTE_MS * np.arange(n, dtype=np.int64),
        open=open_ * spec.tick_units,
        high=high * spec.tick_units,
        low=low * spec.tick_units,
        close=close * spec.tick_units,
        volume=volume,
        quote_volume=typical * volume,
        trades=trades,
        taker_buy_volume=taker_buy,
        taker_buy_quote_volume=typical * taker_buy,
    )


@lru_cache(maxsize=256)
def _closed_minute_day(symbol: str, day: int) -> Bars:
    """A finished day's 1m candles (~115 kB): cached, a few hundred days at most."""
    return _minute_bars(symbol, day)


@lru_cache(maxsize=16384)
def _closed_coarse_day(symbol: str, day: int, step_ms: int) -> Bars:
    """A finished day's candles of 1h or longer (24 rows at most): cached, so long histories stay cheap."""
    return _minute_bars(symbol, day).aggregate(step_ms // MINUTE_MS)


def _day_bars(symbol: str, day: int, step_ms: int, now_ms: int) -> Bars:
    """A day's candles of one interval as of ``now_ms``: nothing after the candle containing now.

    The minute containing now already shows its final values, so a still-open
    candle is stable while its minute lasts (and tests can compare it).
    """
    day_start = EPOCH_MS + day * DAY_MS
    minutes_per_bar = step_ms // MINUTE_MS
    if day_start + DAY_MS > now_ms:
        minutes = (now_ms - day_start) // MINUTE_MS + 1
        return _minute_bars(symbol, day).slice(0, minutes).aggregate(minutes_per_bar)
    if step_ms >= HOUR_MS:
        return _closed_coarse_day(symbol, day, step_ms)
    return _closed_minute_day(symbol, day).aggregate(minutes_per_bar)


def candle_window(
    step_ms: int, start_ms: int | None, end_ms: int | None, limit: int, now_ms: int
) -> tuple[int, int] | None:
    """Open times (first, last) Binance would answer with, or None when no candle qualifies.

    startTime -> the first candle opening at or after it; endTime -> candles
    opening at or before it; with only endTime (or neither) the window ends at
    the last qualifying candle and reaches back ``limit`` candles. The newest
    candle is the one containing now.
    """
    latest = now_ms - now_ms % step_ms
    if end_ms is not None:
        latest = min(latest, end_ms - end_ms % step_ms)
    if start_ms is not None:
        first = max(EPOCH_MS, -(-start_ms // step_ms) * step_ms)
        last = min(latest, first + (limit - 1) * step_ms)
    else:
        last = latest
        first = max(EPOCH_MS, last - (limit - 1) * step_ms)
    return (first, last) if first <= last else None


def kline_bars(
    symbol: str,
    interval: str,
    *,
    start_ms: int | None = None,
    end_ms: int | None = None,
    limit: int = 500,
    now_ms: int,
) -> Bars:
    """The candles a /fapi/v1/klines request selects, as integer arrays."""
    if interval not in INTERVAL_MS:
        raise UnknownIntervalError(f"unknown interval {interval!r}; expected one of {', '.join(INTERVAL_MS)}")
    if not 1 <= limit <= MAX_LIMIT:
        raise ValueError(f"limit must be within 1..{MAX_LIMIT}, got {limit}")
    instrument(symbol)
    step = INTERVAL_MS[interval]
    window = candle_window(step, start_ms, end_ms, limit, now_ms)
    if window is None:
        return Bars(*(np.empty(0, dtype=np.int64) for _ in _BAR_FIELDS))
    first, last = window
    first_day, last_day = (first - EPOCH_MS) // DAY_MS, (last - EPOCH_MS) // DAY_MS
    days = [_day_bars(symbol, day, step, now_ms) for day in range(first_day, last_day + 1)]
    bars = _concat(days) if len(days) > 1 else days[0]
    offset = (first - int(bars.open_time[0])) // step
    return bars.slice(offset, offset + (last - first) // step + 1)


def klines(
    symbol: str,
    interval: str,
    *,
    start_ms: int | None = None,
    end_ms: int | None = None,
    limit: int = 500,
    now_ms: int,
) -> list[list]:
    """Rows exactly as GET /fapi/v1/klines returns them: 12 fields, prices and volumes as strings."""
    spec = instrument(symbol)
    bars = kline_bars(symbol, interval, start_ms=start_ms, end_ms=end_ms, limit=limit, now_ms=now_ms)
    step = INTERVAL_MS[interval]
    price, quantity, quote = spec.format_price, spec.format_quantity, spec.format_quote
    columns = zip(*(getattr(bars, name).tolist() for name in _BAR_FIELDS), strict=True)
    return [
        [
            open_time,
            price(open_),
            price(high),
            price(low),
            price(close),
            quantity(volume),
            open_time + step - 1,
            quote(quote_volume),
            trades,
            quantity(taker_volume),
            quote(taker_quote),
            "0",
        ]
        for open_time, open_, high, low, close, volume, quote_volume, trades, taker_volume, taker_quote in columns
    ]


# Funding: Binance's formula, F = P + clamp(I - P, -0.05 %, 0.05 %), capped.
FUNDING_INTERVAL_MS = 8 * HOUR_MS
FUNDING_TIMES_PER_DAY = DAY_MS // FUNDING_INTERVAL_MS
MAX_FUNDING_LIMIT = 1000
_FUNDING_INTEREST = 0.0001  # I: 0.03 % a day, per 8 h
_FUNDING_CLAMP = 0.0005
_FUNDING_CAP = 0.03  # the widest cap Binance publishes (fundingInfo)
_PREMIUM_TREND = 0.0004  # how far the day's move pushes the premium
_PREMIUM_NOISE = 0.00035
_MAX_STAMP_DELAY_MS = 20  # Binance stamps funding up to ~19 ms after the hour


@dataclass(frozen=True)
class Funding:
    """One funding event: its time, rate and mark price (price units)."""

    time_ms: int
    rate: float
    mark_units: int


@lru_cache(maxsize=16384)
def _funding_day(symbol: str, day: int) -> tuple[tuple[int, float], ...]:
    """The day's (stamp delay in ms, rate) of each funding time: its own draws, so any window agrees."""
    log_open, log_next, day_volatility = _day_state(symbol, day)
    rng = _generator(symbol, day, 3)
    noise = rng.standard_t(_SHOCK_DF, FUNDING_TIMES_PER_DAY) * math.sqrt((_SHOCK_DF - 2) / _SHOCK_DF)
    delays = rng.integers(0, _MAX_STAMP_DELAY_MS, FUNDING_TIMES_PER_DAY)
    trend = math.tanh((log_next - log_open) / day_volatility)
    premium = _FUNDING_INTEREST + _PREMIUM_TREND * trend + _PREMIUM_NOISE * noise
    funding = premium + np.clip(_FUNDING_INTEREST - premium, -_FUNDING_CLAMP, _FUNDING_CLAMP)
    rate = np.clip(funding, -_FUNDING_CAP, _FUNDING_CAP)
    return tuple((int(delay), round(float(value), 8)) for delay, value in zip(delays, rate, strict=True))


def _funding(symbol: str, index: int, now_ms: int) -> Funding:
    """The `index`-th funding event since EPOCH_MS (which must have happened by `now_ms`)."""
    day, slot = divmod(index, FUNDING_TIMES_PER_DAY)
    delay, rate = _funding_day(symbol, day)[slot]
    hour = slot * FUNDING_INTERVAL_MS // HOUR_MS
    mark = int(_day_bars(symbol, day, HOUR_MS, now_ms).open[hour])
    return Funding(EPOCH_MS + index * FUNDING_INTERVAL_MS + delay, rate, mark)


def funding_events(
    symbol: str, *, start_ms: int | None = None, end_ms: int | None = None, limit: int = 100, now_ms: int
) -> list[Funding]:
    """The funding events a /fapi/v1/fundingRate request selects, oldest first: times in [start, end] (both
    inclusive) that have passed by now; from startTime on when it is given, else the last `limit`."""
    if not 1 <= limit <= MAX_FUNDING_LIMIT:
        raise ValueError(f"limit must be within 1..{MAX_FUNDING_LIMIT}, got {limit}")
    instrument(symbol)
    latest = min(now_ms, end_ms) if end_ms is not None else now_ms
    if latest < EPOCH_MS:
        return []
    last_index = (latest - EPOCH_MS) // FUNDING_INTERVAL_MS
    if start_ms is not None:
        first_index = max(0, (start_ms - EPOCH_MS) // FUNDING_INTERVAL_MS)
        indices = range(first_index, min(last_index, first_index + limit) + 1)
    else:
        indices = range(max(0, last_index - limit), last_index + 1)
    events = [_funding(symbol, index, now_ms) for index in indices]
    chosen = [e for e in events if e.time_ms <= latest and (start_ms is None or e.time_ms >= start_ms)]
    return chosen[:limit] if start_ms is not None else chosen[-limit:]


def funding_rates(
    symbol: str, *, start_ms: int | None = None, end_ms: int | None = None, limit: int = 100, now_ms: int
) -> list[dict[str, object]]:
    """Items exactly as GET /fapi/v1/fundingRate returns them: rate and mark price as strings."""
    spec = instrument(symbol)
    return [
        {
            "symbol": symbol,
            "fundingTime": event.time_ms,
            "fundingRate": f"{event.rate:.8f}",
            "markPrice": spec.format_price(event.mark_units),
        }
        for event in funding_events(symbol, start_ms=start_ms, end_ms=end_ms, limit=limit, now_ms=now_ms)
    ]
