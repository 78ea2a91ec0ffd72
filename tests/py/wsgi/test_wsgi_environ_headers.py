"""Request headers in the environ on both backends: repeated Cookie headers
joined by "; " (RFC 6265: a list of them is not comma-separated), and a
trusted X-Forwarded-Proto read by its first element (the client's side)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from wsgi_helpers import read_reply, served

from helpers import BACKENDS, ServerProcess
from http_helpers import Conn


@pytest.fixture(scope="module", params=BACKENDS)
def server(request: pytest.FixtureRequest) -> Iterator[ServerProcess]:
    with served(request.param, "pep_app:app", "--url-scheme-header", "X-Forwarded-Proto",
                "--workers", "2", env={"PEP_APP_FILE": __file__}) as proc:
        yield proc


def environ(port: int, *headers: str) -> dict[str, Any]:
    with Conn(port) as c:
        c.send(("GET /env HTTP/1.1\r\nHost: x\r\n" + "".join(h + "\r\n" for h in headers) +
                "\r\n").encode())
        r = read_reply(c)
    assert r.status == 200
    env: dict[str, Any] = json.loads(r.body)
    return env


def test_repeated_cookies_joined_by_semicolon(server: ServerProcess) -> None:
    env = environ(server.port, "Cookie: a=1", "Cookie: b=2; c=3")
    assert env["HTTP_COOKIE"] == "a=1; b=2; c=3"
    env = environ(server.port, "Accept: text/html", "Accept: text/plain")
    assert env["HTTP_ACCEPT"] == "text/html, text/plain"  # other lists keep the comma


@pytest.mark.parametrize("headers,scheme", [
    (["X-Forwarded-Proto: https, http"], "https"),
    (["X-Forwarded-Proto: http, https"], "http"),
    (["X-Forwarded-Proto: https", "X-Forwarded-Proto: http"], "https"),
    (["X-Forwarded-Proto:  HTTPS "], "https"),
])
def test_forwarded_proto_first_element(server: ServerProcess, headers: list[str],
                                       scheme: str) -> None:
    assert environ(server.port, *headers)["wsgi.url_scheme"] == scheme
