"""The replay server process over real HTTP: clean exit on SIGTERM, request framing.

Everything here goes through the `coin replay serve` process the fixtures
start, so what is tested is what a client sees on the wire.
"""

from __future__ import annotations

import http.client
import json
import socket

import pytest

from coin_platform.local.replay import ORDER_PATH
from coin_platform_tests.local.replay.wire import get


def test_the_server_exits_cleanly_on_sigterm(start_replay):
    server = start_replay()
    server.stop()
    assert server.exit_code == 0
    assert "Traceback" not in server.log()


# -- request framing ------------------------------------------------------

MEBIBYTE = 1 << 20  # the largest request body the server promises to read


def raw_post(url: str, path: str, content_length: str) -> tuple[int, dict]:
    """POST with a hand-written Content-Length and no body; (status, JSON body) of the answer.

    A raw socket, because HTTP clients refuse to send such headers; its timeout turns a
    server that waits for a body that never comes into a failure instead of a hung test.
    """
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as connection:
        connection.sendall(f"POST {path} HTTP/1.1\r\nHost: {host}\r\n"
                           f"Content-Type: application/json\r\n"
                           f"Content-Length: {content_length}\r\n\r\n".encode())
        response = http.client.HTTPResponse(connection)
        response.begin()
        return response.status, json.loads(response.read())


@pytest.mark.parametrize("path", [ORDER_PATH, "/_replay/faults"])
@pytest.mark.parametrize("content_length", ["abc", "-1", "1e3", ""])
def test_a_bad_content_length_gets_a_json_400(replay_server, path, content_length):
    status, body = raw_post(replay_server.url, path, content_length)

    assert (status, body["code"]) == (400, -1100)
    assert "Content-Length" in body["msg"]
    assert get(replay_server.url, "/fapi/v1/ping").status_code == 200
    assert "Traceback" not in replay_server.log()


@pytest.mark.parametrize("path", [ORDER_PATH, "/_replay/faults"])
@pytest.mark.parametrize("content_length", [str(MEBIBYTE + 1), str(10**18), "9" * 5000],
                         ids=["1 MiB + 1", "10**18", "5000 digits"])
def test_a_body_over_the_limit_is_refused_unread(replay_server, path, content_length):
    status, body = raw_post(replay_server.url, path, content_length)

    assert (status, body["code"]) == (413, -1100)
    assert str(MEBIBYTE) in body["msg"]
    assert get(replay_server.url, "/fapi/v1/ping").status_code == 200
    assert "Traceback" not in replay_server.log()
