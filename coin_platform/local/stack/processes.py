"""Background services known by PID: spawn in their own session, /proc identity, pid files, stop.

Every service runs in its own session with its output in a log file (rotated by size: the
output goes through a pipe to coin_platform.ops.rotate) and is stopped by PID: SIGTERM, a
grace period, SIGKILL. Process identity is read from /proc (Linux), so a pid file whose PID
was reused by another program is not trusted.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

STOP_TIMEOUT = 15.0

# Processes started by this interpreter, polled so a stopped one never lingers as a zombie.
_CHILDREN: dict[int, subprocess.Popen[bytes]] = {}
# The copier of each log file this interpreter started a service with (`rotated_output`).
_COPIERS: dict[Path, subprocess.Popen[bytes]] = {}
COPIER_DRAIN_TIMEOUT = 5.0


class StackError(RuntimeError):
    """A local service could not start, answer or stop; the message says why."""


def _command_line(pid: int) -> list[str]:
    """argv of `pid`, empty when it is gone or a zombie."""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return [part.decode(errors="replace") for part in raw.split(b"\0") if part]


@dataclass(frozen=True)
class ServiceProcess:
    """A background service known by its PID; works across shells through pid files."""

    name: str
    pid: int
    executable: str
    log_file: Path

    def is_running(self) -> bool:
        """True while `pid` is alive and still runs our executable (PIDs get reused)."""
        argv = _command_line(self.pid)
        if argv and Path(argv[0]).name == Path(self.executable).name:
            return True
        # A zombie has no argv: if it is our own child, reap it (it exec'd before Popen returned).
        child = _CHILDREN.get(self.pid)
        if child is not None:
            child.wait()
        return False

    def stop(self, timeout: float = STOP_TIMEOUT) -> int | None:
        """SIGTERM, wait up to `timeout` for a clean shutdown, then SIGKILL.

        Returns the exit code when the service is this process's own child.
        """
        for sig, grace in ((signal.SIGTERM, timeout), (signal.SIGKILL, 5.0)):
            if not self.is_running():
                break
            try:
                os.kill(self.pid, sig)
            except ProcessLookupError:
                break
            deadline = time.monotonic() + grace
            while time.monotonic() < deadline and self.is_running():
                time.sleep(0.05)
            if not self.is_running():
                break
        else:
            raise StackError(f"{self.name} (pid {self.pid}) did not exit after SIGKILL")
        child = _CHILDREN.pop(self.pid, None)
        wait_for_log(self.log_file)
        return child.returncode if child is not None else None

    def log_tail(self, lines: int = 30) -> str:
        try:
            with self.log_file.open("rb") as log:
                log.seek(0, os.SEEK_END)
                log.seek(max(0, log.tell() - 16384))
                text = log.read().decode(errors="replace")
        except OSError:
            return f"(no log at {self.log_file})"
        return "\n".join(text.splitlines()[-lines:])

    def write_pid_file(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_suffix(".tmp")
        temporary.write_text(f"{self.pid}\n")
        temporary.replace(path)


def default_signal_handlers() -> None:
    """Runs in the child before exec: drop SIG_IGN inherited from e.g. a `cmd &` shell."""
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT):
        signal.signal(sig, signal.SIG_DFL)


@contextlib.contextmanager
def rotated_output(log_file: Path) -> Iterator[int]:
    """A pipe's write end for a child's stdout and stderr, copied to `log_file` rotated by size
    (coin_platform.ops.rotate, in its own session so a Ctrl-C leaves it to drain what is left).

    Pass the descriptor to the child inside the block; the copier ends when the child's end closes.
    """
    log_file.parent.mkdir(parents=True, exist_ok=True)
    wait_for_log(log_file)  # the copier of a previous start, whose child has exited
    read_end, write_end = os.pipe()
    try:
        _COPIERS[log_file] = subprocess.Popen(
            [sys.executable, "-m", "coin_platform.ops.rotate", str(log_file)],
            stdin=read_end, stdout=subprocess.DEVNULL, start_new_session=True, preexec_fn=default_signal_handlers,
        )
    except BaseException:
        os.close(write_end)
        raise
    finally:
        os.close(read_end)
    try:
        yield write_end
    finally:
        os.close(write_end)


def wait_for_log(log_file: Path, timeout: float = COPIER_DRAIN_TIMEOUT) -> None:
    """Until the copier of `log_file` has written all its child printed (after the child has exited)."""
    copier = _COPIERS.pop(log_file, None)
    if copier is None:
        return
    try:
        copier.wait(timeout=timeout)
    except subprocess.TimeoutExpired:  # a grandchild still holds the pipe: what it writes later is lost
        copier.kill()
        copier.wait()


def spawn(name: str, command: list[str], log_file: Path, env: dict[str, str],
           cwd: Path | None = None) -> ServiceProcess:
    """`command` in its own session, its output in `log_file` (rotated by size)."""
    with rotated_output(log_file) as output:
        child = subprocess.Popen(
            command, stdin=subprocess.DEVNULL, stdout=output, stderr=subprocess.STDOUT,
            env=env, cwd=cwd, start_new_session=True, preexec_fn=default_signal_handlers,
        )
    _CHILDREN[child.pid] = child
    return ServiceProcess(name=name, pid=child.pid, executable=command[0], log_file=log_file)


def start_service(name: str, command: list[str], log_file: Path, env: dict[str, str], answers: Callable[[], bool],
                  what: str, timeout: float) -> ServiceProcess:
    """`spawn`, then `wait_until_ready`; a service that does not come up is stopped before the error goes up."""
    process = spawn(name, command, log_file, env)
    try:
        wait_until_ready(process, answers, what, timeout)
    except BaseException:
        process.stop()
        raise
    return process


def wait_until_ready(process: ServiceProcess, answers: Callable[[], bool], what: str,
                      timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not answers():
        if not process.is_running():
            wait_for_log(process.log_file)
            raise StackError(
                f"{process.name} exited during start-up; last lines of {process.log_file}:\n"
                f"{process.log_tail()}"
            )
        if time.monotonic() >= deadline:
            raise StackError(
                f"{process.name} (pid {process.pid}) did not answer {what} within "
                f"{timeout:.0f} s; last lines of {process.log_file}:\n{process.log_tail()}"
            )
        time.sleep(0.1)


def child_env(drop_prefixes: tuple[str, ...], **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(drop_prefixes)}
    return env | extra
