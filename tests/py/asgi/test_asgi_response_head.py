"""An ASGI app's http.response.start read in C (asgi_response.c): the
status checked, header names lower-cased, latin-1 text, Content-Type and
Content-Length taken apart, the server's own framing headers dropped, and
every malformed message refused with an error the app sees from send()."""

from __future__ import annotations

from typing import Any

import pytest

from pyparallel import _core

head = _core.asgi_response_head


def test_a_usual_head() -> None:
    message = {"type": "http.response.start", "status": 200,
               "headers": [(b"Content-Type", b"application/json"),
                           (b"content-length", b" 27 "), (b"X-Name", b"caf\xe9"),
                           (b"Set-Cookie", b"a=1"), (b"set-cookie", b"b=2")]}
    assert head(message) == (200, [("x-name", "caf\u00e9"), ("set-cookie", "a=1"),
                                   ("set-cookie", "b=2")], "application/json", 27)


def test_no_headers_and_other_containers() -> None:
    assert head({"status": 204}) == (204, [], None, None)
    assert head({"status": 200, "headers": ()}) == (200, [], None, None)
    # any iterable of pairs; names and values bytes-like, as bytes() takes them
    pairs = iter([[bytearray(b"X-A"), memoryview(b"1")], (b"x-b", bytearray(b"2"))])
    assert head({"status": 200, "headers": pairs}) == (200, [("x-a", "1"), ("x-b", "2")],
                                                       None, None)
    # a mapping that is not a dict
    class Message(dict[str, Any]):
        pass
    assert head(Message(status=301, headers=[(b"location", b"/x")])) == (
        301, [("location", "/x")], None, None)


def test_framing_headers_are_the_servers() -> None:
    dropped = [b"Transfer-Encoding", b"connection", b"Keep-Alive", b"trailer", b"Upgrade",
               b"TE", b"proxy-connection"]
    message = {"status": 200, "headers": [(n, b"x") for n in dropped] + [(b"tex", b"kept")]}
    assert head(message) == (200, [("tex", "kept")], None, None)


def test_the_last_content_type_and_length_win() -> None:
    message = {"status": 200, "headers": [(b"content-type", b"a/b"), (b"content-length", b"5"),
                                          (b"content-type", b"c/d"), (b"content-length", b"7")]}
    assert head(message) == (200, [], "c/d", 7)
    assert head({"status": 200, "headers": [(b"content-length", b"9" * 30)]})[3] == int("9" * 30)


@pytest.mark.parametrize("message, error, text", [
    ({"status": True}, ValueError, "invalid status True"),
    ({"status": 99}, ValueError, "invalid status 99"),
    ({"status": 1000}, ValueError, "invalid status 1000"),
    ({"status": "200"}, ValueError, "invalid status '200'"),
    ({"status": 2**80}, ValueError, "invalid status"),
    ({"headers": []}, KeyError, "status"),
    ({"status": 200, "headers": [(b"content-length", b"12a")]}, ValueError,
     "Content-Length b'12a' is not a length"),
    ({"status": 200, "headers": [(b"content-length", b" ")]}, ValueError,
     "Content-Length b'' is not a length"),
    ({"status": 200, "headers": [(b"content-length", b"-1")]}, ValueError, "b'-1'"),
    ({"status": 200, "headers": [(b"only-a-name",)]}, ValueError, "(name, value) pair"),
    ({"status": 200, "headers": [(b"a", b"b", b"c")]}, ValueError, "(name, value) pair"),
    ({"status": 200, "headers": [b"ab"]}, TypeError, "'int' object to bytes"),
    ({"status": 200, "headers": [("name", "str")]}, TypeError, "str"),
    ({"status": 200, "headers": [(b"name", None)]}, TypeError, "NoneType"),
    ({"status": 200, "headers": 5}, TypeError, "not iterable"),
    (None, TypeError, "subscriptable"),
])
def test_malformed_messages_are_refused(message: Any, error: type[Exception],
                                        text: str) -> None:
    with pytest.raises(error) as caught:
        head(message)
    assert text in str(caught.value)
