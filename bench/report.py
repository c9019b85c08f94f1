"""How every benchmark reports: one JSON object on stdout (nothing else there), optionally also to a file."""

from __future__ import annotations

import json
from pathlib import Path


def emit(result: dict, json_out: Path | None = None) -> int:
    """Print `result` as JSON, write it to `json_out` too when given, and return the exit status 0."""
    text = json.dumps(result, indent=2, ensure_ascii=False)
    print(text)
    if json_out:
        json_out.write_text(text + "\n")
    return 0
