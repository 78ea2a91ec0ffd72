/* tdict: a transactional dict. Each key has a location of its own, and so has
 * the length: transactions over different keys do not conflict.
 *
 * The keys' locations are in an open-addressing table that readers probe
 * without a lock (each slot is written once, from empty to a location) and
 * writers extend under the dict's lock; a table that is outgrown is retired
 * through the STM's epochs, so a reader still probing it stays safe. A
 * location, once made, stays until the tdict goes (deleted keys keep theirs:
 * their versions are what a later re-insertion is validated against); a read
 * of a missing key inside a transaction makes one too, so that the read can be
 * validated like any other. */
#include "stm.h"

#include <structmember.h>

typedef struct table {
    size_t mask;
    _Atomic(px_py_tloc_t *) slot[];
} table_t;

typedef struct tdict {
    PyObject_HEAD _Atomic(table_t *) table;
    _Atomic Py_ssize_t used; /* locations in the table */
    PyThread_type_lock lock; /* adding locations */
    px_py_tloc_t *size;
    PyObject *name, *label, *weakrefs;
} tdict_t;

static PyObject no_default_ = {0}; /* a marker only, never used as an object */
#define NO_DEFAULT (&no_default_)

static table_t *table_new(size_t n)
{
    table_t *t = PyMem_RawCalloc(1, sizeof *t + sizeof t->slot[0] * n);
    if (t == NULL) {
        PyErr_NoMemory();
        return NULL;
    }
    t->mask = n - 1;
    return t;
}

/* A small int key's value, kept in its location so that a lookup compares
 * without touching the key object (another cache line). */
static bool small_int(PyObject *key, long long *value)
{
#if PY_VERSION_HEX >= 0x030C0000
    if (PyLong_CheckExact(key) && PyUnstable_Long_IsCompact((PyLongObject *)key)) {
        *value = (long long)PyUnstable_Long_CompactValue((PyLongObject *)key);
        return true;
    }
#else
    (void)key;
    (void)value;
#endif
    return false;
}

/* 1 and *out when key has a location, 0 when not, -1 with an exception. The
 * caller is pinned (in a transaction or around a peek). */
static int find(tdict_t *d, PyObject *key, Py_hash_t hash, px_py_tloc_t **out)
{
    table_t *t = atomic_load_explicit(&d->table, memory_order_acquire);
    long long ival = 0;
    bool is_int = small_int(key, &ival);
    for (size_t i = (size_t)hash & t->mask;; i = (i + 1) & t->mask) {
        px_py_tloc_t *s = atomic_load_explicit(&t->slot[i], memory_order_acquire);
        if (s == NULL)
            return 0;
        if (s->key == key || (is_int && s->int_key && s->ival == ival)) {
            *out = s;
            return 1;
        }
        if (s->hash == hash && !(is_int && s->int_key)) {
            int eq = PyObject_RichCompareBool(s->key, key, Py_EQ);
            if (eq < 0)
                return -1;
            if (eq) {
                *out = s;
                return 1;
            }
        }
    }
}

static void place(table_t *t, px_py_tloc_t *loc)
{
    size_t i = (size_t)loc->hash & t->mask;
    while (atomic_load_explicit(&t->slot[i], memory_order_relaxed) != NULL)
        i = (i + 1) & t->mask;
    atomic_store_explicit(&t->slot[i], loc, memory_order_release);
}

static void lock(tdict_t *d)
{
    if (!PyThread_acquire_lock(d->lock, NOWAIT_LOCK)) {
        Py_BEGIN_ALLOW_THREADS PyThread_acquire_lock(d->lock, WAIT_LOCK);
        Py_END_ALLOW_THREADS
    }
}

