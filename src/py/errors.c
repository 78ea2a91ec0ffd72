/*
 * The binding's exceptions, and the one place where an engine result (-errno)
 * becomes a Python exception.
 *
 * EngineError is an OSError (it carries the errno when there is one) and a
 * RuntimeError: the engine refuses because of its own state (shut down, or a
 * backend that was asked for and refused), which callers have always caught
 * as RuntimeError, as io.UnsupportedOperation is both an OSError and a
 * ValueError.
 */
#include "binding.h"

#include <errno.h>
#include <string.h>

PyObject *px_py_errno_error(px_module_state_t *st, PyObject *type, int err, const char *what)
{
    const char *text;
    PyObject *exc;

    if (err < 0)
        err = -err;
    text = strerror(err);
    if (type == NULL) {
        if (err == ENOMEM) /* an allocation failed: what Python code expects then */
            return PyObject_CallNoArgs(PyExc_MemoryError);
        if (err == ESHUTDOWN) {
            type = st->engine_error;
            text = "the engine has shut down";
        } else {
            type = PyExc_OSError; /* picks the errno's subclass itself */
        }
    }
    exc = what ? PyObject_CallFunction(type, "iss", err, text, what)
               : PyObject_CallFunction(type, "is", err, text);
    return exc;
}

PyObject *px_py_raise_errno(px_module_state_t *st, int err, const char *what)
{
    PyObject *exc = px_py_errno_error(st, NULL, err, what);

    if (exc != NULL) {
        PyErr_SetObject((PyObject *)Py_TYPE(exc), exc);
        Py_DECREF(exc);
    }
    return NULL;
}

void px_py_display_exception(PyObject *exc)
{
#if PY_VERSION_HEX >= 0x030C0000
    PyErr_DisplayException(exc);
#else
    PyErr_Display((PyObject *)Py_TYPE(exc), exc, PyException_GetTraceback(exc));
#endif
    Py_DECREF(exc);
}

int px_py_errors_init(PyObject *m, px_module_state_t *st)
{
    PyObject *bases = PyTuple_Pack(2, PyExc_OSError, PyExc_RuntimeError);

    if (bases == NULL)
        return -1;
    st->engine_error = PyErr_NewExceptionWithDoc(
        "pyparallel.EngineError",
        "The engine failed or refused: it has shut down, a backend that was asked for\n"
        "is refused, or a system call it made failed. An OSError (errno is set when\n"
        "the cause is one) and a RuntimeError.",
        bases, NULL);
    Py_DECREF(bases);
    if (st->engine_error == NULL)
        return -1;
    return PyModule_AddObjectRef(m, "EngineError", st->engine_error);
}
