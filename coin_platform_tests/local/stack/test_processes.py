"""start_service: a service that never answers is stopped, not left running, and the error names it."""

import re
import shutil

import pytest

from coin_platform.local.stack.processes import ServiceProcess, StackError, start_service


def test_a_service_that_does_not_answer_in_time_is_stopped(tmp_path):
    sleep = shutil.which("sleep")
    log_file = tmp_path / "sleeper.log"
    with pytest.raises(StackError, match=r"sleeper \(pid \d+\) did not answer a ping within 0 s") as failure:
        start_service("sleeper", [sleep, "30"], log_file, {}, lambda: False, "a ping", 0.3)
    pid = int(re.search(r"pid (\d+)", str(failure.value)).group(1))
    assert not ServiceProcess("sleeper", pid, sleep, log_file).is_running()
