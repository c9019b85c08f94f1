"""`coin trace` on the log lines the instrumented code writes: the crafted rebound of the signal-flow test
goes candle -> candidate -> Kafka -> trade run (decision, its publication, the order) -> paper fill, with the
project's dagster.yaml logging every run and the sensors writing their own lines; the trace then
follows one id through those files (and the stores, for the steps no line tells)."""

import datetime as dt
import json
import os
import subprocess
import sys
import uuid

import dagster as dg
import pytest
import yaml

from coin_platform.defs.partitions import partition_range_tags
from coin_platform.events.schemas import decision_id
from coin_platform.local.trace import TraceError, build_trace, read_log_lines, render
from coin_platform.ops.logs import (
    CANDIDATE_PUBLISHED,
    DECISION_PUBLISHED,
    DECISION_RECORDED,
    ORDER_FILLED,
    ORDER_RECORDED,
    RUN_REQUESTED,
    log_dir,
)
from coin_platform.settings import PROJECT_ROOT
from coin_platform_tests.defs.harness import run_job
from coin_platform_tests.defs.test_signal_flow import DAY, SIGNAL_AT, SYMBOL, crafted_definitions, flow_settings, tick

pytestmark = pytest.mark.filterwarnings("ignore::dagster.BetaWarning")


@pytest.fixture(scope="module")
def traced(tmp_path_factory, replay_server, seaweedfs, tansu):
    """The whole live path run once, with every run logged by the project's dagster.yaml into COIN_HOME/logs."""
    tmp_path = tmp_path_factory.mktemp("trace")
    bucket = f"test-{uuid.uuid4().hex[:16]}"
    seaweedfs.client().create_bucket(Bucket=bucket)
    suffix = uuid.uuid4().hex[:10]
    topics = {"candidates_topic": f"trace.candidates.{suffix}", "decisions_topic": f"trace.decisions.{suffix}"}
    settings = flow_settings(tmp_path, replay_server.url, seaweedfs, bucket, tansu, topics)
    defs = crafted_definitions(settings, replay_server.url)
    python_logs = yaml.safe_load((PROJECT_ROOT / "dagster.yaml").read_text())["python_logs"]
    with pytest.MonkeyPatch.context() as env, dg.instance_for_test(overrides={"python_logs": python_logs}) as instance:
        env.setenv("COIN_HOME", str(settings.coin_home))  # where dagster.yaml's handler writes
        run_job(
            defs,
            "ingest_1m",
            tags=partition_range_tags(DAY, DAY, SYMBOL, SYMBOL),
            asset_selection=["hot_ohlcv_1m", "features_1m", "candidates_1m"],
            instance=instance,
        )
        (request,) = tick(defs, "candidate_sensor", instance, None).run_requests
        defs.resolve_job_def("trade_job").execute_in_process(
            run_config=request.run_config, tags=request.tags, instance=instance
        )
    return settings, decision_id(request.tags["coin/candidate_id"])


def test_every_line_about_the_candidate_carries_its_ids(traced):
    settings, decision = traced
    lines = list(read_log_lines(log_dir(settings.coin_home)))
    (published,) = [line for line in lines if line.get("event") == CANDIDATE_PUBLISHED]
    candidate = published["candidate_id"]
    assert decision == decision_id(candidate)
    assert published["symbol"] == SYMBOL and published["interval"] == "1m"
    assert dt.datetime.fromisoformat(published["open_time"]) == SIGNAL_AT
    assert published["job"] == "ingest_1m" and published["step"] == "candidates_1m" and published["run_id"]
    requested = [line for line in lines if line.get("event") == RUN_REQUESTED]
    assert [(r["job"], r["candidate_id"], r["decision_id"]) for r in requested] == [("trade_job", candidate, decision)]
    # The trade run says what it recorded, published and ordered, each line with the decision's ids.
    for event in (DECISION_RECORDED, DECISION_PUBLISHED, ORDER_RECORDED, ORDER_FILLED):
        (line,) = [line for line in lines if line.get("event") == event]
        assert (line["candidate_id"], line["decision_id"], line["client_order_id"]) == (candidate, decision, decision)
        assert line["job"] == "trade_job"
    # Every record of the run launched for it (Dagster's DEBUG events included) names it by its run tags.
    run_lines = [line for line in lines if line.get("job") == "trade_job" and "run_id" in line]
    assert {line["dagster_event"] for line in run_lines if "dagster_event" in line} >= {"PIPELINE_START", "STEP_START"}
    assert all(line.get("candidate_id") == candidate or line.get("decision_id") == decision for line in run_lines)


def test_trace_follows_a_candidate_from_its_candle_to_its_fill(traced):
    settings, decision = traced
    candidate = next(line for line in read_log_lines(log_dir(settings.coin_home)) if "candidate_id" in line)[
        "candidate_id"
    ]
    chain = build_trace(candidate, settings)
    names = [step.name for step in chain.ordered()]
    assert names[:3] == ["candle closed", "candidate detected", "candidate published"]
    assert names.index("run requested (trade_job)") < names.index("run launched (trade_job)")
    assert names.index("run launched (trade_job)") < names.index("decision recorded")
    assert names.index("decision published") < names.index("order recorded") <= names.index("filled")
    sources = {step.name: step.source for step in chain.steps}
    assert sources["candle closed"] == "candle" and sources["candidate published"] == "log"
    assert sources["filled"] == "log"
    assert chain.ordered()[0].at == SIGNAL_AT + dt.timedelta(minutes=1)
    # The same chain from the decision id, as the order's client order id.
    assert [s.name for s in build_trace(decision, settings).ordered()] == names
    table = render(chain)
    assert f"candidate {candidate}" in table and "run launched (trade_job)" in table


def test_coin_trace_prints_the_chain_as_json(traced):
    settings, decision = traced
    config = settings.coin_home.parent / "config.yaml"  # where flow_settings wrote it
    result = subprocess.run(
        [sys.executable, "-m", "coin_platform.local.cli", "trace", decision, "--json"],
        env={**os.environ, "COIN_HOME": str(settings.coin_home), "COIN_CONFIG": str(config)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    chain = json.loads(result.stdout)
    assert chain["decision_id"] == chain["client_order_id"] == decision
    steps = chain["steps"]
    assert steps[0]["name"] == "candle closed" and steps[0]["since_start_s"] == 0
    assert all(step["since_previous_s"] >= 0 for step in steps)
    assert steps[-1]["since_start_s"] == pytest.approx(sum(step["since_previous_s"] for step in steps), abs=0.01)


def test_an_id_nobody_mentions_is_a_clear_error(traced):
    settings, _ = traced
    with pytest.raises(TraceError, match="no log line .* mentions 0{32}"):
        build_trace("0" * 32, settings)
    with pytest.raises(TraceError, match="not a candidate or decision id"):
        build_trace("BTCUSDT", settings)
