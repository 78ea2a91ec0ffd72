# ruff: noqa
# mypy: ignore-errors
"""The Wikipedia HttpServer of Trent Nelson's python-ideas mail (June 2015),
as the mail has it, serving a MediaWiki dump by title.

    python -m pyparallel.examples.wiki.original --xml DUMP.xml | --pages N
        [--port P] [--host H] [--workers K] [--data-dir DIR]

Routes: /wiki/TITLE (the page's XML by a ranged sendfile, 206), /users and
/user/LOGIN (SQL through the DB-API), /set_secret_key/KEY and /secret_key
(a value kept per connection), /stats, /debug, /shutdown. The mail calls
HttpServer, route, RangedRequest, json_serialization and the stats
functions; pyparallel.http provides them with the original's meaning (see
the README's HTTP section).
"""

__all__ = ["WikiServer", "main", "TITLES", "OFFSETS", "XML", "options", "port"]  # [added]

# What differs from the mail's text, line by line:
#
# Imports (the only changes to the code itself):
#   import datrie          -> the stand-in of .original_data (same Trie.load,
#                             `in`, [title]); datrie is not packaged for
#                             current Pythons
#   import pyodbc          -> import sqlite3 as pyodbc (same DB-API, same '?')
#   import async           -> import pyparallel as parallel: `async` is a
#                             keyword since Python 3.7 (the original project
#                             itself renamed it `parallel` in 2015), so each
#                             `async.` below reads `parallel.`
#   from async.http.server -> from pyparallel.http.server (the names it used)
#   from async import ...  -> from pyparallel import ... (the stats functions)
#
# [restored]: lines the archived copy of the mail lost (short lines such as
#   `@route`, `try:`, `pass`, `}`, `)`, the bodies of debug() and shutdown()
#   the comments describe, the end of main()), put back by what the mail's
#   comments say (the decorators as the original project's wiki.py has
#   them; debugbreak() as a comment: it stops the process); the `options =
#   setup()` line makes
#   the data files the mail opens by name (titles.trie, offsets.npy, the
#   dump), from any dump, and parses --port (the mail's `port`).
# [fixed]: two slips of the mail: `ix-7` for `offset-7` (the shipped wiki.py
#   has `o-7`) and a `self.error(request, 404)` without `return`; main()
#   registered HttpServer for WikiServer.
# [added]: `protocol.per_connection = True` (the original made one protocol
#   instance per connection: set_secret_key keeps its value per client) and
#   the "listening on" line.
# Left as the mail has it: /users never executes all_users_sql (its answer is
#   []), /secret_key before /set_secret_key on a connection finds the method
#   of that name (the class attribute `secret_key = None` is shadowed by it)
#   and fails with 500.

# import datrie
from pyparallel.examples.wiki.original_data import datrie
import numpy as np
# import pyodbc
import sqlite3 as pyodbc
# import async
import pyparallel as parallel
from collections import defaultdict
# from async.http.server import (
from pyparallel.http.server import (
    HttpServer,
    RangedRequest,
    json_serialization,
    route,
)
# from async import (
from pyparallel import (
    context_stats,
    memory_stats,
    socket_stats,
    sys_stats,
)
# [restored] the command line and the data files (see the note above)
from pyparallel.examples.wiki.original_data import setup
options = setup()
port = options["port"]

# Tell PyParallel to invoke the tp_dealloc method explicitly
# for these classes when rewinding a heap after a parallel
# callback has finished.  (Implementation detail: this toggles
# the Py_TPFLAGS_PX_DEALLOC flag in the TypeObject's tp_flags;
# when PyParallel intercepts PyObject_NEW/INIT (init_object),
# classes (PyTypeObject *tp) with this flag set will be tracked
# in a linked-list that is local to the parallel context being
# used to service this client.  When the context has its heaps
# rewound back to the initial state at the time of the snapshot,
# it will call tp_dealloc() explicitly against all objects of
# this type that were encountered.)

