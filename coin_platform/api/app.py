"""The HTTP API: launch a backtest, poll it, read its report; the configured strategies; health.

A backtest is one run of Dagster's `backtest_job` (the task id is the run id): the API checks the
request as the run will (backtest/request.py), launches it over Dagster's GraphQL API and reads
what the run wrote to the object store (progress while it works, then summary and report). It
keeps no state of its own, so any number of API processes can serve the same deployment. In prod
every endpoint but /health needs the API_TOKEN bearer token.
"""

import datetime as dt
import importlib.metadata
import os
from collections.abc import Callable, Mapping
from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, Depends, FastAPI, HTTPException, Request
from fastapi import Path as PathParameter
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse

from coin_platform.api.auth import api_token, bearer_guard
from coin_platform.api.models import (
    TASK_ID_PATTERN,
    Health,
    Problem,
    StrategyInfo,
    TaskCreated,
    TaskState,
    backtest_request_model,
)
from coin_platform.backtest.request import parse_request, resolve_request
from coin_platform.client import (
    BacktestClient,
    BacktestClientError,
    BacktestRequest,
    DagsterUnreachableError,
    RunNotFoundError,
    RunState,
)
from coin_platform.health import Check, Probe, check_health
from coin_platform.ops.logs import API_LOG, log_dir, uvicorn_log_config
from coin_platform.settings import ConfigError, PlatformConfig, Settings, StrategyConfig
from coin_platform.storage.backtests import read_backtest_progress, read_backtest_report, read_backtest_summary
from coin_platform.storage.object_store import ObjectStore
from coin_platform.strategies.registry import build_strategy

