/* Transactions (AME): the parts that belong in C.
 *
 * The transactions themselves live in pyparallel/stm.py. What they need from C:
 * the version clock (one atomic counter in the module state, TL2-style), the
 * transaction that is running on this thread (a C thread-local, so that C code
 * such as Transport.send can ask cheaply), and the I/O guard: an audit hook
 * that refuses the operations a retried transaction would repeat (writes to
 * files, sockets, processes) while the calling thread is inside a transaction. */
#include "stm.h"

#include <fcntl.h>
#include <stdatomic.h>
#include <string.h>

/* The running transaction of this thread (a strong reference), or NULL. The
 * version clock and the guard's flag are in the module state. */
static _Thread_local PyObject *current_tx;

static int refuse(PyObject *error_type, const char *what)
{
    if (current_tx == NULL)
        return 0;
    PyErr_Format(error_type,
                 "%s inside an atomic transaction: a transaction may run several times, "
                 "so it may only change transactional containers; do the I/O after "
                 "atomic() returns",
                 what);
    return -1;
}

int px_py_stm_refuse(px_module_state_t *st, const char *what)
{
    return refuse(st->stm_io_error, what);
}

bool px_py_stm_active(void)
{
    return current_tx != NULL;
}

/* Audit events that are I/O a retry would repeat. `open` is handled apart:
 * opening for reading is allowed (imports and data files read the same on a
 * retry). Plain socket send/recv raise no audit event; Transport objects are
 * guarded in transport.c. */
static const char *const io_events[] = {
    "socket.bind",
    "socket.connect",
    "socket.sendto",
    "socket.sendmsg",
    "socket.getaddrinfo",
    "socket.gethostbyname",
    "socket.gethostbyaddr",
    "subprocess.Popen",
    "os.system",
    "os.exec",
    "os.posix_spawn",
    "os.spawn",
    "os.fork",
    "os.forkpty",
    "os.kill",
    "os.killpg",
    "os.remove",
    "os.rename",
    "os.rmdir",
    "os.mkdir",
    "os.truncate",
    "os.link",
    "os.symlink",
    "os.chmod",
    "os.chown",
    "os.utime",
    "shutil.copyfile",
    "shutil.copymode",
    "shutil.copystat",
    "shutil.copytree",
    "shutil.move",
    "shutil.rmtree",
    "shutil.chown",
    "http.client.connect",
    "http.client.send",
    "urllib.Request",
    "smtplib.connect",
    "smtplib.send",
    "ftplib.connect",
    "ftplib.sendcmd",
    "imaplib.open",
    "imaplib.send",
    "poplib.connect",
    "poplib.putline",
    "telnetlib.Telnet.open",
    "telnetlib.Telnet.write",
    "sqlite3.connect",
    NULL,
};

/* `open` audit arguments are (path, mode, flags): mode is a str for io.open
 * and None for os.open, where flags tell. */
static bool opens_for_writing(PyObject *args)
{
    PyObject *mode, *flags;
    long f;

    if (!PyTuple_Check(args) || PyTuple_GET_SIZE(args) < 3)
        return false;
    mode = PyTuple_GET_ITEM(args, 1);  // borrowed
    flags = PyTuple_GET_ITEM(args, 2); // borrowed
    if (PyUnicode_Check(mode)) {
        const char *m = PyUnicode_AsUTF8(mode);
        if (m == NULL) {
            PyErr_Clear();
            return false;
        }
        return strpbrk(m, "wax+") != NULL;
    }
    if (!PyLong_Check(flags))
        return false;
    f = PyLong_AsLong(flags);
    if (f == -1 && PyErr_Occurred()) {
        PyErr_Clear();
        return false;
    }
    return (f & (O_WRONLY | O_RDWR | O_CREAT | O_TRUNC | O_APPEND)) != 0;
}

/* error_type: IOInTransactionError, a reference the hook keeps for good (an
 * audit hook cannot be removed, so it must not point into the module). */
