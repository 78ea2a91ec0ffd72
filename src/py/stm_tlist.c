/* tlist: a transactional list. Each index has a location of its own, and so
 * has the length; append, insert, pop and del read and write the length, and
 * insert/pop/del in the middle shift (so write) every later index.
 *
 * The locations are in an array that only grows, under the list's lock, and
 * readers take without one: a grown array is published before the count that
 * covers it, and the outgrown one is retired through the STM's epochs. A
 * committed length never exceeds the locations made, since a transaction
 * makes the location of every index it writes before it commits. */
#include "stm.h"

#include <structmember.h>

typedef struct slots {
    Py_ssize_t cap;
    px_py_tloc_t *slot[];
} slots_t;

typedef struct tlist {
    PyObject_HEAD _Atomic(slots_t *) slots;
    _Atomic Py_ssize_t nlocs;
    PyThread_type_lock lock;
    px_py_tloc_t *size;
    PyObject *name, *label, *weakrefs;
} tlist_t;

/* The location of index i, made (with those before it) if need be. */
static px_py_tloc_t *loc_at(tlist_t *l, Py_ssize_t i)
{
    slots_t *s;
    Py_ssize_t n = atomic_load_explicit(&l->nlocs, memory_order_acquire);
    if (i < n)
        return atomic_load_explicit(&l->slots, memory_order_acquire)->slot[i];
    if (!PyThread_acquire_lock(l->lock, NOWAIT_LOCK)) {
        Py_BEGIN_ALLOW_THREADS PyThread_acquire_lock(l->lock, WAIT_LOCK);
        Py_END_ALLOW_THREADS
    }
    s = atomic_load_explicit(&l->slots, memory_order_relaxed);
    n = atomic_load_explicit(&l->nlocs, memory_order_relaxed);
    if (i >= s->cap) {
        Py_ssize_t cap = PX_MAX(s->cap * 2, i + 1);
        slots_t *bigger = PyMem_RawMalloc(sizeof *bigger + sizeof bigger->slot[0] * (size_t)cap);
        if (bigger == NULL) {
            PyThread_release_lock(l->lock);
            PyErr_NoMemory();
            return NULL;
        }
        bigger->cap = cap;
        memcpy(bigger->slot, s->slot, sizeof s->slot[0] * (size_t)n);
        atomic_store_explicit(&l->slots, bigger, memory_order_release);
        px__stm_mem_retire(s); /* readers may still be indexing it */
        s = bigger;
    }
    for (; n <= i; n++) {
        PyObject *key = PyLong_FromSsize_t(n);
        s->slot[n] = key ? px__stm_loc_new(l->label, key, 0, NULL) : NULL;
        Py_XDECREF(key);
        if (s->slot[n] == NULL)
            break;
        atomic_store_explicit(&l->nlocs, n + 1, memory_order_release);
    }
    PyThread_release_lock(l->lock);
    return n > i ? s->slot[i] : NULL;
}

/* ---- in a transaction ----------------------------------------------------------------- */

static Py_ssize_t tx_len(px_stm_thread_t *th, tlist_t *l)
{
    PyObject *n;
    Py_ssize_t len;
    if (px__stm_get(th, l->size, &n) < 0)
        return -1;
    len = PyLong_AsSsize_t(n);
    Py_DECREF(n);
    return len;
}

static int tx_set_len(px_stm_thread_t *th, tlist_t *l, Py_ssize_t n)
{
    PyObject *v = PyLong_FromSsize_t(n);
    int rc = v == NULL ? -1 : px__stm_set(th, l->size, v);
    Py_XDECREF(v);
    return rc;
}

static PyObject *tx_get(px_stm_thread_t *th, tlist_t *l, Py_ssize_t i)
{
    px_py_tloc_t *loc = loc_at(l, i);
    PyObject *v;
    if (loc == NULL || px__stm_get(th, loc, &v) < 0)
        return NULL;
    if (v == NULL) /* cannot happen below the length; be safe */
        PyErr_SetString(PyExc_IndexError, "tlist index out of range");
    return v;
}

static int tx_set(px_stm_thread_t *th, tlist_t *l, Py_ssize_t i, PyObject *v)
{
    px_py_tloc_t *loc = loc_at(l, i);
    return loc == NULL ? -1 : px__stm_set(th, loc, v);
}

