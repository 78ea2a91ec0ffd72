/*
 * The C base of px.dict() and px.list(): dict and list subclasses that own an
 * RWLock and take it around their most frequent operations (item access and
 * assignment, membership, length, iteration, dict.get, list.append), so that
 * these cost a method call of the builtin plus one compare-and-swap each way.
 * pyparallel.runtime's ProtectedDict and ProtectedList derive from them and
 * lock the remaining methods in Python.
 *
 * Iteration takes a snapshot (the keys, or the items) under the read lock, so
 * that writers on other threads never break a loop.
 */
#include "binding.h"

typedef struct px_py_locked_dict {
    PyDictObject dict;
    PyObject *lock;
} px_py_locked_dict_t;

typedef struct px_py_locked_list {
    PyListObject list;
    PyObject *lock;
} px_py_locked_list_t;

#define DICT_LOCK(op) (((px_py_locked_dict_t *)(op))->lock)
#define LIST_LOCK(op) (((px_py_locked_list_t *)(op))->lock)

/* Lock, run the builtin's operation, unlock: one shape for every wrapper. */
#define LOCKED(lock, write, expr_type, fail, expr)           \
    do {                                                     \
        expr_type r_;                                        \
        if (px_py_rwlock_acquire((lock), (write), true) < 0) \
            return (fail);                                   \
        r_ = (expr);                                         \
        px_py_rwlock_release((lock), (write));               \
        return r_;                                           \
    } while (0)

/* ---- shared parts ---------------------------------------------------------- */

static PyObject *new_with_lock(PyTypeObject *base, PyTypeObject *type, PyObject *args,
                               PyObject *kwds, size_t lock_offset)
{
    PyObject *self = base->tp_new(type, args, kwds);
    PyObject *lock;

    if (self == NULL)
        return NULL;
    px_module_state_t *st = px_py_state_of_type(type);
    if (st == NULL) {
        Py_DECREF(self);
        return NULL;
    }
    lock = px_py_rwlock_new(st);
    if (lock == NULL) {
        Py_DECREF(self);
        return NULL;
    }
    *(PyObject **)((char *)self + lock_offset) = lock;
    return self;
}

static void dealloc_with(PyTypeObject *base, PyObject *self, PyObject **lock)
{
    PyTypeObject *tp = Py_TYPE(self);

    Py_CLEAR(*lock);
    base->tp_dealloc(self);
    /* The builtin's dealloc does not release the type; a heap type's dealloc
     * must (a Python subclass's dealloc leaves it to its heap-type base). */
    Py_DECREF(tp);
}

/* ---- dict ------------------------------------------------------------------ */

static PyObject *ld_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    return new_with_lock(&PyDict_Type, type, args, kwds, offsetof(px_py_locked_dict_t, lock));
}

static int ld_traverse(PyObject *op, visitproc visit, void *arg)
{
    Py_VISIT(DICT_LOCK(op));
    Py_VISIT(Py_TYPE(op));
    return PyDict_Type.tp_traverse(op, visit, arg);
}

static int ld_clear(PyObject *op)
{
    Py_CLEAR(DICT_LOCK(op));
    return PyDict_Type.tp_clear(op);
}

static void ld_dealloc(PyObject *op)
{
    dealloc_with(&PyDict_Type, op, &DICT_LOCK(op));
}

static PyObject *ld_subscript(PyObject *op, PyObject *key)
{
    LOCKED(DICT_LOCK(op), false, PyObject *, NULL,
           PyDict_Type.tp_as_mapping->mp_subscript(op, key));
}

static int ld_ass_subscript(PyObject *op, PyObject *key, PyObject *value)
{
    LOCKED(DICT_LOCK(op), true, int, -1,
           PyDict_Type.tp_as_mapping->mp_ass_subscript(op, key, value));
}

static Py_ssize_t ld_length(PyObject *op)
{
    LOCKED(DICT_LOCK(op), false, Py_ssize_t, -1, PyDict_Size(op));
}