static int io_guard(const char *event, PyObject *args, void *error_type)
{
    if (current_tx == NULL) /* the common case costs one thread-local load */
        return 0;
    if (strcmp(event, "open") == 0)
        return opens_for_writing(args) ? refuse(error_type, "opening a file for writing") : 0;
    for (const char *const *e = io_events; *e != NULL; e++)
        if (strcmp(event, *e) == 0)
            return refuse(error_type, event);
    return 0;
}

static PyObject *stm_now(PyObject *module, PyObject *unused)
{
    px_module_state_t *st = PyModule_GetState(module);
    (void)unused;
    return PyLong_FromUnsignedLongLong(atomic_load(&st->stm_clock));
}

static PyObject *stm_tick(PyObject *module, PyObject *unused)
{
    px_module_state_t *st = PyModule_GetState(module);
    (void)unused;
    return PyLong_FromUnsignedLongLong(atomic_fetch_add(&st->stm_clock, 1) + 1);
}

static PyObject *stm_current(PyObject *module, PyObject *unused)
{
    (void)module;
    (void)unused;
    return Py_NewRef(current_tx != NULL ? current_tx : Py_None);
}

static PyObject *stm_set_current(PyObject *module, PyObject *tx)
{
    PyObject *old = current_tx;
    (void)module;
    current_tx = tx == Py_None ? NULL : Py_NewRef(tx);
    Py_XDECREF(old);
    Py_RETURN_NONE;
}

static PyObject *stm_guard_io(PyObject *module, PyObject *unused)
{
    px_module_state_t *st = PyModule_GetState(module);
    int expected = 0;
    (void)unused;
    if (atomic_compare_exchange_strong(&st->stm_io_guard_installed, &expected, 1)) {
        PyObject *error_type = Py_NewRef(st->stm_io_error); /* the hook's, for good */
        if (PySys_AddAuditHook(io_guard, error_type) < 0) {
            Py_DECREF(error_type);
            atomic_store(&st->stm_io_guard_installed, 0);
            return NULL;
        }
    }
    Py_RETURN_NONE;
}

static PyObject *stm_refuse(PyObject *module, PyObject *what)
{
    const char *s;
    if (!PyUnicode_Check(what)) {
        PyErr_SetString(PyExc_TypeError, "_stm_refuse() needs a str");
        return NULL;
    }
    s = PyUnicode_AsUTF8(what);
    if (s == NULL || px_py_stm_refuse(PyModule_GetState(module), s) < 0)
        return NULL;
    Py_RETURN_NONE;
}

static PyMethodDef stm_methods[] = {
    {"_stm_now", stm_now, METH_NOARGS, "The version clock."},
    {"_stm_tick", stm_tick, METH_NOARGS, "Advance the version clock; returns the new value."},
    {"_stm_current", stm_current, METH_NOARGS, "This thread's running transaction, or None."},
    {"_stm_set_current", stm_set_current, METH_O,
     "Set (or clear, with None) this thread's transaction."},
    {"_stm_guard_io", stm_guard_io, METH_NOARGS,
     "Install the audit hook refusing I/O in transactions (once)."},
    {"_stm_refuse", stm_refuse, METH_O,
     "_stm_refuse(what): raise IOInTransactionError naming `what` if a transaction runs here."},
    {NULL, NULL, 0, NULL},
};

int px_py_stm_init(PyObject *m, px_module_state_t *st)
{
    st->stm_error = PyErr_NewExceptionWithDoc(
        "pyparallel.TransactionError",
        "An operation that a transaction (pyparallel.atomic) cannot perform.", PyExc_RuntimeError,
        NULL);
    if (st->stm_error == NULL)
        return -1;
    st->stm_io_error = PyErr_NewExceptionWithDoc(
        "pyparallel.IOInTransactionError",
        "I/O was attempted inside a transaction, which may be retried: do it after "
        "atomic() returns.",
        st->stm_error, NULL);
    if (st->stm_io_error == NULL)
        return -1;
    if (PyModule_AddObjectRef(m, "TransactionError", st->stm_error) < 0 ||
        PyModule_AddObjectRef(m, "IOInTransactionError", st->stm_io_error) < 0)
        return -1;
    return PyModule_AddFunctions(m, stm_methods);
}
