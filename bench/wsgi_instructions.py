"""Instructions per WSGI request, counted by callgrind (see
http_instructions.py for the method): the bare WSGI app of wsgi_bench.py
(peers/wsgi_app.py), an app that returns a constant body (the WSGI layer with
almost no app), and the same requests answered by an HttpServer handler, so
that the WSGI layer's own cost is the difference.

    python bench/wsgi_instructions.py [--small 2000] [--large 8000] [--runs 2]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import http_instructions as hi  # noqa: E402  (the callgrind driver)

PEERS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "peers")

WSGI = """
import sys
sys.path.insert(0, {peers!r})
from pyparallel import wsgi
import wsgi_app

BODY = b'{"message":"Hello, World!"}'
HEADERS = [("Content-Type", "application/json"), ("Content-Length", str(len(BODY)))]

def constant(environ, start_response):
    start_response("200 OK", HEADERS)
    return [BODY]

app = constant if sys.argv[2:] == ["constant"] else wsgi_app.app
wsgi.serve(app, "127.0.0.1", int(sys.argv[1]), workers=1)
""".replace("{peers!r}", repr(PEERS))

CASES = (
    ("WSGI wsgi_app /json", "wsgi", "/json", ()),
    ("WSGI constant body", "wsgi", "/json", ("constant",)),
    ("HttpServer /json", "http", "/json", ()),
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--small", type=int, default=2000)
    parser.add_argument("--large", type=int, default=8000)
    parser.add_argument("--runs", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as workdir:
        apps = {"wsgi": os.path.join(workdir, "wsgi_srv.py"),
                "http": os.path.join(workdir, "http_srv.py")}
        with open(apps["wsgi"], "w") as f:
            f.write(WSGI)
        with open(apps["http"], "w") as f:
            f.write(hi.APP)
        print(f"instructions per request (callgrind, epoll, 1 worker, "
              f"{args.large} - {args.small} requests)")
        for name, kind, path, extra in CASES:
            per = []
            for _ in range(args.runs):
                small = hi.count(apps[kind], path, args.small, workdir, extra)
                large = hi.count(apps[kind], path, args.large, workdir, extra)
                per.append((large - small) / (args.large - args.small))
            print(f"  {name:24} " + "  ".join(f"{p:8,.0f}" for p in per))


if __name__ == "__main__":
    main()
