"""start_service: a service that never answers is stopped, not left running, and the error names it; a
service's output reaches its log file through a copier that ends with it."""

import re
import shutil
import sys
from pathlib import Path

import pytest

from coin_platform.local.stack.processes import ServiceProcess, StackError, start_service


def test_a_service_that_does_not_answer_in_time_is_stopped(tmp_path):
    sleep = shutil.which("sleep")
    log_file = tmp_path / "sleeper.log"
    with pytest.raises(StackError, match=r"sleeper \(pid \d+\) did not answer a ping within 0 s") as failure:
        start_service("sleeper", [sleep, "30"], log_file, {}, lambda: False, "a ping", 0.3)
    pid = int(re.search(r"pid (\d+)", str(failure.value)).group(1))
    assert not ServiceProcess("sleeper", pid, sleep, log_file).is_running()


def _copiers_of(log_file) -> list[int]:
    """PIDs of the processes copying output into `log_file` (coin_platform.ops.rotate)."""
    found = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                argv = (proc / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if b"coin_platform.ops.rotate" in argv and str(log_file).encode() in argv:
                found.append(int(proc.name))
    return found


def test_a_services_stdout_and_stderr_reach_its_log_through_the_copier_which_ends_with_it(tmp_path):
    log_file = tmp_path / "logs" / "talker.log"
    script = "import sys, time; print('started', flush=True); print('a warning', file=sys.stderr, flush=True); " \
             "time.sleep(30)"
    service = start_service("talker", [sys.executable, "-c", script], log_file, {},
                            lambda: "a warning" in _text(log_file), "its first lines", 20)
    assert len(_copiers_of(log_file)) == 1
    service.stop()
    assert log_file.read_text().splitlines() == ["started", "a warning"]
    assert _copiers_of(log_file) == []


def _text(path) -> str:
    return path.read_text() if path.exists() else ""
