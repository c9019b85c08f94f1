"""A run launcher for one machine that starts each run from a process that has already imported dagster.

Dagster's DefaultRunLauncher asks the code server to spawn a fresh interpreter per run, which imports
dagster, its integrations and the code location before the run does anything: seconds of CPU per run
here, paid twice on the way from a closed candle to its order. `WarmRunLauncher` keeps a fork server: a
process that imports the installed libraries named in `preload_modules` once and forks one child per run;
the child imports the code location itself and runs `dagster api execute_run`, the entry point Docker and
Kubernetes launchers start, so a run behaves as under any launcher and sees the code as it is now.

With `standby_module` set, the server also keeps `standby_workers` standby workers: children forked in
advance that have imported that code location and wait for a run each, so a run finds the code imported too
(runs that start together, the ingest run at a candle close and the trade runs seconds later, each find one;
the used ones are replaced once the burst is over).
Before running, a standby checks that no file it imported (nor config.yaml) changed since and that it is at
most STANDBY_MAX_AGE_S old; otherwise it steps aside and the run gets a freshly forked worker, so edits reach
the next run as they would through the code server. While runs come, the server replaces standbys before
they get that old; an idle server lets them go.
A standby also opens the runs' instance once, so its run's own open finds the storages imported.

Only libraries that start no thread can be preloaded: a forked child has the calling thread alone, so a
pool created before the fork (polars, NumPy's BLAS, chDB, scikit-learn all start one at import) would wait
forever for workers that are not there. The server counts its threads after the preload and refuses to
serve if there is more than one. Until a server is ready, and whenever it cannot serve, runs launch the
default way, with an engine event saying why. Termination sends SIGINT to the run's process (Dagster's
interrupt, which ends the run as canceled), and run monitoring asks whether that process still lives.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import select
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

import dagster as dg
from dagster._core.launcher import CheckRunHealthResult, LaunchRunContext, WorkerStatus
from dagster._core.launcher.default_run_launcher import DefaultRunLauncher
from dagster._grpc.types import ExecuteRunArgs
from dagster._serdes import serialize_value
from dagster._serdes.config_class import ConfigurableClassData

# The run's worker process, as "pid:start time" (the start time tells a reused pid from the run's own).
WORKER_TAG = "coin/worker_process"
READY_TIMEOUT_S = 120.0
REPLY_TIMEOUT_S = 10.0
# A server whose preload failed is tried again after this long (the code may have been fixed).
RETRY_FAILED_AFTER_S = 30.0
# A standby worker older than this is not used: nothing the code location computed at import can be older.
STANDBY_MAX_AGE_S = 300.0
# Standbys used by runs are replaced after this long without a new run (see _serve).
REFILL_WHEN_IDLE_S = 2.0
# The instance the runs belong to (serialized InstanceRef), for the standbys to open once ahead of their run:
# a run's first open of its instance imports and sets up the storages (about 0.9 s here), a second takes 0.07 s.
INSTANCE_REF_ENV = "COIN_WARM_RUNS_INSTANCE_REF"


def process_start_time(pid: int) -> str | None:
    """The process's start time in clock ticks since boot (field 22 of /proc/PID/stat); None if it is gone or a
    zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2 :].split()
    return None if fields[0] == "Z" else fields[19]


def _readable(fd: int, timeout_s: float) -> bool:
    """Whether `fd` has something to read within `timeout_s`. poll, not select: select cannot watch a descriptor
    numbered 1024 or more, which a long-lived process (the daemon, a test session) reaches."""
    poller = select.poll()
    poller.register(fd, select.POLLIN | select.POLLHUP)
    return bool(poller.poll(timeout_s * 1000))


