"""The Wikipedia example's /wiki/ and /offsets/ as a WSGI application, for
gunicorn: every worker process loads its own copy of the index.

    WIKI_XML=dump.xml gunicorn -w 2 -k gthread --chdir bench/peers wiki_wsgi:app

Answers as ``pyparallel.examples.wiki`` does: the page element's bytes sent
from the file (gunicorn uses sendfile for ``wsgi.file_wrapper`` with a
Content-Length), JSON ``[[title, start, end], ...]`` capped at the same count.
The index must have been built and saved next to the dump beforehand (the
benchmark does that), so that workers only load it.
"""

import json
import os

from pyparallel.examples.wiki.app import MAX_PREFIX_RESULTS, MIN_PREFIX_CHARS, decode_title
from pyparallel.examples.wiki.index import WikiIndex, fingerprint, index_path_for

XML = os.environ["WIKI_XML"]
INDEX = WikiIndex.load(index_path_for(XML), fingerprint(XML))
if INDEX is None:
    raise RuntimeError(f"no saved index matches {XML}: build it first")

_TEXT = "text/plain; charset=utf-8"


def _plain(start_response, status, message):
    body = (message + "\n").encode()
    start_response(status, [("Content-Type", _TEXT), ("Content-Length", str(len(body)))])
    return [body]


def _target(environ):
    # The raw path, still percent-encoded (PATH_INFO is already decoded).
    raw = environ.get("RAW_URI") or environ.get("PATH_INFO", "")
    return raw.split("?", 1)[0]


def app(environ, start_response):
    path = _target(environ)
    if path.startswith("/wiki/"):
        try:
            title = decode_title(path[len("/wiki/"):])
        except ValueError:
            return _plain(start_response, "400 Bad Request", "400 Bad Request")
        hit = INDEX.find(title) if title else None
        if hit is None and "_" in title:
            hit = INDEX.find(title.replace("_", " "))
        if hit is None:
            return _plain(start_response, "404 Not Found", "404 Not Found")
        start, end = hit
        f = open(XML, "rb")
        f.seek(start)
        start_response("200 OK", [("Content-Type", "application/xml; charset=utf-8"),
                                  ("Content-Length", str(end - start))])
        wrapper = environ.get("wsgi.file_wrapper")
        if wrapper is not None:
            return wrapper(f, 1 << 16)
        body = f.read(end - start)
        f.close()
        return [body]
    if path.startswith("/offsets/"):
        try:
            prefix = decode_title(path[len("/offsets/"):])
        except ValueError:
            return _plain(start_response, "400 Bad Request", "400 Bad Request")
        if len(prefix) < MIN_PREFIX_CHARS:
            return _plain(start_response, "400 Bad Request", "400 Bad Request")
        lo, hi = INDEX.prefix_range(prefix)
        rows = [[INDEX.title(i).decode("utf-8", "replace"), INDEX.starts[i], INDEX.ends[i]]
                for i in range(lo, min(hi, lo + MAX_PREFIX_RESULTS))]
        body = json.dumps(rows, ensure_ascii=False, separators=(",", ":")).encode()
        start_response("200 OK", [("Content-Type", "application/json"),
                                  ("Content-Length", str(len(body))),
                                  ("X-Total-Count", str(hi - lo))])
        return [body]
    return _plain(start_response, "404 Not Found", "404 Not Found")
