"""px.share(): object graphs made immortal on free-threaded 3.13, counted and
kept alive elsewhere; they read the same afterwards, survive collections, and
the process exits cleanly. Runs on both interpreters; what differs is stated
per test."""

from __future__ import annotations

import copy
import ctypes
import gc
import json
import subprocess
import sys
import sysconfig
import threading
import weakref
from typing import Any

import pytest

import pyparallel as px
from helpers import CRASH_MARKERS, child_env
from pyparallel import _core

FREE_THREADED = bool(sysconfig.get_config_var("Py_GIL_DISABLED"))
# The free-threaded versions whose object layout this file checks; share()
# writes reference-count fields on these only.
TESTED_VERSIONS = {(3, 13)}
WRITES = FREE_THREADED and sys.version_info[:2] in TESTED_VERSIONS
IMMORTAL_REFCNT = 2**32 - 1  # what sys.getrefcount reports for an immortal object (64-bit)


def immortal(obj: Any) -> bool:
    return sys.getrefcount(obj) == IMMORTAL_REFCNT


def assert_shared(*objs: Any) -> None:
    """Immortal where share() writes. Elsewhere it writes nothing (checked by
    test_untested_interpreters_write_nothing), and the tests check reads and
    counts only."""
    if WRITES:
        for o in objs:
            assert immortal(o), (type(o), o if not callable(o) else o.__qualname__)


def assert_not_shared(*objs: Any) -> None:
    for o in objs:
        assert not immortal(o), type(o)


def fresh(n: int) -> list[Any]:
    """Objects made at run time (never code constants, which 3.13t makes
    immortal by itself)."""
    return [[i] for i in range(n)]