class ForkServer:
    """The fork server process, seen from the launcher: one request at a time, one JSON line each way."""

    def __init__(
        self,
        preload: Sequence[str],
        standby_module: str | None = None,
        standby_workers: int = 1,
        instance_ref: str | None = None,
    ) -> None:
        standby = ["--standby", standby_module, "--standby-workers", str(standby_workers)] if standby_module else []
        environment = {**os.environ, INSTANCE_REF_ENV: instance_ref} if instance_ref else None
        self._process = subprocess.Popen(
            [sys.executable, "-m", __name__, *standby, *preload],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            bufsize=1,
            env=environment,
        )
        self._lock = threading.Lock()
        self._ready = threading.Event()
        self.failure: str | None = None
        self.failed_at = 0.0
        threading.Thread(target=self._await_ready, name="fork-server-ready", daemon=True).start()

    def _await_ready(self) -> None:
        try:
            reply = self._read(READY_TIMEOUT_S)
        except Exception as exc:  # noqa: BLE001 - whatever it is, the launcher must hear of it, not wait forever
            reply = {"error": f"reading the fork server's first reply failed: {type(exc).__name__}: {exc}"}
        if reply is None or "error" in reply:
            self.failure = (reply or {}).get("error") or "the fork server did not start"
            self.failed_at = time.monotonic()
            self.stop()
        self._ready.set()

    def _read(self, timeout: float) -> dict | None:
        stdout = self._process.stdout
        assert stdout is not None
        line = stdout.readline() if _readable(stdout.fileno(), timeout) else ""
        return json.loads(line) if line else None

    @property
    def ready(self) -> bool:
        return self._ready.is_set() and self.failure is None and self._process.poll() is None

    def replaceable(self) -> bool:
        """Time for a new server: it died, or it failed a while ago (a library may have been reinstalled)."""
        if not self._ready.is_set():
            return False
        if self.failure is not None:
            return time.monotonic() - self.failed_at > RETRY_FAILED_AFTER_S
        return self._process.poll() is not None

    def fork(self, execute_run_args: str, module: str | None) -> int:
        """Start a run worker for a job of code location `module`; its pid."""
        with self._lock:
            stdin = self._process.stdin
            assert stdin is not None
            stdin.write(json.dumps({"execute_run_args": execute_run_args, "module": module}) + "\n")
            stdin.flush()
            reply = self._read(REPLY_TIMEOUT_S)
        if reply is None or "pid" not in reply:
            raise RuntimeError(f"the fork server did not start the run: {reply}")
        return int(reply["pid"])

    def stop(self) -> None:
        """End the server; the run workers it started go on."""
        if self._process.stdin is not None and not self._process.stdin.closed:
            self._process.stdin.close()
        try:
            self._process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()


