"""JSON log lines: their shape, the ids `log_event` puts on them, a Dagster run's context, and rotation by
size, also with several processes writing one file."""

import datetime as dt
import io
import json
import logging
import subprocess
import sys
import textwrap

import dagster as dg
import pytest

from coin_platform.ops.logs import (
    CANDIDATE_PUBLISHED,
    json_file_logger,
    log_event,
    rotating_json_handler,
    rotating_text_handler,
)
from coin_platform.ops.rotate import copy_lines


def _lines(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_a_line_carries_the_ids_as_json_fields(tmp_path):
    logger = json_file_logger("test.ids", tmp_path / "ids.jsonl")
    open_time = dt.datetime(2026, 3, 1, 10, 30, tzinfo=dt.UTC)
    log_event(
        logger,
        CANDIDATE_PUBLISHED,
        "published",
        symbol="BTCUSDT",
        interval="1m",
        open_time=open_time,
        candidate_id="c" * 32,
        decision_id="d" * 32,
        offset=7,
    )
    (line,) = _lines(tmp_path / "ids.jsonl")
    assert line == {
        "ts": line["ts"],
        "level": "info",
        "logger": "test.ids",
        "message": "published",
        "event": CANDIDATE_PUBLISHED,
        "symbol": "BTCUSDT",
        "interval": "1m",
        "open_time": "2026-03-01T10:30:00+00:00",
        "candidate_id": "c" * 32,
        "decision_id": "d" * 32,
        "offset": 7,
    }
    assert dt.datetime.fromisoformat(line["ts"]).tzinfo == dt.UTC


def test_an_exception_is_kept_on_its_line(tmp_path):
    logger = json_file_logger("test.errors", tmp_path / "errors.jsonl")
    try:
        raise ValueError("bad candle")
    except ValueError:
        logger.exception("could not store")
    (line,) = _lines(tmp_path / "errors.jsonl")
    assert line["level"] == "error" and "ValueError: bad candle" in line["exception"]


def test_an_event_needs_a_name(tmp_path):
    with pytest.raises(ValueError, match="needs an event name"):
        log_event(json_file_logger("test.unnamed", tmp_path / "x.jsonl"), "", "nothing")


def test_a_dagster_run_logs_every_record_with_its_run_and_the_coin_tags(tmp_path, monkeypatch):
    """The handler dagster.yaml attaches: a run's own lines and Dagster's events, with run id, job, step, tags."""
    monkeypatch.setenv("COIN_HOME", str(tmp_path))

    @dg.op
    def publish_one(context: dg.OpExecutionContext) -> None:
        log_event(context.log, CANDIDATE_PUBLISHED, "one candidate published", symbol="ETHUSDT", offset=3)

    @dg.job(tags={"coin/candidate_id": "a" * 32, "team": "not ours"})
    def one_candidate() -> None:
        publish_one()

    handler = {"()": "coin_platform.ops.logs.run_log_handler"}
    overrides = {"python_logs": {"dagster_handler_config": {"handlers": {"json": handler}}}}
    with pytest.warns(dg.BetaWarning), dg.instance_for_test(overrides=overrides) as instance:
        result = one_candidate.execute_in_process(instance=instance)
    lines = _lines(tmp_path / "logs" / "code_location.jsonl")
    assert {line["run_id"] for line in lines} == {result.run_id}
    assert all(line["candidate_id"] == "a" * 32 and "team" not in line for line in lines)
    (mine,) = [line for line in lines if line.get("event") == CANDIDATE_PUBLISHED]
    assert mine["message"] == "one candidate published" and mine["step"] == "publish_one"
    assert (mine["job"], mine["symbol"], mine["offset"]) == ("one_candidate", "ETHUSDT", 3)
    events = [line["dagster_event"] for line in lines if "dagster_event" in line]
    assert events[0] == "PIPELINE_START" and "STEP_START" in events and events[-1] == "PIPELINE_SUCCESS"


def test_a_file_is_rotated_at_its_size_keeping_a_few(tmp_path):
    path = tmp_path / "rotated.jsonl"
    logger = logging.Logger("test.rotation")
    logger.addHandler(rotating_json_handler(path, max_bytes=2_000, backup_count=3))
    for i in range(200):
        log_event(logger, "tick", f"line {i}", i=i)
    files = sorted(tmp_path.glob("rotated.jsonl*"))
    assert [f.name for f in files] == ["rotated.jsonl", "rotated.jsonl.1", "rotated.jsonl.2", "rotated.jsonl.3"]
    assert all(f.stat().st_size <= 2_000 + 200 for f in files)  # rolled over before a line would pass the size
    kept = sorted(line["i"] for f in files for line in _lines(f))
    assert kept == list(range(kept[0], 200))  # the newest lines, none lost in between


def test_several_processes_rotating_one_file_lose_no_line(tmp_path):
    path = tmp_path / "shared.jsonl"
    writer = textwrap.dedent(f"""
        import logging, sys
        from pathlib import Path
        from coin_platform.ops.logs import log_event, rotating_json_handler
        logger = logging.Logger("writer")
        logger.addHandler(rotating_json_handler(Path({str(path)!r}), max_bytes=20_000, backup_count=50))
        for i in range(300):
            log_event(logger, "tick", "x" * 40, writer=sys.argv[1], i=i)
    """)
    writers = [subprocess.Popen([sys.executable, "-c", writer, str(n)]) for n in range(3)]
    assert [w.wait(timeout=120) for w in writers] == [0, 0, 0]
    lines = [line for f in tmp_path.glob("shared.jsonl*") for line in _lines(f)]
    assert sorted((line["writer"], line["i"]) for line in lines) == sorted(
        (str(n), i) for n in range(3) for i in range(300)
    )
    assert len(list(tmp_path.glob("shared.jsonl.*"))) > 1


def test_a_services_output_is_copied_line_by_line_and_rotated(tmp_path):
    handler = rotating_text_handler(tmp_path / "service.log", max_bytes=1_000, backup_count=2)
    output = io.BytesIO(b"".join(b"line %d of the service\n" % i for i in range(100)) + b"\xff no newline")
    assert copy_lines(output, handler) == 101
    handler.close()
    newest = (tmp_path / "service.log").read_text().splitlines()
    assert newest[-1] == "\ufffd no newline" and newest[-2] == "line 99 of the service"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["service.log", "service.log.1", "service.log.2"]
