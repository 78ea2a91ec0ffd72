"""A Django project under ``pyparallel serve`` with a real client (cookies,
CSRF), on both backends: URL routing, a view with a template, the admin's
login page, CSRF on a POST form, static files through --static."""

from __future__ import annotations

import http.cookiejar
import re
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator

import pytest
from wsgi_helpers import APPS, served

from helpers import ServerProcess

pytest.importorskip("django", reason="Django comes from tools/requirements-test.txt")

STATIC = APPS / "djsite" / "static"


@pytest.fixture(scope="module", params=["uring", "epoll"])
def django_server(request: pytest.FixtureRequest) -> Iterator[ServerProcess]:
    with served(request.param, "djsite.wsgi:application", "--workers", "2",
                "--static", f"/static={STATIC}",
                env={"DJANGO_SETTINGS_MODULE": "djsite.settings"}) as proc:
        yield proc


class Client:
    def __init__(self, port: int) -> None:
        self.base = f"http://127.0.0.1:{port}"
        self.jar = http.cookiejar.CookieJar()
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(self.jar))

    def get(self, path: str, data: dict[str, str] | None = None,
            headers: dict[str, str] | None = None) -> tuple[int, str]:
        body = urllib.parse.urlencode(data).encode() if data is not None else None
        req = urllib.request.Request(self.base + path, data=body, headers=headers or {})
        try:
            with self.opener.open(req, timeout=30) as r:
                return r.status, r.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode()

    def cookie(self, name: str) -> str:
        return next(c.value for c in self.jar if c.name == name)


def test_routing_and_template(django_server: ServerProcess) -> None:
    status, html = Client(django_server.port).get("/hello/world/")
    assert status == 200
    assert "<h1>Hello, world!</h1>" in html and "<li>b</li>" in html
    assert 'href="/hello/again/"' in html  # reverse() through SCRIPT_NAME
    assert Client(django_server.port).get("/nowhere/")[0] == 404


def test_admin_login_page(django_server: ServerProcess) -> None:
    c = Client(django_server.port)
    status, html = c.get("/admin/")  # redirected to the login page
    assert status == 200
    assert 'name="username"' in html and 'name="password"' in html
    assert "csrfmiddlewaretoken" in html


def test_csrf_on_a_post_form(django_server: ServerProcess) -> None:
    c = Client(django_server.port)
    status, html = c.get("/form/")
    assert status == 200
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', html)
    assert token is not None
    referer = {"Referer": c.base + "/form/"}
    status, text = c.get("/form/", {"who": "ada", "csrfmiddlewaretoken": token.group(1)},
                         referer)
    assert status == 200 and text == "thanks, ada"
    # without the token: refused
    status, _ = Client(django_server.port).get("/form/", {"who": "eve"}, referer)
    assert status == 403


def test_static_files(django_server: ServerProcess) -> None:
    status, css = Client(django_server.port).get("/static/site.css")
    assert status == 200 and css == (STATIC / "site.css").read_text()
