"""CPython's own stream, protocol, transport and server tests (test.test_asyncio)
pass against pyparallel.asyncio (conformance.py runs them with our loop), and
its TLS suites (test_sslproto's start_tls tests and test_ssl, over real
sockets), except the known gaps listed below: each must fail only as its
entry says, so that a regression anywhere else fails here.
The wider run (event loop, futures, tasks, sockets) is docs/asyncio.md's."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

RUNNER = Path(__file__).with_name("conformance.py")

# Not run: they patch a selector transport's private socket and callbacks.
SELECTOR_ONLY = {
    "test_remote_shutdown_receives_trailing_data_on_slow_socket":
        "patches _SelectorSocketTransport's _sock and _read_ready_cb",
}

# TLS tests that check, right after run_until_complete returns, that a closed
# or cancelled connection's SSL context was freed: the engine's connection_lost
# (which cancels the handshake timer and drops the SSL protocol) reaches a
# standalone loop from the engine's thread and may come after the run has
# stopped, freeing it at the next run instead (a worker's loop never stops).
LATE_CONNECTION_LOST = {
    "test_handshake_timeout": "is not None",
    "test_create_connection_memory_leak": "is not None",
    "test_handshake_timeout_handler_leak": "is not None",
    "test_start_tls_client_reg_proto_1": "is not None",
}

# Gaps found by CPython 3.13's suite (the 3.11 suite has neither test), each
# failing only as described until fixed:
KNOWN_GAPS = {
    **LATE_CONNECTION_LOST,
    # the refused connect's exception is still referenced by its future (a
    # cycle the collector takes, which the test forbids)
    "test_open_connection_happy_eyeball_refcycles": "Future finished exception=",
    # a second ResourceWarning besides the StreamWriter's when it is collected
    "test_unclosed_resource_warnings": "AssertionError: 2 != 1",
    # test_server's TestServer2 (3.13): close_clients() is expected to have
    # ended the connections within two loop passes; the engine's
    # connection_lost comes from its worker, a little later
    "test_close_clients": "False is not true",
    # abort_clients: it shrinks the server socket's buffers through
    # get_extra_info("socket"), which is None (the engine owns the socket)
    "test_abort_clients": "no attribute 'setsockopt'",
}


@pytest.mark.timeout(300)
def test_stream_protocol_transport_suites(backend: str) -> None:
    env = {"PX_BACKEND": backend}
    import os
    env = {**os.environ, **env}
    skips = [a for name in SELECTOR_ONLY for a in ("--skip", name)]
    out = subprocess.run([sys.executable, str(RUNNER), "test_streams", "test_protocols",
                          "test_transports", "test_server", "test_sslproto", "test_ssl",
                          *skips],
                         capture_output=True, text=True, timeout=280, env=env)
    failed = {}
    for line in out.stdout.splitlines():
        if line.startswith("FAIL "):
            name, _, why = line[5:].partition(": ")
            failed[name.rsplit(".", 1)[-1]] = why
    assert "TOTAL run=" in out.stdout, out.stdout + out.stderr[-3000:]
    unexpected = {n: why for n, why in failed.items() if n not in KNOWN_GAPS}
    assert not unexpected, unexpected
    for name, why in failed.items():
        assert KNOWN_GAPS[name] in why or KNOWN_GAPS[name] in out.stdout, (name, why)
