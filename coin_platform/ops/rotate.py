"""`python -m coin_platform.ops.rotate FILE`: copy standard input to FILE line by line, rotated by size.

A service that writes its output to a file it was handed cannot rotate it; the local stack hands
each service a pipe to this process instead, which ends when the service closes its end.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

from coin_platform.ops.logs import rotating_text_handler


def copy_lines(source, handler: logging.Handler) -> int:
    """Every line of the binary stream `source` (undecodable bytes replaced) to `handler`; returns the count."""
    count = 0
    for raw in source:
        line = raw.decode("utf-8", "replace").rstrip("\r\n")
        handler.handle(logging.makeLogRecord({"msg": line, "levelno": logging.INFO, "levelname": "INFO"}))
        count += 1
    return count


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m coin_platform.ops.rotate FILE", file=sys.stderr)
        return 2
    handler = rotating_text_handler(Path(argv[0]))
    try:
        copy_lines(sys.stdin.buffer, handler)
    finally:
        handler.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