/* The location of key, made (absent, version 0) if it has none. */
static px_py_tloc_t *loc_of(tdict_t *d, PyObject *key, Py_hash_t hash, PyObject *value)
{
    px_py_tloc_t *loc = NULL;
    table_t *t;
    /* find() runs the keys' __eq__, which may use this tdict: never under the
     * lock. Locations are only added under it, and used only grows: if it
     * has not moved since before the probe, the key is still absent. (An
     * __eq__ that adds a new key to this tdict on every call would probe
     * forever.) */
    for (;;) {
        Py_ssize_t seen = atomic_load(&d->used);
        int found = find(d, key, hash, &loc);
        if (found != 0)
            return found > 0 ? loc : NULL;
        lock(d);
        if (atomic_load(&d->used) == seen)
            break;
        PyThread_release_lock(d->lock);
    }
    loc = px__stm_loc_new(d->label, key, hash, value);
    if (loc == NULL)
        goto out;
    loc->int_key = small_int(key, &loc->ival);
    t = atomic_load_explicit(&d->table, memory_order_relaxed);
    if ((size_t)(atomic_load(&d->used) + 1) * 3 > (t->mask + 1) * 2) {
        table_t *bigger = table_new((t->mask + 1) * 2);
        if (bigger == NULL) {
            px__stm_loc_retire(loc);
            loc = NULL;
            goto out;
        }
        for (size_t i = 0; i <= t->mask; i++) {
            px_py_tloc_t *s = atomic_load_explicit(&t->slot[i], memory_order_relaxed);
            if (s != NULL)
                place(bigger, s);
        }
        atomic_store_explicit(&d->table, bigger, memory_order_release);
        px__stm_mem_retire(t); /* readers may still be probing it */
        t = bigger;
    }
    place(t, loc);
    atomic_fetch_add(&d->used, 1);
out:
    PyThread_release_lock(d->lock);
    return loc;
}

/* ---- in a transaction -------------------------------------------------------------- */

/* The value of key (a new reference; NULL with *absent for a missing key). */
static int tx_get(px_stm_thread_t *th, tdict_t *d, PyObject *key, PyObject **value)
{
    Py_hash_t hash = PyObject_Hash(key);
    px_py_tloc_t *loc;
    if (hash == -1)
        return -1;
    loc = loc_of(d, key, hash, NULL);
    if (loc == NULL)
        return -1;
    return px__stm_get(th, loc, value);
}

/* Set (value NULL: delete) key; *old (if not NULL) gets the value before. The
 * length changes with the set of keys. */
static int tx_put(px_stm_thread_t *th, tdict_t *d, PyObject *key, PyObject *value, PyObject **old)
{
    Py_hash_t hash = PyObject_Hash(key);
    px_py_tloc_t *loc;
    PyObject *before, *n = NULL, *next;
    int rc = -1;
    if (hash == -1)
        return -1;
    loc = loc_of(d, key, hash, NULL);
    if (loc == NULL || px__stm_get(th, loc, &before) < 0)
        return -1;
    if ((before == NULL) != (value == NULL)) {
        if (px__stm_get(th, d->size, &n) < 0)
            goto out;
        next = PyLong_FromSsize_t(PyLong_AsSsize_t(n) + (value != NULL ? 1 : -1));
        if (next == NULL)
            goto out;
        rc = px__stm_set(th, d->size, next);
        Py_DECREF(next);
        if (rc < 0)
            goto out;
    }
    rc = px__stm_set(th, loc, value);
out:
    Py_XDECREF(n);
    if (rc == 0 && old != NULL)
        *old = before;
    else
        Py_XDECREF(before);
    return rc;
}

/* The (key, value) pairs in this transaction's view, as a list. */
static PyObject *tx_items(px_stm_thread_t *th, tdict_t *d)
{
    PyObject *n;
    if (px__stm_get(th, d->size, &n) < 0)
        return NULL;
    Py_DECREF(n);
    for (;;) {
        /* A location made while we walk was absent in the snapshot unless its
         * commit came first, and then it was in the table before we started
         * (locations are made before commits): walk again if any appeared. */
        Py_ssize_t used = atomic_load(&d->used);
        table_t *t = atomic_load_explicit(&d->table, memory_order_acquire);
        PyObject *out = PyList_New(0);
        if (out == NULL)
            return NULL;
        for (size_t i = 0; i <= t->mask; i++) {
            px_py_tloc_t *s = atomic_load_explicit(&t->slot[i], memory_order_acquire);
            PyObject *v, *kv;
            if (s == NULL)
                continue;
            if (px__stm_get(th, s, &v) < 0) {
                Py_DECREF(out);
                return NULL;
            }
            if (v == NULL)
                continue;
            kv = PyTuple_Pack(2, s->key, v);
            Py_DECREF(v);
            if (kv == NULL || PyList_Append(out, kv) < 0) {
                Py_XDECREF(kv);
                Py_DECREF(out);
                return NULL;
            }
            Py_DECREF(kv);
        }
        if (atomic_load(&d->used) == used)
            return out;
        Py_DECREF(out);
    }
}

