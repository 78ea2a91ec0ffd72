"""docs/pyparallel-api.md cannot rot: every name a row marked "works" gives
exists (a package attribute, a Transport or Request attribute, a protocol
attribute the binding or the package looks up), and every test a row cites
exists."""

from __future__ import annotations

import importlib
import re
from typing import Any

import pytest

import pyparallel as px
import pyparallel.http
from helpers import HERE

ROOT = HERE.parent.parent
DOC = ROOT / "docs" / "pyparallel-api.md"
STATUSES = ("works", "works, differs", "replaced", "not provided", "pending")
SPAN = re.compile(r"`([^`]+)`")
CHAIN = re.compile(r"^(px|transport|request|protocol)((?:\.[A-Za-z_][A-Za-z0-9_]*)+)")


def rows() -> list[tuple[str, str, str, str]]:
    """(original, status, here, tests) of every table row of the document."""
    out = []
    for line in DOC.read_text().splitlines():
        if not line.startswith("| ") or line.startswith(("| Original", "|---")):
            continue
        cells = [c.strip() for c in line.strip().strip("|").split(" | ")]
        assert len(cells) == 4, f"a row needs 4 cells: {line}"
        out.append((cells[0], cells[1], cells[2], cells[3]))
    return out


def resolve_px(path: list[str]) -> Any:
    """pyparallel.<path>, importing subpackages on the way."""
    obj: Any = px
    name = "pyparallel"
    for part in path:
        name += "." + part
        try:
            obj = getattr(obj, part)
        except AttributeError:
            obj = importlib.import_module(name)
    return obj


def binding_names() -> str:
    """The sources that look protocol attributes up by name: the binding, and
    the package (server_started)."""
    sources = [*(ROOT / "src" / "py").glob("*.c"), *(ROOT / "python" / "pyparallel").glob("*.py")]
    return "\n".join(p.read_text() for p in sources)


def check_name(span: str, binding: str) -> bool:
    """Whether a name a row gives exists; False when the span is no name."""
    m = CHAIN.match(span.lstrip("@"))  # a decorator names the same thing
    if m is None:
        return False
    kind, parts = m.group(1), m.group(2).split(".")[1:]
    if kind == "px":
        resolve_px(parts)
    elif kind == "transport":
        assert hasattr(px.Transport, parts[0]), span
    elif kind == "request":
        assert hasattr(px._core.Request, parts[0]), span
    else:  # protocol attributes: looked up by name
        assert f'"{parts[0]}"' in binding, span
    return True


def test_every_row_has_a_known_status() -> None:
    found = rows()
    assert len(found) > 80
    for original, status, _, _ in found:
        assert status in STATUSES, (original, status)


def test_working_names_exist_and_cite_existing_tests() -> None:
    binding = binding_names()
    for original, status, here, tests in rows():
        if not status.startswith("works"):
            continue
        names = [s for s in SPAN.findall(here) if check_name(s, binding)]
        assert names, f"{original}: a working row names what works here"
        cited = SPAN.findall(tests)
        assert cited, f"{original}: a working row cites its tests"
        for ref in cited:
            path, _, test = ref.partition("::")
            source = HERE / path
            assert source.is_file(), f"{original}: no {path}"
            assert re.search(rf"^def {re.escape(test)}\(", source.read_text(), re.M), \
                f"{original}: no test {ref}"


@pytest.mark.parametrize("name", [
    "connection_closed", "client_created", "server_started", "send_failed", "recv_failed",
    "send_shutdown", "recv_shutdown", "shutdown_send", "try_read_lock", "try_write_lock",
    "synchronized", "critical_section", "cpu_count", "gmtime", "active_count",
    "active_contexts", "active_hogs", "submit_io", "submit_wait", "submit_timer", "thread",
    "debugbreak",
])
def test_the_names_of_issue_12_are_documented(name: str) -> None:
    assert any(f"`{name}" in original or f".{name}" in here
               for original, _, here, _ in rows()), name


def test_http_error_and_redirect_helpers() -> None:
    app = px.http.HttpServer()
    err = app.error(None, 404, "no such page")
    assert (err.status, err.body, err.content_type) == (404, "no such page\n",
                                                        "text/plain; charset=utf-8")
    moved = app.redirect(None, "/elsewhere", 301)
    assert (moved.status, moved.headers) == (301, {"Location": "/elsewhere"})
