"""A backtest of the whole live decision path, through the very code that trades live.

Every closed candle of the range goes where a live one goes:

1. features by `compute_features` (the feature assets' code) over the candles given;
2. candidates by `candidates_from_features` (candidate detection's code), same ids;
3. a decision by the scorer trade_job uses (`live_scorer`: the rule scorer and
   `inference.min_confidence` today), decided `order_delay` after the candle closed;
4. `execute_decision` (trade_job's order step: order-time checks, the risk guard with its notional and
   quantity limits, cooldown, daily loss limit and kill switch, and the fixed `order_notional_usdt`
   sizing), against an in-memory `TradingStore` and the `PaperBroker`.

The paper broker fills at the price its source gives when the order reaches the market. Here
that source is the open of the candle the order time falls in, which for an `order_delay`
shorter than the interval is the next candle after the signal: the engine's convention (fill at
bar t+1's open) with the paper broker's slippage and fee. Live, the paper broker fills at the
last trade price when the order arrives, some seconds into that candle: within its low..high.
That is the documented difference `backtest/parity.py` allows.

The paper broker charges no funding, so neither does this path. Candles are decided in time
order, and within a candle in the order detection publishes them (symbol, strategy, signal).
Hold decisions place nothing and touch no state, so they are not sent to execution.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import polars as pl

from coin_platform.core.intervals import interval_ms, normalize_interval
from coin_platform.core.time import UTC_MS
from coin_platform.events.candidates import candidate_from_row, signal_candidate_rows
from coin_platform.events.schemas import candidate_id, decision_id
from coin_platform.features import compute_features
from coin_platform.ml.scorers import RuleScorer, live_scorer
from coin_platform.settings import PlatformConfig
from coin_platform.strategies import Strategy
from coin_platform.trading.execution import TradingScope, execute_decision
from coin_platform.trading.paper import PaperBroker
from coin_platform.trading.store import TradingStore

# Between a candle's close and its order reaching the market, live: detection, inference and the
# order run. Well inside a 1m candle, so the fill is at the next candle's open.
DEFAULT_ORDER_DELAY = dt.timedelta(seconds=10)


@dataclass(frozen=True)
class DecisionPathRun:
    """What the live path would have done over the candles: every decision, execution, order and fill."""

    interval: str  # the finest interval given: fills are priced on its candles
    candles: pl.DataFrame  # symbol, open_time, OHLCV of that interval
    decisions: (
        pl.DataFrame
    )  # decision_id, candidate_id, symbol, strategy, interval, signal, open_time, action, confidence
    executions: pl.DataFrame  # decision_id, status, reason
    orders: pl.DataFrame  # the in-memory trading store's orders table
    fills: pl.DataFrame  # ... and its fills


_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


class _NextOpen:
    """The paper broker's price source over stored candles: the open of the candle `at` falls in."""

    def __init__(self, candles: pl.DataFrame, interval: str) -> None:
        self._step_ms = interval_ms(interval)
        self._bars: dict[str, tuple[np.ndarray, np.ndarray]] = {
            str(symbol): (bars["open_time"].dt.epoch("ms").to_numpy(), bars["open"].to_numpy())
            for (symbol,), bars in candles.partition_by("symbol", as_dict=True, maintain_order=True).items()
        }

    def __call__(self, symbol: str, at: dt.datetime) -> tuple[float, dt.datetime] | None:
        if symbol not in self._bars:
            return None
        times, opens = self._bars[symbol]
        at_ms = (at - _EPOCH) // dt.timedelta(milliseconds=1)
        index = int(np.searchsorted(times, at_ms, side="right")) - 1
        if index < 0 or at_ms >= times[index] + self._step_ms:
            return None  # before the first candle, after the last, or in a gap
        return float(opens[index]), dt.datetime.fromtimestamp(times[index] / 1000, dt.UTC)