class WarmRunLauncher(DefaultRunLauncher):
    """Launch runs by forking the fork server (see the module docstring); the default way until it is ready."""

    def __init__(
        self,
        preload_modules: Sequence[str],
        standby_module: str | None = None,
        standby_workers: int = 1,
        inst_data: ConfigurableClassData | None = None,
    ) -> None:
        super().__init__(inst_data=inst_data)
        self.preload_modules = list(preload_modules)
        self.standby_module = standby_module
        self.standby_workers = standby_workers
        self._server: ForkServer | None = None
        self._server_lock = threading.Lock()

    @classmethod
    def config_type(cls) -> dict:
        return {
            "preload_modules": dg.Field(
                [str], description="Installed libraries the fork server imports once; they must start no thread."
            ),
            "standby_module": dg.Field(
                str,
                is_required=False,
                description="The code location module a standby worker imports ahead of its run.",
            ),
            "standby_workers": dg.Field(
                int,
                default_value=1,
                description="How many standby workers wait at once: runs that start together each find one.",
            ),
        }

    @classmethod
    def from_config_value(cls, inst_data: ConfigurableClassData, config_value: Mapping) -> WarmRunLauncher:
        return cls(inst_data=inst_data, **config_value)

    def _ready_server(self) -> tuple[ForkServer | None, str]:
        """The server to fork from, or None and why not (starting one when there is none, or it is stale)."""
        with self._server_lock:
            server = self._server
            if server is not None and server.replaceable():
                server.stop()
                server = None
            if server is None:
                instance_ref = serialize_value(self._instance.get_ref()) if self.standby_module else None
                self._server = ForkServer(self.preload_modules, self.standby_module, self.standby_workers, instance_ref)
                return None, "the fork server is starting"
            if server.failure is not None:
                return None, f"the fork server cannot serve: {server.failure}"
            if not server.ready:
                return None, "the fork server is still importing its preload"
            return server, ""

    def launch_run(self, context: LaunchRunContext) -> None:
        run = context.dagster_run
        server, why_not = self._ready_server()
        if server is None:
            self._instance.report_engine_event(f"Launching the default way: {why_not}.", run, cls=self.__class__)
            super().launch_run(context)
            return
        origin = run.job_code_origin
        args = ExecuteRunArgs(job_origin=origin, run_id=run.run_id, instance_ref=self._instance.get_ref())
        module = getattr(origin.repository_origin.code_pointer, "module", None) if origin else None
        pid = server.fork(serialize_value(args), module)
        self._instance.add_run_tags(run.run_id, {WORKER_TAG: f"{pid}:{process_start_time(pid)}"})
        self._instance.report_engine_event(f"Forked run worker {pid} from the fork server.", run, cls=self.__class__)

    def _worker(self, run_id: str) -> tuple[int, str] | None:
        run = self._instance.get_run_by_id(run_id)
        tag = run.tags.get(WORKER_TAG) if run else None
        if not tag:
            return None
        pid, started = tag.split(":", 1)
        return int(pid), started

    def terminate(self, run_id: str) -> bool:
        worker = self._worker(run_id)
        if worker is None:
            return super().terminate(run_id)
        run = self._instance.get_run_by_id(run_id)
        if run is None or run.is_finished:
            return False
        self._instance.report_run_canceling(run)
        pid, started = worker
        if process_start_time(pid) != started:
            self._instance.report_engine_event(f"Run worker {pid} had already exited.", run, cls=self.__class__)
            return False
        os.kill(pid, signal.SIGINT)
        return True

    @property
    def supports_check_run_worker_health(self) -> bool:
        return True

    def check_run_worker_health(self, run: dg.DagsterRun) -> CheckRunHealthResult:
        worker = self._worker(run.run_id)
        if worker is None:  # as the default launcher's runs: monitoring would fail UNKNOWN at its first look
            return CheckRunHealthResult(
                WorkerStatus.RUNNING,
                "launched by the code server, whose worker is not checked (run_monitoring.max_runtime_seconds applies)",
            )
        pid, started = worker
        if process_start_time(pid) == started:
            return CheckRunHealthResult(WorkerStatus.RUNNING)
        return CheckRunHealthResult(WorkerStatus.FAILED, f"run worker process {pid} is gone")

    def dispose(self) -> None:
        if self._server is not None:
            self._server.stop()
            self._server = None


# --- the fork server process: `python -m coin_platform.local.warm_runs <module>...` ---------------------------


def _threads() -> int:
    return len(os.listdir("/proc/self/task"))


# The server's ends of its standby's pipes: a forked child closes them, or the standby would never see the
# server go away.
_SERVER_FDS: set[int] = set()


def _leave_server(reply_fd: int) -> None:
    """In a forked child: let go of the server's pipes and signal handlers."""
    for fd in _SERVER_FDS:
        os.close(fd)
    _SERVER_FDS.clear()
    os.close(reply_fd)
    os.dup2(os.open(os.devnull, os.O_RDONLY), 0)
    os.dup2(2, 1)  # the server's stdout is its reply channel; the run writes to the daemon's stderr
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.default_int_handler)


def _execute_run(execute_run_args: str) -> None:
    """Run as `dagster api execute_run` does, then end the process with its exit code."""
    code = 0
    try:
        from dagster._cli.api import api_cli

        api_cli.main(args=["execute_run", execute_run_args], prog_name="dagster api", standalone_mode=False)
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    except BaseException:  # the run's own failures are in its event log; this is the worker itself failing
        import traceback

        traceback.print_exc()
        code = 1
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
    os._exit(code)


