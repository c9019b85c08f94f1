"""The API's answers other than a finished backtest: bad requests, unknown tasks, the token, strategies, health.

The app runs over the daemon-less Dagster webserver (what it launches stays queued) and the
session's SeaweedFS; prod apps differ only in COIN_PLATFORM_ENV and API_TOKEN.
"""

from __future__ import annotations

import datetime as dt
import logging
import uuid

import pytest
from fastapi.testclient import TestClient

from coin_platform.api.app import create_app
from coin_platform.local.stack import free_port
from coin_platform.settings import ConfigError, load_settings
from coin_platform_tests.api.conftest import DAYS, STRATEGIES, SYMBOLS
from coin_platform_tests.fixtures.stack import PROD_TEST_ACCESS_KEY, PROD_TEST_SECRET_KEY
from coin_platform_tests.leaks import assert_secret_absent
from coin_platform_tests.test_health import health_environment, make_fresh

TOKEN = "c0ffee" * 8
TODAY = dt.datetime.now(dt.UTC).date()
VALID = {"strategy": "rsi_reversal", "start": DAYS[0].isoformat(), "end": DAYS[-1].isoformat()}
OMIT = object()  # the field is left out of the body


@pytest.mark.parametrize(
    ("field", "change"),
    [
        ("strategy", {"strategy": "no_such_strategy"}),
        ("strategy", {"strategy": "macd_crossover"}),  # configured, but disabled
        ("strategy", {"strategy": OMIT}),
        ("symbols", {"symbols": ["SOLUSDT"]}),  # a Binance symbol, not a configured one
        ("symbols", {"symbols": []}),
        ("symbols", {"symbols": ["BTCUSDT", "BTCUSDT"]}),
        ("symbols", {"symbols": "BTCUSDT"}),
        ("interval", {"interval": "1m"}),  # supported, not configured
        ("interval", {"interval": "1H"}),
        ("start", {"start": "2025-13-01"}),
        ("start", {"start": "01/02/2025"}),
        ("start", {"start": 20250101}),
        ("start", {"start": (TODAY + dt.timedelta(days=1)).isoformat(), "end": OMIT}),
        ("end", {"end": (TODAY + dt.timedelta(days=1)).isoformat()}),
        ("start", {"end": (DAYS[0] - dt.timedelta(days=1)).isoformat()}),  # after the end
        ("end", {"end": None}),
        ("initial_cash", {"initial_cash": 0}),
        ("initial_cash", {"initial_cash": "10000"}),
        ("sizing", {"sizing": "all_in"}),
        ("fraction", {"fraction": 0}),
        ("fraction", {"fraction": 1.5}),
        ("stop_loss", {"stop_loss": 1.0}),
        ("take_profit", {"take_profit": -0.1}),
        ("leverage", {"leverage": 0.5}),
        ("leverage", {"leverage": 126}),
        ("leverage", {"leverage": None}),
        ("funding", {"funding": "yes"}),
        ("fee", {"fee": 0.1}),
        ("slippage", {"slippage": -0.0001}),
        ("decision_path", {"decision_path": 1}),
        ("fees", {"fees": 0.001}),  # no such field
    ],
)
def test_a_bad_request_is_422_naming_the_field(queued_api, field, change):
    body = {key: value for key, value in {**VALID, **change}.items() if value is not OMIT}

    response = queued_api.post("/api/backtests/run-async", json=body)

    assert response.status_code == 422, response.text
    problems = response.json()["detail"]
    assert problems and all(problem["loc"][:2] == ["body", field] for problem in problems), problems


@pytest.mark.parametrize(
    "range_",
    [{"start": DAYS[0].isoformat()}, {"end": DAYS[-1].isoformat()}, {}],
    ids=["start: the end is yesterday", "end: backtest.days before it", "neither: the last backtest.days days"],
)
def test_a_range_may_name_either_end_or_none(queued_api, range_):
    response = queued_api.post("/api/backtests/run-async", json={"strategy": "ema_crossover", **range_})
    assert response.status_code == 202, response.text


def test_a_body_that_is_not_json_is_422(queued_api):
    response = queued_api.post(
        "/api/backtests/run-async", content=b"strategy=rsi_reversal", headers={"content-type": "application/json"}
    )
    assert response.status_code == 422


