/* Transactions (AME): the module's functions and types, and the I/O guard: an
 * audit hook that refuses the operations a retried transaction would repeat
 * (writes to files, sockets, processes) while the calling thread is inside a
 * transaction. The transactions themselves are the STM core (src/core/stm.c)
 * run by stm_run.c. */
#include "stm.h"

#include <fcntl.h>
#include <stdatomic.h>
#include <string.h>

static _Atomic int guard_installed;
static PyObject *io_error; /* IOInTransactionError, for the hook, for good */

static int refuse(PyObject *error_type, const char *what)
{
    if (!px_py_stm_active())
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
    if (!px_py_stm_active()) /* the common case: a thread-local load or two */
        return 0;
    if (strcmp(event, "open") == 0)
        return opens_for_writing(args) ? refuse(error_type, "opening a file for writing") : 0;
    for (const char *const *e = io_events; *e != NULL; e++)
        if (strcmp(event, *e) == 0)
            return refuse(error_type, event);
    return 0;
}

bool px_py_stm_is_container(PyObject *o)
{
    destructor d = Py_TYPE(o)->tp_dealloc;
    return d == px__stm_tvar_dealloc || d == px__stm_td_dealloc || d == px__stm_tl_dealloc;
}

int px__stm_guard_io(void)
{
    int expected = 0;
    if (PX_LIKELY(atomic_load_explicit(&guard_installed, memory_order_relaxed)))
        return 0;
    if (atomic_compare_exchange_strong(&guard_installed, &expected, 1)) {
        if (PySys_AddAuditHook(io_guard, io_error) < 0) {
            atomic_store(&guard_installed, 0);
            return -1;
        }
    }
    return 0;
}

static PyObject *stm_now(PyObject *module, PyObject *unused)
{
    (void)module;
    (void)unused;
    return PyLong_FromUnsignedLongLong(px_stm_clock());
}

static PyObject *in_transaction(PyObject *module, PyObject *unused)
{
    (void)module;
    (void)unused;
    return PyBool_FromLong(px_py_stm_active());
}

static PyObject *stm_refuse(PyObject *module, PyObject *what)
{
    const char *s;
    if (!PyUnicode_Check(what)) {
        PyErr_SetString(PyExc_TypeError, "refuse_in_transaction() needs a str");
        return NULL;
    }
    s = PyUnicode_AsUTF8(what);
    if (s == NULL || px_py_stm_refuse(PyModule_GetState(module), s) < 0)
        return NULL;
    Py_RETURN_NONE;
}

static PyMethodDef stm_methods[] = {
    {"atomic", (PyCFunction)(void (*)(void))px__stm_atomic, METH_FASTCALL | METH_KEYWORDS,
     "atomic(func, /, *args, **kwargs): run func(*args, **kwargs) as one transaction and return "
     "its result.\n\nIts reads and writes of tvar/tdict/tlist objects take effect as if no other "
     "transaction ran at the same time; it may run several times (after conflicts), so it must "
     "not perform I/O (refused with IOInTransactionError) or change non-transactional state it "
     "depends on. An exception from func discards its writes and propagates. Inside a "
     "transaction, atomic joins the running one (flat nesting): the inner block commits with "
     "the outer, and an exception leaving the inner block undoes the inner block's writes "
     "only. After max_retries lost conflicts (stm_config) it runs irrevocably: alone, so it "
     "always finishes."},
    {"in_transaction", in_transaction, METH_NOARGS,
     "True while the calling thread runs inside atomic()."},
    {"refuse_in_transaction", stm_refuse, METH_O,
     "refuse_in_transaction(what): raise IOInTransactionError naming `what` if the calling "
     "thread is inside a transaction; for APIs with effects a retry would repeat."},
    {"stm_stats", (PyCFunction)(void (*)(void))px__stm_stats, METH_VARARGS | METH_KEYWORDS,
     "stm_stats(reset=False, top=10): counters of all transactions since the start (or the "
     "last reset), summed over the threads' own counters.\n\ncommits (read-only ones "
     "included), read_only, aborts (runs rolled back: conflicts and exceptions), retries (runs "
     "started again after a conflict), serial_fallbacks (transactions that ran irrevocably), "
     "exceptions, aborts_by_cause (read_locked: a read met a location a committer held; "
     "stale_read: something read had changed; commit_locked: commit could not lock a location; "
     "exception), snapshot_extensions (snapshots moved forward instead of aborting), "
     "max_retries, and conflicts: the top most conflicted locations as {container, key, count} "
     "dicts (key None for a tvar, '<length>' for a container's length)."},
    {"stm_config", (PyCFunction)(void (*)(void))px__stm_config, METH_VARARGS | METH_KEYWORDS,
     "stm_config(max_retries=None): set (when given) and return the STM settings.\n\n"
     "max_retries: conflicts a transaction may lose before it runs irrevocably."},
    {"_stm_refuse", stm_refuse, METH_O, "refuse_in_transaction(), for the package's own calls."},
    {"_stm_now", stm_now, METH_NOARGS, "The version clock."},
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
    if (io_error == NULL)
        io_error = Py_NewRef(st->stm_io_error); /* the audit hook's, which outlives m */
    {
        PyType_Spec *specs[] = {&px__stm_tvar_spec, &px__stm_tdict_spec, &px__stm_tlist_spec};
        const char *names[] = {"tvar", "tdict", "tlist"};
        for (size_t i = 0; i < PX_ARRAY_SIZE(specs); i++) {
            PyObject *type = PyType_FromModuleAndSpec(m, specs[i], NULL);
            int rc = type == NULL ? -1 : PyModule_AddObjectRef(m, names[i], type);
            Py_XDECREF(type);
            if (rc < 0)
                return -1;
        }
    }
    if (px__stm_run_init(m) < 0)
        return -1;
    return PyModule_AddFunctions(m, stm_methods);
}