# Load 29 million titles.  RSS += ~9.5GB.
TITLES = datrie.Trie.load('titles.trie')
# Load 15 million 64-bit offsets. RSS += ~200MB.
OFFSETS = np.load('offsets.npy')
XML = 'enwiki-20150205-pages-articles.xml'

class WikiServer(HttpServer):
    # All of these methods are automatically invoked in
    # parallel.  HttpServer implements a data_received()
    # method which prepares the request object and then
    # calls the relevant method depending on the URL, e.g.
    # http://localhost/user/foo will call the user(request,
    # name='foo').  If we want to "write" to the client,
    # we return a bytes, bytearray or unicode object from
    # our callback (that is, we don't expose a socket.write()
    # to the user).
    # Just before the PyParallel machinery invokes the
    # callback (via a simple PyObject_CallObject), though,
    # it takes a snapshot of its current state, such that
    # the exact state can be rolled back to (termed a socket
    # "rewind") when this callback is complete.  If we don't
    # return a sendable object back, this rewind happens
    # immediately, and then we go straight into a read call.
    # If we do return something sendable, we send it.  When
    # that send completes, *then* we do the rewind, then we
    # issue the next read/recv call.
    # This approach is particularly well suited to parallel
    # callback execution because none of the objects we create
    # as part of the callback are needed when the callback
    # completes.  No garbage can accumulate because nothing
    # can live longer than that callback.  That obviates the
    # need for two things: reference counting against any object
    # in a parallel context, and garbage collection.  Those
    # things are useful for the main thread, but not parallel
    # contexts.
    # What if you do want to keep something around after
    # the callback?  If it's a simple scalar type, the
    # following will work:
    #   class Server:
    #       name = None
    #       @route
    #       def set_name(self, request, name):
    #           self.name = name.upper()
    #           ^^^^^^^^^ we intercept that setattr and make
    #                     a copy of (the result of) name.upper()
    #                     using memory allocation from a different
    #                     heap that persists as long as the client
    #                     stays connnected.  (There's actually
    #                     support for alternatively persisting
    #                     the entire heap that the object was
    #                     allocated from, which we could use if
    #                     we were persisting complex, external,
    #                     or container types where simply doing
    #                     a memcpy() of a *base + size_t wouldn't
    #                     be feasible.  However, I haven't wired
    #                     up this logic to the socket context
    #                     logic yet.)
    #       @route
    #       def name(self, request):
    #           return json_serialization(request, self.name)
    #                                              ^^^^^^^^^
    #                                   This will return whatever
    #                                   was set in the call above.
    #                                   Once the client disconnects,
    #                                   the value disappears.
    #       (Actually I think if you wanted to persist the object
    #        for the lifetime of the server, you could probably
    #        do `request.transport.parent.name = xyz`; or at least,
    #        if that doesn't currently work, the required mechanics
    #        definitely exist, so it would just need to be wired
    #        up.)
    # If you want to keep an object around past the lifetime of
    # the connected client and the server, then send it to the main
    # thread where it can be tracked like a normal Python object:
    # USERS = async.dict()
    #         ^^^^^^^^^^^^ shortcut for:
    #                           foo = {}
    #                           async.protect(foo)
    #                      or just:
    #                           foo = async.protect({})
    #         (On the backend, this instruments[3] the object such
    #          that PyParallel can intercept setattr/setitem and
    #          getattr/getitem calls and "do stuff"[4], depending
    #          on the context.)