/* ---- the type -------------------------------------------------------------------- */

static PyObject *td_new(PyTypeObject *type, PyObject *args, PyObject *kwargs)
{
    static char *names[] = {"items", "name", NULL};
    PyObject *items = NULL, *name = Py_None, *it = NULL, *pair, *count;
    px_stm_thread_t *th = px__stm_thread();
    tdict_t *d;
    Py_ssize_t n = 0;
    if (th == NULL || !PyArg_ParseTupleAndKeywords(args, kwargs, "|OO:tdict", names, &items, &name))
        return NULL;
    d = (tdict_t *)type->tp_alloc(type, 0);
    if (d == NULL)
        return NULL;
    d->name = Py_NewRef(name);
    d->lock = PyThread_allocate_lock();
    d->label = px__stm_label((PyObject *)d, name);
    atomic_init(&d->table, table_new(8));
    if (d->lock == NULL || d->label == NULL || atomic_load(&d->table) == NULL)
        goto fail;
    if (items != NULL) {
        PyObject *keys = PyObject_GetAttrString(items, "keys");
        if (keys != NULL) {
            Py_DECREF(keys);
            items = PyMapping_Items(items);
        } else {
            PyErr_Clear();
            Py_INCREF(items);
        }
        if (items == NULL)
            goto fail;
        it = PyObject_GetIter(items);
        Py_DECREF(items);
        if (it == NULL)
            goto fail;
    }
    px_stm_pin(th); /* for find(); nobody else can see d yet */
    while (it != NULL && (pair = PyIter_Next(it)) != NULL) {
        PyObject *k, *v, *old;
        Py_hash_t hash;
        px_py_tloc_t *loc;
        if (!PyArg_ParseTuple(pair, "OO;tdict items must be (key, value) pairs", &k, &v) ||
            (hash = PyObject_Hash(k)) == -1 || (loc = loc_of(d, k, hash, NULL)) == NULL) {
            Py_DECREF(pair);
            break;
        }
        px_py_share_hand_over(v); /* as px__stm_loc_new does */
        old = atomic_exchange(&loc->loc.value, Py_NewRef(v));
        n += old == NULL;
        Py_XDECREF(old);
        Py_DECREF(pair);
    }
    px_stm_unpin(th);
    Py_XDECREF(it);
    if (PyErr_Occurred())
        goto fail;
    count = PyLong_FromSsize_t(n);
    if (count == NULL)
        goto fail;
    d->size = px__stm_loc_new(d->label, NULL, 0, count);
    Py_DECREF(count);
    if (d->size == NULL)
        goto fail;
    return (PyObject *)d;
fail:
    Py_DECREF(d);
    return NULL;
}

static int td_traverse(PyObject *op, visitproc visit, void *arg)
{
    tdict_t *d = (tdict_t *)op;
    px_stm_thread_t *th;
    table_t *t;
    int rc = 0;
    Py_VISIT(Py_TYPE(op));
    Py_VISIT(d->name);
    if ((th = px__stm_walk_pin()) == NULL)
        return 0;
    t = atomic_load(&d->table);
    for (size_t i = 0; t != NULL && i <= t->mask && rc == 0; i++) {
        px_py_tloc_t *s = atomic_load_explicit(&t->slot[i], memory_order_relaxed);
        rc = s != NULL ? px__stm_loc_traverse(s, visit, arg) : 0;
    }
    px_stm_unpin(th);
    return rc;
}

static int td_clear_refs(PyObject *op)
{
    tdict_t *d = (tdict_t *)op;
    table_t *t = atomic_load(&d->table);
    for (size_t i = 0; t != NULL && i <= t->mask; i++) {
        px_py_tloc_t *s = atomic_load_explicit(&t->slot[i], memory_order_relaxed);
        if (s != NULL)
            px__stm_loc_clear(s);
    }
    return 0;
}