def _project_files() -> list[str]:
    """What a code location was built from: its imported modules' source files outside Python and the installed
    packages, and the config.yaml the settings read."""
    installed = {os.path.realpath(p) for p in (sys.prefix, sys.base_prefix, sys.exec_prefix)}
    files = {
        os.path.realpath(path)
        for module in list(sys.modules.values())
        if (path := getattr(module, "__file__", None)) and path.endswith(".py")
    }
    files = {f for f in files if not any(f.startswith(prefix + os.sep) for prefix in installed)}
    from coin_platform.settings import PROJECT_ROOT

    files.add(os.path.realpath(os.environ.get("COIN_CONFIG", PROJECT_ROOT / "config.yaml")))
    return sorted(files)


def _fingerprint(paths: Sequence[str]) -> list:
    fingerprint = []
    for path in paths:
        try:
            stat = os.stat(path)
        except OSError:
            fingerprint.append(None)
        else:
            fingerprint.append((stat.st_mtime_ns, stat.st_size))
    return fingerprint


class _Standby:
    """A forked child that imports `module` now and waits for one run; seen from the server."""

    def __init__(self, module: str, reply_fd: int) -> None:
        self.module = module
        request_read, self._request = os.pipe()
        self._answer, answer_write = os.pipe()
        self.pid = os.fork()
        if self.pid == 0:
            os.close(self._request)
            os.close(self._answer)
            _leave_server(reply_fd)
            _standby(module, request_read, answer_write)
        os.close(request_read)
        os.close(answer_write)
        _SERVER_FDS.update((self._request, self._answer))
        self._imported = False
        self.dead = False
        self.born = time.monotonic()

    def too_old(self) -> bool:
        """Past the age at which it would step aside (the server's clock; it checks its own)."""
        return time.monotonic() - self.born > STANDBY_MAX_AGE_S * 0.9

    def ready(self) -> bool:
        """Whether it has imported the code location (it says so once); a run never waits for the import."""
        if not self._imported and not self.dead:
            # b"r" once imported; nothing (end of file) when its import failed and it exited
            if _readable(self._answer, 0):
                self._imported = os.read(self._answer, 1) == b"r"
                self.dead = not self._imported
        return self._imported

    def close(self) -> None:
        for fd in (self._request, self._answer):
            os.close(fd)
        _SERVER_FDS.difference_update((self._request, self._answer))

    def take(self, execute_run_args: str) -> bool:
        """Hand it the run; False when it stepped aside (the code changed, it is too old, or it died)."""
        with contextlib.suppress(OSError):  # a standby that died: it answers nothing below
            os.write(self._request, execute_run_args.encode() + b"\n")
        os.close(self._request)
        try:
            answer = os.read(self._answer, 16)
        except OSError:
            answer = b""
        os.close(self._answer)
        _SERVER_FDS.difference_update((self._request, self._answer))
        return answer == b"ok"


def _standby(module: str, request_fd: int, answer_fd: int) -> None:
    """In the standby child: import the code location, wait for a run, run it if the code is still as imported."""
    import importlib

    born = time.monotonic()
    try:
        importlib.import_module(module)
        files = _project_files()
        imported = _fingerprint(files)
    except BaseException:  # noqa: BLE001 - the run then gets a fresh worker, which reports the error
        os._exit(1)
    _open_instance_once()
    try:
        os.write(answer_fd, b"r")
    except OSError:  # the server is gone
        os._exit(0)
    with os.fdopen(request_fd, "rb") as requests:
        execute_run_args = requests.readline().decode().strip()
    if not execute_run_args or time.monotonic() - born > STANDBY_MAX_AGE_S or _fingerprint(files) != imported:
        os._exit(0)
    os.write(answer_fd, b"ok")
    os.close(answer_fd)
    _execute_run(execute_run_args)