# [3]: https://bitbucket.org/tpn/pyparallel/src/8528b11ba51003a9821ceb75683ee96ed33db28a/Python/pyparallel.c?at=3.3-px#cl-1796
# [4]: https://bitbucket.org/tpn/pyparallel/src/8528b11ba51003a9821ceb75683ee96ed33db28a/Python/pyparallel.c?at=3.3-px#cl-1632

    # class MyServer(HttpServer):
    #   @route
    #   ^^^^^^ Ignore the mechanics of this, it's just a helper
    #          decorator I used to translate a HTTP GET for
    #          /login/foo to a function call of `login(name='foo')`.
    #          (see the bowls of async.http.server for details).
    #   def login(self, request, name):
    #       @call_from_main_thread
    #       def _save_name(n):
    #           USERS[n] = async.rdtsc()
    #           return len(USERS)
    #       count = _save_name(name)
    #       return json_serialization(request, {'count': count})
    # The @call_from_main_thread decorator will enqueue a work
    # item to the main thread, and then wait on the main thread's
    # response.  The main thread executes the callback and notifies
    # the parallel thread that the call has been completed and the
    # return value (in this case the value of `len(USERS)`).  The
    # parallel thread resumes and finishes the client request.
    # Note that this will implicitly serialize execution; any number
    # of parallel requests can submit main thread work, but the
    # main thread can only call them one at a time.  So, you'd
    # usually try and avoid this, or at least remove it from your
    # application's hot code path.

    connect_string = None
    all_users_sql = 'select * from user'
    one_user_sql = 'select * from user where login = ?'

    secret_key = None

    @route
    def wiki(self, request, name):
        # http://localhost/wiki/Python: name = Python
        if name not in TITLES:
            return self.error(request, 404)  # [fixed] the mail: no return

        # log(n) lookup against a trie with 29 million keys.
        offset = TITLES[name][0]
        # log(n) binary search against a numpy array with 15
        # million int64s.
        ix = OFFSETS.searchsorted(offset, side='right')
        # OFFSETS[ix] = what's the offset after this?
        (start, end) = (offset-7, OFFSETS[ix]-11)  # [fixed] the mail: ix-7
        # -7, +11 = adjust for the fact that all of the offsets
        # were calculated against the '<' of '<title>Foo</title>'.
        range_request = '%d-%d' % (start, end)
        request.range = RangedRequest(range_request)
        request.response.content_type = 'text/xml; charset=utf-8'
        return self.sendfile(request, XML)

    @route
    def users(self, request):
        # ODBC driver managers that implement connection pooling
        # behind the scenes play very nicely with our
        # pyodbc.connect() call here, returning a connection
        # from the pool (when able) without blocking.
        con = pyodbc.connect(self.connect_string)

        # The next three odbc calls would all block (in the
        # traditional sense), so this current thread would
        # not be able to serve any other requests whilst
        # waiting for completion -- however, this is far
        # less of a problem for PyParallel than single-threaded
        # land as other threads will keep servicing requests
        # in the mean time.  (ODBC 3.8/SQL Server 2012/Windows 8
        # did introduce async notification, such that we could
        # request that an event be set when the cursor/query/call
        # has completed, which we'd tie in to PyParallel by
        # submitting a threadpool wait (much like we do for async
        # DNS lookup[5], also added in Windows 8), however, it was
        # going to require a bit of modification to the pyodbc
        # module to support the async calling style, so, all the
        # calls stay synchronous for now.)

# [5]: https://bitbucket.org/tpn/pyparallel/src/8528b11ba51003a9821ceb75683ee96ed33db28a/Python/pyparallel.c?at=3.3-px#cl-7616

        cur = con.cursor()
        return json_serialization(request, cur.fetchall())

    @route
    def user(self, request, login):
        con = pyodbc.connect(self.connect_string)
        cur = con.cursor()
        cur.execute(self.one_user_sql, (login,))
        return json_serialization(request, cur.fetchall())

    @route
    def set_secret_key(self, request, key):
        # http://localhost/set_secret_key/foobar
        # An example of persisting a scalar for the lifetime
        # of the thread (that is, until it disconects or EOFs).
        try:  # [restored]
            self.secret_key = [ key, ]
        except ValueError:
            # This would be hit, because we've got guards in place
            # to assess the "clonability" of an object at this
            # point[6].  (Ok, after reviewing the code, we don't,
            # but at least we'd crash.)
            pass  # [restored]
