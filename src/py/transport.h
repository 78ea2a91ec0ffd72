/* The Transport object: one per connection, handed to every protocol callback. */
#ifndef PX_PY_TRANSPORT_H
#define PX_PY_TRANSPORT_H

#include "binding.h"
#include "px/handle.h"

typedef struct px_py_transport {
    PyObject_HEAD px_conn_t *conn; /* NULL once the connection is closed */
    px_handle_t *handle;           /* the connection from other threads */
    int fd;                        /* the socket, for its addresses */
    px_worker_t *worker;
    int worker_index; /* kept: readable after the engine is gone */
    px_py_proto_spec_t *spec;
    PyObject *protocol;
    uint64_t id;
    uint64_t send_id;
    char *linebuf; /* line mode: bytes after the last newline */
    size_t linebuf_len, linebuf_cap;
    PyObject *saved_current; /* the transport current before enter() */
    PyObject *failure;       /* what send_failed/recv_failed got: connection_lost's */
} px_py_transport_t;

px_py_transport_t *px_py_transport_new(px_conn_t *c, px_py_proto_spec_t *spec, PyObject *protocol);
/* Mark t as the current transport of this thread for the callback's duration. */
void px_py_transport_enter(px_py_transport_t *t);
void px_py_transport_leave(px_py_transport_t *t);
/* The connection is gone: later calls raise ConnectionError. */
void px_py_transport_detach(px_py_transport_t *t);
int px_py_transport_linebuf_append(px_py_transport_t *t, const char *data, size_t len);
void px_py_transport_linebuf_consume(px_py_transport_t *t, size_t n);

#endif
