"""Models versioned in the object store (SeaweedFS): skops with trusted types, sha256 checks, promotion,
rollback, and the scorer inference picks from them."""

import datetime as dt
import json
import os

import pytest
import skops.io as sio
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer

from coin_platform.events.candidates import CARRIED_FEATURES
from coin_platform.events.schemas import Candidate
from coin_platform.local.replay.training import replay_training_frame
from coin_platform.ml.dataset import model_inputs, validate_training_frame
from coin_platform.ml.registry import TRUSTED_TYPES, ModelFileError, ModelRegistry, load_pipeline
from coin_platform.ml.scorers import MODEL_REFUSED, NO_PROMOTED_MODEL, ModelScorer, RuleScorer, inference_scorer
from coin_platform.ml.training import train_model
from coin_platform.settings import PlatformConfig
from coin_platform.storage.object_store import ObjectStore

CONFIG = PlatformConfig(symbols=("BTCUSDT",), history_start=dt.date(2024, 1, 1))
T0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


@pytest.fixture(scope="module")
def frame():
    return validate_training_frame(replay_training_frame(days=3))


@pytest.fixture(scope="module")
def model(frame):
    return train_model(frame)


@pytest.fixture
def store(seaweedfs, s3_bucket) -> ObjectStore:
    return ObjectStore.s3(s3_bucket, endpoint_url=seaweedfs.endpoint_url, access_key=seaweedfs.access_key,
                          secret_key=seaweedfs.secret_key, region=seaweedfs.region)


def candidate(row) -> Candidate:
    return Candidate(strategy=row["strategy"], symbol=row["symbol"], interval=row["interval"],
                     open_time=row["open_time"], close_time=row["close_time"], signal=row["signal"],
                     price=row["price"], features={k: row[k] for k in CARRIED_FEATURES})


def test_a_trained_pipeline_needs_no_types_beyond_the_trusted_list(model):
    assert set(sio.get_untrusted_types(data=sio.dumps(model.pipeline))) <= set(TRUSTED_TYPES)


def test_a_saved_version_loads_back_with_its_record(store, model, frame):
    registry = ModelRegistry(store)
    record = registry.save(model, metrics={"auc": 0.6}, threshold=0.35, trained_at=T0)
    assert registry.versions() == [record.version] and record.version.startswith("20260101T000000Z-")
    assert record.data_fingerprint == model.data_fingerprint and record.inputs == model.inputs
    assert {"scikit-learn", "skops", "python"} <= set(record.libraries)
    loaded = registry.load(record.version)
    rows = model_inputs(frame.head(50))
    assert (loaded.pipeline.predict_proba(rows) == model.pipeline.predict_proba(rows)).all()
    stored = json.loads(store.read_bytes(f"models/signal_model/{record.version}/record.json"))
    assert stored["model_sha256"] == record.model_sha256 and stored["train_end"] == model.train_end.isoformat()


def test_a_tampered_model_file_is_refused(store, model):
    registry = ModelRegistry(store)
    record = registry.save(model, metrics={}, trained_at=T0)
    key = f"models/signal_model/{record.version}/model.skops"
    payload = bytearray(store.read_bytes(key))
    payload[len(payload) // 2] ^= 0xFF
    store.write_bytes(key, bytes(payload))
    with pytest.raises(ModelFileError, match=r"has sha256 \w+, its record says \w+: refused"):
        registry.load(record.version)


def test_skops_refuses_a_file_naming_an_untrusted_type():
    hostile = sio.dumps(Pipeline([("run", FunctionTransformer(os.system))]))
    with pytest.raises(ModelFileError, match=r"untrusted type\(s\) \['posix.system'\]: refused"):
        load_pipeline(hostile, source="hostile.skops")


def test_promotion_points_at_a_version_and_rollback_repoints_to_an_earlier_one(store, model):
    registry = ModelRegistry(store)
    first = registry.save(model, metrics={}, trained_at=T0)
    second = registry.save(model, metrics={}, trained_at=T0 + dt.timedelta(days=1))
    assert registry.promoted_version() is None
    registry.promote(second.version, reason="beats the baselines")
    assert registry.promoted_version() == second.version
    registry.rollback(first.version)
    assert registry.promoted_version() == first.version
    pointer = json.loads(store.read_bytes("models/signal_model/promoted.json"))
    assert pointer["reason"] == f"rollback from {second.version}"
    with pytest.raises(ValueError, match="not earlier than the promoted"):
        registry.rollback(second.version)
    with pytest.raises(ModelFileError, match="has no version 'nope'"):
        registry.promote("nope", reason="typo")


def test_inference_uses_the_promoted_model_and_records_its_version_and_inputs(store, model, frame):
    registry = ModelRegistry(store)
    record = registry.save(model, metrics={}, threshold=0.35, trained_at=T0)
    registry.promote(record.version, reason="test")
    choice = inference_scorer(store, CONFIG)
    assert isinstance(choice.scorer, ModelScorer) and choice.fallback_reason is None
    assert inference_scorer(store, CONFIG).scorer is choice.scorer  # cached per process by version
    row = frame.row(10, named=True)
    live = candidate(row)
    decision = choice.scorer.decide(live, live.features, row["close_time"] + dt.timedelta(seconds=2))
    assert decision.model_version == f"signal_model/{record.version}"
    expected = float(model.probability(frame.slice(10, 1))[0])
    assert decision.confidence == pytest.approx(expected, abs=1e-6)
    assert decision.inputs["probability"] == pytest.approx(expected, abs=1e-6)
    assert decision.inputs["atr_14_to_price"] == pytest.approx(row["atr_14"] / row["price"])
    assert decision.inputs["threshold"] == 0.35


def test_inference_falls_back_to_the_rule_scorer_saying_why(store, model):
    choice = inference_scorer(store, CONFIG)
    assert isinstance(choice.scorer, RuleScorer) and choice.scorer.model_version == NO_PROMOTED_MODEL
    assert "no signal_model model is promoted" in choice.fallback_reason
    registry = ModelRegistry(store)
    record = registry.save(model, metrics={}, trained_at=T0 + dt.timedelta(days=9))
    registry.promote(record.version, reason="test")
    store.write_bytes(f"models/signal_model/{record.version}/model.skops", b"not a model")
    choice = inference_scorer(store, CONFIG)
    assert isinstance(choice.scorer, RuleScorer) and choice.scorer.model_version == MODEL_REFUSED
    assert "sha256" in choice.fallback_reason
