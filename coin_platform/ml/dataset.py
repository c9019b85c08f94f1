"""The training frame (dbt's `mart_training_set`): its contract, the model's inputs, walk-forward splits.

One row per candidate: who fired it (strategy, symbol, interval, signal, side), the candle it fired
on (open_time, close_time, price = its close, the candle's features), and what followed: the close
`horizon` candles later (horizon_close_time, exit_price), the side-adjusted forward_return and
`label` = the forward return cleared the round-trip fee.

`model_inputs` turns those columns into the model's feature vector, for training frames and for a
live candidate alike (`candidate_frame`), so both are scored by the same code. Price-like features
become ratios to the candle's close, so a model trained on one price level scores another.

Splits are walk-forward in time and purged: a training row is kept only when its label was known
(its horizon candle had closed) before the test window begins, and it fired at least `purge`
earlier; rows are never shuffled across time.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass

import polars as pl

from coin_platform.core.signals import SIGNALS
from coin_platform.core.time import UTC_MS
from coin_platform.events.schemas import Candidate
from coin_platform.features import FEATURE_SCHEMA

# The candle's feature columns, as mart_training_set carries them (every feature but open_time).
FEATURE_NAMES = tuple(name for name in FEATURE_SCHEMA if name != "open_time")
SIDES = ("long", "short")
# Candidate.side (the order side) -> the training set's side.
SIDE_OF_ORDER = {"buy": "long", "sell": "short"}

TRAINING_SCHEMA: dict[str, pl.DataType] = {
    "candidate_id": pl.String(),
    "strategy": pl.String(),
    "symbol": pl.String(),
    "interval": pl.String(),
    "signal": pl.String(),
    "side": pl.String(),
    "open_time": UTC_MS,
    "close_time": UTC_MS,
    "price": pl.Float64(),
    **{name: pl.Float64() for name in FEATURE_NAMES},
    "horizon_close_time": UTC_MS,
    "exit_price": pl.Float64(),
    "forward_return": pl.Float64(),
    "label": pl.Boolean(),
}
_NEVER_NULL = (
    "candidate_id",
    "strategy",
    "symbol",
    "interval",
    "signal",
    "side",
    "open_time",
    "close_time",
    "price",
    "horizon_close_time",
    "exit_price",
    "forward_return",
    "label",
)

# Features that are price levels (-> close / level - 1) or price differences (-> difference / close).
_PRICE_LEVELS = ("ema_20", "ema_50", "bb_upper", "bb_middle", "bb_lower", "zone_low", "zone_high")
_PRICE_DIFFERENCES = ("macd", "macd_signal", "macd_hist", "atr_14")
# The close is the price itself (a ratio would be 1); a candle's volume is in the symbol's own units.
_NOT_COMPARABLE = ("close", "volume")
CATEGORICAL_INPUTS = ("signal", "side")


class TrainingFrameError(ValueError):
    """A training frame breaks the mart_training_set contract; the message names the column."""


def validate_training_frame(frame: pl.DataFrame) -> pl.DataFrame:
    """`frame` cast to TRAINING_SCHEMA (column order kept), sorted by close_time, or a TrainingFrameError."""
    missing = [name for name in TRAINING_SCHEMA if name not in frame.columns]
    if missing:
        raise TrainingFrameError(f"training frame lacks column(s) {missing}")
    columns = []
    for name, dtype in TRAINING_SCHEMA.items():
        column = frame.get_column(name)
        if isinstance(dtype, pl.Datetime):
            if not isinstance(column.dtype, pl.Datetime) or column.dtype.time_zone is None:
                raise TrainingFrameError(f"column {name} must be a UTC timestamp, got {column.dtype}")
            columns.append(column.dt.convert_time_zone("UTC").cast(dtype))
            continue
        try:
            columns.append(column.cast(dtype, strict=True))
        except pl.exceptions.InvalidOperationError:
            raise TrainingFrameError(f"column {name} must be {dtype}, got {column.dtype}") from None
    typed = pl.DataFrame(columns)
    for name in _NEVER_NULL:
        if nulls := typed.get_column(name).null_count():
            raise TrainingFrameError(f"column {name} has {nulls} null value(s)")
    _require_values(typed, "signal", SIGNALS)
    _require_values(typed, "side", SIDES)
    if (bad := typed.filter(pl.col("price") <= 0)).height:
        raise TrainingFrameError(f"column price must be > 0, {bad.height} row(s) are not")
    if (bad := typed.filter(pl.col("horizon_close_time") <= pl.col("close_time"))).height:
        raise TrainingFrameError(f"column horizon_close_time must be after close_time, {bad.height} row(s) are not")
    if (twice := typed.filter(pl.col("candidate_id").is_duplicated())).height:
        raise TrainingFrameError(f"column candidate_id repeats {twice['candidate_id'][0]!r}")
    if typed.is_empty():
        raise TrainingFrameError("training frame has no rows")
    return typed.sort("close_time", "candidate_id")


def _require_values(frame: pl.DataFrame, name: str, allowed: tuple[str, ...]) -> None:
    unknown = sorted(set(frame.get_column(name).unique().to_list()) - set(allowed))
    if unknown:
        raise TrainingFrameError(f"column {name} has value(s) {unknown}; allowed are {list(allowed)}")


def model_inputs(frame: pl.DataFrame) -> pl.DataFrame:
    """The model's feature vector of each row: the categorical inputs, then the features scaled by price.

    A feature the frame lacks, or a null one (an indicator in its warm-up), is null: the model treats it
    as missing."""
    close = pl.col("price")
    scaled = []
    for name in FEATURE_NAMES:
        value = pl.col(name) if name in frame.columns else pl.lit(None, pl.Float64)
        if name in _NOT_COMPARABLE:
            continue
        if name in _PRICE_LEVELS:
            scaled.append((value / close - 1.0).alias(f"{name}_to_price"))
        elif name in _PRICE_DIFFERENCES:
            scaled.append((value / close).alias(f"{name}_to_price"))
        else:
            scaled.append(value.cast(pl.Float64).alias(name))
    return frame.select(*CATEGORICAL_INPUTS, *scaled).with_columns(pl.selectors.float().fill_nan(None))


def model_input_names() -> list[str]:
    """The column names of `model_inputs`, in order (stored in a model's record)."""
    return model_inputs(pl.DataFrame(schema=TRAINING_SCHEMA)).columns


def candidate_frame(candidate: Candidate, features: dict[str, float | None]) -> pl.DataFrame:
    """A live candidate as a one-row frame of the training set's candle columns, for `model_inputs`."""
    values = {name: features.get(name) for name in FEATURE_NAMES}
    values["close"] = candidate.price
    return pl.DataFrame(
        {
            "signal": [candidate.signal],
            "side": [SIDE_OF_ORDER[candidate.side]],
            "price": [candidate.price],
            **{name: [value] for name, value in values.items()},
        },
        schema={"signal": pl.String, "side": pl.String, "price": pl.Float64, **dict.fromkeys(values, pl.Float64)},
    )


def label_horizon(frame: pl.DataFrame) -> dt.timedelta:
    """The longest time from a row's candle close to its horizon candle's close."""
    longest = frame.select((pl.col("horizon_close_time") - pl.col("close_time")).max()).item()
    return longest if longest is not None else dt.timedelta(0)


def fingerprint(frame: pl.DataFrame) -> str:
    """sha256 of the frame's Arrow IPC stream (uncompressed): the same rows give the same fingerprint."""
    sink = pl.DataFrame(frame).write_ipc_stream(None, compression="uncompressed")
    return hashlib.sha256(sink.getvalue()).hexdigest()


@dataclass(frozen=True)
class Split:
    """A training and a test window of one walk-forward fold; `train` holds only purged rows."""

    train: pl.DataFrame
    test: pl.DataFrame
    test_start: dt.datetime
    test_end: dt.datetime
    purge: dt.timedelta

    @property
    def train_window(self) -> tuple[dt.datetime, dt.datetime]:
        return self.train["close_time"].min(), self.train["close_time"].max()  # type: ignore[return-value]


def walk_forward_splits(
    frame: pl.DataFrame, *, folds: int = 3, test_fraction: float = 0.25, purge: dt.timedelta | None = None
) -> list[Split]:
    """`folds` consecutive test windows covering the last `test_fraction` of the rows (by close time), each
    trained on the purged rows before it. The last split's test window is the held-out window.

    `purge` defaults to the frame's label horizon and may not be shorter: a shorter gap would let a
    training label see prices inside the test window.
    """
    if folds < 1:
        raise ValueError(f"folds must be at least 1, got {folds}")
    if not 0 < test_fraction < 1:
        raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction}")
    frame = validate_training_frame(frame)
    horizon = label_horizon(frame)
    purge = horizon if purge is None else purge
    if purge < horizon:
        raise ValueError(f"purge {purge} is shorter than the label horizon {horizon}")
    times = frame["close_time"]
    first_test = int(frame.height * (1 - test_fraction))
    bounds = [first_test + (frame.height - first_test) * k // folds for k in range(folds + 1)]
    splits = []
    for lo, hi in zip(bounds, bounds[1:], strict=False):
        if hi <= lo:
            raise ValueError(f"{frame.height} rows are too few for {folds} test windows")
        test_start, test_end = times[lo], times[hi - 1]
        test = frame.slice(lo, hi - lo)
        train = frame.filter((pl.col("horizon_close_time") < test_start) & (pl.col("close_time") <= test_start - purge))
        if train.is_empty():
            raise ValueError(f"no training rows end before the test window starting {test_start} (purge {purge})")
        splits.append(Split(train, test, test_start, test_end, purge))
    return splits
