"""Statistics over HTTP: ``/stats`` (JSON), ``/metrics`` (Prometheus) and a live
dashboard page, added to an application class::

    from pyparallel.http import HttpServer, mount_stats

    @mount_stats(prefix="/_px")          # /_px/stats, /_px/metrics, /_px/dashboard
    class App(HttpServer):
        ...

    mount_stats(Other, dashboard="/")    # /stats, /metrics, and the dashboard at /

The dashboard is one self-contained HTML file shipped with the package (no
CDN, no library): it polls the stats route and draws requests per second,
latency percentiles over time (computed in the page from the difference of two
histogram snapshots) and the load and connections of each worker.
"""

from __future__ import annotations

from collections.abc import Callable
from importlib import resources
from typing import Any, TypeVar

import pyparallel as px

from .._metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from ._app import HttpServer, route
from ._response import Response

__all__ = ["dashboard_html", "mount_stats"]

_App = TypeVar("_App", bound=type)

_NO_STORE = {"Cache-Control": "no-store"}
_FALSE = ("", "0", "false", "no", "off")


def dashboard_html(stats_url: str = "/stats") -> bytes:
    """The dashboard page, polling ``stats_url``."""
    page = resources.files(__package__).joinpath("dashboard.html").read_text(encoding="utf-8")
    return page.replace("__PX_STATS_URL__", stats_url).encode()


def _join(prefix: str, path: str) -> str:
    joined = prefix.rstrip("/") + "/" + path.lstrip("/")
    return joined if joined.startswith("/") else "/" + joined


def mount_stats(app_cls: _App | None = None, *, prefix: str = "",
                dashboard: str | None = "/dashboard") -> Any:
    """Add ``{prefix}/stats``, ``{prefix}/metrics`` and the dashboard at
    ``{prefix}{dashboard}`` (None: no dashboard) to an :class:`HttpServer`
    subclass; returns the class, so it also works as a decorator (called with
    keyword arguments only). Call it before the class serves.

    ``/stats`` answers :func:`pyparallel.stats` as JSON (``?buckets=1`` adds the
    latency buckets the dashboard needs); ``/metrics`` answers
    :func:`pyparallel.metrics_text`.
    """
    def apply(cls: _App) -> _App:
        if not (isinstance(cls, type) and issubclass(cls, HttpServer)):
            raise TypeError("mount_stats() needs an HttpServer subclass")
        if cls.__dict__.get("_route_specs") is not None:
            raise RuntimeError(f"mount_stats({cls.__name__}) after it started serving")
        stats_path = _join(prefix, "stats")

        def stats_json(self: HttpServer, request: Any, buckets: str = "0",
                       **query: str) -> Response:
            return Response(px.stats(buckets=buckets.lower() not in _FALSE),
                            content_type="application/json", headers=dict(_NO_STORE))

        def metrics(self: HttpServer, request: Any, **query: str) -> Response:
            return Response(px.metrics_text().encode(), content_type=METRICS_CONTENT_TYPE,
                            headers=dict(_NO_STORE))

        handlers: dict[str, Callable[..., Any]] = {
            "_px_stats_json": route(stats_path, methods=("GET", "HEAD"))(stats_json),
            "_px_metrics": route(_join(prefix, "metrics"), methods=("GET", "HEAD"))(metrics),
        }
        if dashboard is not None:
            page = dashboard_html(stats_path)

            def dashboard_page(self: HttpServer, request: Any, **query: str) -> Response:
                return Response(page, content_type="text/html; charset=utf-8",
                                headers=dict(_NO_STORE))

            handlers["_px_dashboard"] = route(_join(prefix, dashboard),
                                              methods=("GET", "HEAD"))(dashboard_page)
        for name, func in handlers.items():
            func.__name__ = name
            setattr(cls, name, func)
        return cls

    if app_cls is None:
        return apply
    return apply(app_cls)
