"""The built-in strategies, one per `kind` of config.yaml's `strategies:` entries."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass

import polars as pl

from coin_platform.indicators import ema, macd, rsi, sma
from coin_platform.strategies.base import (
    SignalRules,
    Strategy,
    crosses_above,
    crosses_below,
    feature_or,
    is_stored,
)

# The MACD periods of the stored macd/macd_signal/macd_hist features.
STORED_MACD_PERIODS = (12, 26, 9)


@dataclass(frozen=True, kw_only=True)
class RsiReversal(Strategy):
    """Mean reversion on RSI: buy the recovery from oversold, sell the fall from overbought.

    RSI crossing up through `oversold` enters long and exits short; crossing down
    through `overbought` exits long and enters short.
    """

    kind = "rsi_reversal"

    period: int = 14
    oversold: float = 30.0
    overbought: float = 70.0

    def check_params(self) -> None:
        self._check_period("period")
        self._check_number("oversold", above=0, below=100)
        self._check_number("overbought", above=0, below=100)
        self._check_less("oversold", "overbought")

    def indicators(self, columns: Collection[str]) -> dict[str, pl.Expr]:
        return {"rsi": feature_or(columns, f"rsi_{self.period}", rsi("close", self.period))}

    def rows_before(self, columns: Collection[str]) -> int | None:
        return 1 if is_stored(columns, f"rsi_{self.period}") else None  # the crossing's previous row

    def rules(self, line: Mapping[str, pl.Expr]) -> SignalRules:
        recovers = crosses_above(line["rsi"], self.oversold)
        falls = crosses_below(line["rsi"], self.overbought)
        return SignalRules(enter_long=recovers, exit_long=falls, enter_short=falls, exit_short=recovers)


@dataclass(frozen=True, kw_only=True)
class EmaCrossover(Strategy):
    """Trend following: long while the fast EMA of close is above the slow one, short while below.

    Fast crossing above slow enters long and exits short; crossing below does the reverse.
    """

    kind = "ema_crossover"

    fast: int = 20
    slow: int = 50

    def check_params(self) -> None:
        self._check_period("fast")
        self._check_period("slow")
        self._check_less("fast", "slow")

    def indicators(self, columns: Collection[str]) -> dict[str, pl.Expr]:
        return {
            "fast": feature_or(columns, f"ema_{self.fast}", ema("close", self.fast)),
            "slow": feature_or(columns, f"ema_{self.slow}", ema("close", self.slow)),
        }

    def rows_before(self, columns: Collection[str]) -> int | None:
        return 1 if is_stored(columns, f"ema_{self.fast}", f"ema_{self.slow}") else None

    def rules(self, line: Mapping[str, pl.Expr]) -> SignalRules:
        up = crosses_above(line["fast"], line["slow"])
        down = crosses_below(line["fast"], line["slow"])
        return SignalRules(enter_long=up, exit_long=down, enter_short=down, exit_short=up)


@dataclass(frozen=True, kw_only=True)
class MacdCrossover(Strategy):
    """Momentum: the MACD line crossing its signal line; above enters long / exits short, below the reverse.

    The MACD line crosses its signal line exactly when the histogram (TA-Lib's
    macd - signal, whose sign is that of the comparison) crosses zero, so one
    column carries the rule and the stored `macd_hist` is reused for 12/26/9.
    """

    kind = "macd_crossover"

    fast: int = 12
    slow: int = 26
    signal: int = 9

    def check_params(self) -> None:
        self._check_period("fast")
        self._check_period("slow")
        self._check_period("signal", minimum=1)
        self._check_less("fast", "slow")

    def indicators(self, columns: Collection[str]) -> dict[str, pl.Expr]:
        computed = macd("close", self.fast, self.slow, self.signal).struct.field("hist")
        stored = (self.fast, self.slow, self.signal) == STORED_MACD_PERIODS
        return {"hist": feature_or(columns, "macd_hist", computed) if stored else computed}

    def rows_before(self, columns: Collection[str]) -> int | None:
        stored = (self.fast, self.slow, self.signal) == STORED_MACD_PERIODS and is_stored(columns, "macd_hist")
        return 1 if stored else None

    def rules(self, line: Mapping[str, pl.Expr]) -> SignalRules:
        up = crosses_above(line["hist"], 0.0)
        down = crosses_below(line["hist"], 0.0)
        return SignalRules(enter_long=up, exit_long=down, enter_short=down, exit_short=up)


@dataclass(frozen=True, kw_only=True)
class VolumeZoneBreakout(Strategy):
    """Breakout from the high-volume price zone, confirmed by a volume surge.

    The zone of a row (`zone_low`, `zone_high` from the features) already contains
    that row's candle, so each candle is compared with the zone of the row before:

    * a close *breaks above* the zone when it is > the previous row's zone_high
      while the previous close was <= the zone_high before it (a close equal to the
      zone top, often the window's high, is no breakout); *breaks below* mirrors
      this with zone_low;
    * a volume *surge* is volume > volume_ratio x SMA(volume, volume_window) of the
      previous rows, and above the previous candle's volume.

    enter_long = breaks above with a surge;  exit_long = breaks below.
    enter_short = breaks below with a surge; exit_short = breaks above.
    Exits need no surge: leaving the zone against the position is reason enough.
    """

    kind = "volume_zone_breakout"

    volume_window: int = 20
    volume_ratio: float = 1.5

    def check_params(self) -> None:
        self._check_period("volume_window")
        self._check_number("volume_ratio", above=0)

    def indicators(self, columns: Collection[str]) -> dict[str, pl.Expr]:
        return {"volume_average": sma("volume", self.volume_window)}

    def rows_before(self, columns: Collection[str]) -> int | None:
        # The previous row's SMA reads `volume_window` rows back; the zone tests two.
        return max(self.volume_window, 2) if is_stored(columns, "zone_low", "zone_high") else None

    def rules(self, line: Mapping[str, pl.Expr]) -> SignalRules:
        close, volume = pl.col("close"), pl.col("volume")
        zone_top, zone_bottom = pl.col("zone_high").shift(1), pl.col("zone_low").shift(1)
        breaks_above = (close.shift(1) <= zone_top.shift(1)) & (close > zone_top)
        breaks_below = (close.shift(1) >= zone_bottom.shift(1)) & (close < zone_bottom)
        surge = (volume > self.volume_ratio * line["volume_average"].shift(1)) & (volume > volume.shift(1))
        return SignalRules(
            enter_long=breaks_above & surge,
            exit_long=breaks_below,
            enter_short=breaks_below & surge,
            exit_short=breaks_above,
        )