DAGSTER_URL_VARIABLE = "DAGSTER_URL"
HEALTH_TIMEOUT_S = 1.0
TaskId = Annotated[str, PathParameter(pattern=TASK_ID_PATTERN, description="the task id run-async answered")]
DAGSTER_ANSWERS: dict[int | str, dict[str, Any]] = {
    502: {"model": Problem, "description": "Dagster refused or failed the request"},
    503: {"model": Problem, "description": "Dagster or the object store did not answer"},
}
UNKNOWN_TASK: dict[int | str, dict[str, Any]] = {404: {"model": Problem, "description": "no backtest has this task id"}}
# An HTML route's other answers are JSON too; FastAPI would document a `model` under the route's media type.
PROBLEM_AS_JSON = {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/Problem"}}}}
UNAUTHORIZED: dict[int | str, dict[str, Any]] = {401: {"model": Problem, "description": "no or a wrong bearer token"}}
T = TypeVar("T")


class ObjectStoreError(RuntimeError):
    """The object store did not answer a read; the API answers 503."""


def dagster_url(settings: Settings, environ: Mapping[str, str]) -> str:
    """DAGSTER_URL, else the local stack's Dagster UI (local_stack.dagster_port)."""
    return environ.get(DAGSTER_URL_VARIABLE) or f"http://127.0.0.1:{settings.config.local_stack.dagster_port}"


def create_app(
    settings: Settings,
    *,
    environ: Mapping[str, str] | None = None,
    health_probes: Mapping[str, Probe] | None = None,
    health_timeouts: Mapping[str, float] | None = None,
) -> FastAPI:
    """The API for `settings`' deployment; DAGSTER_URL and API_TOKEN come from `environ` (default: os.environ).
    GET /health runs coin_platform.health's checks, Dagster's webserver's, and `health_probes` with their
    `health_timeouts` (`coin api` passes the Dagster instance's: daemons, schedules, sensors; this package
    imports no Dagster).

    Raises ConfigError in prod without API_TOKEN, or for a token too weak to use.
    """
    environ = os.environ if environ is None else environ
    token = api_token(settings, environ)
    url = dagster_url(settings, environ)
    client = BacktestClient(url)
    health_client = BacktestClient(url, timeout=HEALTH_TIMEOUT_S)
    store = ObjectStore.from_settings(settings)
    request_model = backtest_request_model(settings.config)
    configured = [_strategy_info(config, settings.config.intervals) for config in settings.config.strategies]
    guarded = [Depends(bearer_guard(token))] if token else []
    app = FastAPI(
        title="coin_platform API",
        version=importlib.metadata.version("coin_platform"),
        description=__doc__,
        # With a token, the schema and the docs are behind it too (added below).
        openapi_url=None if token else "/openapi.json",
        docs_url=None if token else "/docs",
        redoc_url=None if token else "/redoc",
    )
    api = APIRouter(prefix="/api", dependencies=guarded, responses=UNAUTHORIZED if token else None)

    @api.post(
        "/backtests/run-async",
        status_code=202,
        response_model=TaskCreated,
        responses={400: {"model": Problem, "description": "the body cannot be read (not UTF-8)"}, **DAGSTER_ANSWERS},
    )
    def run_backtest(request: request_model) -> TaskCreated:  # type: ignore[valid-type]
        """Launch one backtest run; poll its status with the task id."""
        created_at = dt.datetime.now(dt.UTC)
        _check_as_the_run_will(request, settings.config, created_at.date())
        return TaskCreated(task_id=client.launch(request), status="queued", created_at=created_at)

    @api.get("/backtests/status/{task_id}", response_model=TaskState, responses=UNKNOWN_TASK | DAGSTER_ANSWERS)
    def backtest_status(task_id: TaskId) -> TaskState:
        """queued, running (with the run's progress), completed (with its metrics) or failed (with why)."""
        return _task_state(client.status(task_id), store)

    @api.get(
        "/backtests/{task_id}/report",
        response_class=HTMLResponse,
        responses={
            200: {"description": "the report"},
            404: {"description": "no backtest has this task id, or it has no report yet", **PROBLEM_AS_JSON},
            **{
                code: {"description": answer["description"], **PROBLEM_AS_JSON}
                for code, answer in DAGSTER_ANSWERS.items()
            },
        },
    )
    def backtest_report(task_id: TaskId) -> HTMLResponse:
        """The finished run's HTML report."""
        report = _read(store, read_backtest_report, task_id)
        if report is None:
            state = client.status(task_id)
            raise HTTPException(404, f"task {task_id} has no report: it is {state.status}")
        return HTMLResponse(report)

    @api.get("/strategies", response_model=list[StrategyInfo])
    def strategies() -> list[StrategyInfo]:
        """The strategies of config.yaml; only enabled ones can be backtested."""
        return configured

    def webserver() -> list[Check]:
        try:
            return [Check("dagster_webserver", url, "ok", f"Dagster {health_client.dagster_version()} answers")]
        except BacktestClientError as exc:
            return [Check("dagster_webserver", url, "fail", str(exc))]

    probes = {"dagster_webserver": webserver, **(health_probes or {})}

    @app.get(
        "/health",
        response_model=Health,
        responses={503: {"model": Health, "description": "a check failed: `problems` names it"}},
    )
    def health() -> JSONResponse:
        """What `coin health --json` reports: the object store, Kafka, the hot store, the DuckDB stores, the newest
        candles, Dagster; 200 when every check is ok (or busy), else 503 (no token needed)."""
        report = check_health(settings, extra_probes=probes, extra_timeouts=health_timeouts, environ=environ)
        return JSONResponse(report.to_dict(), status_code=200 if report.ok else 503)

    app.include_router(api)
    if token:
        _guarded_docs(app, guarded)
    _error_answers(app)
    return app


def serve(
    settings: Settings,
    *,
    host: str,
    port: int,
    health_probes: Mapping[str, Probe] | None = None,
    health_timeouts: Mapping[str, float] | None = None,
) -> None:
    """Run the API with uvicorn until stopped (Ctrl-C or SIGTERM); its server and access logs are JSON lines
    in COIN_HOME/logs/api.jsonl (rotated), start-up and errors also on stderr."""
    import uvicorn

    app = create_app(settings, health_probes=health_probes, health_timeouts=health_timeouts)
    uvicorn.run(app, host=host, port=port, log_config=uvicorn_log_config(log_dir(settings.coin_home) / API_LOG))


def _check_as_the_run_will(request: BacktestRequest, config: PlatformConfig, today: dt.date) -> None:
    """Resolve the request against config.yaml and today's date with the run's own code, so what the run
    would refuse (start after end, a day after today) is a 422 naming the field instead of a failed run."""
    overrides = request.overrides()
    try:
        resolve_request(parse_request(overrides), request.strategy, config, today)
    except ConfigError as exc:
        key, _, problem = str(exc).partition(": ")
        field = key.removeprefix("backtest.")
        location = ("body", field) if field in type(request).model_fields else ("body",)
        raise RequestValidationError(
            [{"type": "value_error", "loc": location, "msg": problem or str(exc), "input": overrides.get(field)}]
        ) from None


def _task_state(state: RunState, store: ObjectStore) -> TaskState:
    result = error = None
    progress = 0.0
    if state.status == "completed":
        progress = 1.0
        summary = _read(store, read_backtest_summary, state.run_id)
        if summary is None:
            error = "the run succeeded but left no summary in the object store"
        else:
            result = summary["metrics"]
    else:
        if state.status != "queued":
            recorded = _read(store, read_backtest_progress, state.run_id)
            progress = recorded["progress"] if recorded else 0.0
        error = state.error
    return TaskState(task_id=state.run_id, status=state.status, progress=progress, result=result, error=error)


def _strategy_info(config: StrategyConfig, configured_intervals: tuple[str, ...]) -> StrategyInfo:
    """What GET /api/strategies shows of one entry; built at start-up, so a bad parameter stops the API there."""
    strategy = build_strategy(config)
    return StrategyInfo(
        name=config.name,
        kind=config.kind,
        params={name: getattr(strategy, name) for name in strategy.param_names()},
        intervals=list(config.intervals or configured_intervals),
        enabled=config.enabled,
    )


def _read(store: ObjectStore, reader: Callable[[ObjectStore, str], T], run_id: str) -> T:
    try:
        return reader(store, run_id)
    except OSError as exc:
        raise ObjectStoreError(f"the object store at {store.uri} did not answer: {exc}") from None


def _guarded_docs(app: FastAPI, guarded: list[Any]) -> None:
    """The OpenAPI schema and Swagger UI, behind the token like every endpoint but /health."""

    @app.get("/openapi.json", include_in_schema=False, dependencies=guarded)
    def openapi() -> JSONResponse:
        return JSONResponse(app.openapi())

    @app.get("/docs", include_in_schema=False, dependencies=guarded)
    def docs() -> HTMLResponse:
        return get_swagger_ui_html(openapi_url="/openapi.json", title=app.title)


def _error_answers(app: FastAPI) -> None:
    """Dagster's and the object store's failures as HTTP answers whose detail says what failed."""
    answers: list[tuple[type[Exception], int]] = [
        (RunNotFoundError, 404),
        (DagsterUnreachableError, 503),
        (ObjectStoreError, 503),
        (BacktestClientError, 502),
    ]
    for error, status_code in answers:

        def answer(request: Request, exc: Exception, status_code: int = status_code) -> JSONResponse:
            return JSONResponse({"detail": str(exc)}, status_code=status_code)

        app.add_exception_handler(error, answer)
