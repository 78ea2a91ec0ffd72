"""format_event: every line ending the SSE grammar knows (CRLF, LF, a lone
CR) starts a new data: line, so that no part of the data is read by the
client as a field of its own."""

from __future__ import annotations

import pytest

from pyparallel.http import format_event


@pytest.mark.parametrize("data", ["a\nb", "a\r\nb", "a\rb"])
def test_data_lines_on_every_line_ending(data: str) -> None:
    assert format_event(data) == b"data: a\ndata: b\n\n"


def test_lone_cr_in_bytes_data() -> None:
    assert format_event(b"x\ry\r\nz") == b"data: x\ndata: y\ndata: z\n\n"
