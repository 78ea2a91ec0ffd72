/*
 * Sendable values: bytes, bytearray, memoryview and other buffers, str (UTF-8),
 * tuples and lists of them (one gathered send), and SendFile (a file range sent
 * without copying it through Python).
 */
#include "binding.h"
#include "px/handle.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#define GATHER_MAX 64

typedef struct px_py_sendfile {
    PyObject_HEAD PyObject *path; /* str or bytes path */
    long long offset;
    long long count;  /* -1: to the end of the file */
    PyObject *before; /* sendable or None */
    PyObject *after;
} px_py_sendfile_t;

/* Add one flat piece to the iovec list, keeping a reference so it stays alive. */
typedef struct gather {
    px_module_state_t *st;
    px_handle_t *h; /* posting from another thread (conn is NULL then) */
    bool force;     /* a send part-way through: the rest goes with it */
    bool refused;   /* over the high-water mark: nothing was taken */
    struct iovec iov[GATHER_MAX];
    Py_buffer views[GATHER_MAX];
    PyObject *keep[GATHER_MAX];
    int n;
} gather_t;

static void gather_release(gather_t *g)
{
    int i;
    for (i = 0; i < g->n; i++) {
        if (g->views[i].obj)
            PyBuffer_Release(&g->views[i]);
        Py_XDECREF(g->keep[i]);
    }
    g->n = 0;
}

static int gather_flush(px_conn_t *c, gather_t *g)
{
    int rc = 0;

    if (g->n && g->h) {
        rc = px_handle_send(g->h, g->iov, g->n, g->force);
        if (rc == -EAGAIN) {
            g->refused = true;
            rc = 0;
        } else if (rc == 0) {
            g->force = true;
        }
    } else if (g->n) {
        rc = px_conn_send(c, g->iov, g->n);
    }
    gather_release(g);
    if (rc == -ENOTCONN || rc == -ESHUTDOWN) {
        PyErr_SetString(PyExc_ConnectionError, "transport is closed");
        return -1;
    }
    if (rc == -EPIPE) {
        PyErr_SetString(PyExc_BrokenPipeError, "transport is shut for sending (shutdown_send)");
        return -1;
    }
    if (rc < 0) {
        px_py_raise_errno(g->st, rc, "send");
        return -1;
    }
    return 0;
}

static int send_one(px_conn_t *c, PyObject *obj, gather_t *g, int depth);

static int send_file(px_conn_t *c, px_py_sendfile_t *f, gather_t *g)
{
    PyObject *encoded = NULL;
    struct stat st;
    long long count;
    int fd, rc;

    if (f->before != Py_None && send_one(c, f->before, g, 1) < 0)
        return -1;
    if (gather_flush(c, g) < 0)
        return -1;
    if (!PyUnicode_FSConverter(f->path, &encoded))
        return -1;
    Py_BEGIN_ALLOW_THREADS fd = open(PyBytes_AS_STRING(encoded), O_RDONLY | O_CLOEXEC);
    Py_END_ALLOW_THREADS if (fd < 0)
    {
        PyErr_SetFromErrnoWithFilenameObject(PyExc_OSError, f->path);
        Py_DECREF(encoded);
        return -1;
    }
    Py_DECREF(encoded);
    if (fstat(fd, &st) < 0) {
        PyErr_SetFromErrnoWithFilenameObject(PyExc_OSError, f->path);
        close(fd);
        return -1;
    }
    if (f->offset > st.st_size) {
        close(fd);
        PyErr_Format(PyExc_ValueError,
                     "sendfile offset %lld is past the end of the file (%lld bytes)", f->offset,
                     (long long)st.st_size);
        return -1;
    }
    count = f->count < 0 ? (long long)st.st_size - f->offset : f->count;
    if (f->offset + count > st.st_size) {
        close(fd);
        PyErr_Format(PyExc_ValueError,
                     "sendfile range %lld+%lld is past the end of the file (%lld bytes)", f->offset,
                     count, (long long)st.st_size);
        return -1;
    }
    rc = px_conn_sendfile(c, fd, (off_t)f->offset, (size_t)count); /* takes fd */
    if (rc < 0) {
        px_py_raise_errno(g->st, rc, "sendfile");
        return -1;
    }
    if (f->after != Py_None && send_one(c, f->after, g, 1) < 0)
        return -1;
    return 0;
}