/* i as an index below n (negative ones count from the end); -1 with
 * IndexError when out of range. */
static Py_ssize_t index_in(PyObject *index, Py_ssize_t n)
{
    Py_ssize_t i = PyNumber_AsSsize_t(index, PyExc_IndexError);
    if (i == -1 && PyErr_Occurred())
        return -1;
    if (i < 0)
        i += n;
    if (i < 0 || i >= n) {
        PyErr_SetString(PyExc_IndexError, "tlist index out of range");
        return -1;
    }
    return i;
}

static PyObject *tx_items(px_stm_thread_t *th, tlist_t *l)
{
    Py_ssize_t n = tx_len(th, l);
    PyObject *out;
    if (n < 0)
        return NULL;
    out = PyList_New(n);
    for (Py_ssize_t j = 0; out != NULL && j < n; j++) {
        PyObject *v = tx_get(th, l, j);
        if (v == NULL)
            Py_CLEAR(out);
        else
            PyList_SET_ITEM(out, j, v);
    }
    return out;
}

static int tx_append(px_stm_thread_t *th, tlist_t *l, PyObject *v)
{
    Py_ssize_t n = tx_len(th, l);
    if (n < 0 || tx_set(th, l, n, v) < 0)
        return -1;
    return tx_set_len(th, l, n + 1);
}

/* Remove index i (< n), shifting the rest down; the removed value. */
static PyObject *tx_remove_at(px_stm_thread_t *th, tlist_t *l, Py_ssize_t i, Py_ssize_t n)
{
    PyObject *value = tx_get(th, l, i);
    if (value == NULL)
        return NULL;
    for (Py_ssize_t j = i; j < n - 1; j++) {
        PyObject *next = tx_get(th, l, j + 1);
        int rc = next == NULL ? -1 : tx_set(th, l, j, next);
        Py_XDECREF(next);
        if (rc < 0)
            goto fail;
    }
    if (tx_set(th, l, n - 1, NULL) < 0 || tx_set_len(th, l, n - 1) < 0)
        goto fail;
    return value;
fail:
    Py_DECREF(value);
    return NULL;
}

/* ---- the type ----------------------------------------------------------------------- */

/* Outside a transaction: run self.<name>(*args) as one. */
#define OUTSIDE(op, name, args)                        \
    do {                                               \
        if (th == NULL)                                \
            return px__stm_run_method(op, name, args); \
    } while (0)

static PyObject *no_args(PyObject *op, const char *name)
{
    PyObject *args = PyTuple_New(0), *r;
    if (args == NULL)
        return NULL;
    r = px__stm_run_method(op, name, args);
    Py_DECREF(args);
    return r;
}

static PyObject *tl_new(PyTypeObject *type, PyObject *args, PyObject *kwargs)
{
    static char *names[] = {"items", "name", NULL};
    PyObject *items = NULL, *name = Py_None, *seq = NULL, *count;
    tlist_t *l;
    slots_t *s;
    Py_ssize_t n = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "|OO:tlist", names, &items, &name))
        return NULL;
    if (items != NULL && (seq = PySequence_List(items)) == NULL)
        return NULL;
    n = seq ? PyList_GET_SIZE(seq) : 0;
    l = (tlist_t *)type->tp_alloc(type, 0);
    if (l == NULL)
        goto fail;
    l->name = Py_NewRef(name);
    l->lock = PyThread_allocate_lock();
    l->label = px__stm_label((PyObject *)l, name);
    s = PyMem_RawMalloc(sizeof *s + sizeof s->slot[0] * (size_t)PX_MAX(n, 8));
    if (s != NULL)
        s->cap = PX_MAX(n, 8);
    atomic_init(&l->slots, s);
    if (l->lock == NULL || l->label == NULL || s == NULL)
        goto fail;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *key = PyLong_FromSsize_t(i);
        s->slot[i] = key ? px__stm_loc_new(l->label, key, 0, PyList_GET_ITEM(seq, i)) : NULL;
        Py_XDECREF(key);
        if (s->slot[i] == NULL)
            goto fail;
        atomic_store(&l->nlocs, i + 1);
    }
    count = PyLong_FromSsize_t(n);
    l->size = count ? px__stm_loc_new(l->label, NULL, 0, count) : NULL;
    Py_XDECREF(count);
    if (l->size == NULL)
        goto fail;
    Py_XDECREF(seq);
    return (PyObject *)l;