def _open_instance_once() -> None:
    """Open the runs' instance and let it go: its storages are then imported and set up for the run's own open."""
    if not (ref := os.environ.get(INSTANCE_REF_ENV)):
        return
    from dagster._serdes import deserialize_value

    try:
        with dg.DagsterInstance.from_ref(deserialize_value(ref)) as instance:
            instance.get_runs(limit=1)
    except Exception:  # noqa: BLE001 - only a head start: the run opens its instance itself and reports any error
        return


def _serve(preload: Sequence[str], standby_module: str | None, standby_workers: int) -> None:
    reply = sys.stdout
    try:
        import importlib

        for module in preload:
            importlib.import_module(module)
    except BaseException as exc:  # noqa: BLE001 - reported to the launcher, which launches the default way
        reply.write(json.dumps({"error": f"importing {module} failed: {type(exc).__name__}: {exc}"}) + "\n")
        reply.flush()
        return
    if (threads := _threads()) != 1:
        names = ", ".join(sorted(t.name for t in threading.enumerate()))
        reply.write(json.dumps({"error": f"the preload left {threads} threads ({names}): forking is unsafe"}) + "\n")
        reply.flush()
        return
    # Children are reaped as they exit; nobody waits for them here.
    signal.signal(signal.SIGCHLD, lambda *_: _reap())
    standbys: list[_Standby] = []
    _refill(standbys, standby_module, standby_workers, reply.fileno())
    reply.write(json.dumps({"ready": True}) + "\n")
    reply.flush()
    last_run = time.monotonic()
    while True:
        # One request at a time (the launcher waits for each reply), so nothing waits in stdin's buffer. Used
        # standbys are replaced once no run has come for REFILL_WHEN_IDLE_S: during a burst of runs, the runs
        # that found no standby get the CPU rather than their successors' imports.
        # With no run for STANDBY_MAX_AGE_S, aged standbys are let go, not replaced: an idle instance (a UI
        # nobody launches from) imports nothing; the next run refills the pool.
        active = time.monotonic() - last_run < STANDBY_MAX_AGE_S
        refill_due = active and len(standbys) < standby_workers
        if not _readable(sys.stdin.fileno(), REFILL_WHEN_IDLE_S if refill_due else STANDBY_MAX_AGE_S / 10):
            for aged in [s for s in standbys if s.too_old()]:  # replaced before a run would find it stale
                aged.close()
                standbys.remove(aged)
            if active:
                _refill(standbys, standby_module, standby_workers, reply.fileno())
            continue
        last_run = time.monotonic()
        if not (line := sys.stdin.readline()):
            return
        request = json.loads(line)
        args = request["execute_run_args"]
        ready = [s for s in standbys if s.module == request.get("module") and s.ready()]
        taken = ready[0] if ready and ready[0].take(args) else None
        if ready and taken is None:  # it stepped aside: the code changed, so the others imported it as it was
            for stale in standbys:
                if stale is not ready[0]:
                    stale.close()
            standbys = []
        if taken is not None:
            pid = taken.pid
        else:
            pid = os.fork()
            if pid == 0:
                _leave_server(reply.fileno())
                _execute_run(args)
        reply.write(json.dumps({"pid": pid}) + "\n")
        reply.flush()
        for gone in [s for s in standbys if s is taken or s.dead]:
            if gone.dead:
                gone.close()
            standbys.remove(gone)


def _refill(standbys: list[_Standby], module: str | None, count: int, reply_fd: int) -> None:
    """Fork standbys until there are `count`; the new ones import the code as it is now."""
    while module and len(standbys) < count:
        standbys.append(_Standby(module, reply_fd))


def _reap() -> None:
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def _main(arguments: Sequence[str]) -> None:
    """`[--standby MODULE [--standby-workers N]] PRELOAD...`"""
    parser = argparse.ArgumentParser(prog=f"python -m {__name__}")
    parser.add_argument("--standby")
    parser.add_argument("--standby-workers", type=int, default=1)
    parser.add_argument("preload", nargs="*")
    options = parser.parse_args(arguments)
    _serve(options.preload, options.standby, options.standby_workers)


if __name__ == "__main__":
    _main(sys.argv[1:])
