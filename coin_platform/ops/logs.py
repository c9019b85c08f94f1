"""Structured JSON logs under COIN_HOME/logs: one line per record, rotated by size, with the ids that
connect a candle to its candidate, decision and order, so `coin trace` can follow one through the files.

`log_event` is the one call that writes such a line. It takes any `logging.Logger`: a Dagster
`context.log` (a run's log manager, whose records reach the handlers that the instance's dagster.yaml
`python_logs.dagster_handler_config` attaches, `run_log_handler` among them) or a plain one, such as
`json_file_logger`'s for the sensors, whose ticks Dagster logs to no handler of ours. `JsonFormatter`
(structlog) renders a record with its Dagster context (run id, job, step, Dagster event type and
the run's `coin/*` tags) and the fields `log_event` put on it.

Several processes write one file (every run worker of the code location), so files are rotated by
concurrent-log-handler, which locks around each write and rollover; a file with one writer (a
service's output) uses the standard library's RotatingFileHandler.
"""

from __future__ import annotations

import datetime as dt
import logging
import logging.handlers
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import structlog
from concurrent_log_handler import ConcurrentRotatingFileHandler

# Size-based rotation: a file is rolled over at MAX_BYTES and BACKUP_COUNT older files are kept.
MAX_BYTES = 10 * 1024 * 1024
BACKUP_COUNT = 5
# The file of the code location: every run's records (dagster.yaml) and the sensors' lines.
CODE_LOCATION_LOG = "code_location.jsonl"
API_LOG = "api.jsonl"

# The record attribute `log_event` stores its fields under (a `logging` `extra` key).
FIELDS_ATTRIBUTE = "coin_fields"
# Run tags with this prefix (the topic sensors set coin/candidate_id, coin/decision_id, ...) become fields.
TAG_PREFIX = "coin/"

# What a line says happened (its `event` field); `coin trace` follows these.
CANDLES_STORED = "candles.stored"
FEATURES_COMPUTED = "features.computed"
CANDIDATES_DETECTED = "candidates.detected"
CANDIDATE_PUBLISHED = "candidate.published"
RUN_REQUESTED = "run.requested"
MESSAGE_DEAD_LETTERED = "message.dead_lettered"
DECISION_RECORDED = "decision.recorded"
DECISION_PUBLISHED = "decision.published"
ORDER_RECORDED = "order.recorded"
ORDER_FILLED = "order.filled"


def log_dir(coin_home: Path | None = None) -> Path:
    """COIN_HOME/logs; without an argument COIN_HOME is read from the environment (`coin dev` exports it),
    else the project's .coin, as the settings default it."""
    if coin_home is None:
        coin_home = Path(os.environ.get("COIN_HOME", Path(__file__).resolve().parents[2] / ".coin"))
    return Path(coin_home).resolve() / "logs"


def _json_value(value: Any) -> Any:
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, Mapping):
        return {str(k): _json_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_json_value(v) for v in value]
    return value


def log_event(logger: logging.Logger, event: str, message: str, *, level: int = logging.INFO, **fields: Any) -> None:
    """Log `message` with `event` and `fields` as JSON fields of its line.

    Pass the ids the line is about, by these names: symbol, interval, open_time (the candle's),
    candidate_id, decision_id, client_order_id (the decision id), run_id (a run's records carry
    their own); any other field (offset, topic, rows, ...) is kept as well. Datetimes become ISO text.
    """
    if not event:
        raise ValueError("log_event needs an event name, e.g. 'candidate.published'")
    logger.log(level, message, extra={FIELDS_ATTRIBUTE: {"event": event, **_json_value(fields)}})


def _dagster_fields(record: logging.LogRecord) -> dict[str, Any]:
    """The run context Dagster puts on a record (`dagster_meta`): a run's or a sensor tick's."""
    meta = getattr(record, "dagster_meta", None)
    if not isinstance(meta, Mapping):
        return {}
    fields: dict[str, Any] = {}
    for key, name in (("run_id", "run_id"), ("job_name", "job"), ("step_key", "step"), ("name", "instigator")):
        if meta.get(key):
            fields[name] = meta[key]
    event = meta.get("dagster_event")
    if event is not None:
        fields["dagster_event"] = event.event_type_value
    for tag, value in (meta.get("job_tags") or {}).items():
        if tag.startswith(TAG_PREFIX):
            fields[tag.removeprefix(TAG_PREFIX)] = value
    return fields