void px__stm_td_dealloc(PyObject *op)
{
    tdict_t *d = (tdict_t *)op;
    PyTypeObject *tp = Py_TYPE(op);
    table_t *t = atomic_load(&d->table);
    PyObject_GC_UnTrack(op);
    if (d->weakrefs != NULL)
        PyObject_ClearWeakRefs(op);
    if (t != NULL) {
        /* Transactions of other threads may still validate these. */
        for (size_t i = 0; i <= t->mask; i++)
            if (atomic_load(&t->slot[i]) != NULL)
                px__stm_loc_retire(atomic_load(&t->slot[i]));
        px__stm_mem_retire(t);
    }
    if (d->size != NULL)
        px__stm_loc_retire(d->size);
    if (d->lock != NULL)
        PyThread_free_lock(d->lock);
    Py_XDECREF(d->name);
    Py_XDECREF(d->label);
    tp->tp_free(op);
    Py_DECREF(tp);
}

/* Outside transactions: the committed value of key (new reference or NULL). */
static int peek(tdict_t *d, PyObject *key, PyObject **value)
{
    px_stm_thread_t *th = px__stm_thread();
    Py_hash_t hash = PyObject_Hash(key);
    px_py_tloc_t *loc = NULL;
    int found;
    if (th == NULL || hash == -1)
        return -1;
    px_stm_pin(th);
    found = find(d, key, hash, &loc);
    *value = found > 0 ? px__stm_peek(loc) : NULL;
    px_stm_unpin(th);
    return found < 0 ? -1 : 0;
}

static int lookup(tdict_t *d, PyObject *key, PyObject **value)
{
    px_stm_thread_t *th = px__stm_tx();
    return th != NULL ? tx_get(th, d, key, value) : peek(d, key, value);
}

static PyObject *td_getitem(PyObject *op, PyObject *key)
{
    PyObject *v;
    if (lookup((tdict_t *)op, key, &v) < 0)
        return NULL;
    if (v == NULL)
        PyErr_SetObject(PyExc_KeyError, key);
    return v;
}

static int td_assign(PyObject *op, PyObject *key, PyObject *value)
{
    px_stm_thread_t *th = px__stm_tx();
    PyObject *old, *r;
    if (th == NULL) {
        PyObject *args = value ? PyTuple_Pack(2, key, value) : PyTuple_Pack(1, key);
        if (args == NULL)
            return -1;
        r = px__stm_run_method(op, value ? "__setitem__" : "__delitem__", args);
        Py_DECREF(args);
        Py_XDECREF(r);
        return r == NULL ? -1 : 0;
    }
    if (value == NULL) { /* del d[key]: KeyError, and no write, when it is missing */
        if (tx_get(th, (tdict_t *)op, key, &old) < 0)
            return -1;
        if (old == NULL) {
            PyErr_SetObject(PyExc_KeyError, key);
            return -1;
        }
        Py_DECREF(old);
    }
    return tx_put(th, (tdict_t *)op, key, value, NULL);
}

static PyObject *td_get(PyObject *op, PyObject *args)
{
    PyObject *key, *dflt = Py_None, *v;
    if (!PyArg_ParseTuple(args, "O|O:get", &key, &dflt) || lookup((tdict_t *)op, key, &v) < 0)
        return NULL;
    return v != NULL ? v : Py_NewRef(dflt);
}

static int td_contains(PyObject *op, PyObject *key)
{
    PyObject *v;
    if (lookup((tdict_t *)op, key, &v) < 0)
        return -1;
    Py_XDECREF(v);
    return v != NULL;
}

static PyObject *td_pop(PyObject *op, PyObject *args)
{
    px_stm_thread_t *th = px__stm_tx();
    PyObject *key, *dflt = NO_DEFAULT, *v;
    if (th == NULL)
        return px__stm_run_method(op, "pop", args);
    if (!PyArg_ParseTuple(args, "O|O:pop", &key, &dflt) || tx_get(th, (tdict_t *)op, key, &v) < 0)
        return NULL;
    if (v == NULL) {
        if (dflt == NO_DEFAULT)
            PyErr_SetObject(PyExc_KeyError, key);
        return dflt == NO_DEFAULT ? NULL : Py_NewRef(dflt);
    }
    Py_DECREF(v);
    if (tx_put(th, (tdict_t *)op, key, NULL, &v) < 0)
        return NULL;
    return v;
}

static PyObject *td_setdefault(PyObject *op, PyObject *args)
{
    px_stm_thread_t *th = px__stm_tx();
    PyObject *key, *dflt = Py_None, *v;
    if (th == NULL)
        return px__stm_run_method(op, "setdefault", args);
    if (!PyArg_ParseTuple(args, "O|O:setdefault", &key, &dflt) ||
        tx_get(th, (tdict_t *)op, key, &v) < 0)
        return NULL;
    if (v != NULL)
        return v;
    if (tx_put(th, (tdict_t *)op, key, dflt, NULL) < 0)
        return NULL;
    return Py_NewRef(dflt);
}