def run_python(code: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    res = subprocess.run([sys.executable, "-c", code], env=child_env(None), capture_output=True,
                         text=True, timeout=timeout)
    for marker in CRASH_MARKERS:
        assert marker not in res.stderr, res.stderr
    assert res.returncode == 0, res.stderr
    return res


# ---- what share() does on this interpreter ------------------------------------

def test_share_info_matches_the_tested_versions() -> None:
    info = _core.share_info()
    assert info["immortal"] is WRITES, info
    if not WRITES:
        assert info["reason"], info


class RawHead(ctypes.Structure):
    """The free-threaded 3.13 object header (Include/object.h), read from memory."""
    _fields_ = [("ob_tid", ctypes.c_uint64), ("padding", ctypes.c_uint16),
                ("ob_mutex", ctypes.c_uint8), ("ob_gc_bits", ctypes.c_uint8),
                ("ob_ref_local", ctypes.c_uint32), ("ob_ref_shared", ctypes.c_int64),
                ("ob_type", ctypes.c_void_p)]


def raw(obj: Any) -> RawHead:
    return RawHead.from_address(id(obj))


DEFERRED_FLAGS = """
import ctypes, json
class RawHead(ctypes.Structure):
    _fields_ = [("ob_tid", ctypes.c_uint64), ("padding", ctypes.c_uint16),
                ("ob_mutex", ctypes.c_uint8), ("ob_gc_bits", ctypes.c_uint8),
                ("ob_ref_local", ctypes.c_uint32), ("ob_ref_shared", ctypes.c_int64)]
def module_level():
    def nested():
        pass
    return nested
top, nested = RawHead.from_address(id(module_level)), RawHead.from_address(id(module_level()))
flags = [top.ob_gc_bits, top.ob_ref_shared & 3, nested.ob_gc_bits, nested.ob_ref_shared & 3]
# share() (not the interpreter: no second thread state yet) makes a deferred object immortal
import gc, pyparallel as px
px.share(module_level)
after = [top.ob_tid, top.ob_ref_local, top.ob_ref_shared]
gc.collect()
assert module_level()() is None
print(json.dumps({"flags": flags, "after": after}))
"""


@pytest.mark.skipif(not (FREE_THREADED and sys.version_info[:2] == (3, 13)),
                    reason="checks the free-threaded 3.13 object layout; other interpreters "
                           "have their own test or none (then share() writes nothing)")
def test_layout_3_13t() -> None:
    obj = {"k": fresh(1)}
    head = raw(obj)
    assert head.ob_type == id(dict)
    assert head.ob_tid != 0  # owned by this thread
    assert head.ob_ref_local >= 1 and head.ob_ref_shared >> 2 == 0
    # Deferred reference counting (the flag share.c must tell from a merge queue):
    # module-level functions have it, with the "queued" marker, nested ones do
    # not. In a process of its own: the first thread state created after the
    # main one makes 3.13t immortalize every deferred object itself.
    out = json.loads(run_python(DEFERRED_FLAGS).stdout)
    top_bits, top_flags, nested_bits, nested_flags = out["flags"]
    assert top_bits & 64 and top_flags == 2
    assert not nested_bits & 64 and nested_flags == 0
    assert out["after"] == [0, 2**32 - 1, 0]

    def nested() -> None:
        pass
    px.share(obj, nested)
    for o in (obj, obj["k"], obj["k"][0], nested):
        h = raw(o)
        assert (h.ob_tid, h.ob_ref_local, h.ob_ref_shared) == (0, 2**32 - 1, 0)
        assert sys.getrefcount(o) == IMMORTAL_REFCNT


@pytest.mark.skipif(WRITES, reason="covers interpreters on which share() must not write")
def test_untested_interpreters_write_nothing() -> None:
    obj = fresh(3)
    before = [sys.getrefcount(o) for o in obj]
    before_list = sys.getrefcount(obj)
    res = px.share(obj)
    assert res["immortal"] is False
    # Only the reference share() keeps was added.
    assert sys.getrefcount(obj) == before_list + 1
    assert [sys.getrefcount(o) for o in obj] == [n + 1 for n in before]


# ---- graphs -----------------------------------------------------------------

def test_shared_graph_reads_the_same_and_survives_collection() -> None:
    data = {"ints": list(range(1000, 1100)), "floats": [x / 3 for x in range(50)],
            "nested": {"t": (b"x" * 10, "y" * 5, None, True), "s": {1.5, 2.5},
                       "f": frozenset({"a" + str(i) for i in range(5)})},
            "big": 10**30 + 7, "c": complex(1, 2)}
    expected = copy.deepcopy(data)
    px.share(data)
    assert data == expected
    gc.collect()
    assert data == expected
    assert_shared(data, data["ints"], data["ints"][5], data["floats"][7], data["nested"],
                  data["nested"]["t"], data["nested"]["s"], data["nested"]["f"], data["big"])


def test_counts_for_a_known_graph() -> None:
    key_a, key_b = "".join(["a", "1"]), "".join(["b", "2"])
    inner = [10**20, 2.25 * 3, "".join(["x", "y"])]
    pair = (bytes([1, 2, 3]), None)
    graph = {key_a: inner, key_b: pair, "same": inner}  # inner reached twice, counted once
    distinct = {id(o): o for o in (graph, key_a, key_b, "same", inner, *inner, pair, *pair)}
    res = px.share(graph)
    assert res["objects"] == len(distinct) == 11
    assert res["bytes"] == sum(sys.getsizeof(o) for o in distinct.values())
    assert res["skipped"] == 0
    again = px.share(graph)
    assert (again["objects"], again["bytes"], again["new_objects"]) == (11, res["bytes"], 0)


def test_objects_created_later_are_not_immortal() -> None:
    d: dict[str, Any] = {"old": fresh(2)}
    px.share(d)
    d["new"] = fresh(2)
    d["old"].append(fresh(1))
    assert_not_shared(d["new"], d["new"][0], d["old"][-1])
    assert_shared(d, d["old"])


def test_cycles() -> None:
    a: list[Any] = []
    b = {"a": a}
    a.append(a)
    a.append(b)
    res = px.share(a)
    assert res["objects"] == 3  # a, b, "a"
    assert a[0] is a and a[1]["a"] is a
    gc.collect()
    assert_shared(a, b)


class Node:
    def __init__(self) -> None:
        self.me: Node | None = None
        self.payload = fresh(3)


def test_a_shared_cycle_survives_gc_collect() -> None:
    n = Node()
    n.me = n
    ref = weakref.ref(n)
    payload = copy.deepcopy(n.payload)
    px.share(n)
    del n
    for _ in range(3):
        gc.collect()
    alive = ref()
    assert alive is not None and alive.me is alive and alive.payload == payload


def test_a_million_element_list_and_a_deep_chain() -> None:
    big = list(range(10**6))
    res = px.share(big)
    assert res["objects"] == 10**6 + 1
    assert big[999_999] == 999_999
    assert_shared(big, big[123_456])
    chain: list[Any] = []
    for _ in range(200_000):  # far deeper than any recursion limit
        chain = [chain]
    assert px.share(chain)["objects"] == 200_000 + 1
    gc.collect()


TABLE = {"k" + str(i): i * 1000 for i in range(100)}
NOT_READ = {"never": fresh(1)}


def make_closure(scale: int) -> Any:
    offset = fresh(1)

    def handler(key: str, extra: int = 1000, *, flag: list[int] = [7000]) -> int:  # noqa: B006
        return TABLE[key] * scale + len(offset) + extra + flag[0]
    handler.attribute = {"tag": fresh(1)}  # type: ignore[attr-defined]
    return handler


def test_functions_closures_and_globals_they_read() -> None:
    handler = make_closure(3)
    expected = handler("k7")
    res = px.share(handler)
    assert handler("k7") == expected
    cells = handler.__closure__
    assert_shared(handler, handler.__code__, handler.__defaults__, handler.__kwdefaults__,
                  handler.__kwdefaults__["flag"], cells, *cells,
                  *[c.cell_contents for c in cells if c.cell_contents is not TABLE],
                  handler.attribute, handler.attribute["tag"], TABLE, TABLE["k7"])
    # Only the names the code reads: not other globals.
    assert_not_shared(NOT_READ["never"], NOT_READ)
    assert res["skipped"] == 0
    gc.collect()
    assert handler("k7") == expected


class Meta(type):
    registry: dict[str, Any] = {}


class Base(metaclass=Meta):
    limits = {"a": fresh(1)}

    def base_method(self) -> int:
        return len(self.limits)


class Protocol(Base):
    counter = 0

    def data_received(self, transport: Any, data: bytes) -> bytes:
        return data.upper()

    @classmethod
    def make(cls) -> Protocol:
        return cls()

    @staticmethod
    def helper() -> list[list[int]]:
        return TABLE["k1"]  # type: ignore[return-value]

    @property
    def prop(self) -> int:
        return self.counter


def test_classes_methods_bases_and_later_mutation() -> None:
    res = px.share(Protocol)
    d = Protocol.__dict__
    assert_shared(Protocol, Base, Meta, Protocol.data_received, Protocol.data_received.__code__,
                  d["make"], d["make"].__func__, d["helper"].__func__.__code__,
                  d["prop"], d["prop"].fget, Base.limits, Base.limits["a"], TABLE)
    assert res["skipped"] == 0, res
    # Still an ordinary, mutable class.
    Protocol.counter += 5
    Protocol.added = fresh(1)  # type: ignore[attr-defined]
    Protocol.data_received = lambda self, t, data: data.lower()  # type: ignore[method-assign]
    p = Protocol.make()
    assert (p.prop, p.data_received(None, b"AbC"), p.base_method(), Protocol.helper()) == \
        (5, b"abc", 1, 1000)
    del Protocol.added
    gc.collect()
    assert Protocol.make().prop == 5


class Slotted:
    __slots__ = ("a", "b", "unset")

    def __init__(self) -> None:
        self.a = fresh(1)
        self.b = {"x": fresh(1)}


def test_instances_dict_and_slots() -> None:
    s = Slotted()
    n = Node()
    res = px.share(s, n)
    assert_shared(s, s.a, s.b, s.b["x"], n, n.payload, n.payload[2], Slotted, Node)
    assert res["skipped"] == 0


class Finalized:
    def __init__(self) -> None:
        self.inside = fresh(1)

    def __del__(self) -> None:
        pass


def test_objects_that_must_stay_mortal_are_skipped_and_not_entered() -> None:
    def gen() -> Any:
        yield fresh(1)
    g = gen()
    lock = threading.Lock()
    fin = Finalized()
    frame = sys._getframe()
    res = px.share([json, g, lock, fin, frame, len.__self__])
    assert res["skipped"] == 6, res  # json, g, lock, fin, frame, builtins
    assert res["objects"] == 1       # the list
    assert_not_shared(g, lock, fin, fin.inside, frame)


def test_two_threads_read_a_shared_dict() -> None:
    table = {f"key{i}": i * 3 for i in range(100_000)}
    keys = list(table)
    px.share(table, keys)
    expected = sum(table.values())
    results: list[int] = []
    errors: list[BaseException] = []

    def reader() -> None:
        try:
            for _ in range(3):
                total = 0
                for k in keys:
                    total += table[k]
                results.append(total)
        except BaseException as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=reader) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors and results == [expected] * 6