fail:
    Py_XDECREF(seq);
    Py_XDECREF(l);
    return NULL;
}

static int tl_traverse(PyObject *op, visitproc visit, void *arg)
{
    tlist_t *l = (tlist_t *)op;
    px_stm_thread_t *th;
    slots_t *s;
    int rc = 0;
    Py_VISIT(Py_TYPE(op));
    Py_VISIT(l->name);
    if ((th = px__stm_walk_pin()) == NULL)
        return 0;
    s = atomic_load(&l->slots);
    for (Py_ssize_t i = 0; s != NULL && i < s->cap && i < atomic_load(&l->nlocs) && rc == 0; i++)
        rc = px__stm_loc_traverse(s->slot[i], visit, arg);
    px_stm_unpin(th);
    return rc;
}

static int tl_clear_refs(PyObject *op)
{
    tlist_t *l = (tlist_t *)op;
    slots_t *s = atomic_load(&l->slots);
    for (Py_ssize_t i = 0; s != NULL && i < atomic_load(&l->nlocs); i++)
        px__stm_loc_clear(s->slot[i]);
    return 0;
}

void px__stm_tl_dealloc(PyObject *op)
{
    tlist_t *l = (tlist_t *)op;
    PyTypeObject *tp = Py_TYPE(op);
    slots_t *s = atomic_load(&l->slots);
    PyObject_GC_UnTrack(op);
    if (l->weakrefs != NULL)
        PyObject_ClearWeakRefs(op);
    if (s != NULL) {
        for (Py_ssize_t i = 0; i < atomic_load(&l->nlocs); i++)
            px__stm_loc_retire(s->slot[i]);
        px__stm_mem_retire(s);
    }
    if (l->size != NULL)
        px__stm_loc_retire(l->size);
    if (l->lock != NULL)
        PyThread_free_lock(l->lock);
    Py_XDECREF(l->name);
    Py_XDECREF(l->label);
    tp->tp_free(op);
    Py_DECREF(tp);
}

static Py_ssize_t tl_len(PyObject *op)
{
    px_stm_thread_t *th = px__stm_tx();
    PyObject *n;
    Py_ssize_t len;
    if (th != NULL)
        return tx_len(th, (tlist_t *)op);
    n = px__stm_peek(((tlist_t *)op)->size);
    if (n == NULL)
        return -1;
    len = PyLong_AsSsize_t(n);
    Py_DECREF(n);
    return len;
}

static PyObject *tl_getitem(PyObject *op, PyObject *index)
{
    px_stm_thread_t *th = px__stm_tx();
    tlist_t *l = (tlist_t *)op;
    Py_ssize_t n, i;
    if (th == NULL) {
        PyObject *args = PyTuple_Pack(1, index), *r;
        if (args == NULL)
            return NULL;
        r = px__stm_run_method(op, "__getitem__", args);
        Py_DECREF(args);
        return r;
    }
    if (PySlice_Check(index)) {
        PyObject *items = tx_items(th, l), *r;
        if (items == NULL)
            return NULL;
        r = PyObject_GetItem(items, index);
        Py_DECREF(items);
        return r;
    }
    n = tx_len(th, l);
    if (n < 0 || (i = index_in(index, n)) < 0)
        return NULL;
    return tx_get(th, l, i);
}

static int tl_assign(PyObject *op, PyObject *index, PyObject *value)
{
    px_stm_thread_t *th = px__stm_tx();
    tlist_t *l = (tlist_t *)op;
    Py_ssize_t n, i;
    PyObject *removed;
    if (th == NULL) {
        PyObject *args = value ? PyTuple_Pack(2, index, value) : PyTuple_Pack(1, index), *r;
        if (args == NULL)
            return -1;
        r = px__stm_run_method(op, value ? "__setitem__" : "__delitem__", args);
        Py_DECREF(args);
        Py_XDECREF(r);
        return r == NULL ? -1 : 0;
    }
    n = tx_len(th, l);
    if (n < 0 || (i = index_in(index, n)) < 0)
        return -1;
    if (value != NULL)
        return tx_set(th, l, i, value);
    removed = tx_remove_at(th, l, i, n);
    Py_XDECREF(removed);
    return removed == NULL ? -1 : 0;
}