static int ld_contains(PyObject *op, PyObject *key)
{
    LOCKED(DICT_LOCK(op), false, int, -1, PyDict_Contains(op, key));
}

static PyObject *keys_iter(PyObject *keys)
{
    PyObject *it;

    if (keys == NULL)
        return NULL;
    it = PyObject_GetIter(keys);
    Py_DECREF(keys);
    return it;
}

static PyObject *ld_iter(PyObject *op)
{
    PyObject *keys;

    if (px_py_rwlock_acquire(DICT_LOCK(op), false, true) < 0)
        return NULL;
    keys = PyDict_Keys(op);
    px_py_rwlock_release(DICT_LOCK(op), false);
    return keys_iter(keys);
}

/* d.get(key, default=None) */
static PyObject *dict_get_unlocked(PyObject *op, PyObject *key, PyObject *dflt)
{
    PyObject *v;

#if PY_VERSION_HEX >= 0x030D0000
    if (PyDict_GetItemRef(op, key, &v) < 0)
        return NULL;
#else
    v = PyDict_GetItemWithError(op, key); /* borrowed, safe under the GIL */
    if (v == NULL && PyErr_Occurred())
        return NULL;
    Py_XINCREF(v);
#endif
    return v ? v : Py_NewRef(dflt);
}

static PyObject *ld_get(PyObject *op, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs < 1 || nargs > 2) {
        PyErr_Format(PyExc_TypeError, "get expected 1 or 2 arguments, got %zd", nargs);
        return NULL;
    }
    LOCKED(DICT_LOCK(op), false, PyObject *, NULL,
           dict_get_unlocked(op, args[0], nargs == 2 ? args[1] : Py_None));
}

static PyObject *ld_get_lock(PyObject *op, void *c)
{
    (void)c;
    return Py_NewRef(DICT_LOCK(op));
}

static PyObject *ld_get_reader(PyObject *op, void *c)
{
    (void)c;
    return px_py_rwlock_guard(DICT_LOCK(op), false);
}

static PyObject *ld_get_writer(PyObject *op, void *c)
{
    (void)c;
    return px_py_rwlock_guard(DICT_LOCK(op), true);
}

