"""The training frame contract and walk-forward splits with a purge gap."""

import datetime as dt

import polars as pl
import pytest

from coin_platform.events.candidates import CARRIED_FEATURES
from coin_platform.events.schemas import Candidate
from coin_platform.local.replay.training import replay_training_frame
from coin_platform.ml.dataset import (
    TrainingFrameError,
    candidate_frame,
    fingerprint,
    label_horizon,
    model_inputs,
    validate_training_frame,
    walk_forward_splits,
)


@pytest.fixture(scope="module")
def frame() -> pl.DataFrame:
    return validate_training_frame(replay_training_frame(days=3))


def test_a_frame_missing_a_column_is_refused_naming_it(frame):
    with pytest.raises(TrainingFrameError, match=r"lacks column\(s\) \['rsi_14'\]"):
        validate_training_frame(frame.drop("rsi_14"))


def test_a_frame_with_a_wrong_value_or_type_is_refused_naming_the_column(frame):
    with pytest.raises(TrainingFrameError, match="column side has value.*'buy'"):
        validate_training_frame(frame.with_columns(side=pl.lit("buy")))
    with pytest.raises(TrainingFrameError, match="column close_time must be a UTC timestamp"):
        validate_training_frame(frame.with_columns(pl.col("close_time").dt.replace_time_zone(None)))
    with pytest.raises(TrainingFrameError, match="column forward_return has 1 null"):
        validate_training_frame(frame.with_columns(forward_return=pl.when(pl.int_range(pl.len()) == 0)
                                                   .then(None).otherwise(pl.col("forward_return"))))
    with pytest.raises(TrainingFrameError, match="column horizon_close_time must be after close_time"):
        validate_training_frame(frame.with_columns(horizon_close_time=pl.col("close_time")))


def test_the_horizon_is_read_from_the_frame(frame):
    assert label_horizon(frame) == dt.timedelta(minutes=15)


def test_splits_keep_time_order_and_no_training_horizon_reaches_into_its_test_window(frame):
    splits = walk_forward_splits(frame, folds=3)
    assert len(splits) == 3
    for split in splits:
        assert split.train["horizon_close_time"].max() < split.test_start
        assert split.train["close_time"].max() <= split.test_start - split.purge
        assert split.test["close_time"].min() == split.test_start
        assert split.test["close_time"].is_sorted()
    starts = [s.test_start for s in splits]
    assert starts == sorted(starts)
    # the folds' test windows are consecutive and do not overlap
    for before, after in zip(splits, splits[1:], strict=False):
        assert before.test_end <= after.test_start
    # the purge removes rows a plain time cut would have kept: their labels look into the test window
    last = splits[-1]
    unpurged = frame.filter(pl.col("close_time") < last.test_start)
    leaking = unpurged.filter(pl.col("horizon_close_time") >= last.test_start)
    assert leaking.height > 0 and last.train.height == unpurged.height - leaking.height


def test_a_purge_shorter_than_the_horizon_is_refused(frame):
    with pytest.raises(ValueError, match="shorter than the label horizon"):
        walk_forward_splits(frame, purge=dt.timedelta(minutes=5))


def test_a_live_candidate_gets_the_feature_vector_its_training_row_had(frame):
    row = frame.row(100, named=True)
    candidate = Candidate(
        strategy=row["strategy"], symbol=row["symbol"], interval=row["interval"], open_time=row["open_time"],
        close_time=row["close_time"], signal=row["signal"], price=row["price"],
        features={name: row[name] for name in CARRIED_FEATURES},
    )
    live = model_inputs(candidate_frame(candidate, candidate.features))
    assert live.row(0) == model_inputs(frame.slice(100, 1)).row(0)


def test_the_fingerprint_follows_the_rows(frame):
    assert fingerprint(frame) == fingerprint(frame.clone())
    assert fingerprint(frame) != fingerprint(frame.head(frame.height - 1))
