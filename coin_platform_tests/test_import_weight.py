"""Every Dagster run worker imports the code location before it runs, so the live path pays its import on
every candle. Importing it, and building `defs`, must leave out the libraries only some assets use:
scikit-learn (training, evaluation, a promoted model), bokeh and matplotlib (reports), numba (the engine)."""

import json
import os
import subprocess
import sys

from coin_platform.settings import PROJECT_ROOT

HEAVY = ("sklearn", "skops", "scipy", "bokeh", "matplotlib", "numba")

_LOADED_HEAVY = f"""
import json, sys
import coin_platform.definitions
print(json.dumps(sorted({{m.split(".")[0] for m in sys.modules}} & {set(HEAVY)!r})))
"""


def test_the_code_location_imports_no_heavy_library(tmp_path):
    environ = {
        **os.environ,
        "COIN_CONFIG": str(PROJECT_ROOT / "config.yaml"),
        "COIN_HOME": str(tmp_path),
        "PYTHONPATH": str(PROJECT_ROOT),
    }
    completed = subprocess.run(
        [sys.executable, "-c", _LOADED_HEAVY], env=environ, cwd=tmp_path, capture_output=True, text=True, check=False
    )
    assert completed.returncode == 0, completed.stderr
    assert json.loads(completed.stdout.strip().splitlines()[-1]) == []