def test_objects_owned_by_another_thread() -> None:
    made: dict[str, Any] = {}
    go = threading.Event()

    def owner() -> None:
        made["data"] = {"v": fresh(50)}
        made["ready"] = True
        go.wait(30)
        made["after"] = sum(x[0] for x in made["data"]["v"])  # the owner reads it after

    t = threading.Thread(target=owner)
    t.start()
    while "ready" not in made:
        threading.Event().wait(0.001)
    px.share(made["data"])
    assert_shared(made["data"], made["data"]["v"], made["data"]["v"][3])
    go.set()
    t.join(30)
    gc.collect()
    assert made["after"] == sum(range(50)) and made["data"]["v"][49] == [49]


def test_numpy_arrays() -> None:
    np = pytest.importorskip("numpy", reason="numpy is a test requirement (tools/requirements-test.txt)")
    arr = np.arange(1000, dtype=np.int64)
    view = arr[10:20]
    res = px.share({"view": view})
    assert res["objects"] == 4  # dict, key, view, the array it looks into
    assert_shared(view, arr)
    assert int(view.sum()) == sum(range(10, 20))


def test_stats_are_cumulative_and_in_px_stats() -> None:
    before = px.share_stats()
    assert set(before) == {"objects", "bytes"}
    obj = {"x": fresh(4)}
    res = px.share(obj)
    after = px.share_stats()
    assert after["objects"] - before["objects"] == res["new_objects"] > 0
    assert after["bytes"] - before["bytes"] == res["new_bytes"] > 0
    px.share(obj)  # nothing new
    assert px.share_stats() == after
    assert px.stats()["shared"] == after


