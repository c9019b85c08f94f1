"""WarmRunLauncher: runs forked from a process that imported dagster once, with Dagster's own run worker."""

import importlib
import os
import resource
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import dagster as dg
import pytest
from dagster._core.definitions.reconstruct import ReconstructableJob
from dagster._serdes import serialize_value

from coin_platform.local.warm_runs import (
    INSTANCE_REF_ENV,
    READY_TIMEOUT_S,
    WORKER_TAG,
    WarmRunLauncher,
    process_start_time,
)

LOCATION = """
import os
import time
from pathlib import Path

import dagster as dg

OUT = Path(os.environ["WARM_TEST_OUT"])
IMPORT_STARTED_AT = time.time()
if OUT.joinpath("slow_import").exists():
    time.sleep(10)
IMPORTED_BY = os.getpid()  # the process that imported this module
IMPORTED_AT = time.time()
OUT.joinpath(f"imported_by_{IMPORTED_BY}").touch()


@dg.op
def report_process() -> None:
    fields = (IMPORTED_BY, os.getpid(), os.getppid(), VERSION, IMPORTED_AT, IMPORT_STARTED_AT)
    OUT.joinpath("worker.txt").write_text(" ".join(str(field) for field in fields))


@dg.op
def wait_long() -> None:
    OUT.joinpath("waiting.txt").write_text(str(os.getpid()))
    time.sleep(120)


@dg.job(executor_def=dg.in_process_executor)
def report_job() -> None:
    report_process()


@dg.job(executor_def=dg.in_process_executor)
def wait_job() -> None:
    wait_long()
"""


def _write_location(folder: Path, name: str, version: int, extra: str = "") -> None:
    folder.joinpath(f"{name}.py").write_text(LOCATION + f"\nVERSION = {version}\n" + textwrap.dedent(extra))