static int put_pairs(px_stm_thread_t *th, tdict_t *d, PyObject *pairs)
{
    PyObject *it = PyObject_GetIter(pairs), *pair;
    if (it == NULL)
        return -1;
    while ((pair = PyIter_Next(it)) != NULL) {
        PyObject *k, *v;
        int rc = PyArg_ParseTuple(pair, "OO;update() needs (key, value) pairs", &k, &v)
                     ? tx_put(th, d, k, v, NULL)
                     : -1;
        Py_DECREF(pair);
        if (rc < 0)
            break;
    }
    Py_DECREF(it);
    return PyErr_Occurred() ? -1 : 0;
}

static PyObject *td_update(PyObject *op, PyObject *args, PyObject *kwargs)
{
    px_stm_thread_t *th = px__stm_tx();
    PyObject *other = NULL, *items = NULL;
    int rc = 0;
    if (th == NULL) { /* atomic(self.update, *args, **kwargs) */
        PyObject *method = PyObject_GetAttrString(op, "update"), *r;
        if (method == NULL)
            return NULL;
        r = px__stm_run(method, args, kwargs);
        Py_DECREF(method);
        return r;
    }
    if (!PyArg_ParseTuple(args, "|O:update", &other))
        return NULL;
    if (other != NULL) {
        PyObject *keys = PyObject_GetAttrString(other, "keys");
        if (keys != NULL) {
            Py_DECREF(keys);
            items = PyMapping_Items(other);
        } else {
            PyErr_Clear();
            items = Py_NewRef(other);
        }
        rc = items == NULL ? -1 : put_pairs(th, (tdict_t *)op, items);
        Py_XDECREF(items);
    }
    if (rc == 0 && kwargs != NULL && PyDict_GET_SIZE(kwargs) > 0) {
        items = PyDict_Items(kwargs);
        rc = items == NULL ? -1 : put_pairs(th, (tdict_t *)op, items);
        Py_XDECREF(items);
    }
    if (rc < 0)
        return NULL;
    Py_RETURN_NONE;
}

static PyObject *td_items(PyObject *op, PyObject *unused)
{
    px_stm_thread_t *th = px__stm_tx();
    PyObject *args, *r;
    (void)unused;
    if (th != NULL)
        return tx_items(th, (tdict_t *)op);
    args = PyTuple_New(0);
    if (args == NULL)
        return NULL;
    r = px__stm_run_method(op, "items", args);
    Py_DECREF(args);
    return r;
}

static PyObject *td_clear(PyObject *op, PyObject *unused)
{
    px_stm_thread_t *th = px__stm_tx();
    PyObject *items;
    (void)unused;
    if (th == NULL) {
        PyObject *args = PyTuple_New(0), *r;
        if (args == NULL)
            return NULL;
        r = px__stm_run_method(op, "clear", args);
        Py_DECREF(args);
        return r;
    }
    items = tx_items(th, (tdict_t *)op);
    if (items == NULL)
        return NULL;
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(items); i++)
        if (tx_put(th, (tdict_t *)op, PyTuple_GET_ITEM(PyList_GET_ITEM(items, i), 0), NULL, NULL) <
            0) {
            Py_DECREF(items);
            return NULL;
        }
    Py_DECREF(items);
    Py_RETURN_NONE;
}

/* One column of items(): 0 keys, 1 values. */
static PyObject *column(PyObject *op, Py_ssize_t which)
{
    PyObject *items = td_items(op, NULL), *out;
    if (items == NULL)
        return NULL;
    out = PyList_New(PyList_GET_SIZE(items));
    for (Py_ssize_t i = 0; out != NULL && i < PyList_GET_SIZE(items); i++)
        PyList_SET_ITEM(out, i, Py_NewRef(PyTuple_GET_ITEM(PyList_GET_ITEM(items, i), which)));
    Py_DECREF(items);
    return out;
}

static PyObject *td_keys(PyObject *op, PyObject *unused)
{
    (void)unused;
    return column(op, 0);
}