def test_a_valid_request_is_queued_until_a_daemon_runs_it(queued_api):
    response = queued_api.post("/api/backtests/run-async", json={**VALID, "symbols": ["ETHUSDT"], "stop_loss": 0.02})
    assert response.status_code == 202, response.text
    task_id = response.json()["task_id"]

    status = queued_api.get(f"/api/backtests/status/{task_id}")

    assert status.status_code == 200
    assert status.json() == {"task_id": task_id, "status": "queued", "progress": 0.0, "result": None, "error": None}
    report = queued_api.get(f"/api/backtests/{task_id}/report")
    assert report.status_code == 404
    assert report.json()["detail"] == f"task {task_id} has no report: it is queued"


def test_an_unknown_task_is_404(queued_api):
    task_id = str(uuid.uuid4())
    for path in (f"/api/backtests/status/{task_id}", f"/api/backtests/{task_id}/report"):
        response = queued_api.get(path)
        assert response.status_code == 404, path
        assert task_id in response.json()["detail"]


@pytest.mark.parametrize(
    "task_id", ["not-a-run-id", "..", "%2e%2e%2fsummary.json", "A" * 65, str(uuid.uuid4()).upper()]
)
def test_a_task_id_that_is_no_run_id_is_refused(queued_api, task_id):
    for path in (f"/api/backtests/status/{task_id}", f"/api/backtests/{task_id}/report"):
        assert queued_api.get(path).status_code in (404, 422), path


def test_the_strategies_are_the_configured_ones_with_every_parameter(queued_api):
    response = queued_api.get("/api/strategies")

    assert response.status_code == 200
    listed = {strategy["name"]: strategy for strategy in response.json()}
    assert list(listed) == [strategy["name"] for strategy in STRATEGIES]
    assert listed["rsi_reversal"] == {
        "name": "rsi_reversal",
        "kind": "rsi_reversal",
        "params": {"can_short": True, "period": 14, "oversold": 30, "overbought": 70},
        "intervals": ["15m", "1h"],  # none configured: every configured interval
        "enabled": True,
    }
    assert listed["ema_crossover"]["params"] == {"can_short": True, "fast": 20, "slow": 50}  # the kind's defaults
    assert listed["macd_crossover"]["enabled"] is False


def test_health_answers_what_coin_health_reports(dagster_queue_only, tmp_path, seaweedfs, s3_bucket, tansu):
    settings = make_fresh(load_settings(health_environment(tmp_path, seaweedfs, s3_bucket, tansu.bootstrap_servers)))
    with TestClient(create_app(settings, environ={"DAGSTER_URL": dagster_queue_only.url})) as api:
        response = api.get("/health")

    assert response.status_code == 200, response.text
    health = response.json()
    assert health["status"] == "ok" and health["problems"] == []
    components = {check["component"]: check for check in health["checks"]}
    everything = {"dagster_webserver", "s3", "kafka", "clickhouse", "trading_store", "warehouse", "candles"}
    assert set(components) == everything
    assert components["dagster_webserver"]["detail"].startswith("Dagster ")


def test_health_answers_503_naming_what_does_not_answer(api_environment):
    settings = load_settings(
        {
            **api_environment,
            "S3_BUCKET": f"missing-{uuid.uuid4().hex[:8]}",
            "KAFKA_BOOTSTRAP_SERVERS": f"127.0.0.1:{free_port()}",
        }
    )
    dagster_url = f"http://127.0.0.1:{free_port()}"
    with TestClient(create_app(settings, environ={"DAGSTER_URL": dagster_url})) as api:
        response = api.get("/health")

    assert response.status_code == 503
    health = response.json()
    assert health["status"] == "fail"
    problems = " | ".join(health["problems"])
    assert f"dagster_webserver {dagster_url}: " in problems
    assert f"s3 {settings.s3_bucket}: bucket {settings.s3_bucket} does not exist" in problems
    assert "kafka" in problems


def test_an_unreachable_dagster_is_503_without_the_urls_password(api_settings):
    password = "hunter2-not-for-logs"
    url = f"http://operator:{password}@127.0.0.1:{free_port()}"
    with TestClient(create_app(api_settings, environ={"DAGSTER_URL": url})) as api:
        launch = api.post("/api/backtests/run-async", json=VALID)
        status = api.get(f"/api/backtests/status/{uuid.uuid4()}")

    for response in (launch, status):
        assert response.status_code == 503
        assert "did not answer" in response.json()["detail"]
        assert password not in response.text