def _wait(predicate, timeout: float = 90.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := predicate():
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture
def location(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    code = tmp_path / "code"
    code.mkdir()
    name = f"warm_location_{os.getpid()}_{time.monotonic_ns()}"
    _write_location(code, name, 1)
    monkeypatch.setenv("PYTHONPATH", f"{code}{os.pathsep}{os.environ.get('PYTHONPATH', '')}")
    monkeypatch.setenv("WARM_TEST_OUT", str(tmp_path))
    monkeypatch.syspath_prepend(str(code))
    importlib.import_module(name)  # Dagster's loader drops sys.path[0]; the cached module is what it finds
    yield code, name
    sys.modules.pop(name, None)


def _instance(*preload: str, standby: str | None = None, standby_workers: int = 1):
    config: dict[str, object] = {"preload_modules": list(preload or ["dagster"])}
    if standby:
        config["standby_module"] = standby
        config["standby_workers"] = standby_workers
    launcher = {"module": "coin_platform.local.warm_runs", "class": "WarmRunLauncher", "config": config}
    return dg.instance_for_test(overrides={"run_launcher": launcher})


def _report(tmp_path: Path) -> dict[str, float]:
    names = ("imported_by", "worker", "parent", "version", "imported_at", "import_started_at")
    return dict(zip(names, (float(v) for v in (tmp_path / "worker.txt").read_text().split()), strict=True))


def _ready(launcher: WarmRunLauncher) -> None:
    why_not = ""

    def serving() -> bool:
        nonlocal why_not
        server, why_not = launcher._ready_server()
        return server is not None

    try:
        _wait(serving, timeout=READY_TIMEOUT_S + 30, what="the fork server")
    except AssertionError as exc:
        raise AssertionError(f"{exc}: {why_not}") from None


def _launch(instance: dg.DagsterInstance, module: str, job: str) -> dg.DagsterRun:
    recon = ReconstructableJob.for_module(module, job)
    run = instance.create_run_for_job(job_def=recon.get_definition(), job_code_origin=recon.get_python_origin())
    instance.launch_run(run.run_id, workspace=None)  # type: ignore[arg-type]
    return run


def _finished(instance: dg.DagsterInstance, run_id: str) -> dg.DagsterRun:
    return _wait(lambda: (r := instance.get_run_by_id(run_id)) and r.is_finished and r, what=f"run {run_id}")


def test_a_run_is_forked_from_the_server_and_imports_the_code_as_it_is_now(location, tmp_path: Path):
    code, module = location
    with _instance() as instance:
        launcher = instance.run_launcher
        assert isinstance(launcher, WarmRunLauncher)
        _ready(launcher)
        server_pid = launcher._server._process.pid
        run = _launch(instance, module, "report_job")
        assert _finished(instance, run.run_id).status == dg.DagsterRunStatus.SUCCESS
        report = _report(tmp_path)
        assert report["parent"] == server_pid != os.getpid()  # forked by the server, not run in this process
        assert report["imported_by"] == report["worker"]  # the worker imported the code location itself
        assert instance.get_run_by_id(run.run_id).tags[WORKER_TAG].startswith(f"{int(report['worker'])}:")
        assert report["version"] == 1

        _write_location(code, module, 2)  # an edit reaches the next run, from the same server
        again = _launch(instance, module, "report_job")
        assert _finished(instance, again.run_id).status == dg.DagsterRunStatus.SUCCESS
        assert _report(tmp_path)["version"] == 2
        assert launcher._server._process.pid == server_pid
        launcher.dispose()


def test_a_launcher_in_a_process_with_over_1024_open_files_still_hears_its_server(location, tmp_path):
    """A long-lived daemon or test session holds many descriptors; select() cannot watch one numbered 1024 or
    more (the suite's process had 1,668 open), so the launcher waited forever for a server that was ready."""
    code, module = location
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, 4096)), hard))
    held = [os.open(os.devnull, os.O_RDONLY) for _ in range(1100)]
    try:
        with _instance() as instance:
            launcher = instance.run_launcher
            _ready(launcher)
            run = _launch(instance, module, "report_job")
            assert _finished(instance, run.run_id).status == dg.DagsterRunStatus.SUCCESS
            launcher.dispose()
    finally:
        for fd in held:
            os.close(fd)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def test_a_standby_worker_has_the_code_imported_before_its_run_and_steps_aside_after_an_edit(location, tmp_path):
    code, module = location
    with _instance(standby=module) as instance:
        launcher = instance.run_launcher
        for imported in tmp_path.glob("imported_by_*"):  # this process's own import, by the fixture
            imported.unlink()
        _ready(launcher)
        server_pid = launcher._server._process.pid
        _wait(lambda: list(tmp_path.glob("imported_by_*")), what="the standby to import the location")
        time.sleep(1)  # then it lists the files it imported and tells the server it is ready: milliseconds
        launched_at = time.time()
        run = _launch(instance, module, "report_job")
        assert _finished(instance, run.run_id).status == dg.DagsterRunStatus.SUCCESS
        report = _report(tmp_path)
        assert report["parent"] == server_pid and report["imported_by"] == report["worker"]
        assert report["imported_at"] < launched_at  # the run found its code imported
        assert report["version"] == 1

        time.sleep(0.01)
        _write_location(code, module, 2)  # the next standby imported version 1: it steps aside
        edited_at = time.time()
        again = _launch(instance, module, "report_job")
        assert _finished(instance, again.run_id).status == dg.DagsterRunStatus.SUCCESS
        report = _report(tmp_path)
        assert report["version"] == 2 and report["imported_at"] > edited_at
        launcher.dispose()


def test_runs_that_start_together_each_find_a_standby_with_the_code_imported(location, tmp_path):
    code, module = location
    with _instance(standby=module, standby_workers=2) as instance:
        launcher = instance.run_launcher
        for imported in tmp_path.glob("imported_by_*"):  # this process's own import, by the fixture
            imported.unlink()
        _ready(launcher)
        _wait(lambda: len(list(tmp_path.glob("imported_by_*"))) == 2, what="both standbys to import the location")
        time.sleep(1)  # then each lists the files it imported and tells the server it is ready: milliseconds
        standbys = {int(p.name.removeprefix("imported_by_")) for p in tmp_path.glob("imported_by_*")}
        first, second = (_launch(instance, module, "report_job") for _ in range(2))
        workers = set()
        for run in (first, second):
            assert _finished(instance, run.run_id).status == dg.DagsterRunStatus.SUCCESS
            workers.add(int(instance.get_run_by_id(run.run_id).tags[WORKER_TAG].split(":")[0]))
        # Both runs ran in the standbys that had imported the code before either was launched.
        assert workers == standbys
        # Once no run has come for a moment, two new standbys import the code for the next runs.
        _wait(lambda: len(list(tmp_path.glob("imported_by_*"))) == 4, what="the standbys' successors")
        launcher.dispose()