static PyObject *td_values(PyObject *op, PyObject *unused)
{
    (void)unused;
    return column(op, 1);
}

static PyObject *td_iter(PyObject *op)
{
    PyObject *keys = column(op, 0), *it;
    if (keys == NULL)
        return NULL;
    it = PyObject_GetIter(keys);
    Py_DECREF(keys);
    return it;
}

static Py_ssize_t td_len(PyObject *op)
{
    px_stm_thread_t *th = px__stm_tx();
    PyObject *n;
    Py_ssize_t len;
    if (th == NULL)
        n = px__stm_peek(((tdict_t *)op)->size);
    else if (px__stm_get(th, ((tdict_t *)op)->size, &n) < 0)
        return -1;
    if (n == NULL)
        return -1;
    len = PyLong_AsSsize_t(n);
    Py_DECREF(n);
    return len;
}

static PyObject *td_snapshot(PyObject *op, PyObject *unused)
{
    PyObject *items = td_items(op, unused), *d;
    if (items == NULL)
        return NULL;
    d = PyDict_New();
    for (Py_ssize_t i = 0; d != NULL && i < PyList_GET_SIZE(items); i++) {
        PyObject *kv = PyList_GET_ITEM(items, i);
        if (PyDict_SetItem(d, PyTuple_GET_ITEM(kv, 0), PyTuple_GET_ITEM(kv, 1)) < 0)
            Py_CLEAR(d);
    }
    Py_DECREF(items);
    return d;
}

static PyObject *td_repr(PyObject *op)
{
    PyObject *d = td_snapshot(op, NULL), *r;
    if (d == NULL)
        return NULL;
    r = PyUnicode_FromFormat("tdict(%R)", d);
    Py_DECREF(d);
    return r;
}

static PyMethodDef td_methods[] = {
    {"get", td_get, METH_VARARGS, "d[key] if key is present, else default."},
    {"pop", td_pop, METH_VARARGS,
     "Remove key and return its value (or default; KeyError without one)."},
    {"setdefault", td_setdefault, METH_VARARGS, "d[key], storing default first if key is missing."},
    {"update", (PyCFunction)(void (*)(void))td_update, METH_VARARGS | METH_KEYWORDS,
     "Like dict.update, as one transaction."},
    {"clear", td_clear, METH_NOARGS, "Remove every key, as one transaction."},
    {"items", td_items, METH_NOARGS, "The (key, value) pairs, as a list (one snapshot)."},
    {"keys", td_keys, METH_NOARGS, "The keys, as a list (one snapshot)."},
    {"values", td_values, METH_NOARGS, "The values, as a list (one snapshot)."},
    {"snapshot", td_snapshot, METH_NOARGS, "A plain dict of the contents (one snapshot)."},
    {"__class_getitem__", Py_GenericAlias, METH_O | METH_CLASS, "tdict[K, V]"},
    {NULL, NULL, 0, NULL},
};

static PyMemberDef td_members[] = {
    {"name", T_OBJECT, offsetof(tdict_t, name), READONLY,
     "The name in conflict statistics (None: type@address)."},
    {"__weaklistoffset__", T_PYSSIZET, offsetof(tdict_t, weakrefs), READONLY, NULL},
    {NULL, 0, 0, 0, NULL},
};

static PyType_Slot td_slots[] = {
    {Py_tp_doc, "tdict(items=(), name=None): a transactional dict. Conflicts are tracked per "
                "key, and its length is a location of its own (inserting or removing a key "
                "reads and writes it).\n\nOutside atomic() every operation is a transaction "
                "of its own."},
    {Py_tp_new, td_new},
    {Py_tp_dealloc, px__stm_td_dealloc},
    {Py_tp_traverse, td_traverse},
    {Py_tp_clear, td_clear_refs},
    {Py_tp_repr, td_repr},
    {Py_tp_iter, td_iter},
    {Py_tp_methods, td_methods},
    {Py_tp_members, td_members},
    {Py_mp_subscript, td_getitem},
    {Py_mp_ass_subscript, td_assign},
    {Py_mp_length, td_len},
    {Py_sq_contains, td_contains},
    {0, NULL},
};

PyType_Spec px__stm_tdict_spec = {
    .name = "pyparallel.tdict",
    .basicsize = sizeof(tdict_t),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE | Py_TPFLAGS_HAVE_GC,
    .slots = td_slots,
};
