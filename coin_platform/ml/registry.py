"""Trained models, versioned in the object store, and the pointer to the one that trades.

    models/{name}/{version}/model.skops       the fitted pipeline, serialised with skops
    models/{name}/{version}/record.json       training window, inputs, data fingerprint, metrics,
                                              library versions, the model file's sha256
    models/{name}/{version}/evaluation.json   the held-out evaluation against the baselines
    models/{name}/{version}/reliability.png   its reliability plot
    models/{name}/promoted.json               {"version": ...}: the promoted model

skops never runs code on load: it rebuilds only the types it is told to trust (`TRUSTED_TYPES`, beyond
its own defaults) and refuses a file naming any other. Before that, a file whose sha256 differs from its
record is refused. Each object is one atomic write (a single PUT), so the promoted pointer is never half
written; rolling back is writing it again with an earlier version. Versions sort by training time.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import platform
import zipfile
from dataclasses import asdict, dataclass, field
from importlib import metadata
from typing import TYPE_CHECKING, Any

from coin_platform.storage.object_store import ObjectStore

if TYPE_CHECKING:
    from sklearn.pipeline import Pipeline

    from coin_platform.ml.training import TrainedModel

DEFAULT_MODEL_NAME = "signal_model"
# What a fitted pipeline holds beyond skops' default trusted types (checked by a test on a trained model).
TRUSTED_TYPES = (
    "functools.partial",
    "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
    "sklearn.utils.validation.check_array",
)
_LIBRARIES = ("scikit-learn", "skops", "numpy", "scipy", "polars")
_VERSION_TIME = "%Y%m%dT%H%M%SZ"


class ModelFileError(ValueError):
    """A stored model cannot be used: missing, tampered with, or naming untrusted types."""


@dataclass(frozen=True)
class ModelRecord:
    """What record.json says about one stored version."""

    name: str
    version: str
    trained_at: str
    train_start: str
    train_end: str
    horizon_seconds: float
    rows: int
    positive_rate: float
    inputs: list[str]
    data_fingerprint: str
    params: dict[str, Any]
    metrics: dict[str, Any]
    libraries: dict[str, str]
    model_sha256: str
    threshold: float = 0.5

    @property
    def label(self) -> str:
        """How a decision names this model: `{name}/{version}`."""
        return f"{self.name}/{self.version}"


@dataclass(frozen=True)
class LoadedModel:
    record: ModelRecord
    pipeline: Pipeline = field(repr=False)


def library_versions() -> dict[str, str]:
    return {"python": platform.python_version(), **{name: metadata.version(name) for name in _LIBRARIES}}


class ModelRegistry:
    """The versions of one model name in an object store."""

    def __init__(self, store: ObjectStore, name: str = DEFAULT_MODEL_NAME) -> None:
        self.store = store
        self.name = name

    def _key(self, *parts: str) -> str:
        return "/".join(("models", self.name, *parts))

    def save(
        self,
        model: TrainedModel,
        *,
        metrics: dict[str, Any],
        threshold: float = 0.5,
        trained_at: dt.datetime | None = None,
    ) -> ModelRecord:
        """Store a new version: the skops file first, then its record (a version exists once it has one)."""
        trained_at = trained_at or dt.datetime.now(dt.UTC)
        import skops.io as sio  # imported when used: it loads every scikit-learn estimator (≈3 s)

        payload = sio.dumps(model.pipeline)
        version = f"{trained_at.strftime(_VERSION_TIME)}-{model.data_fingerprint[:8]}"
        record = ModelRecord(
            name=self.name,
            version=version,
            trained_at=trained_at.isoformat(),
            train_start=model.train_start.isoformat(),
            train_end=model.train_end.isoformat(),
            horizon_seconds=model.horizon.total_seconds(),
            rows=model.rows,
            positive_rate=model.positive_rate,
            inputs=list(model.inputs),
            data_fingerprint=model.data_fingerprint,
            params=dict(model.params),
            metrics=metrics,
            libraries=library_versions(),
            model_sha256=hashlib.sha256(payload).hexdigest(),
            threshold=threshold,
        )
        self.store.write_bytes(self._key(version, "model.skops"), payload)
        self._write_json(self._key(version, "record.json"), asdict(record))
        return record

    def versions(self) -> list[str]:
        """Stored versions (those with a record), oldest first."""
        prefix = self._key()
        return sorted(key.split("/")[2] for key in self.store.list_keys(prefix) if key.endswith("/record.json"))

    def record(self, version: str) -> ModelRecord:
        key = self._key(version, "record.json")
        if not self.store.exists(key):
            raise ModelFileError(f"model {self.name} has no version {version!r} (no {key})")
        return ModelRecord(**json.loads(self.store.read_bytes(key)))

    def load(self, version: str) -> LoadedModel:
        """The pipeline of `version`, after checking its sha256 against the record and its types against
        TRUSTED_TYPES."""
        record = self.record(version)
        key = self._key(version, "model.skops")
        try:
            payload = self.store.read_bytes(key)
        except (FileNotFoundError, OSError) as exc:
            raise ModelFileError(f"model file {key} cannot be read: {exc}") from None
        digest = hashlib.sha256(payload).hexdigest()
        if digest != record.model_sha256:
            raise ModelFileError(
                f"model file {key} has sha256 {digest}, its record says {record.model_sha256}: refused"
            )
        return LoadedModel(record, load_pipeline(payload, source=key))

    def write_evaluation(self, version: str, evaluation: dict[str, Any], reliability_png: bytes) -> None:
        self.record(version)
        self.store.write_bytes(self._key(version, "reliability.png"), reliability_png)
        self._write_json(self._key(version, "evaluation.json"), evaluation)

    def evaluation(self, version: str) -> dict[str, Any] | None:
        key = self._key(version, "evaluation.json")
        return json.loads(self.store.read_bytes(key)) if self.store.exists(key) else None

    def promote(self, version: str, *, reason: str) -> None:
        """Point `promoted.json` at `version` (one atomic write)."""
        self.record(version)
        pointer = {"version": version, "promoted_at": dt.datetime.now(dt.UTC).isoformat(), "reason": reason}
        self._write_json(self._key("promoted.json"), pointer)

    def rollback(self, version: str) -> None:
        """Repoint the promoted pointer to `version`, an earlier version than the promoted one."""
        current = self.promoted_version()
        if current is not None and version >= current:
            raise ValueError(f"rollback to {version!r}: it is not earlier than the promoted {current!r}")
        self.promote(version, reason=f"rollback from {current}")

    def promoted_version(self) -> str | None:
        key = self._key("promoted.json")
        if not self.store.exists(key):
            return None
        return str(json.loads(self.store.read_bytes(key))["version"])

    def _write_json(self, key: str, body: dict[str, Any]) -> None:
        self.store.write_bytes(key, json.dumps(body, indent=2, sort_keys=True, default=str).encode())


def load_pipeline(payload: bytes, *, source: str) -> Pipeline:
    """A pipeline from skops bytes, trusting skops' defaults and TRUSTED_TYPES only."""
    import skops.io as sio
    from sklearn.pipeline import Pipeline  # imported when used: the code location imports this module

    try:
        untrusted = sorted(set(sio.get_untrusted_types(data=payload)) - set(TRUSTED_TYPES))
        if untrusted:
            raise ModelFileError(f"model file {source} names untrusted type(s) {untrusted}: refused")
        pipeline = sio.loads(payload, trusted=list(TRUSTED_TYPES))
    except (ValueError, TypeError, KeyError, zipfile.BadZipFile) as exc:
        if isinstance(exc, ModelFileError):
            raise
        raise ModelFileError(f"model file {source} is not a readable skops file: {exc}") from None
    if not isinstance(pipeline, Pipeline):
        raise ModelFileError(f"model file {source} holds a {type(pipeline).__name__}, not a Pipeline")
    return pipeline