static PyMethodDef ld_methods[] = {
    {"get", (PyCFunction)(void (*)(void))ld_get, METH_FASTCALL,
     "get(key, default=None): the value for key, else default (read lock)."},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef ld_getset[] = {
    {"_px_lock", ld_get_lock, NULL, "the RWLock of this dict", NULL},
    {"_px_r", ld_get_reader, NULL, "its read-lock context manager", NULL},
    {"_px_w", ld_get_writer, NULL, "its write-lock context manager", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyType_Slot ld_slots[] = {
    {Py_tp_doc, "dict whose item access, assignment, membership, length, get and\n"
                "iteration take its own readers-writer lock (base of pyparallel.dict)."},
    {Py_tp_new, ld_new},
    {Py_tp_dealloc, ld_dealloc},
    {Py_tp_traverse, ld_traverse},
    {Py_tp_clear, ld_clear},
    {Py_tp_iter, ld_iter},
    {Py_mp_subscript, ld_subscript},
    {Py_mp_ass_subscript, ld_ass_subscript},
    {Py_mp_length, ld_length},
    {Py_sq_contains, ld_contains},
    {Py_tp_methods, ld_methods},
    {Py_tp_getset, ld_getset},
    {0, NULL},
};

PyType_Spec px_py_locked_dict_type_spec = {
    .name = "pyparallel._core.LockedDict",
    .basicsize = sizeof(px_py_locked_dict_t),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE | Py_TPFLAGS_HAVE_GC |
             Py_TPFLAGS_IMMUTABLETYPE,
    .slots = ld_slots,
};

/* ---- list ------------------------------------------------------------------ */

static PyObject *ll_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    return new_with_lock(&PyList_Type, type, args, kwds, offsetof(px_py_locked_list_t, lock));
}

static int ll_traverse(PyObject *op, visitproc visit, void *arg)
{
    Py_VISIT(LIST_LOCK(op));
    Py_VISIT(Py_TYPE(op));
    return PyList_Type.tp_traverse(op, visit, arg);
}

static int ll_clear(PyObject *op)
{
    Py_CLEAR(LIST_LOCK(op));
    return PyList_Type.tp_clear(op);
}

static void ll_dealloc(PyObject *op)
{
    dealloc_with(&PyList_Type, op, &LIST_LOCK(op));
}

static PyObject *ll_subscript(PyObject *op, PyObject *index)
{
    LOCKED(LIST_LOCK(op), false, PyObject *, NULL,
           PyList_Type.tp_as_mapping->mp_subscript(op, index));
}

static int ll_ass_subscript(PyObject *op, PyObject *index, PyObject *value)
{
    LOCKED(LIST_LOCK(op), true, int, -1,
           PyList_Type.tp_as_mapping->mp_ass_subscript(op, index, value));
}

static Py_ssize_t ll_length(PyObject *op)
{
    LOCKED(LIST_LOCK(op), false, Py_ssize_t, -1, PyList_Size(op));
}

static int ll_contains(PyObject *op, PyObject *value)
{
    LOCKED(LIST_LOCK(op), false, int, -1, PyList_Type.tp_as_sequence->sq_contains(op, value));
}

static PyObject *ll_iter(PyObject *op)
{
    PyObject *copy;

    if (px_py_rwlock_acquire(LIST_LOCK(op), false, true) < 0)
        return NULL;
    copy = PyList_GetSlice(op, 0, PY_SSIZE_T_MAX);
    px_py_rwlock_release(LIST_LOCK(op), false);
    return keys_iter(copy);
}

static PyObject *append_unlocked(PyObject *op, PyObject *value)
{
    if (PyList_Append(op, value) < 0)
        return NULL;
    Py_RETURN_NONE;
}

static PyObject *ll_append(PyObject *op, PyObject *value)
{
    LOCKED(LIST_LOCK(op), true, PyObject *, NULL, append_unlocked(op, value));
}

static PyObject *ll_get_lock(PyObject *op, void *c)
{
    (void)c;
    return Py_NewRef(LIST_LOCK(op));
}

static PyObject *ll_get_reader(PyObject *op, void *c)
{
    (void)c;
    return px_py_rwlock_guard(LIST_LOCK(op), false);
}

static PyObject *ll_get_writer(PyObject *op, void *c)
{
    (void)c;
    return px_py_rwlock_guard(LIST_LOCK(op), true);
}

static PyMethodDef ll_methods[] = {
    {"append", ll_append, METH_O, "append(value) under the write lock."},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef ll_getset[] = {
    {"_px_lock", ll_get_lock, NULL, "the RWLock of this list", NULL},
    {"_px_r", ll_get_reader, NULL, "its read-lock context manager", NULL},
    {"_px_w", ll_get_writer, NULL, "its write-lock context manager", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyType_Slot ll_slots[] = {
    {Py_tp_doc, "list whose item access, assignment, membership, length, append and\n"
                "iteration take its own readers-writer lock (base of pyparallel.list)."},
    {Py_tp_new, ll_new},
    {Py_tp_dealloc, ll_dealloc},
    {Py_tp_traverse, ll_traverse},
    {Py_tp_clear, ll_clear},
    {Py_tp_iter, ll_iter},
    {Py_mp_subscript, ll_subscript},
    {Py_mp_ass_subscript, ll_ass_subscript},
    {Py_mp_length, ll_length},
    {Py_sq_length, ll_length},
    {Py_sq_contains, ll_contains},
    {Py_tp_methods, ll_methods},
    {Py_tp_getset, ll_getset},
    {0, NULL},
};

PyType_Spec px_py_locked_list_type_spec = {
    .name = "pyparallel._core.LockedList",
    .basicsize = sizeof(px_py_locked_list_t),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE | Py_TPFLAGS_HAVE_GC |
             Py_TPFLAGS_IMMUTABLETYPE,
    .slots = ll_slots,
};