# [6]: https://bitbucket.org/tpn/pyparallel/src/8528b11ba51003a9821ceb75683ee96ed33db28a/Python/pyparallel.c?at=3.3-px#cl-4944

        # However, this would work fine, essentially memcpy'ing
        # the key object at the time of assignment using a different
        # heap to the one that automatically gets reset at the end
        # of the callback.
        self.secret_key = key

    @route
    def secret_key(self, request):
        # http://localhost/secret_key -> 'foobar'
        return json_serialization(request, {'key': self.secret_key})

    @route
    def stats(self, request):
        # Handy little json representation of various system stats;
        # active parallel contexts, I/O hogs, memory load, etc.
        stats = {
            'system': dict(sys_stats()),
            'server': dict(socket_stats(request.transport.parent)),
            'memory': dict(memory_stats()),
            'contexts': dict(context_stats()),
            'elapsed': request.transport.elapsed(),
            'thread': parallel.thread_seq_id(),
        }  # [restored]
        return json_serialization(request, stats)

    @route
    def debug(self, request):
        # Don't call print() or any of the sys.std(err|out)
        # methods in a parallel context.  If you want to do some
        # poor man's debugging with print statements in lieu of not
        # being able to attach a pdb debugger (tracing is disabled
        # in parallel threads), then use async.debug().  (On
        # Windows, this writes the message to the debug stream,
        # which you'd monitor via dbgview or VS.)
        parallel.debug("received request: %s" % request.data)

        # Avoid repr() at the moment in parallel threads; it uses
        # PyThreadState_SetDictItem() to control recursion depths,
        # which I haven't made safe to call from a parallel context.

        # If you want to attach Visual Studio debugger at this point
        # though, you can do so via:
        # (That literally just generates an INT 3.)
        # parallel.debugbreak()  # [restored, as a comment: it stops the process]

    @route
    def shutdown(self, request):
        # Handy helper for server shutdown (stop listening on the
        # bound IP:PORT, wait for all running client callbacks to
        # complete, then return.  Totally almost works at the
        # moment[7].)
        parallel.shutdown()  # [restored]
# [7]: https://bitbucket.org/tpn/pyparallel/src/8528b11ba51003a9821ceb75683ee96ed33db28a/Python/pyparallel.c?at=3.3-px#cl-11818

def main():
    server = parallel.server(options["host"], port)  # the mail: async.server('', port)
    protocol = WikiServer  # [fixed] the mail: HttpServer
    protocol.connect_string = 'users.db'  # the mail: 'Driver={SQL Server}...'
    protocol.per_connection = True  # [added] one instance per client, as the original's protocols
    parallel.register(transport=server, protocol=protocol)
    # ^^^^^^^^^^^^^^ this will create a special 'server' instance
    #                of the protocol, which will issue the bind()
    #                call.  It then creates a configurable number
    #                (currently ncpu * 2) of parallel contexts
    #                and triggers parallel AcceptEx() invocation
    #                (you can prime "pre-accepted" sockets on Windows,
    #                which removes the serialization limits of
    #                accept() on POSIX).

    # If an exception occurs in a parallel thread, it is queued
    # to a special list the main thread has.  The main thread
    # checks this list each time async.run_once() is called, so,
    # we call it here just to propagate any exceptions that
    # may have already occurred (like attempting to bind to an
    # invalid IP, or submitting a protocol that had an error).
    parallel.run_once()  # [restored]
    return server
    # (This also facilitates interactive console usage whilst
    #  serving request in parallel.)

if __name__ == '__main__':
    # Run forever.  Returns when there are no active contexts
    # or ctrl-c is pressed.
    server = main()  # [restored]
    print(f"wiki.original: listening on {options['host']}:{server.port}", flush=True)  # [added]
    parallel.run(workers=options["workers"])  # [restored]
