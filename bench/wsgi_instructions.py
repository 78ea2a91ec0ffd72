"""Instructions per WSGI request, counted by callgrind (see
http_instructions.py for the method): the bare WSGI app of wsgi_bench.py
(peers/wsgi_app.py), an app that returns a constant body (the WSGI layer with
almost no app), and the same requests answered by an HttpServer handler, so
that the WSGI layer's own cost is the difference.

    python bench/wsgi_instructions.py [--small 2000] [--large 8000] [--runs 2]
                                      [--conns 1] [--keep DIR]

--conns spreads the requests over that many keep-alive connections taking
turns (what changes per connection, REMOTE_PORT, then changes per request).
--keep copies the callgrind files of each case's last large run to DIR, for
``callgrind_annotate --inclusive=yes --tree=calling FILE`` (the WSGI call is
``px_py_wsgi_call``, the HttpServer handler's ``app_call``).
"""

from __future__ import annotations

import argparse
import glob
import os
import shutil
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
    parser.add_argument("--conns", type=int, default=1)
    parser.add_argument("--keep", help="copy the last large run's callgrind files here")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as workdir:
        apps = {"wsgi": os.path.join(workdir, "wsgi_srv.py"),
                "http": os.path.join(workdir, "http_srv.py")}
        with open(apps["wsgi"], "w") as f:
            f.write(WSGI)
        with open(apps["http"], "w") as f:
            f.write(hi.APP)
        print(f"instructions per request (callgrind, epoll, 1 worker, "
              f"{args.large} - {args.small} requests, {args.conns} connection(s))")
        for name, kind, path, extra in CASES:
            per = []
            for _ in range(args.runs):
                small = hi.count(apps[kind], path, args.small, workdir, extra, args.conns)
                before = set(glob.glob(os.path.join(workdir, "cg-*")))
                large = hi.count(apps[kind], path, args.large, workdir, extra, args.conns)
                per.append((large - small) / (args.large - args.small))
            print(f"  {name:24} " + "  ".join(f"{p:8,.0f}" for p in per))
            if args.keep:
                os.makedirs(args.keep, exist_ok=True)
                tag = "-".join([kind, *extra])
                for f in set(glob.glob(os.path.join(workdir, "cg-*"))) - before:
                    shutil.copy(f, os.path.join(args.keep, f"{tag}.{os.path.basename(f)}"))


if __name__ == "__main__":
    main()
