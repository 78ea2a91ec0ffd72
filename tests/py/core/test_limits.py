"""max_connections, an Engine option given to px.engine() before run():
connections past it are closed at once, the admitted ones are unaffected, and
a freed slot admits the next (servers/limits.py)."""

from __future__ import annotations

import time

from helpers import closed_by_peer, connect, recv_exact


def test_max_connections_refuses_excess_cleanly(spawn, backend: str) -> None:
    srv = spawn("limits.py", "3", backend=backend)
    admitted = [connect(srv.ports["echo"]) for _ in range(3)]
    try:
        for i, s in enumerate(admitted):
            s.sendall(b"hi %d" % i)
            assert recv_exact(s, 4) == b"hi %d" % i
        for _ in range(3):
            with connect(srv.ports["echo"]) as excess:
                # Closed by the server without a byte, whatever the client sends.
                excess.sendall(b"let me in")
                assert closed_by_peer(excess, timeout=5), "an excess connection was kept open"
        for i, s in enumerate(admitted):  # unaffected
            s.sendall(b"ok %d" % i)
            assert recv_exact(s, 4) == b"ok %d" % i
        admitted.pop().close()
        deadline = time.monotonic() + 5
        while True:  # the slot frees once the server has seen the close
            with connect(srv.ports["echo"]) as s:
                s.sendall(b"again")
                try:
                    if recv_exact(s, 5) == b"again":
                        break
                except (AssertionError, ConnectionResetError):
                    pass
            assert time.monotonic() < deadline, "a freed slot did not admit a new connection"
            time.sleep(0.05)
    finally:
        for s in admitted:
            s.close()
    time.sleep(0.2)
    stats = srv.stats()["total"]
    assert stats["refused"] >= 3
    finished = srv.finish().assert_clean()
    assert finished["refused"] >= 3
    assert finished["accepts"] == finished["closes"]