static int send_one(px_conn_t *c, PyObject *obj, gather_t *g, int depth)
{
    px_module_state_t *st = g->st;

    if (g->refused)
        return 0;
    if (PyTuple_Check(obj) || PyList_Check(obj)) {
        Py_ssize_t i;
        PyObject *seq;
        int rc = 0;

        if (depth > 0) {
            PyErr_SetString(PyExc_TypeError, "sendable sequences cannot be nested");
            return -1;
        }
        seq = PySequence_Fast(obj, "sendable sequence");
        if (seq == NULL)
            return -1;
        for (i = 0; i < PySequence_Fast_GET_SIZE(seq) && rc == 0; i++)
            rc = send_one(c, PySequence_Fast_GET_ITEM(seq, i), g, depth + 1);
        Py_DECREF(seq);
        return rc;
    }
    if (Py_IS_TYPE(obj, st->sendfile_type)) {
        if (g->h) {
            PyErr_SetString(PyExc_TypeError, "a sendfile() can only be sent from the "
                                             "connection's own worker");
            return -1;
        }
        return send_file(c, (px_py_sendfile_t *)obj, g);
    }
    if (g->n == GATHER_MAX && gather_flush(c, g) < 0)
        return -1;
    if (PyUnicode_Check(obj)) {
        Py_ssize_t len;
        const char *s = PyUnicode_AsUTF8AndSize(obj, &len);
        if (s == NULL)
            return -1;
        g->views[g->n].obj = NULL;
        g->keep[g->n] = Py_NewRef(obj);
        g->iov[g->n].iov_base = (void *)s;
        g->iov[g->n].iov_len = (size_t)len;
        g->n++;
        return 0;
    }
    if (PyObject_CheckBuffer(obj)) {
        Py_buffer *v = &g->views[g->n];
        if (PyObject_GetBuffer(obj, v, PyBUF_SIMPLE) < 0)
            return -1;
        g->keep[g->n] = NULL;
        g->iov[g->n].iov_base = v->buf;
        g->iov[g->n].iov_len = (size_t)v->len;
        g->n++;
        return 0;
    }
    PyErr_Format(PyExc_TypeError,
                 "cannot send %.200s: expected bytes, bytearray, memoryview, str, "
                 "sendfile() or a tuple/list of them",
                 Py_TYPE(obj)->tp_name);
    return -1;
}

int px_py_send(px_module_state_t *st, px_conn_t *c, PyObject *obj)
{
    gather_t g;
    int rc;

    g.st = st;
    g.h = NULL;
    g.force = g.refused = false;
    g.n = 0;
    rc = send_one(c, obj, &g, 0);
    if (rc < 0) {
        gather_release(&g);
        return -1;
    }
    return gather_flush(c, &g);
}

int px_py_send_posted(px_module_state_t *st, px_handle_t *h, PyObject *obj, bool force)
{
    gather_t g;
    int rc;

    g.st = st;
    g.h = h;
    g.force = force;
    g.refused = false;
    g.n = 0;
    rc = send_one(NULL, obj, &g, 0);
    if (rc == 0)
        rc = gather_flush(NULL, &g);
    gather_release(&g);
    if (rc < 0)
        return -1;
    return g.refused ? 0 : 1;
}

bool px_py_sendable_has_file(px_module_state_t *st, PyObject *obj)
{
    if (PyTuple_Check(obj) || PyList_Check(obj)) {
        Py_ssize_t i, n = PySequence_Size(obj);
        bool found = false;
        for (i = 0; i < n && !found; i++) {
            PyObject *item = PySequence_GetItem(obj, i);
            if (item == NULL) {
                PyErr_Clear();
                return false;
            }
            found = Py_IS_TYPE(item, st->sendfile_type);
            Py_DECREF(item);
        }
        return found;
    }
    return Py_IS_TYPE(obj, st->sendfile_type);
}

/* ---- the SendFile type --------------------------------------------------- */

