"""Code location import benchmark: the CPU a Dagster run worker spends importing `coin_platform.definitions`.

Every run imports the code location before it runs; the live path pays it on every candle. Each import
runs in a fresh interpreter, `--repeats` times; CPU seconds (user + system, from the children's rusage)
are reported as the median. Also reported: the same for `import dagster, dagster_dbt` alone, which a
run launcher forking from a warm process has paid already (the difference is what such a run still
pays), and the heavy libraries the import loaded (none is the goal: test_import_weight.py).

    python bench/import_weight.py
    python bench/import_weight.py --repeats 5 --json-out bench/results/import_weight.json
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from report import emit  # bench/report.py, beside this script

from coin_platform.settings import PROJECT_ROOT

HEAVY = ("sklearn", "skops", "scipy", "bokeh", "matplotlib", "numba")
CODE_LOCATION = f"""
import json, sys
import coin_platform.definitions
print(json.dumps(sorted({{m.split(".")[0] for m in sys.modules}} & {set(HEAVY)!r})))
"""
DAGSTER_ONLY = "import dagster, dagster_dbt"


def cpu_seconds(code: str, environ: dict[str, str], cwd: Path) -> tuple[float, str]:
    """User + system CPU of one fresh interpreter running `code`, and what it printed."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    completed = subprocess.run(
        [sys.executable, "-c", code], env=environ, cwd=cwd, capture_output=True, text=True, check=False
    )
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if completed.returncode != 0:
        raise RuntimeError(f"the import failed:\n{completed.stderr}")
    used = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return used, completed.stdout


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3, help="fresh interpreters per measurement")
    parser.add_argument("--json-out", type=Path)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.repeats < 1:
        raise SystemExit("--repeats must be at least 1")
    with tempfile.TemporaryDirectory() as home:
        environ = {
            **os.environ,
            "COIN_CONFIG": str(PROJECT_ROOT / "config.yaml"),
            "COIN_HOME": home,
            "PYTHONPATH": str(PROJECT_ROOT),  # this checkout's code, whatever is installed
        }
        cwd = Path(home)
        cpu_seconds(CODE_LOCATION, environ, cwd)  # compiles the bytecode a deployed image ships with
        location = [cpu_seconds(CODE_LOCATION, environ, cwd) for _ in range(args.repeats)]
        dagster = [cpu_seconds(DAGSTER_ONLY, environ, cwd)[0] for _ in range(args.repeats)]
    location_cpu = statistics.median(used for used, _ in location)
    dagster_cpu = statistics.median(dagster)
    result = {
        "repeats": args.repeats,
        "code_location_cpu_s": round(location_cpu, 2),
        "dagster_and_dagster_dbt_cpu_s": round(dagster_cpu, 2),
        "beyond_dagster_cpu_s": round(location_cpu - dagster_cpu, 2),
        "heavy_modules_loaded": json.loads(location[-1][1].strip().splitlines()[-1]),
    }
    return emit(result, args.json_out)


if __name__ == "__main__":
    raise SystemExit(main())
