"""Small checks of the Python API's serving life cycle.

    python api_checks.py announce NAME    run example NAME; when it prints its
                                          listening line, first try to connect to
                                          the port it names and print
                                          ``CONNECT ok|refused``
    python api_checks.py run_once         start serving with run_once(), then run()
    python api_checks.py stats_after_run  serve until SIGTERM, then print
                                          ``AFTER {px.stats()}`` once run() returned
    python api_checks.py rerun            echo, but b"boom" raises; the exception
                                          re-raised by run(raise_errors=True)
                                          is printed as
                                          ``RAISED ...``, and after a second spent
                                          handling it, run() is called again
"""

from __future__ import annotations

import builtins
import json
import runpy
import socket
import sys
import time

from _common import HOST, report_runs, say, totals

import pyparallel as px


class Echo:
    def data_received(self, transport, data):
        return data


def announce(name: str) -> None:
    import pyparallel.examples._cli as cli

    def checking_print(*args, **kwargs):
        text = " ".join(str(a) for a in args)
        if ": listening on " in text:
            port = int(text.rsplit(":", 1)[1])
            try:
                socket.create_connection((HOST, port), timeout=2).close()
                say("CONNECT ok")
            except ConnectionRefusedError:
                say("CONNECT refused")
        builtins.print(*args, **kwargs)

    cli.print = checking_print  # the module's own print, as it prints its line
    report_runs()
    sys.argv = [name, "--port", "0", "--workers", "1"]
    runpy.run_module(f"pyparallel.examples.{name}", run_name="__main__")


def run_once_then_run() -> None:
    server = px.register(transport=px.server(HOST, 0), protocol=Echo)
    eng = px.engine(1)
    px.run_once(0)
    say(f"run_once: listening on {HOST}:{server.port}")
    px.run()
    say("RUN returned")
    say("STATS " + json.dumps(totals(eng)))


def stats_after_run() -> None:
    server = px.register(transport=px.server(HOST, 0), protocol=Echo)
    px.engine(1)
    say(f"stats_after_run: listening on {HOST}:{server.port}")
    px.run()
    after = px.stats()
    say("AFTER " + json.dumps(after))
    say("STATS " + json.dumps(dict(after["total"], backend=after["backend"])))


class Boom(Exception):
    pass


class Raiser:
    def data_received(self, transport, data):
        if data.startswith(b"boom"):
            raise Boom("boom")
        return data


def rerun() -> None:
    server = px.register(transport=px.server(HOST, 0), protocol=Raiser)
    eng = px.engine(1)
    say(f"rerun: listening on {HOST}:{server.port}")
    while True:
        try:
            px.run(raise_errors=True)
            break
        except Boom as exc:
            say(f"RAISED {exc!r}")
            time.sleep(1.0)  # the application logs it, say; the engine still serves
    say("RUN returned")
    say("STATS " + json.dumps(totals(eng)))


if __name__ == "__main__":
    mode = sys.argv[1]
    if mode == "announce":
        announce(sys.argv[2])
    elif mode == "run_once":
        run_once_then_run()
    elif mode == "rerun":
        rerun()
    else:
        stats_after_run()
