"""An HttpServer for the tests of what reaches the wire: handlers that put
their query into response heads (redirects, content types, header dicts and
pairs, sendfile), handlers with and without keyword parameters for query
strings, and a static route.

    python http_wire.py [--file PATH] [--bad-server-name | --bad-static-type]

Routes: /redirect?to=, /ctype?t=, /json-ctype?t=, /header?name=&value=,
/pairs?value= (two Set-Cookie headers as pairs), /file?t= (sendfile of --file
with that content type), /plain-kw (no query parameters declared),
/named?a=&b= (declares a and b), /every (**kwargs), /path/{name} (a path
parameter and **kwargs), /args (reads request.args only) and the static route
/static-hello. --bad-server-name and --bad-static-type configure a CR LF into
the Server header or a static route's type: the server must refuse to start.
"""

from __future__ import annotations

import sys

from _common import serve

from pyparallel.http import HttpServer, Response, route


def arg(flag: str) -> str | None:
    return sys.argv[sys.argv.index(flag) + 1] if flag in sys.argv else None


FILE = arg("--file")


class App(HttpServer):
    static_routes = {"/static-hello": ("text/plain", b"static hello")}

    @route("/redirect")
    def go(self, request, to="/"):
        return self.redirect(request, to)

    @route("/ctype")
    def ctype(self, request, t="text/plain"):
        return Response(b"body", content_type=t)

    @route("/json-ctype")
    def json_ctype(self, request, t="application/json"):
        return Response({"a": 1}, content_type=t)

    @route("/header")
    def header(self, request, name="X-A", value="a"):
        return Response(b"body", headers={name: value})

    @route("/pairs")
    def pairs(self, request, value="b=2"):
        return Response(b"body", headers=[("Set-Cookie", "a=1"), ("Set-Cookie", value)])

    @route("/file")
    def file(self, request, t="application/octet-stream"):
        return self.sendfile(request, FILE or __file__, content_type=t)

    @route("/plain-kw")
    def plain_kw(self, request):
        return b"plain"

    @route("/named")
    def named(self, request, a="-", b="-"):
        return {"a": a, "b": b}

    @route("/every")
    def every(self, request, **query):
        return query

    @route("/path/{name}")
    def path(self, request, name, **query):
        return {"name": name, **query}

    @route("/args")
    def args(self, request):
        return request.args


if "--bad-server-name" in sys.argv:
    App.server_name = "pyparallel\r\nSet-Cookie: injected=1"
if "--bad-static-type" in sys.argv:
    App.static_routes = {"/s": ("text/plain\r\nSet-Cookie: injected=1", b"s")}


if __name__ == "__main__":
    serve("wire", {"http": App})