# --- prod: the bearer token ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def prod_environment(api_environment, dagster_queue_only) -> dict[str, str]:
    # Prod refuses the local stack's example key pair (.env.example): the session's SeaweedFS has a second one.
    credentials = {"AWS_ACCESS_KEY_ID": PROD_TEST_ACCESS_KEY, "AWS_SECRET_ACCESS_KEY": PROD_TEST_SECRET_KEY}
    return {**api_environment, **credentials, "COIN_PLATFORM_ENV": "prod", "DAGSTER_URL": dagster_queue_only.url}


@pytest.fixture(scope="module")
def prod_api(prod_environment):
    app = create_app(load_settings(prod_environment), environ={**prod_environment, "API_TOKEN": TOKEN})
    with TestClient(app) as client:
        yield client


PROTECTED = [
    ("GET", "/api/strategies", None, 200),
    ("GET", f"/api/backtests/status/{uuid.uuid4()}", None, 404),
    ("GET", f"/api/backtests/{uuid.uuid4()}/report", None, 404),
    ("POST", "/api/backtests/run-async", {**VALID, "symbols": [SYMBOLS[0]]}, 202),
    ("POST", "/api/backtests/run-async", {"strategy": "nope"}, 422),
    ("GET", "/openapi.json", None, 200),
    ("GET", "/docs", None, 200),
]


@pytest.mark.parametrize(("method", "path", "body", "answer"), PROTECTED)
@pytest.mark.parametrize(
    "authorization", [None, "Bearer wrong-token", f"Bearer {TOKEN}x", f"Basic {TOKEN}", TOKEN, f"Bearer {TOKEN[:-1]}"]
)
def test_in_prod_every_endpoint_but_health_wants_the_token(prod_api, method, path, body, answer, authorization, caplog):
    headers = {"Authorization": authorization} if authorization else {}
    caplog.set_level(logging.DEBUG)

    response = prod_api.request(method, path, json=body, headers=headers)

    assert response.status_code == 401, response.text
    assert response.headers["www-authenticate"] == "Bearer"
    assert TOKEN not in response.text and TOKEN not in caplog.text


@pytest.mark.parametrize(("method", "path", "body", "answer"), PROTECTED)
def test_in_prod_the_token_opens_every_endpoint(prod_api, method, path, body, answer, caplog):
    caplog.set_level(logging.DEBUG)

    response = prod_api.request(method, path, json=body, headers={"Authorization": f"Bearer {TOKEN}"})

    assert response.status_code == answer, response.text
    assert TOKEN not in caplog.text


def test_in_prod_health_needs_no_token(prod_api):
    response = prod_api.get("/health")
    assert response.status_code in (200, 503) and response.json()["checks"]


def test_the_prod_schema_declares_the_bearer_token(prod_api):
    schema = prod_api.get("/openapi.json", headers={"Authorization": f"Bearer {TOKEN}"}).json()
    assert schema["components"]["securitySchemes"]["HTTPBearer"] == {
        "type": "http",
        "scheme": "bearer",
        "description": "the value of API_TOKEN",
    }
    assert "security" not in schema["paths"]["/health"]["get"]


def test_prod_without_a_token_refuses_to_start(prod_environment):
    with pytest.raises(ConfigError, match="API_TOKEN is not set: in prod"):
        create_app(load_settings(prod_environment), environ=prod_environment)


@pytest.mark.parametrize("token", ["short-token", "a token with spaces " * 3, "é" * 40])
def test_a_weak_token_refuses_to_start_without_showing_it(prod_environment, token):
    with pytest.raises(ConfigError, match="API_TOKEN must be at least 32 printable ASCII") as refused:
        create_app(load_settings(prod_environment), environ={**prod_environment, "API_TOKEN": token})
    assert_secret_absent(refused.value, token)


def test_locally_a_token_that_is_set_is_asked_for_too(api_environment, dagster_queue_only):
    environ = {**api_environment, "DAGSTER_URL": dagster_queue_only.url, "API_TOKEN": TOKEN}
    with TestClient(create_app(load_settings(api_environment), environ=environ)) as api:
        assert api.get("/api/strategies").status_code == 401
        assert api.get("/api/strategies", headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 200