static PyObject *tl_append(PyObject *op, PyObject *args)
{
    px_stm_thread_t *th = px__stm_tx();
    PyObject *value;
    OUTSIDE(op, "append", args);
    if (!PyArg_ParseTuple(args, "O:append", &value) || tx_append(th, (tlist_t *)op, value) < 0)
        return NULL;
    Py_RETURN_NONE;
}

static PyObject *tl_extend(PyObject *op, PyObject *args)
{
    px_stm_thread_t *th = px__stm_tx();
    PyObject *values, *seq;
    if (!PyArg_ParseTuple(args, "O:extend", &values))
        return NULL;
    seq = PySequence_List(values); /* once: a retry must not exhaust an iterator */
    if (seq == NULL)
        return NULL;
    if (th == NULL) {
        PyObject *again = PyTuple_Pack(1, seq), *r;
        Py_DECREF(seq);
        if (again == NULL)
            return NULL;
        r = px__stm_run_method(op, "extend", again);
        Py_DECREF(again);
        return r;
    }
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(seq); i++)
        if (tx_append(th, (tlist_t *)op, PyList_GET_ITEM(seq, i)) < 0) {
            Py_DECREF(seq);
            return NULL;
        }
    Py_DECREF(seq);
    Py_RETURN_NONE;
}

static PyObject *tl_insert(PyObject *op, PyObject *args)
{
    px_stm_thread_t *th = px__stm_tx();
    tlist_t *l = (tlist_t *)op;
    Py_ssize_t i, n;
    PyObject *value;
    OUTSIDE(op, "insert", args);
    if (!PyArg_ParseTuple(args, "nO:insert", &i, &value) || (n = tx_len(th, l)) < 0)
        return NULL;
    i = i < 0 ? PX_MAX(0, i + n) : PX_MIN(i, n);
    for (Py_ssize_t j = n; j > i; j--) {
        PyObject *prev = tx_get(th, l, j - 1);
        int rc = prev == NULL ? -1 : tx_set(th, l, j, prev);
        Py_XDECREF(prev);
        if (rc < 0)
            return NULL;
    }
    if (tx_set(th, l, i, value) < 0 || tx_set_len(th, l, n + 1) < 0)
        return NULL;
    Py_RETURN_NONE;
}

static PyObject *tl_pop(PyObject *op, PyObject *args)
{
    px_stm_thread_t *th = px__stm_tx();
    tlist_t *l = (tlist_t *)op;
    PyObject *index = NULL;
    Py_ssize_t n, i;
    OUTSIDE(op, "pop", args);
    if (!PyArg_ParseTuple(args, "|O:pop", &index) || (n = tx_len(th, l)) < 0)
        return NULL;
    if (n == 0) {
        PyErr_SetString(PyExc_IndexError, "pop from empty tlist");
        return NULL;
    }
    if (index == NULL)
        i = n - 1;
    else if ((i = index_in(index, n)) < 0)
        return NULL;
    return tx_remove_at(th, l, i, n);
}

static PyObject *tl_snapshot(PyObject *op, PyObject *unused)
{
    px_stm_thread_t *th = px__stm_tx();
    (void)unused;
    if (th == NULL)
        return no_args(op, "snapshot");
    return tx_items(th, (tlist_t *)op);
}

static PyObject *tl_index(PyObject *op, PyObject *value)
{
    PyObject *items = tl_snapshot(op, NULL), *r;
    if (items == NULL)
        return NULL;
    r = PyObject_CallMethod(items, "index", "O", value);
    Py_DECREF(items);
    return r;
}

static PyObject *tl_remove(PyObject *op, PyObject *args)
{
    px_stm_thread_t *th = px__stm_tx();
    PyObject *value, *at, *removed;
    Py_ssize_t n;
    OUTSIDE(op, "remove", args);
    if (!PyArg_ParseTuple(args, "O:remove", &value) || (at = tl_index(op, value)) == NULL)
        return NULL;
    n = tx_len(th, (tlist_t *)op);
    removed = n < 0 ? NULL : tx_remove_at(th, (tlist_t *)op, PyLong_AsSsize_t(at), n);
    Py_DECREF(at);
    if (removed == NULL)
        return NULL;
    Py_DECREF(removed);
    Py_RETURN_NONE;
}