def _record_to_fields(_logger: Any, _name: str, event_dict: dict[str, Any]) -> dict[str, Any]:
    """structlog processor: a stdlib record as the line's fields (time of the call, not of formatting)."""
    record: logging.LogRecord = event_dict["_record"]
    meta = getattr(record, "dagster_meta", None)
    message = meta.get("orig_message") if isinstance(meta, Mapping) and "orig_message" in meta else None
    fields: dict[str, Any] = {
        "ts": dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(timespec="microseconds"),
        "level": record.levelname.lower(),
        "logger": record.name,
        # ProcessorFormatter has formatted the message into "event" (and dropped the record's args).
        "message": event_dict["event"] if message is None else message,
        **_dagster_fields(record),
        **getattr(record, FIELDS_ATTRIBUTE, {}),
    }
    if "exc_info" in event_dict:
        fields["exc_info"] = event_dict["exc_info"]
    return fields


class JsonFormatter(structlog.stdlib.ProcessorFormatter):
    """One JSON object per record: ts (UTC), level, logger, message, Dagster context, `log_event` fields."""

    def __init__(self) -> None:
        super().__init__(
            processors=[
                _record_to_fields,
                structlog.processors.format_exc_info,
                structlog.processors.JSONRenderer(default=str),
            ]
        )


def rotating_json_handler(
    path: Path, *, max_bytes: int = MAX_BYTES, backup_count: int = BACKUP_COUNT, level: int = logging.DEBUG
) -> logging.Handler:
    """JSON lines to `path`, rotated at `max_bytes` keeping `backup_count` files; safe with several writers."""
    if max_bytes <= 0 or backup_count <= 0:
        raise ValueError(f"rotation needs max_bytes > 0 and backup_count > 0, got {max_bytes} and {backup_count}")
    path.parent.mkdir(parents=True, exist_ok=True)
    handler = ConcurrentRotatingFileHandler(
        str(path), maxBytes=max_bytes, backupCount=backup_count, encoding="utf-8", delay=True
    )
    handler.setFormatter(JsonFormatter())
    handler.setLevel(level)
    return handler


def run_log_handler(
    filename: str = CODE_LOCATION_LOG, max_bytes: int = MAX_BYTES, backup_count: int = BACKUP_COUNT
) -> logging.Handler:
    """The handler dagster.yaml attaches to every run's log manager (`"()": coin_platform.ops.logs.run_log_handler`):
    every record of the run, Dagster's DEBUG events included, as JSON in COIN_HOME/logs/`filename`."""
    return rotating_json_handler(log_dir() / filename, max_bytes=max_bytes, backup_count=backup_count)


_FILE_LOGGERS: dict[tuple[str, Path], logging.Logger] = {}


def json_file_logger(name: str, path: Path) -> logging.Logger:
    """A logger writing JSON lines to `path` only (rotated); one per name and file in a process.

    It is not registered with `logging`, so nothing else's configuration reaches it and it reaches
    no other handler (it does not propagate).
    """
    key = (name, path.resolve())
    if key not in _FILE_LOGGERS:
        logger = logging.Logger(name, logging.DEBUG)
        logger.addHandler(rotating_json_handler(key[1]))
        logger.propagate = False
        _FILE_LOGGERS[key] = logger
    return _FILE_LOGGERS[key]


def rotating_text_handler(
    path: Path, *, max_bytes: int = MAX_BYTES, backup_count: int = BACKUP_COUNT
) -> logging.Handler:
    """A file with one writer (a service's output, copied line by line): rotated, lines as they came."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handler = logging.handlers.RotatingFileHandler(path, maxBytes=max_bytes, backupCount=backup_count, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(message)s"))
    return handler


def uvicorn_log_config(path: Path, level: str = "info") -> dict[str, Any]:
    """uvicorn's `log_config` (logging.config.dictConfig): its server and access logs (and the API's own,
    `coin_platform.*`) as JSON lines in `path`; the server's also on stderr, as uvicorn prints them."""
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"console": {"()": "uvicorn.logging.DefaultFormatter", "fmt": "%(levelprefix)s %(message)s"}},
        "handlers": {
            "file": {"()": rotating_json_handler, "path": path},
            "console": {"class": "logging.StreamHandler", "formatter": "console", "stream": "ext://sys.stderr"},
        },
        "loggers": {
            "uvicorn": {"handlers": ["file", "console"], "level": level.upper(), "propagate": False},
            "uvicorn.error": {"level": level.upper(), "propagate": True},
            "uvicorn.access": {"handlers": ["file"], "level": level.upper(), "propagate": False},
            "coin_platform": {"handlers": ["file"], "level": level.upper(), "propagate": False},
        },
    }
