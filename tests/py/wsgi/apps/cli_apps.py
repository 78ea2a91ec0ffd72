"""Targets of the `pyparallel serve` command-line tests."""

from __future__ import annotations

from typing import Any

from pyparallel.http import HttpServer, route


def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"plain wsgi"]


def create_app() -> Any:
    def made(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"made by the factory"]
    return made


class Site(HttpServer):
    @route("/hello")
    def hello(self, request: Any) -> bytes:
        return b"an HttpServer"


not_callable = 42
