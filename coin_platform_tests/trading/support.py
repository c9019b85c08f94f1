"""Decisions, a price tape and a process entry point shared by the trading tests."""

from __future__ import annotations

import datetime as dt

from coin_platform.core.signals import SIDE_OF_SIGNAL
from coin_platform.events.schemas import Decision, candidate_id
from coin_platform.settings import TradingConfig
from coin_platform.trading.execution import TradingScope, execute_decision
from coin_platform.trading.paper import PaperBroker
from coin_platform.trading.store import TradingStore

NOW = dt.datetime(2024, 3, 1, 12, 0, tzinfo=dt.UTC)
MINUTE = dt.timedelta(minutes=1)
# What the trading tests' platform is configured to trade: make_decision's strategy on 1m candles.
SCOPE = TradingScope(
    symbols=frozenset({"BTCUSDT", "ETHUSDT", "SOLUSDT"}), strategies=frozenset({("ema_crossover", "1m")})
)


def make_decision(
    symbol: str = "BTCUSDT",
    signal: str = "enter_long",
    price: float = 50_000.0,
    *,
    candle_close: dt.datetime = NOW - dt.timedelta(milliseconds=1),
    action: str | None = None,
    strategy: str = "ema_crossover",
    interval: str = "1m",
) -> Decision:
    """A decision whose id follows from its symbol, signal and candle, as inference makes them."""
    open_time = candle_close - MINUTE + dt.timedelta(milliseconds=1)
    return Decision(
        candidate_id=candidate_id(strategy, symbol, interval, open_time, signal),
        strategy=strategy,
        symbol=symbol,
        interval=interval,
        signal=signal,
        action=action or SIDE_OF_SIGNAL[signal],
        confidence=0.8,
        model_version="test-model",
        price=price,
        candle_close_time=candle_close,
        decided_at=candle_close + dt.timedelta(seconds=2),
    )


class PriceTape:
    """Prices per symbol by time; answers with the first one at or after the asked time, like the next candle open."""

    def __init__(self, prices: dict[str, list[tuple[dt.datetime, float]]]) -> None:
        self.prices = {symbol: sorted(points) for symbol, points in prices.items()}
        self.asked: list[tuple[str, dt.datetime]] = []

    def __call__(self, symbol: str, at: dt.datetime) -> tuple[float, dt.datetime] | None:
        self.asked.append((symbol, at))
        for time, price in self.prices.get(symbol, []):
            if time >= at:
                return price, time
        return None


def paper_broker(store: TradingStore, tape: PriceTape, *, at: dt.datetime = NOW) -> PaperBroker:
    config = TradingConfig()
    return PaperBroker(store, tape, fee_rate=config.fee_rate, slippage_rate=config.slippage_rate, clock=lambda: at)


def execute_in_process(path: str, decision_json: bytes, price: float, barrier, results) -> None:
    """Spawned-process entry: execute one decision on the shared store file once every worker is ready."""
    try:
        decision = Decision.from_json(decision_json)
        store = TradingStore(path)
        tape = PriceTape({decision.symbol: [(NOW, price)]})
        barrier.wait(timeout=60)
        execution = execute_decision(
            decision, store=store, broker=paper_broker(store, tape), config=TradingConfig(), scope=SCOPE, now=NOW
        )
        results.put((decision.symbol, execution.status))
    except Exception as exc:  # noqa: BLE001 - reported to the parent
        results.put((decision.symbol if "decision" in locals() else "?", f"{type(exc).__name__}: {exc}"))


def hold_store_lock(path: str, holding, release) -> None:
    """Spawned-process entry: keep the store open (and locked) until told to let go."""
    with TradingStore(path).transaction():
        holding.set()
        release.wait(timeout=60)
