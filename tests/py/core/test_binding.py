"""The binding's own contracts: engine failures become the right exceptions
(one helper, EngineError for an engine that refuses), and Engine is a GC type
whose cycles are collected once it has stopped, while a running engine keeps
what its threads may call. Each check runs in a fresh interpreter on both
backends."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from helpers import child_env

ERRORS = """
import errno, json, socket
import pyparallel._core as c
out = {"mro": [k.__name__ for k in c.EngineError.__mro__]}
e = c.Engine(workers=1)
busy = socket.socket()
busy.bind(("127.0.0.1", 0))
busy.listen()
class Proto:
    pass
try:
    e.listen("127.0.0.1", busy.getsockname()[1], Proto)
except OSError as exc:
    out["listen"] = [type(exc).__name__, exc.errno == errno.EADDRINUSE]
e.start()
e.shutdown(0)
e.join()
try:
    c.submit(e, print)
except RuntimeError as exc:
    out["submit"] = [type(exc).__name__, isinstance(exc, OSError)]
try:
    c.Timer(e, 0.1, print)
except c.EngineError as exc:
    out["timer"] = [type(exc).__name__, exc.errno]  # no errno: the engine said so itself
try:
    c.post_main(e, print)
except c.EngineError as exc:
    out["post_main"] = type(exc).__name__
print(json.dumps(out))
"""

REFUSED = """
import json
import pyparallel._core as c
try:
    c.Engine(workers=1, backend="uring")
    print(json.dumps(None))
except c.EngineError as exc:
    print(json.dumps([exc.errno is not None, "io_uring was asked for" in str(exc)]))
"""

CYCLES = """
import gc, json, weakref
import pyparallel._core as c
class Proto:
    pass
class Factory:   # a protocol factory that names its engine: a cycle
    def __call__(self):
        return Proto()
out = {}
f = Factory()
e = c.Engine(workers=1)
f.engine = e
e.listen("127.0.0.1", 0, f)
e.start()
ref = weakref.ref(f)
del f
gc.collect()
out["running_keeps"] = ref() is not None
e.shutdown(0)
e.join()
del e
gc.collect()
out["stopped_collected"] = ref() is None
f = Factory()
e = c.Engine(workers=1)
f.engine = e
e.connect("127.0.0.1", 9, f)   # never started: the engine drops the request
ref = weakref.ref(f)
del f, e
gc.collect()
out["never_started_collected"] = ref() is None
print(json.dumps(out))
"""


def run(code: str, backend: str, env: dict[str, str] | None = None) -> object:
    res = subprocess.run([sys.executable, "-c", code], check=False, env=child_env(backend, env),
                         capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    return json.loads(res.stdout.splitlines()[-1])


@pytest.mark.parametrize("backend", ["uring", "epoll"])
def test_engine_errors(backend: str) -> None:
    out = run(ERRORS, backend)
    assert out == {
        "mro": ["EngineError", "OSError", "RuntimeError", "Exception", "BaseException",
                "object"],
        "listen": ["OSError", True],
        "submit": ["EngineError", True],
        "timer": ["EngineError", None],
        "post_main": "EngineError",
    }


def test_refused_uring_is_an_engine_error() -> None:
    assert run(REFUSED, "uring", {"PX_URING_REFUSE": "1"}) == [True, True]


@pytest.mark.parametrize("backend", ["uring", "epoll"])
def test_engine_cycles_are_collected_once_stopped(backend: str) -> None:
    assert run(CYCLES, backend) == {
        "running_keeps": True,
        "stopped_collected": True,
        "never_started_collected": True,
    }


NEVER_STARTED = """
import json
import pyparallel._core as c
class Proto:
    pass
e = c.Engine(workers=2)
e.listen("127.0.0.1", 0, Proto)
e.listen("127.0.0.1", 0, Proto)
del e   # its listeners' arm messages are still queued for workers that never ran
print(json.dumps("freed"))
"""


@pytest.mark.parametrize("backend", ["uring", "epoll"])
def test_engine_that_listened_but_never_started_is_freed(backend: str) -> None:
    assert run(NEVER_STARTED, backend) == "freed"
