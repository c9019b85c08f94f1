"""The public backtest client: launch `backtest_job` runs on a Dagster deployment and follow them.

It speaks Dagster's GraphQL API through dagster-graphql's `DagsterGraphQLClient` (the launch) and
gql queries on the same transport (a run's state and its error events), so it needs a Dagster
webserver's URL and nothing of the Dagster instance. A run is one backtest: its partition is the
strategy name, its run config the overrides of config.yaml's `backtest:` defaults.

    client = BacktestClient("http://127.0.0.1:3000")
    run_id = client.launch(BacktestRequest(strategy="ema_crossover", start=date(2025, 1, 1), end=date(2025, 1, 31)))
    state = client.wait(run_id, timeout=600)   # RunState(status="completed", ...)
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import urlsplit

import requests
from dagster_graphql import DagsterGraphQLClient, DagsterGraphQLClientError
from gql import Client, GraphQLRequest
from gql.transport.exceptions import TransportConnectionFailed, TransportError
from gql.transport.requests import RequestsHTTPTransport
from requests.auth import HTTPBasicAuth

from coin_platform.backtest.request import BACKTEST_JOB, BacktestRequest

PARTITION_TAG = "dagster/partition"
DEFAULT_TIMEOUT_S = 30.0
POLL_INTERVAL_S = 1.0

TaskStatus = Literal["queued", "running", "completed", "failed"]
# Dagster's run statuses as a backtest's caller sees them: waiting, working, done or not.
STATUS_OF: dict[str, TaskStatus] = {
    "NOT_STARTED": "queued",
    "MANAGED": "queued",
    "QUEUED": "queued",
    "STARTING": "queued",
    "STARTED": "running",
    "SUSPENDED": "running",  # started, waiting on external work without a worker
    "CANCELING": "running",
    "SUCCESS": "completed",
    "FAILURE": "failed",
    "CANCELED": "failed",
}


class BacktestClientError(RuntimeError):
    """Dagster could not be asked, or refused; the message says which and why (and holds no credentials)."""


class DagsterUnreachableError(BacktestClientError):
    """The Dagster webserver did not answer (down, wrong URL, timed out)."""


class RunNotFoundError(BacktestClientError):
    """No backtest run has this id."""


class BacktestTimeoutError(BacktestClientError, TimeoutError):
    """The run did not finish within the wait."""


@dataclass(frozen=True)
class RunState:
    """Where one backtest run is; times are Dagster's run record (UTC)."""

    run_id: str
    status: TaskStatus
    dagster_status: str
    created_at: dt.datetime
    started_at: dt.datetime | None
    ended_at: dt.datetime | None
    error: str | None = None  # why a failed run failed, from its error events

    @property
    def finished(self) -> bool:
        return self.status in ("completed", "failed")


_RUN_QUERY = """
query BacktestRun($runId: ID!) {
  runOrError(runId: $runId) {
    __typename
    ... on Run { runId jobName status creationTime startTime endTime }
    ... on Error { message }
  }
}
"""

_ERRORS_QUERY = """
query BacktestRunErrors($runId: ID!, $afterCursor: String) {
  logsForRun(runId: $runId, afterCursor: $afterCursor) {
    __typename
    ... on EventConnection {
      cursor
      hasMore
      events {
        __typename
        ... on MessageEvent { message stepKey }
        ... on ErrorEvent { error { message className causes { message className } } }
      }
    }
    ... on Error { message }
  }
}
"""

_VERSION_QUERY = "query DagsterVersion { version }"


def _failure_of(events: list[Mapping[str, Any]]) -> str | None:
    """Why a run failed: its failed steps' exceptions, else the errors of the engine (a run that could
    not start), else the run's own failure message."""
    for kinds in (("ExecutionStepFailureEvent",), ("EngineEvent", "RunFailureEvent")):
        messages = []
        for event in events:
            if event["__typename"] in kinds and (event.get("error") or event["__typename"] != "EngineEvent"):
                messages.append((f"{event['stepKey']}: " if event.get("stepKey") else "") + _error_text(event))
        if messages:
            return "; ".join(dict.fromkeys(messages))
    return None