def run_decision_path(
    candles: Mapping[str, pl.DataFrame],
    strategies: Sequence[Strategy],
    config: PlatformConfig,
    *,
    scorer: RuleScorer | None = None,
    order_delay: dt.timedelta = DEFAULT_ORDER_DELAY,
    start: dt.datetime | None = None,
    decision_times: Mapping[str, dt.datetime] | None = None,
    store: TradingStore | None = None,
) -> DecisionPathRun:
    """Decide and execute every candidate of `strategies` as the live path would with `config`.

    `candles` maps an interval to its candles (symbol, open_time, OHLCV, time-sorted per symbol); each
    strategy is evaluated on the intervals it evaluates live, and all of them trade one account, in
    the order of their decision times. Fills are priced on the finest interval given. `store`
    (default: a fresh in-memory one) is the ledger.

    Only candles opening at or after `start` trade; the earlier ones are the indicators' history.
    A decision is made and executed `order_delay` after its candle closed, or at `decision_times[decision id]`
    when given (parity replays the moments the live path acted at, so cooldowns elapse alike).
    """
    if not candles:
        raise ValueError("no candles given: pass {interval: candles}")
    bars = {normalize_interval(interval): _bars(frame) for interval, frame in candles.items()}
    finest = min(bars, key=interval_ms)
    if order_delay < dt.timedelta(0) or order_delay >= dt.timedelta(milliseconds=interval_ms(finest)):
        raise ValueError(f"order_delay must be within 0 and one {finest} candle, got {order_delay}")
    scorer = scorer or live_scorer(config)
    store = store or TradingStore.in_memory()
    trading = config.trading
    broker = PaperBroker(
        store, _NextOpen(bars[finest], finest), fee_rate=trading.fee_rate, slippage_rate=trading.slippage_rate
    )
    scope = TradingScope.from_config(config)
    decision_times = decision_times or {}
    sources = [source for interval, frame in bars.items() for source in _candidate_rows(frame, strategies, interval)]
    decisions: dict[str, list] = {name: [] for name in _DECISION_SCHEMA}
    executions: dict[str, list] = {"decision_id": [], "status": [], "reason": []}
    for now, index, row in _in_decision_order(sources, start, order_delay, decision_times):
        source = sources[index]
        candidate = candidate_from_row(
            source.rows.row(row, named=True), symbol=source.symbol, interval=source.interval, detected_at=now
        )
        decision = scorer.decide(candidate, candidate.features, now)
        for name, value in (
            ("decision_id", decision.id),
            ("candidate_id", candidate.id),
            ("symbol", candidate.symbol),
            ("strategy", candidate.strategy),
            ("interval", candidate.interval),
            ("signal", candidate.signal),
            ("open_time", candidate.open_time),
            ("action", decision.action),
            ("confidence", decision.confidence),
        ):
            decisions[name].append(value)
        if decision.action == "hold":
            continue
        broker.clock = lambda now=now: now
        execution = execute_decision(decision, store=store, broker=broker, config=trading, scope=scope, now=now)
        for name, value in (("decision_id", decision.id), ("status", execution.status), ("reason", execution.reason)):
            executions[name].append(value)
    return DecisionPathRun(
        interval=finest,
        candles=bars[finest],
        decisions=pl.DataFrame(decisions, schema=_DECISION_SCHEMA),
        executions=pl.DataFrame(
            executions, schema={"decision_id": pl.String, "status": pl.String, "reason": pl.String}
        ),
        orders=store.orders(),
        fills=store.fills(),
    )


_DECISION_SCHEMA = {
    "decision_id": pl.String,
    "candidate_id": pl.String,
    "symbol": pl.String,
    "strategy": pl.String,
    "interval": pl.String,
    "signal": pl.String,
    "open_time": UTC_MS,
    "action": pl.String,
    "confidence": pl.Float64,
}


def _bars(candles: pl.DataFrame) -> pl.DataFrame:
    missing = {"symbol", "open_time", "open", "high", "low", "close", "volume"} - set(candles.columns)
    if missing:
        raise ValueError(f"candles lack the columns {sorted(missing)}")
    return candles.select(
        "symbol",
        pl.col("open_time").cast(UTC_MS),
        *[pl.col(c).cast(pl.Float64) for c in ("open", "high", "low", "close", "volume")],
    ).sort("symbol", "open_time", maintain_order=True)


def decision_candles(candles: Mapping[str, pl.DataFrame], strategies: Sequence[Strategy]) -> dict[str, dt.datetime]:
    """Decision id -> the open time of its candle, for every candidate of `strategies` on `candles` (by interval)."""
    return {
        _decision_id(source, row): open_time
        for interval, frame in candles.items()
        for source in _candidate_rows(_bars(frame), strategies, normalize_interval(interval))
        for row, open_time in enumerate(source.rows["open_time"])
    }


@dataclass(frozen=True)
class _CandidateRows:
    """One symbol's candidates on one interval, as rows (a Candidate is made only when it is decided)."""

    symbol: str
    interval: str
    rows: pl.DataFrame


def _candidate_rows(bars: pl.DataFrame, strategies: Sequence[Strategy], interval: str) -> list[_CandidateRows]:
    wanted = [s for s in strategies if not s.intervals or interval in s.intervals]
    return [
        _CandidateRows(
            str(symbol), interval, signal_candidate_rows(wanted, compute_features(symbol_bars.drop("symbol"), interval))
        )
        for (symbol,), symbol_bars in bars.partition_by("symbol", as_dict=True, maintain_order=True).items()
    ]


def _decision_id(source: _CandidateRows, row: int) -> str:
    strategy, signal, open_time = (source.rows[column][row] for column in ("strategy", "signal", "open_time"))
    return decision_id(candidate_id(strategy, source.symbol, source.interval, open_time, signal))


def _in_decision_order(
    sources: Sequence[_CandidateRows],
    start: dt.datetime | None,
    order_delay: dt.timedelta,
    decision_times: Mapping[str, dt.datetime],
) -> list[tuple[dt.datetime, int, int]]:
    """(decision time, source, row) of every candidate from `start` on, in the order the live path meets
    them: by decision time, then symbol, strategy and signal."""
    keyed = []
    for index, source in enumerate(sources):
        closes = dt.timedelta(milliseconds=interval_ms(source.interval) - 1) + order_delay
        columns = (source.rows[c].to_list() for c in ("open_time", "strategy", "signal"))
        for row, (open_time, strategy, signal) in enumerate(zip(*columns, strict=True)):
            if start is not None and open_time < start:
                continue
            now = decision_times.get(_decision_id(source, row)) if decision_times else None
            keyed.append((now or open_time + closes, source.symbol, strategy, signal, index, row))
    keyed.sort()
    return [(now, index, row) for now, _, _, _, index, row in keyed]
