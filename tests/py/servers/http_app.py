"""An HttpServer for the HTTP suites: echo, request identification, a raising
handler, static files and explicit sendfile ranges.

    python http_app.py [--root DIR] [--file PATH] [--workers K]
                       [--head-timeout S] [--body-timeout S] [--keepalive-timeout S]
                       [--max-body N] [--max-headers N] [--max-request-line N]
                       [--max-header-bytes N]

Routes: /hello, /id/{n}, /echo (any of GET POST PUT), /info (the request as
JSON; query parameters accepted), /status/{code} (that status with the body
b"BODY"), /boom (raises), /file (sendfile of --file, honouring Range),
/part/{start}/{stop} (sendfile of --file with range=(start, stop)),
/part/{start} (range=(start, None)), /static/* and /assets/* (StaticFiles of
--root, the latter routed with the default methods);
for routing: /greet/{name} and /greet/me, /files/{stem}.txt, /tree/* (their
arguments as JSON), /plain (a method named so, no decorator) and the static
route /static-hello.
"""

from __future__ import annotations

import sys

from _common import int_arg, serve

from pyparallel.http import HttpError, HttpServer, Response, StaticFiles, route


def arg(flag: str) -> str | None:
    return sys.argv[sys.argv.index(flag) + 1] if flag in sys.argv else None


ROOT = arg("--root")
FILE = arg("--file")

LIMITS = {}
for flag, key, conv in (("--head-timeout", "head_timeout", float),
                        ("--body-timeout", "body_timeout", float),
                        ("--keepalive-timeout", "keepalive_timeout", float),
                        ("--max-body", "max_body", int),
                        ("--max-headers", "max_headers", int),
                        ("--max-request-line", "max_request_line", int),
                        ("--max-header-bytes", "max_header_bytes", int)):
    value = arg(flag)
    if value is not None:
        LIMITS[key] = conv(value)


class App(HttpServer):
    limits = LIMITS
    static_routes = {"/static-hello": ("text/plain", b"static hello")}

    def plain(self, request):  # PyParallel-style: answers GET and HEAD of /plain
        return b"plain"

    @route("/greet/{name}")
    def greet(self, request, name, **query):
        return {"name": name, **query}

    @route("/greet/me")
    def greet_me(self, request):
        return {"me": True}

    @route("/pkg/{name}-{version}.{ext}")
    def package(self, request, name, version, ext):
        return {"name": name, "version": version, "ext": ext}

    @route("/files/{stem}.txt")
    def text_file(self, request, stem):
        return {"stem": stem}

    @route("/tree/*", methods=("GET",))
    def tree(self, request, rest):
        return {"rest": rest}

    @route("/hello")
    def hello(self, request, **query):
        return b"hello"

    @route("/id/{n}")
    def ident(self, request, n, **query):
        return f"req {n}".encode()

    @route("/echo", methods=("GET", "POST", "PUT"))
    def echo(self, request):
        return Response(request.body, 200, "application/octet-stream",
                        {"X-Method": request.method, "X-Body-Length": str(len(request.body))})

    @route("/info", methods=("GET", "HEAD", "POST"))
    def info(self, request, **query):
        return {"method": request.method, "path": request.path, "query": request.query,
                "target": request.target, "version": request.version,
                "keep_alive": request.keep_alive, "headers": request.headers}

    @route("/sum", methods=("POST",))
    def sum(self, request, **query):  # without a query, the C route table calls it
        numbers = request.json()
        if not isinstance(numbers, list):
            raise HttpError(422, "422 a JSON list of numbers, please")
        return {"sum": sum(numbers), "client": request.remote_addr,
                "args": request.args, "agent": request.header("USER-AGENT", "none")}

    @route("/status/{code}")
    def status(self, request, code):
        return Response(b"BODY", int(code))

    @route("/boom")
    def boom(self, request):
        raise RuntimeError("boom from the handler")

    @route("/file")
    def file(self, request):
        return self.sendfile(request, FILE)

    @route("/part/{start}/{stop}")
    def part(self, request, start, stop):
        return self.sendfile(request, FILE, range=(int(start), int(stop)))

    @route("/part/{start}")
    def part_to_end(self, request, start):
        return self.sendfile(request, FILE, range=(int(start), None))

    if ROOT is not None:
        static = route("/static/*", methods=("GET", "HEAD"))(StaticFiles(ROOT))
        assets = route("/assets/*")(StaticFiles(ROOT))  # the default methods


if __name__ == "__main__":
    serve("http", {"http": App}, workers=int_arg("--workers", 2))
