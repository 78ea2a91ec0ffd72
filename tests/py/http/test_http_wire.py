"""What reaches the wire from a handler, read as raw bytes from a socket:
every way a handler can put text into a response head (redirect targets,
content types, header dicts and pairs, sendfile types; the Server header and
static routes at start-up) refuses CR, LF, NUL and other control bytes with a
500 and a log line naming the header, never sending them. Query strings: a
handler gets only the query parameters it declares (or all with
``**kwargs``), and static routes match the path whatever the query."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator

import pytest

from helpers import BACKENDS, SERVERS, ServerProcess, child_env, connect, recv_until_eof
from http_helpers import app_server, wait_for

INJECTED = b"injected"


@pytest.fixture(scope="module", params=BACKENDS)
def wire(request: pytest.FixtureRequest) -> Iterator[ServerProcess]:
    """The wire test app on one backend, shared by this module's tests; its
    tracebacks are expected (the refused headers are logged)."""
    with app_server(str(request.param), allow_tracebacks=True, script="http_wire.py") as proc:
        yield proc


def exchange(port: int, target: str) -> bytes:
    """The raw bytes of the answer to GET target on a connection that asks
    to be closed after it."""
    with connect(port) as sock:
        sock.sendall(f"GET {target} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n".encode())
        return recv_until_eof(sock)


def head_of(raw: bytes) -> tuple[int, bytes]:
    head, sep, _ = raw.partition(b"\r\n\r\n")
    assert sep, f"no complete head: {raw!r}"
    return int(head.split(b" ", 2)[1]), head


# ---- header injection ----------------------------------------------------------

INJECTIONS = [
    # (what, target, header named in the log)
    ("redirect-nul-crlf", "/redirect?to=/x%00%0d%0aSet-Cookie:%20injected=1", "Location"),
    ("redirect-crlf", "/redirect?to=/x%0d%0aSet-Cookie:%20injected=1", "Location"),
    ("redirect-lf", "/redirect?to=/x%0aSet-Cookie:%20injected=1", "Location"),
    ("redirect-cr", "/redirect?to=/x%0dSet-Cookie:%20injected=1", "Location"),
    ("redirect-nul", "/redirect?to=/x%00injected", "Location"),
    ("redirect-esc", "/redirect?to=/x%1b[31minjected", "Location"),
    ("redirect-del", "/redirect?to=/x%7finjected", "Location"),
    ("ctype-crlf", "/ctype?t=text/html%0d%0aSet-Cookie:%20injected=1", "content_type"),
    ("ctype-nul-crlf", "/ctype?t=text/html%00%0d%0aSet-Cookie:%20injected=1", "content_type"),
    ("json-ctype-crlf", "/json-ctype?t=a/b%0d%0a%0d%0ainjected", "content_type"),
    ("file-ctype-crlf", "/file?t=a/b%0d%0aSet-Cookie:%20injected=1", "content_type"),
    ("value-nul-crlf", "/header?name=X-A&value=a%00%0d%0aSet-Cookie:%20injected=1", "X-A"),
    ("value-tab-ok-then-lf", "/header?name=X-A&value=a%09b%0ainjected", "X-A"),
    ("name-crlf", "/header?name=X-A%0d%0aSet-Cookie:%20injected&value=1", "X-A"),
    ("name-colon", "/header?name=Set-Cookie:%20injected%3D1%0d%0aX&value=1", "Set-Cookie"),
    ("name-nul", "/header?name=X%00injected&value=1", "X"),
    ("name-space", "/header?name=X%20injected&value=1", "X injected"),
    ("name-empty", "/header?name=&value=injected", "''"),
    ("pairs-crlf", "/pairs?value=b%0d%0aSet-Cookie:%20injected=1", "Set-Cookie"),
]


@pytest.mark.parametrize("target,named", [(t, n) for _, t, n in INJECTIONS],
                         ids=[w for w, _, _ in INJECTIONS])
def test_injection_refused(wire: ServerProcess, target: str, named: str) -> None:
    before = len(wire.stderr_text())
    raw = exchange(wire.port, target)
    status, head = head_of(raw)
    assert status == 500, raw
    assert INJECTED not in raw, raw
    assert head.count(b"\r\n") == raw[:len(head)].count(b"\n"), raw  # no bare LF or CR
    for line in head.split(b"\r\n")[1:]:
        assert all(b >= 0x20 and b != 0x7f or b == 0x09 for b in line), line
    # the log says which header and why
    def logged() -> bool:
        text = wire.stderr_text()[before:]
        return named in text and ("control byte" in text or "not a token" in text)
    assert wait_for(logged, 10), wire.stderr_text()[before:]


@pytest.mark.parametrize("name", ["Content-Length", "transfer-encoding"])
def test_framing_headers_refused(wire: ServerProcess, name: str) -> None:
    """The engine frames the body: a handler's own length or coding would be a
    second one, read differently by a client and a proxy."""
    before = len(wire.stderr_text())
    raw = exchange(wire.port, f"/header?name={name}&value=0")
    status, head = head_of(raw)
    assert status == 500 and head.lower().count(b"content-length") == 1, raw
    assert b"transfer-encoding" not in head.lower(), raw
    assert wait_for(lambda: f'"{name}"' in wire.stderr_text()[before:], 10), wire.stderr_text()


def test_clean_headers_still_sent(wire: ServerProcess) -> None:
    status, head = head_of(exchange(wire.port, "/redirect?to=/next%3Fa%3D1"))
    assert status == 302 and b"\r\nLocation: /next?a=1" in head, head
    status, head = head_of(exchange(wire.port, "/header?name=X-A&value=a%09b%20%C3%A9"))
    assert status == 200 and b"\r\nX-A: a\tb \xc3\xa9" in head, head
    status, head = head_of(exchange(wire.port, "/ctype?t=text/html;%20charset%3Dutf-8"))
    assert status == 200 and b"\r\nContent-Type: text/html; charset=utf-8\r\n" in head, head


def test_head_too_long_for_its_buffer_is_500(wire: ServerProcess) -> None:
    """A valid content type longer than the head buffer: a 500, not a
    connection left waiting for an answer that never comes."""
    status, head = head_of(exchange(wire.port, "/ctype?t=text/" + "a" * 1500))
    assert status == 500, head


def test_header_pairs_repeat(wire: ServerProcess) -> None:
    """headers as (name, value) pairs: a name may repeat (Set-Cookie)."""
    status, head = head_of(exchange(wire.port, "/pairs?value=b%3D2"))
    assert status == 200, head
    assert b"\r\nSet-Cookie: a=1\r\nSet-Cookie: b=2" in head, head


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("flag", ["--bad-server-name", "--bad-static-type"])
def test_bad_configuration_refused(backend: str, flag: str) -> None:
    """A Server header or a static route's type with CR LF: serving fails
    (registration is deferred to run(), after the listening line)."""
    proc = ServerProcess([sys.executable, str(SERVERS / "http_wire.py"), flag],
                         child_env(backend), ready=False)
    try:
        rc = proc.proc.wait(30)
        err = proc.stderr_text()
        assert rc != 0, err
        assert "ValueError" in err and ("server_name" in err or "content type" in err), err
    finally:
        proc.close()


# ---- query strings -------------------------------------------------------------

def get_json(port: int, target: str) -> tuple[int, object]:
    raw = exchange(port, target)
    status, head = head_of(raw)
    body = raw[len(head) + 4:]
    return status, json.loads(body) if status == 200 else body


def test_unknown_query_parameters_ignored(wire: ServerProcess) -> None:
    before = wire.stderr_text()
    status, head = head_of(exchange(wire.port, "/plain-kw?utm_source=x&fbclid=y"))
    assert status == 200, head
    assert get_json(wire.port, "/named?a=1&utm_source=x&b=2&c=3") == (200, {"a": "1", "b": "2"})
    assert get_json(wire.port, "/named?b=2") == (200, {"a": "-", "b": "2"})
    assert get_json(wire.port, "/redirect?to=/a&utm_source=x")[0] == 302
    assert wire.stderr_text() == before, "a handler failed"


def test_var_keyword_gets_every_parameter(wire: ServerProcess) -> None:
    assert get_json(wire.port, "/every?x=1&y=2&x=3") == (200, {"x": "1", "y": "2"})
    # the path's parameter wins over the query's; the request and the
    # method's self are never keywords (they would be given twice)
    assert get_json(wire.port, "/path/p?name=q&z=1&request=r&self=s") == (
        200, {"name": "p", "z": "1"})
    assert get_json(wire.port, "/args?k=v&utm=1") == (200, {"k": "v", "utm": "1"})


@pytest.mark.parametrize("target", ["/static-hello?x=1", "/static-hello?", "/static-hello?a=b&c"])
def test_static_route_ignores_query(wire: ServerProcess, target: str) -> None:
    raw = exchange(wire.port, target)
    status, head = head_of(raw)
    assert status == 200 and raw.endswith(b"static hello"), raw