# ---- in a process of its own: registration, __main__, exit ---------------------

REGISTER = """
import json, sys
import pyparallel as px
from pyparallel.http import HttpServer, route

LOOKUP = {"a": [1, 2, 3]}

class Echo:
    def data_received(self, transport, data):
        return LOOKUP["a"]

class App(HttpServer):
    instances = []
    def __init__(self):
        super().__init__()
        App.instances.append(self)
    @route("/json")
    def json(self, request):
        return {"message": "Hello, World!"}

def immortal(o):
    return sys.getrefcount(o) == 2**32 - 1

px.register(px.server("127.0.0.1", 0), Echo)
px.register(px.server("127.0.0.1", 0), App)
Unshared = type("Unshared", (), {"data_received": lambda s, t, d: d, "table": [[1]]})
px.register(px.server("127.0.0.1", 0), Unshared, share=False)
px.run_once(0.2)
app = App.instances[0]
out = {
    "echo_code": immortal(Echo.data_received.__code__),
    "lookup": immortal(LOOKUP["a"]),
    "app_class": immortal(App.json.__code__),
    "app_instance": immortal(app),
    "stats": px.share_stats(),
    "unshared": immortal(Unshared.table) or immortal(Unshared.table[0]),
    "in_stats": px.stats()["shared"] == px.share_stats(),
}
px.shutdown(0)
while not px.run_once(0.1):
    pass
print(json.dumps(out))
"""


