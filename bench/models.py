"""Model benchmark: training time on N rows, and scoring latency per candidate, model vs rule scorer.

The training frame is mart_training_set's shape built from the replay market's 1m candles as the model
tests build it (coin_platform/local/replay/training.py: compute_features, the strategies' signals,
forward returns over 15 candles). Training is `train_model` on the purged training rows of the last
walk-forward split. Scoring goes through the ModelScorer that trade_job uses (candidate features ->
model_inputs -> the pipeline), one candidate at a time, against the RuleScorer in the same process.
Goal: p95 ≤ 20 ms for the model call.

    python bench/models.py                 # 30 days x 3 symbols, 500 candidates scored
    python bench/models.py --days 3 --candidates 50
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import sys
import time
from pathlib import Path

import numpy as np
from report import emit  # bench/report.py, beside this script

from coin_platform.events.candidates import CARRIED_FEATURES
from coin_platform.events.schemas import Candidate
from coin_platform.local.replay.training import REPLAY_SYMBOLS, replay_training_frame
from coin_platform.ml.dataset import validate_training_frame, walk_forward_splits
from coin_platform.ml.registry import LoadedModel, ModelRecord
from coin_platform.ml.scorers import ModelScorer, RuleScorer
from coin_platform.ml.training import train_model


def _percentiles(samples_s: list[float]) -> dict[str, float]:
    values = np.asarray(samples_s) * 1000
    return {
        "p50_ms": round(float(np.percentile(values, 50)), 3),
        "p95_ms": round(float(np.percentile(values, 95)), 3),
        "max_ms": round(float(values.max()), 3),
    }


def run(days: int, candidates: int) -> dict:
    frame = validate_training_frame(replay_training_frame(days=days))
    split = walk_forward_splits(frame, folds=1)[0]
    started = time.perf_counter()
    model = train_model(split.train)
    training_s = time.perf_counter() - started
    record = ModelRecord(
        name="bench",
        version="bench",
        trained_at="",
        train_start="",
        train_end="",
        horizon_seconds=900.0,
        rows=model.rows,
        positive_rate=model.positive_rate,
        inputs=model.inputs,
        data_fingerprint=model.data_fingerprint,
        params=model.params,
        metrics={},
        libraries={},
        model_sha256="",
        threshold=0.35,
    )
    scorers = {
        "model": ModelScorer(LoadedModel(record, model.pipeline), dt.timedelta(minutes=15)),
        "rule": RuleScorer(min_confidence=0.55, max_age=dt.timedelta(minutes=15)),
    }
    rows = split.test.head(candidates).iter_rows(named=True)
    live = [
        Candidate(
            strategy=r["strategy"],
            symbol=r["symbol"],
            interval=r["interval"],
            open_time=r["open_time"],
            close_time=r["close_time"],
            signal=r["signal"],
            price=r["price"],
            features={k: r[k] for k in CARRIED_FEATURES},
        )
        for r in rows
    ]
    latency = {}
    for name, scorer in scorers.items():
        scorer.decide(live[0], live[0].features, live[0].close_time)  # first call outside the sample
        samples = []
        for candidate in live:
            begin = time.perf_counter()
            scorer.decide(candidate, candidate.features, candidate.close_time)
            samples.append(time.perf_counter() - begin)
        latency[name] = _percentiles(samples)
    return {
        "bench": "models",
        "data": {
            "source": "replay market 1m",
            "symbols": list(REPLAY_SYMBOLS),
            "days": days,
            "training_rows": split.train.height,
            "held_out_rows": split.test.height,
        },
        "training_s": round(training_s, 3),
        "training_rows_per_s": round(split.train.height / training_s),
        "scoring_per_candidate": latency,
        "candidates_scored": len(live),
        "goal": "model p95 <= 20 ms",
        "goal_met": latency["model"]["p95_ms"] <= 20.0,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--candidates", type=int, default=500)
    parser.add_argument("--json-out", type=Path)
    args = parser.parse_args(argv)
    with contextlib.redirect_stdout(sys.stderr):
        result = run(args.days, args.candidates)
    return emit(result, args.json_out)


if __name__ == "__main__":
    sys.exit(main())