def test_terminate_cancels_the_run_and_a_killed_worker_is_reported_failed(location, tmp_path: Path):
    code, module = location
    with _instance() as instance:
        launcher = instance.run_launcher
        _ready(launcher)
        run = _launch(instance, module, "wait_job")
        _wait(lambda: (tmp_path / "waiting.txt").exists(), what="the op to start")
        assert launcher.check_run_worker_health(instance.get_run_by_id(run.run_id)).status.value == "RUNNING"
        assert launcher.terminate(run.run_id)
        assert _finished(instance, run.run_id).status == dg.DagsterRunStatus.CANCELED

        (tmp_path / "waiting.txt").unlink()
        killed = _launch(instance, module, "wait_job")
        pid = int(_wait(lambda: (tmp_path / "waiting.txt").exists() and (tmp_path / "waiting.txt").read_text()))
        os.kill(pid, signal.SIGKILL)
        _wait(lambda: process_start_time(pid) is None, what="the worker to be gone")
        health = launcher.check_run_worker_health(instance.get_run_by_id(killed.run_id))
        assert health.status.value == "FAILED" and str(pid) in health.msg
        launcher.dispose()


def test_a_run_launched_the_default_way_is_not_failed_by_run_monitoring(location):
    """Before the fork server is ready a run is launched by the code server, which leaves no worker to check:
    run monitoring failed such a run at its first look ("worker status UNKNOWN"), as bench/api.py's first
    backtest was. The default launcher's runs are not checked, and neither are these."""
    code, module = location
    with _instance() as instance:
        launcher = instance.run_launcher
        recon = ReconstructableJob.for_module(module, "report_job")
        run = instance.create_run_for_job(job_def=recon.get_definition(), job_code_origin=recon.get_python_origin())
        health = launcher.check_run_worker_health(run)
        assert health.status.value == "RUNNING" and "not checked" in health.msg
        launcher.dispose()


def test_a_preload_that_leaves_threads_is_refused(location):
    code, module = location
    starts_a_thread = "import threading\nthreading.Thread(target=time.sleep, args=(60,), daemon=True).start()\n"
    _write_location(code, module, 1, starts_a_thread)
    with _instance("dagster", module) as instance:
        launcher = instance.run_launcher
        launcher._ready_server()
        _wait(lambda: launcher._server.failure, what="the refusal")
        server, why_not = launcher._ready_server()
        assert server is None and "forking is unsafe" in why_not and "2 threads" in why_not
        launcher.dispose()


def test_a_run_does_not_wait_for_a_standby_that_is_still_importing(location, tmp_path):
    code, module = location
    for imported in tmp_path.glob("imported_by_*"):  # this process's own import, by the fixture
        imported.unlink()
    (tmp_path / "slow_import").touch()  # the standby forked with the server takes 10 s to import
    with _instance(standby=module) as instance:
        launcher = instance.run_launcher
        _ready(launcher)
        time.sleep(1)
        (tmp_path / "slow_import").unlink()  # a worker forked from now on imports at once
        unlinked_at = time.time()
        run = _launch(instance, module, "report_job")
        assert _finished(instance, run.run_id).status == dg.DagsterRunStatus.SUCCESS
        report = _report(tmp_path)
        worker = int(report["worker"])
        assert report["import_started_at"] > unlinked_at  # a worker forked for the run, not the busy standby
        # The run's own worker imported the code; the standby had not finished importing by then.
        assert sorted(p.name for p in tmp_path.glob("imported_by_*")) == [f"imported_by_{worker}"]
        launcher.dispose()
    # The standby finishes its import, finds the server gone and exits.
    _wait(lambda: len(list(tmp_path.glob("imported_by_*"))) == 2, timeout=60, what="the standby's import")


def test_a_standby_opens_the_runs_instance_ahead_and_a_bad_reference_costs_only_the_head_start(tmp_path):
    """The run's instance storages imported before the run; a reference that does not open is no error."""
    storage = "dagster._core.storage.runs.sqlite.sqlite_run_storage"
    probe = (
        "import sys\nfrom coin_platform.local.warm_runs import _open_instance_once\n"
        f"_open_instance_once()\nprint({storage!r} in sys.modules)"
    )
    with dg.instance_for_test(temp_dir=str(tmp_path)) as instance:
        ref = serialize_value(instance.get_ref())
    for value, imported in ((ref, "True"), ("not a reference", "False")):
        env = {**os.environ, INSTANCE_REF_ENV: value}
        done = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True, check=True)
        assert done.stdout.strip() == imported, done.stderr
