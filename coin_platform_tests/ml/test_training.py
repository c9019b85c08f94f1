"""A model trained on the replay market beats a shuffled-label control and the baselines it is judged by."""

import datetime as dt

import numpy as np
import polars as pl
import pytest
from sklearn.metrics import roc_auc_score

from coin_platform.backtest.gating import gate_signals, gated_backtest
from coin_platform.local.replay.training import REPLAY_START, STRATEGIES, replay_training_frame
from coin_platform.local.replay.warehouse import replay_candles
from coin_platform.ml.dataset import validate_training_frame, walk_forward_splits
from coin_platform.ml.evaluation import accepted_entries, beats_baselines, evaluate, reliability_png
from coin_platform.ml.scorers import RuleScorer
from coin_platform.ml.training import train_model


@pytest.fixture(scope="module")
def split():
    return walk_forward_splits(validate_training_frame(replay_training_frame(days=14)), folds=1)[0]


@pytest.fixture(scope="module")
def model(split):
    return train_model(split.train)


def test_the_model_beats_a_shuffled_label_control_on_the_held_out_window(split, model):
    label = split.test["label"].to_numpy()
    model_auc = roc_auc_score(label, model.probability(split.test))
    shuffled = split.train.with_columns(
        label=pl.Series(np.random.default_rng(7).permutation(split.train["label"].to_numpy()))
    )
    control_auc = roc_auc_score(label, train_model(shuffled).probability(split.test))
    assert model_auc > 0.6
    assert model_auc > control_auc + 0.1


def test_training_records_its_window_inputs_and_data(split, model):
    assert model.train_end < split.test_start and model.rows == split.train.height
    assert model.inputs[:2] == ["signal", "side"] and "atr_14_to_price" in model.inputs
    assert model.horizon == dt.timedelta(minutes=15)


def test_the_evaluation_compares_the_model_with_both_baselines(split, model):
    rule = RuleScorer(min_confidence=0.55, max_age=dt.timedelta(minutes=15))
    evaluation = evaluate(model, split.test, rule, threshold=0.4)
    scorers = evaluation["scorers"]
    base_rate = float(split.test["label"].mean())
    assert scorers["always_act"]["precision"] == pytest.approx(base_rate)
    assert scorers["always_act"]["auc"] == 0.5
    assert scorers["always_act"]["brier"] == pytest.approx(1 - base_rate)
    assert scorers["model"]["precision"] > base_rate
    assert scorers["model"]["brier"] < scorers["always_act"]["brier"]
    assert 0 < scorers["model"]["says_yes"] < split.test.height
    assert reliability_png(model, split.test).startswith(b"\x89PNG")


def test_the_gated_backtest_keeps_only_the_entries_the_model_accepts(split, model):
    strategy = STRATEGIES[2]
    candles = replay_candles("BTCUSDT", "1m", start=REPLAY_START, days=14)
    held_out = split.test.filter((pl.col("symbol") == "BTCUSDT") & (pl.col("strategy") == strategy.name))
    accepted = accepted_entries(model, held_out, threshold=0.4)
    start, end = held_out["open_time"].min(), held_out["horizon_close_time"].max()
    comparison = gated_backtest(candles, strategy, accepted, start=start, end=end, interval="1m", fee=0.001)
    assert comparison.entries_accepted == accepted.height < comparison.entries_offered
    summary = comparison.summary()
    assert summary["gated_trades"] < summary["ungated_trades"]
    assert summary["gated_return_pct"] != summary["ungated_return_pct"]


def test_gating_switches_off_only_the_entries_not_accepted():
    times = [dt.datetime(2024, 1, 1, 0, m, tzinfo=dt.UTC) for m in range(3)]
    signals = pl.DataFrame({
        "symbol": ["BTCUSDT"] * 3, "open_time": times,
        "enter_long": [True, True, False], "exit_long": [False, False, True],
        "enter_short": [False, False, False], "exit_short": [False, False, False],
    })
    accepted = pl.DataFrame({"symbol": ["BTCUSDT"], "open_time": [times[1]], "signal": ["enter_long"]})
    gated = gate_signals(signals, accepted)
    assert gated["enter_long"].to_list() == [False, True, False]
    assert gated["exit_long"].to_list() == [False, False, True]


def test_promotion_needs_both_precision_and_backtest_to_beat_the_baselines():
    evaluation = {"scorers": {"model": {"precision": 0.4}, "always_act": {"precision": 0.3}}}
    better, worse = {"gated_return_pct": 1.0, "ungated_return_pct": -2.0}, {"gated_return_pct": -3.0,
                                                                          "ungated_return_pct": -2.0}
    assert beats_baselines(evaluation, better)[0]
    passed, reasons = beats_baselines(evaluation, worse)
    assert not passed and "gated backtest return -3.000% vs ungated -2.000%" in reasons[1]
    silent = {"scorers": {"model": {"precision": None}, "always_act": {"precision": 0.3}}}
    assert not beats_baselines(silent, better)[0]