static PyObject *tl_clear(PyObject *op, PyObject *unused)
{
    px_stm_thread_t *th = px__stm_tx();
    tlist_t *l = (tlist_t *)op;
    Py_ssize_t n;
    (void)unused;
    if (th == NULL)
        return no_args(op, "clear");
    if ((n = tx_len(th, l)) < 0)
        return NULL;
    for (Py_ssize_t j = 0; j < n; j++)
        if (tx_set(th, l, j, NULL) < 0)
            return NULL;
    if (tx_set_len(th, l, 0) < 0)
        return NULL;
    Py_RETURN_NONE;
}

static PyObject *tl_count(PyObject *op, PyObject *value)
{
    PyObject *items = tl_snapshot(op, NULL), *r;
    if (items == NULL)
        return NULL;
    r = PyObject_CallMethod(items, "count", "O", value);
    Py_DECREF(items);
    return r;
}

static int tl_contains(PyObject *op, PyObject *value)
{
    PyObject *items = tl_snapshot(op, NULL);
    int r;
    if (items == NULL)
        return -1;
    r = PySequence_Contains(items, value);
    Py_DECREF(items);
    return r;
}

static PyObject *tl_iter(PyObject *op)
{
    PyObject *items = tl_snapshot(op, NULL), *it;
    if (items == NULL)
        return NULL;
    it = PyObject_GetIter(items);
    Py_DECREF(items);
    return it;
}

static PyObject *tl_repr(PyObject *op)
{
    PyObject *items = tl_snapshot(op, NULL), *r;
    if (items == NULL)
        return NULL;
    r = PyUnicode_FromFormat("tlist(%R)", items);
    Py_DECREF(items);
    return r;
}

static PyMethodDef tl_methods[] = {
    {"append", tl_append, METH_VARARGS, "Add value at the end."},
    {"extend", tl_extend, METH_VARARGS, "Append every value, as one transaction."},
    {"insert", tl_insert, METH_VARARGS, "Insert value before index i (clamped like list.insert)."},
    {"pop", tl_pop, METH_VARARGS, "Remove and return the item at index i (the last by default)."},
    {"remove", tl_remove, METH_VARARGS,
     "Remove the first item equal to value (ValueError if none)."},
    {"clear", tl_clear, METH_NOARGS, "Remove every item, as one transaction."},
    {"snapshot", tl_snapshot, METH_NOARGS, "A plain list of the contents (one snapshot)."},
    {"index", tl_index, METH_O, "Index of the first item equal to value (ValueError if none)."},
    {"count", tl_count, METH_O, "Number of items equal to value."},
    {"__class_getitem__", Py_GenericAlias, METH_O | METH_CLASS, "tlist[T]"},
    {NULL, NULL, 0, NULL},
};

static PyMemberDef tl_members[] = {
    {"name", T_OBJECT, offsetof(tlist_t, name), READONLY,
     "The name in conflict statistics (None: type@address)."},
    {"__weaklistoffset__", T_PYSSIZET, offsetof(tlist_t, weakrefs), READONLY, NULL},
    {NULL, 0, 0, 0, NULL},
};

static PyType_Slot tl_slots[] = {
    {Py_tp_doc, "tlist(items=(), name=None): a transactional list. Conflicts are tracked per "
                "index, and its length is a location of its own.\n\nOutside atomic() every "
                "operation is a transaction of its own."},
    {Py_tp_new, tl_new},
    {Py_tp_dealloc, px__stm_tl_dealloc},
    {Py_tp_traverse, tl_traverse},
    {Py_tp_clear, tl_clear_refs},
    {Py_tp_repr, tl_repr},
    {Py_tp_iter, tl_iter},
    {Py_tp_methods, tl_methods},
    {Py_tp_members, tl_members},
    {Py_mp_subscript, tl_getitem},
    {Py_mp_ass_subscript, tl_assign},
    {Py_mp_length, tl_len},
    {Py_sq_contains, tl_contains},
    {0, NULL},
};

PyType_Spec px__stm_tlist_spec = {
    .name = "pyparallel.tlist",
    .basicsize = sizeof(tlist_t),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE | Py_TPFLAGS_HAVE_GC,
    .slots = tl_slots,
};
