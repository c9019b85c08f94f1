"""A backtest of the whole live decision path, through the very code that trades live.

Every closed candle of the range goes where a live one goes:

1. features by `compute_features` (the feature assets' code) over the candles given;
2. candidates by `candidates_from_features` (candidate detection's code), same ids;
3. a decision by the scorer inference_job uses (`live_scorer`: the rule scorer and
   `inference.min_confidence` today), decided `order_delay` after the candle closed;
4. `execute_decision` (order_job's code: order-time checks, the risk guard with its notional and
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

import bisect
import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import polars as pl

from coin_platform.core.intervals import interval_ms, normalize_interval
from coin_platform.core.time import UTC_MS
from coin_platform.events.candidates import candidates_from_features
from coin_platform.events.schemas import Candidate, decision_id
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


class _NextOpen:
    """The paper broker's price source over stored candles: the open of the candle `at` falls in."""

    def __init__(self, candles: pl.DataFrame, interval: str) -> None:
        self._step = dt.timedelta(milliseconds=interval_ms(interval))
        self._bars: dict[str, tuple[list[dt.datetime], list[float]]] = {}
        for (symbol,), bars in candles.partition_by("symbol", as_dict=True, maintain_order=True).items():
            self._bars[symbol] = (bars["open_time"].to_list(), bars["open"].to_list())

    def __call__(self, symbol: str, at: dt.datetime) -> tuple[float, dt.datetime] | None:
        times, opens = self._bars.get(symbol, ([], []))
        index = bisect.bisect_right(times, at) - 1
        if index < 0 or at >= times[index] + self._step:
            return None  # before the first candle, after the last, or in a gap
        return opens[index], times[index]


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
    timed = [
        (decision_times.get(decision_id(candidate.id), candidate.close_time + order_delay), candidate)
        for interval, frame in bars.items()
        for candidate in _candidates(frame, strategies, interval)
        if start is None or candidate.open_time >= start
    ]
    timed.sort(key=lambda item: (item[0], item[1].symbol, item[1].strategy, item[1].signal))
    decisions, executions = [], []
    for now, candidate in timed:
        decision = scorer.decide(candidate, candidate.features, now)
        decisions.append(
            {
                "decision_id": decision.id,
                "candidate_id": candidate.id,
                "symbol": candidate.symbol,
                "strategy": candidate.strategy,
                "interval": candidate.interval,
                "signal": candidate.signal,
                "open_time": candidate.open_time,
                "action": decision.action,
                "confidence": decision.confidence,
            }
        )
        if decision.action == "hold":
            continue
        broker.clock = lambda now=now: now
        execution = execute_decision(decision, store=store, broker=broker, config=trading, scope=scope, now=now)
        executions.append({"decision_id": decision.id, "status": execution.status, "reason": execution.reason})
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
        decision_id(candidate.id): candidate.open_time
        for interval, frame in candles.items()
        for candidate in _candidates(_bars(frame), strategies, normalize_interval(interval))
    }


def _candidates(bars: pl.DataFrame, strategies: Sequence[Strategy], interval: str) -> list[Candidate]:
    """Every symbol's candidates, in the order the live path meets them."""
    wanted = [s for s in strategies if not s.intervals or interval in s.intervals]
    found: list[Candidate] = []
    for (symbol,), symbol_bars in bars.partition_by("symbol", as_dict=True, maintain_order=True).items():
        features = compute_features(symbol_bars.drop("symbol"), interval)
        detected_at = symbol_bars["open_time"][-1]
        found += candidates_from_features(
            wanted, features, symbol=str(symbol), interval=interval, detected_at=detected_at
        )
    return sorted(found, key=lambda c: (c.close_time, c.symbol, c.strategy, c.signal))