def test_register_shares_the_protocol_and_app() -> None:
    out = json.loads(run_python(REGISTER).stdout)
    for key in ("echo_code", "lookup", "app_class", "app_instance"):
        assert out[key] is WRITES, (key, out)
    assert out["stats"]["objects"] > 0 and out["unshared"] is False and out["in_stats"]


SHARE_MAIN = """
import json, sys, threading
import pyparallel as px

CONFIG = {"routes": [[i] for i in range(10)]}
def handler():
    return CONFIG
LOCK = threading.Lock()
__all__ = ["handler"]  # a __dunder__ name: not shared

def immortal(o):
    return sys.getrefcount(o) == 2**32 - 1

px.run(workers=1, share_main=True)  # nothing registered: starts, then returns
print(json.dumps({"config": immortal(CONFIG), "item": immortal(CONFIG["routes"][3]),
                  "handler": immortal(handler), "lock": immortal(LOCK),
                  "dunder": immortal(__all__)}))
"""


def test_run_share_main() -> None:
    out = json.loads(run_python(SHARE_MAIN).stdout)
    assert out == {"config": WRITES, "item": WRITES, "handler": WRITES, "lock": False,
                   "dunder": False}


EXIT = """
import gc, sys, threading
import numpy as np
import pyparallel as px

GLOBAL = {"n": [str(i) * 3 for i in range(1000)], "arr": np.ones(100)}
def f(x, y=[1.5]):
    return GLOBAL["n"][x] + str(y[0])
class K:
    attr = {"x": [1, 2]}
    def m(self):
        return f(3)
box = {}
def owner():
    box["t"] = {"made": [[i] for i in range(100)]}
t = threading.Thread(target=owner); t.start(); t.join()
px.share(K, box, [f, K(), (1, 2, (3, 4))], GLOBAL)
readers = [threading.Thread(target=lambda: [K().m() for _ in range(20000)]) for _ in range(2)]
for r in readers: r.start()
gc.collect()
for r in readers: r.join()
assert K().m() == "333" + "1.5" and box["t"]["made"][99] == [99]
# a string shared while mortal, interned afterwards, used as a name
name = "".join(["dyn", "amic"])
px.share({name: [name]})
assert sys.intern(name) is name
setattr(K, name, box)
px.share(K)
# a thread that is still running when the interpreter exits
threading.Thread(target=lambda: [K().m() for _ in range(10**6)], daemon=True).start()
print("ok", px.share_stats()["objects"] > 0)
"""


def test_process_exits_cleanly() -> None:
    pytest.importorskip("numpy", reason="numpy is a test requirement (tools/requirements-test.txt)")
    res = run_python(EXIT)
    assert res.stdout.strip() == "ok True", res.stdout


class Reentrant:
    def __init__(self) -> None:
        self.error: BaseException | None = None

    def __sizeof__(self) -> int:
        try:
            px.share([1])
        except RuntimeError as e:
            self.error = e
        return 64


def test_share_called_from_inside_share_raises_instead_of_hanging() -> None:
    r = Reentrant()
    res = px.share(r)
    assert isinstance(r.error, RuntimeError)
    assert res["objects"] >= 2  # r and its class (and its __dict__)