def _error_text(event: Mapping[str, Any]) -> str:
    """The innermost exception of an error event (Dagster wraps a step's in its own), else its message.

    A `dagster.Failure` is the run's own message, so it is given without the exception's name.
    """
    error = event.get("error")
    if not error:
        return " ".join(event["message"].split())
    innermost = error["causes"][-1] if error["causes"] else error
    text = innermost["message"]
    if innermost["className"] == "Failure":
        text = text.partition(": ")[2] or text
    return " ".join(text.split())


def _utc(epoch_seconds: float | None) -> dt.datetime | None:
    return None if epoch_seconds is None else dt.datetime.fromtimestamp(epoch_seconds, dt.UTC)


class BacktestClient:
    """Launch and follow `backtest_job` runs on the Dagster webserver at `dagster_url`.

    Credentials in the URL (`https://user:password@host`) are sent as HTTP basic auth and never
    appear in an error. Safe to share between threads: every call has its own GraphQL session.
    """

    def __init__(self, dagster_url: str, *, timeout: float = DEFAULT_TIMEOUT_S) -> None:
        parts = urlsplit(dagster_url)
        try:
            port = parts.port
        except ValueError:
            port = -1
        if parts.scheme not in ("http", "https") or not parts.hostname or port == -1 or parts.query:
            raise ValueError(f"the Dagster URL must look like http://host:port[/prefix], got {_redacted(dagster_url)}")
        self._hostname = parts.hostname
        self._port = port
        self._use_https = parts.scheme == "https"
        self._path_prefix = parts.path.rstrip("/")
        self._auth = HTTPBasicAuth(parts.username or "", parts.password or "") if parts.username else None
        self._timeout = timeout
        netloc = f"{self._hostname}:{port}" if port else self._hostname
        self.url = f"{parts.scheme}://{netloc}{self._path_prefix}"

    def launch(self, request: BacktestRequest) -> str:
        """Submit one `backtest_job` run for `request`; returns its run id (the run is queued)."""
        try:
            return self._dagster().submit_job_execution(
                BACKTEST_JOB, run_config=request.run_config(), tags={PARTITION_TAG: request.strategy}
            )
        except DagsterGraphQLClientError as exc:
            raise self._error(f"launching {BACKTEST_JOB} for {request.strategy!r}", exc) from None

    def status(self, run_id: str) -> RunState:
        """The run's state; a failed run's `error` is the message of its failure events."""
        run = self._query(_RUN_QUERY, {"runId": run_id}, f"the state of run {run_id}")["runOrError"]
        if run["__typename"] == "RunNotFoundError":
            raise RunNotFoundError(f"no run {run_id} on {self.url}")
        if run["__typename"] != "Run":
            raise BacktestClientError(f"Dagster at {self.url} could not read run {run_id}: {run.get('message')}")
        if run["jobName"] != BACKTEST_JOB:
            raise RunNotFoundError(f"run {run_id} on {self.url} is a {run['jobName']} run, not a backtest")
        status = STATUS_OF.get(run["status"])
        if status is None:
            raise BacktestClientError(
                f"run {run_id} on {self.url} has a run status this client does not know: {run['status']}"
            )
        return RunState(
            run_id=run["runId"],
            status=status,
            dagster_status=run["status"],
            created_at=_utc(run["creationTime"]),
            started_at=_utc(run["startTime"]),
            ended_at=_utc(run["endTime"]),
            error=self._failure_message(run_id, run["status"]) if status == "failed" else None,
        )

    def wait(self, run_id: str, timeout: float, *, poll_interval: float = POLL_INTERVAL_S) -> RunState:
        """Poll until the run is completed or failed; BacktestTimeoutError after `timeout` seconds."""
        deadline = time.monotonic() + timeout
        while not (state := self.status(run_id)).finished:
            if time.monotonic() >= deadline:
                raise BacktestTimeoutError(f"run {run_id} is still {state.status} after {timeout:.0f} s")
            time.sleep(poll_interval)
        return state

    def dagster_version(self) -> str:
        """The deployment's Dagster version: the cheapest question that proves the webserver answers."""
        return self._query(_VERSION_QUERY, {}, "its version")["version"]

    def _failure_message(self, run_id: str, dagster_status: str) -> str:
        events: list[Mapping[str, Any]] = []
        cursor = None
        while True:
            page = self._query(_ERRORS_QUERY, {"runId": run_id, "afterCursor": cursor}, f"the events of run {run_id}")[
                "logsForRun"
            ]
            if page["__typename"] != "EventConnection":
                return f"the run ended {dagster_status}; its events could not be read: {page.get('message')}"
            events += page["events"]
            cursor = page["cursor"]
            if not page["hasMore"]:
                break
        return _failure_of(events) or (
            "the run was canceled" if dagster_status == "CANCELED" else f"the run ended {dagster_status}"
        )

    def _transport(self) -> RequestsHTTPTransport:
        return RequestsHTTPTransport(url=f"{self.url}/graphql", timeout=self._timeout, auth=self._auth)

    def _dagster(self) -> DagsterGraphQLClient:
        # A gql transport holds one session at a time: a new client per call keeps threads apart.
        return DagsterGraphQLClient(
            self._hostname,
            port_number=self._port,
            use_https=self._use_https,
            path_prefix=self._path_prefix,
            transport=self._transport(),
        )

    def _query(self, query: str, variables: dict[str, Any], what: str) -> dict[str, Any]:
        try:
            return Client(transport=self._transport()).execute(GraphQLRequest(query, variable_values=variables))
        except (requests.RequestException, TransportError) as exc:
            raise self._error(f"asking for {what}", exc) from None

    def _error(self, doing: str, exc: Exception) -> BacktestClientError:
        """A short error without the query text, the run config or credentials, typed by what went wrong."""
        cause = exc.__cause__ if isinstance(exc, DagsterGraphQLClientError) and exc.__cause__ else exc
        if isinstance(cause, requests.ConnectionError | requests.Timeout | TransportConnectionFailed):
            return DagsterUnreachableError(f"Dagster at {self.url} did not answer {doing}: {_reason(cause)}")
        if isinstance(exc, DagsterGraphQLClientError) and exc.args and not exc.__cause__:
            kind, *details = exc.args  # the GraphQL answer's type and what Dagster said about it
            return BacktestClientError(f"Dagster at {self.url} refused {doing}: {kind}: {_describe(details)}")
        return BacktestClientError(f"Dagster at {self.url} failed {doing}: {type(cause).__name__}: {cause}"[:500])


def _describe(details: list[Any]) -> str:
    """Dagster's refusal: a message, or a list of config errors each with its own message."""
    texts = []
    for detail in details:
        items = detail if isinstance(detail, list) else [detail]
        texts += [item.get("message", str(item)) if isinstance(item, Mapping) else str(item) for item in items]
    return "; ".join(texts)[:500]


def _reason(error: BaseException) -> str:
    """The innermost cause of a connection failure (e.g. `ConnectionRefusedError: ...`), in one short line."""
    while error.__cause__ is not None or error.__context__ is not None:
        error = error.__cause__ or error.__context__
    return f"{type(error).__name__}: {error}"[:300]


def _redacted(url: str) -> str:
    """The URL without a password, for an error message."""
    parts = urlsplit(url)
    if parts.password is None:
        return repr(url)
    return repr(parts._replace(netloc=parts.netloc.replace(f":{parts.password}@", ":***@")).geturl())
