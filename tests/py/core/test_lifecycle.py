"""The package's lifecycle: a protocol class that attaches its servers itself
(``__px_listen__``, what HttpServer does), before serving and while serving,
and what happens to the listening socket when it fails."""

from __future__ import annotations

import json
import subprocess
import sys

from helpers import child_env

SELF_ATTACHING = """
import json, socket, threading
import pyparallel as px

class Echo:
    def data_received(self, transport, data):
        return data

class SelfAttaching:
    calls = []

    @classmethod
    def __px_listen__(cls, engine, host, port, fd):
        cls.calls.append({"engine": engine is px.engine(), "host": host, "port": port,
                          "started": engine.started})
        return engine.listen(host, port, Echo, fd)

def echo(port, data):
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(data)
        got = b""
        while len(got) < len(data):
            got += s.recv(len(data) - len(got))
    return got.decode()

first = px.server("127.0.0.1", 0)
px.register(transport=first, protocol=SelfAttaching)
result = {"ports": [first.port]}

def client():
    try:
        result["first"] = echo(first.port, b"ping")  # waits in the backlog until serving
        second = px.server("127.0.0.1", 0)
        px.register(transport=second, protocol=SelfAttaching)  # attached at once: serving
        result["ports"].append(second.port)
        result["second"] = echo(second.port, b"pong")
    finally:
        px.shutdown()

threading.Thread(target=client).start()
px.run(workers=2)
print(json.dumps({"calls": SelfAttaching.calls, **result}))
"""

FAILING = """
import errno, json, os
import pyparallel as px

class Broken:
    fds = []

    @classmethod
    def __px_listen__(cls, engine, host, port, fd):
        cls.fds.append(fd)
        raise ValueError("refused by the protocol")

srv = px.server("127.0.0.1", 0)
px.register(transport=srv, protocol=Broken)
try:
    px.run(workers=1)
    raised = None
except ValueError as exc:
    raised = str(exc)
try:
    os.fstat(Broken.fds[0])
    closed = False
except OSError as exc:
    closed = exc.errno == errno.EBADF
print(json.dumps({"raised": raised, "closed": closed, "calls": len(Broken.fds)}))
"""


def run_script(code: str, backend: str) -> dict[str, object]:
    res = subprocess.run([sys.executable, "-c", code], env=child_env(backend),
                         capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    out: dict[str, object] = json.loads(res.stdout.strip().splitlines()[-1])
    return out


def test_a_protocol_class_attaches_its_servers_itself(backend: str) -> None:
    out = run_script(SELF_ATTACHING, backend)
    assert out["first"] == "ping" and out["second"] == "pong"
    first, second = out["ports"]  # type: ignore[misc]
    assert out["calls"] == [
        {"engine": True, "host": "127.0.0.1", "port": first, "started": False},
        {"engine": True, "host": "127.0.0.1", "port": second, "started": True},
    ]


def test_a_failing_attach_closes_the_socket_it_was_given(backend: str) -> None:
    out = run_script(FAILING, backend)
    assert out == {"raised": "refused by the protocol", "closed": True, "calls": 1}