static PyObject *sendfile_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"path", "offset", "count", "before", "after", NULL};
    PyObject *path, *before = Py_None, *after = Py_None, *count_obj = Py_None;
    long long offset = 0, count = -1;
    px_py_sendfile_t *f;

    if (!PyArg_ParseTupleAndKeywords(args, kwds, "O|LOOO:sendfile", kwlist, &path, &offset,
                                     &count_obj, &before, &after))
        return NULL;
    if (count_obj != Py_None) {
        count = PyLong_AsLongLong(count_obj);
        if (count == -1 && PyErr_Occurred())
            return NULL;
        if (count < 0) {
            PyErr_SetString(PyExc_ValueError, "sendfile count must be >= 0");
            return NULL;
        }
    }
    if (offset < 0) {
        PyErr_SetString(PyExc_ValueError, "sendfile offset must be >= 0");
        return NULL;
    }
    if (!PyUnicode_Check(path) && !PyBytes_Check(path)) {
        path = PyOS_FSPath(path);
        if (path == NULL)
            return NULL;
    } else {
        Py_INCREF(path);
    }
    f = (px_py_sendfile_t *)type->tp_alloc(type, 0);
    if (f == NULL) {
        Py_DECREF(path);
        return NULL;
    }
    f->path = path;
    f->offset = offset;
    f->count = count;
    f->before = Py_NewRef(before);
    f->after = Py_NewRef(after);
    return (PyObject *)f;
}

static int sendfile_traverse(PyObject *self, visitproc visit, void *arg)
{
    px_py_sendfile_t *f = (px_py_sendfile_t *)self;
    Py_VISIT(Py_TYPE(self));
    Py_VISIT(f->before);
    Py_VISIT(f->after);
    return 0;
}

static int sendfile_clear(PyObject *self)
{
    px_py_sendfile_t *f = (px_py_sendfile_t *)self;
    Py_CLEAR(f->path);
    Py_CLEAR(f->before);
    Py_CLEAR(f->after);
    return 0;
}

static void sendfile_dealloc(PyObject *self)
{
    PyTypeObject *tp = Py_TYPE(self);
    PyObject_GC_UnTrack(self);
    sendfile_clear(self);
    tp->tp_free(self);
    Py_DECREF(tp);
}

static PyObject *sendfile_repr(PyObject *self)
{
    px_py_sendfile_t *f = (px_py_sendfile_t *)self;
    return PyUnicode_FromFormat("sendfile(%R, offset=%lld, count=%lld)", f->path, f->offset,
                                f->count);
}

static PyObject *sf_path(PyObject *s, void *c)
{
    (void)c;
    return Py_NewRef(((px_py_sendfile_t *)s)->path);
}
static PyObject *sf_offset(PyObject *s, void *c)
{
    (void)c;
    return PyLong_FromLongLong(((px_py_sendfile_t *)s)->offset);
}
static PyObject *sf_count(PyObject *s, void *c)
{
    (void)c;
    if (((px_py_sendfile_t *)s)->count < 0)
        Py_RETURN_NONE;
    return PyLong_FromLongLong(((px_py_sendfile_t *)s)->count);
}

static PyGetSetDef sendfile_getset[] = {
    {"path", sf_path, NULL, NULL, NULL},
    {"offset", sf_offset, NULL, NULL, NULL},
    {"count", sf_count, NULL, NULL, NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyType_Slot sendfile_slots[] = {
    {Py_tp_doc, "sendfile(path, offset=0, count=None, before=None, after=None)\n\n"
                "A sendable file range, sent by the kernel without passing through Python."},
    {Py_tp_new, sendfile_new},
    {Py_tp_getset, sendfile_getset},
    {Py_tp_repr, sendfile_repr},
    {Py_tp_traverse, sendfile_traverse},
    {Py_tp_clear, sendfile_clear},
    {Py_tp_dealloc, sendfile_dealloc},
    {0, NULL},
};

PyType_Spec px_py_sendfile_type_spec = {
    .name = "pyparallel._core.sendfile",
    .basicsize = sizeof(px_py_sendfile_t),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_IMMUTABLETYPE,
    .slots = sendfile_slots,
};
