"""Train the signal model: does a candidate's forward return clear the round-trip fee?

A scikit-learn Pipeline: the categorical inputs (signal, side) ordinal-encoded, every other input
passed through, into a HistGradientBoostingClassifier that treats the encoded columns as categories
and nulls (indicators in their warm-up) as missing. The inputs are `dataset.model_inputs` of the
frame, the same code that scores a live candidate.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

import numpy as np
import polars as pl
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OrdinalEncoder

from coin_platform.ml.dataset import CATEGORICAL_INPUTS, fingerprint, label_horizon, model_inputs

# Shallow, regularised trees and a fixed number of rounds: candidates are few and their labels noisy.
DEFAULT_PARAMS: dict[str, float | int] = {
    "learning_rate": 0.05,
    "max_iter": 150,
    "max_leaf_nodes": 15,
    "min_samples_leaf": 40,
    "l2_regularization": 1.0,
}


@dataclass(frozen=True)
class TrainedModel:
    """A fitted pipeline and what it was fitted on."""

    pipeline: Pipeline
    inputs: list[str]
    train_start: dt.datetime
    train_end: dt.datetime
    horizon: dt.timedelta
    rows: int
    positive_rate: float
    data_fingerprint: str
    params: dict[str, float | int] = field(default_factory=dict)

    def probability(self, frame: pl.DataFrame) -> np.ndarray:
        """P(label) for each row of a frame with the training set's candle columns."""
        return predict_probability(self.pipeline, model_inputs(frame))


def build_pipeline(inputs: list[str], *, random_state: int = 0, **params: float | int) -> Pipeline:
    """The untrained pipeline over `inputs` (model_inputs' columns: the categorical ones first)."""
    categorical = [name for name in inputs if name in CATEGORICAL_INPUTS]
    encode = ColumnTransformer(
        [
            (
                "categories",
                OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=-1, encoded_missing_value=-1),
                categorical,
            )
        ],
        remainder="passthrough",
        verbose_feature_names_out=False,
    )
    classifier = HistGradientBoostingClassifier(
        categorical_features=list(range(len(categorical))),
        random_state=random_state,
        # Early stopping would hold out a random (not time-ordered) part of the rows: a fixed budget instead.
        early_stopping=False,
        **{**DEFAULT_PARAMS, **params},
    )
    return Pipeline([("encode", encode), ("classify", classifier)])


def predict_probability(pipeline: Pipeline, inputs: pl.DataFrame) -> np.ndarray:
    """P(label = True) for each row of `inputs` (model_inputs' columns)."""
    classes = list(pipeline.classes_)
    if True not in classes:
        return np.zeros(inputs.height)
    return pipeline.predict_proba(inputs)[:, classes.index(True)]


def train_model(
    frame: pl.DataFrame, *, random_state: int = 0, params: dict[str, float | int] | None = None
) -> TrainedModel:
    """Fit the pipeline on a validated training frame (dataset.validate_training_frame), time order kept."""
    if frame["label"].n_unique() < 2:
        raise ValueError("the training rows hold one label only; a classifier needs both outcomes")
    inputs = model_inputs(frame)
    chosen = {**DEFAULT_PARAMS, **(params or {})}
    pipeline = build_pipeline(inputs.columns, random_state=random_state, **chosen)
    pipeline.fit(inputs, frame["label"].to_numpy())
    return TrainedModel(
        pipeline=pipeline,
        inputs=inputs.columns,
        train_start=frame["close_time"].min(),  # type: ignore[arg-type]
        train_end=frame["close_time"].max(),  # type: ignore[arg-type]
        horizon=label_horizon(frame),
        rows=frame.height,
        positive_rate=float(frame["label"].mean()),  # type: ignore[arg-type]
        data_fingerprint=fingerprint(frame),
        params=chosen,
    )
