/* px.share(): make an object graph immortal so that the workers' reference
 * counting on it stops touching shared cache lines (DESIGN 2.5).
 *
 * On free-threaded CPython every Py_INCREF/Py_DECREF by a thread that does not
 * own an object is an atomic add on the object's shared count; the handler
 * functions, their constants, the app and the data loaded at start-up are read
 * by every worker on every request, and those atomics serialise them. An
 * immortal object's reference-count operations are no-ops, so the graph is
 * walked once and every object in it is made immortal.
 *
 * CPython 3.13 exports no function for this: the fields are written as the
 * public object layout defines an immortal object (local count UINT32_MAX,
 * shared count 0, no owning thread), and only on the versions that have a
 * test for that layout. Elsewhere (GIL builds, untested versions) nothing is
 * written: the same graph is walked and counted, and a reference to every
 * object is kept, so that shared objects live as long as the process on every
 * interpreter.
 *
 * The rule for callers: share data and code before serving, or data that no
 * other thread reads or writes while share() runs. Writing the count fields of
 * an object while another thread changes them loses one of the two writes.
 */
#include "binding.h"
#include "ptrset.h"
#include "stm.h"

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#if defined(Py_GIL_DISABLED) && PY_VERSION_HEX >= 0x030D0000 && PY_VERSION_HEX < 0x030E0000
/* The interpreter versions whose object layout tests/py/test_share.py checks. */
#define PX_SHARE_WRITES_FIELDS 1
#include <stddef.h>
_Static_assert(offsetof(PyObject, ob_tid) == 0, "3.13t object layout");
_Static_assert(offsetof(PyObject, ob_gc_bits) == 11, "3.13t object layout");
_Static_assert(offsetof(PyObject, ob_ref_local) == 12, "3.13t object layout");
_Static_assert(offsetof(PyObject, ob_ref_shared) == 16, "3.13t object layout");
/* ob_gc_bits flag of objects with deferred reference counting (module-level
 * functions, code objects, classes, modules): their shared count carries the
 * "queued" flag as a marker, not because they wait in a merge queue. The value
 * is internal to CPython; the test suite checks it on every tested version. */
#define PX_GC_BITS_DEFERRED 64
#else
#define PX_SHARE_WRITES_FIELDS 0
#endif

/* ---- the module's record (px_module_state_t.share) ---- */

struct px_py_share {
    PyThread_type_lock lock;          /* one share() at a time */
    _Atomic unsigned long lock_owner; /* thread ident of the holder, or 0 */
    destructor python_class_dealloc;  /* tp_dealloc of classes made by a class statement */
    bool writes_fields;               /* this interpreter passed the layout check */
    const char *no_write_reason;
    long long total_objects, total_bytes; /* newly shared, since the module was loaded */
    px_py_ptrset_t kept;                  /* objects kept alive where nothing is written */
};

/* 0, or -1 with RuntimeError when this thread already holds the lock: the
 * walk calls __sizeof__, which may be Python code that calls share() again. */
static int lock_share(struct px_py_share *sh)
{
    unsigned long me = PyThread_get_thread_ident();
    if (atomic_load(&sh->lock_owner) == me) {
        PyErr_SetString(PyExc_RuntimeError, "share() was called while this thread shares");
        return -1;
    }
    if (!PyThread_acquire_lock(sh->lock, NOWAIT_LOCK)) {
        Py_BEGIN_ALLOW_THREADS PyThread_acquire_lock(sh->lock, WAIT_LOCK);
        Py_END_ALLOW_THREADS
    }
    atomic_store(&sh->lock_owner, me);
    return 0;
}

static void unlock_share(struct px_py_share *sh)
{
    atomic_store(&sh->lock_owner, 0);
    PyThread_release_lock(sh->lock);
}

/* ---- one walk ---- */

typedef struct walk {
    struct px_py_share *sh;
    PyObject **stack; /* strong references, still to visit */
    size_t len, cap;
    px_py_ptrset_t seen;
    PyObject *getsizeof; /* sys.getsizeof */
    PyObject *ndarray;   /* numpy.ndarray when numpy is imported, else NULL */
    long long objects, bytes, new_objects, new_bytes, skipped;
    bool nomem;
} walk_t;

/* Push a new reference (stolen; NULL is ignored). */
static void push_new(walk_t *w, PyObject *o)
{
    if (o == NULL)
        return;
    if (w->len == w->cap) {
        size_t cap = w->cap ? w->cap * 2 : 256;
        PyObject **stack = realloc(w->stack, cap * sizeof *stack);
        if (stack == NULL) {
            w->nomem = true;
            Py_DECREF(o);
            return;
        }
        w->stack = stack;
        w->cap = cap;
    }
    w->stack[w->len++] = o;
}

static void push(walk_t *w, PyObject *o) // borrowed
{
    if (o != NULL)
        push_new(w, Py_NewRef(o));
}

/* Made by a class statement (or by a C extension's type spec without a
 * deallocator of its own: then it owns no C resources, and being kept forever
 * is safe for it too). */
static bool is_python_class(walk_t *w, PyTypeObject *t)
{
    return t->tp_dealloc == w->sh->python_class_dealloc;
}

/* The first class in t's base chain that was not made by a class statement:
 * the one that decides the instances' memory layout. */
static PyTypeObject *native_base(walk_t *w, PyTypeObject *t)
{
    while (t != NULL && is_python_class(w, t))
        t = t->tp_base;
    return t;
}

typedef enum kind {
    K_IGNORED, /* a class defined in C: left alone and not counted */
    K_REFUSED, /* left alone, counted as skipped */
    K_LEAF,
    K_DICT,
    K_LIST,
    K_TUPLE,
    K_SET,
    K_FUNCTION,
    K_CODE,
    K_CELL,
    K_METHOD,
    K_WRAPPER, /* classmethod, staticmethod: their __func__ */
    K_PROPERTY,
    K_CLASS,
    K_INSTANCE, /* of a class made by a class statement */
    K_NDARRAY,
} kind_t;

static bool is_container(PyObject *o)
{
    return PyDict_Check(o) || PyList_Check(o) || PyTuple_Check(o) || PyAnySet_Check(o);
}

static bool layout_is_known(walk_t *w, PyTypeObject *base)
{
    return base == &PyBaseObject_Type || PyType_IsSubtype(base, &PyDict_Type) ||
           PyType_IsSubtype(base, &PyList_Type) || PyType_IsSubtype(base, &PyTuple_Type) ||
           PyType_IsSubtype(base, &PySet_Type) || PyType_IsSubtype(base, &PyFrozenSet_Type) ||
           base == &PyLong_Type || base == &PyFloat_Type || base == &PyComplex_Type ||
           base == &PyUnicode_Type || base == &PyBytes_Type ||
           (w->ndarray != NULL && PyType_IsSubtype(base, (PyTypeObject *)w->ndarray));
}

/* What share() does with o. Modules, frames, generators, locks, files,
 * sockets and every other type not named here are refused: they are left as
 * they are and not looked into. Classes defined in C are ignored rather than
 * refused: code reads builtin classes everywhere, and most are immortal
 * already. */
static kind_t classify(walk_t *w, PyObject *o)
{
    PyTypeObject *t = Py_TYPE(o);

    if (PyModule_Check(o))
        return K_REFUSED; /* modules are never shared, only what code reads from them */
    if (PyType_Check(o))
        return is_python_class(w, (PyTypeObject *)o) ? K_CLASS : K_IGNORED;
    if (is_python_class(w, t)) {
        /* An instance that expects __del__ to run is not made immortal. */
        if (t->tp_finalize != NULL || !layout_is_known(w, native_base(w, t)))
            return K_REFUSED;
        return K_INSTANCE;
    }
    if (o == Py_None || o == Py_Ellipsis || o == Py_NotImplemented || PyBool_Check(o) ||
        PyLong_Check(o) || PyFloat_Check(o) || PyComplex_Check(o) || PyUnicode_Check(o) ||
        PyBytes_Check(o) || PyCFunction_Check(o) || Py_IS_TYPE(o, &PyMethodDescr_Type) ||
        Py_IS_TYPE(o, &PyClassMethodDescr_Type) || Py_IS_TYPE(o, &PyGetSetDescr_Type) ||
        Py_IS_TYPE(o, &PyMemberDescr_Type) || Py_IS_TYPE(o, &PyWrapperDescr_Type) ||
        px_py_stm_is_container(o)) /* its contents are the STM's, not walked */
        return K_LEAF;
    if (PyDict_Check(o))
        return K_DICT;
    if (PyList_Check(o))
        return K_LIST;
    if (PyTuple_Check(o))
        return K_TUPLE;
    if (PyAnySet_Check(o))
        return K_SET;
    if (PyFunction_Check(o))
        return K_FUNCTION;
    if (PyCode_Check(o))
        return K_CODE;
    if (PyCell_Check(o))
        return K_CELL;
    if (PyMethod_Check(o))
        return K_METHOD;
    if (Py_IS_TYPE(o, &PyClassMethod_Type) || Py_IS_TYPE(o, &PyStaticMethod_Type))
        return K_WRAPPER;
    if (Py_IS_TYPE(o, &PyProperty_Type))
        return K_PROPERTY;
    if (w->ndarray != NULL && PyObject_TypeCheck(o, (PyTypeObject *)w->ndarray))
        return K_NDARRAY;
    return K_REFUSED;
}

static void push_attr(walk_t *w, PyObject *o, const char *name)
{
    PyObject *v = PyObject_GetAttrString(o, name);
    if (v == NULL)
        PyErr_Clear(); /* not there: nothing to share */
    else if (v == Py_None)
        Py_CLEAR(v); /* an empty attribute (no fset, no base) is not part of the graph */
    push_new(w, v);
}

static void walk_dict(walk_t *w, PyObject *d)
{
    Py_BEGIN_CRITICAL_SECTION(d);
    Py_ssize_t pos = 0;
    PyObject *k, *v;
    while (!w->nomem && PyDict_Next(d, &pos, &k, &v)) {
        push(w, k);
        push(w, v);
    }
    Py_END_CRITICAL_SECTION();
}

static void walk_list(walk_t *w, PyObject *l)
{
    Py_BEGIN_CRITICAL_SECTION(l);
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(l) && !w->nomem; i++)
        push(w, PyList_GET_ITEM(l, i));
    Py_END_CRITICAL_SECTION();
}

static void walk_iterable(walk_t *w, PyObject *o)
{
    PyObject *it = PyObject_GetIter(o), *item;
    if (it == NULL) {
        PyErr_Clear();
        return;
    }
    while (!w->nomem && (item = PyIter_Next(it)) != NULL)
        push_new(w, item);
    PyErr_Clear();
    Py_DECREF(it);
}

static void walk_container(walk_t *w, PyObject *o)
{
    if (PyDict_Check(o))
        walk_dict(w, o);
    else if (PyList_Check(o))
        walk_list(w, o);
    else if (PyTuple_Check(o))
        for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(o); i++)
            push(w, PyTuple_GET_ITEM(o, i));
    else if (PyAnySet_Check(o))
        walk_iterable(w, o);
}

static PyObject *dict_get_ref(PyObject *d, PyObject *key) /* new reference or NULL */
{
#if PY_VERSION_HEX >= 0x030D0000
    PyObject *v = NULL;
    if (PyDict_GetItemRef(d, key, &v) < 0)
        PyErr_Clear();
    return v;
#else
    PyObject *v = PyDict_GetItemWithError(d, key);
    if (v == NULL)
        PyErr_Clear();
    return Py_XNewRef(v);
#endif
}

/* The globals a function's code (and the code nested in its constants) reads:
 * each name found in its globals, else in its builtins. Only those values are
 * shared, not the namespaces. */
static void walk_names_read(walk_t *w, PyFunctionObject *f)
{
    PyObject *globals = f->func_globals, *builtins = f->func_builtins;
    PyObject *codes[64];
    size_t n = 0;

    codes[n++] = f->func_code;
    while (n > 0 && !w->nomem) {
        PyCodeObject *co = (PyCodeObject *)codes[--n];
        for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(co->co_names); i++) {
            PyObject *name = PyTuple_GET_ITEM(co->co_names, i), *v = NULL;
            if (globals != NULL && PyDict_Check(globals))
                v = dict_get_ref(globals, name);
            if (v == NULL && builtins != NULL && PyDict_Check(builtins))
                v = dict_get_ref(builtins, name);
            push_new(w, v);
        }
        for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(co->co_consts); i++) {
            PyObject *c = PyTuple_GET_ITEM(co->co_consts, i);
            if (PyCode_Check(c) && n < sizeof codes / sizeof codes[0])
                codes[n++] = c;
        }
    }
}

/* The values of an instance's __slots__, read through their descriptors. */
static void walk_slots(walk_t *w, PyObject *o)
{
    PyObject *mro = Py_TYPE(o)->tp_mro;
    if (mro == NULL)
        return;
    for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(mro); i++) {
        PyTypeObject *k = (PyTypeObject *)PyTuple_GET_ITEM(mro, i);
        if (!is_python_class(w, k) || k->tp_dict == NULL)
            continue;
        Py_ssize_t pos = 0;
        PyObject *name, *descr;
        Py_BEGIN_CRITICAL_SECTION(k->tp_dict);
        while (!w->nomem && PyDict_Next(k->tp_dict, &pos, &name, &descr)) {
            if (!Py_IS_TYPE(descr, &PyMemberDescr_Type))
                continue;
            /* A member descriptor reads the slot and nothing else. */
            PyObject *v = Py_TYPE(descr)->tp_descr_get(descr, o, (PyObject *)Py_TYPE(o));
            if (v == NULL)
                PyErr_Clear(); /* an unset slot */
            push_new(w, v);
        }
        Py_END_CRITICAL_SECTION();
    }
}

static void walk_children(walk_t *w, PyObject *o, kind_t kind)
{
    switch (kind) {
    case K_IGNORED:
    case K_REFUSED:
    case K_LEAF: break;
    case K_DICT:
    case K_LIST:
    case K_TUPLE:
    case K_SET: walk_container(w, o); break;
    case K_FUNCTION: {
        PyFunctionObject *f = (PyFunctionObject *)o;
        push(w, f->func_code);
        push(w, f->func_defaults);
        push(w, f->func_kwdefaults);
        push(w, f->func_closure);
        push(w, f->func_dict);
        walk_names_read(w, f);
        break;
    }
    case K_CODE:
        push(w, ((PyCodeObject *)o)->co_consts);
        push(w, ((PyCodeObject *)o)->co_names);
        break;
    case K_CELL: push_new(w, PyCell_Get(o)); break;
    case K_METHOD:
        push(w, PyMethod_GET_FUNCTION(o));
        push(w, PyMethod_GET_SELF(o));
        break;
    case K_WRAPPER: push_attr(w, o, "__func__"); break;
    case K_PROPERTY:
        push_attr(w, o, "fget");
        push_attr(w, o, "fset");
        push_attr(w, o, "fdel");
        break;
    case K_CLASS: {
        PyTypeObject *t = (PyTypeObject *)o;
        push(w, t->tp_dict);
        if (is_python_class(w, Py_TYPE(o)))
            push(w, (PyObject *)Py_TYPE(o)); /* a metaclass of its own */
        /* Bases up to, not including, classes defined in C. */
        for (Py_ssize_t i = 1; t->tp_mro != NULL && i < PyTuple_GET_SIZE(t->tp_mro); i++) {
            PyTypeObject *base = (PyTypeObject *)PyTuple_GET_ITEM(t->tp_mro, i);
            if (is_python_class(w, base))
                push(w, (PyObject *)base);
        }
        break;
    }
    case K_INSTANCE: {
        push(w, (PyObject *)Py_TYPE(o));
        PyObject *dict = PyObject_GenericGetDict(o, NULL);
        if (dict == NULL)
            PyErr_Clear(); /* no __dict__ (__slots__ only) */
        push_new(w, dict);
        walk_slots(w, o);
        if (is_container(o))
            walk_container(w, o);
        else if (w->ndarray != NULL && PyObject_TypeCheck(o, (PyTypeObject *)w->ndarray))
            push_attr(w, o, "base");
        break;
    }
    case K_NDARRAY:
        push_attr(w, o, "base"); /* the array a view looks into */
        break;
    }
}

#if PX_SHARE_WRITES_FIELDS
/* 1: o is now immortal; 0: it already was; -1: it waits in its owner's merge
 * queue, whose merge would overwrite the fields, so it is left mortal. */
static int make_immortal(PyObject *o)
{
    if (_Py_IsImmortal(o))
        return 0;
    Py_ssize_t shared = _Py_atomic_load_ssize_relaxed(&o->ob_ref_shared);
    uint8_t gc_bits = _Py_atomic_load_uint8_relaxed(&o->ob_gc_bits);
    if ((shared & _Py_REF_SHARED_FLAG_MASK) == _Py_REF_QUEUED && !(gc_bits & PX_GC_BITS_DEFERRED))
        return -1;
    /* The local count first: from this store on, Py_INCREF and Py_DECREF
     * return before reading anything else. The cyclic GC leaves immortal
     * objects out of its collections and untracks them. */
    _Py_atomic_store_uint32_relaxed(&o->ob_ref_local, _Py_IMMORTAL_REFCNT_LOCAL);
    _Py_atomic_store_ssize_relaxed(&o->ob_ref_shared, 0);
    _Py_atomic_store_uintptr_release(&o->ob_tid, _Py_UNOWNED_TID);
    return 1;
}
#endif

#if PX_SHARE_WRITES_FIELDS
/* Set at module exec when the layout check passed (the fields written below
 * are the ones this file was compiled against). */
static _Atomic bool counts_writable;
#endif

void px_py_share_hand_over(PyObject *o)
{
#if PX_SHARE_WRITES_FIELDS
    /* What CPython does to a thread's objects when the thread ends: the local
     * count joins the shared one, flagged merged, and the object has no owner.
     * Only the owner may, and only the owner writes the local count; the
     * exchange keeps other threads' concurrent changes to the shared count.
     * An object waiting in the owner's merge queue (or one with deferred
     * counting, which carries the same flag) is left as it is. */
    Py_ssize_t shared, merged;
    if (o == NULL || !atomic_load_explicit(&counts_writable, memory_order_relaxed) ||
        !_Py_IsOwnedByCurrentThread(o) || _Py_IsImmortal(o))
        return;
    shared = _Py_atomic_load_ssize_relaxed(&o->ob_ref_shared);
    do {
        if ((shared & _Py_REF_SHARED_FLAG_MASK) == _Py_REF_QUEUED)
            return;
        merged = _Py_REF_SHARED((shared >> _Py_REF_SHARED_SHIFT) + (Py_ssize_t)o->ob_ref_local,
                                _Py_REF_MERGED);
    } while (!_Py_atomic_compare_exchange_ssize(&o->ob_ref_shared, &shared, merged));
    _Py_atomic_store_uint32_relaxed(&o->ob_ref_local, 0);
    _Py_atomic_store_uintptr_relaxed(&o->ob_tid, 0);
#else
    (void)o;
#endif
}

/* 1: o is newly shared; 0: it already was; -1: refused; -2: out of memory. */
static int take(struct px_py_share *sh, PyObject *o)
{
#if PX_SHARE_WRITES_FIELDS
    if (sh->writes_fields)
        return make_immortal(o);
#endif
#if PY_VERSION_HEX >= 0x030C0000
    if (_Py_IsImmortal(o))
        return 0;
#endif
    int added = px_py_ptrset_add(&sh->kept, o);
    if (added == 1)
        Py_INCREF(o); /* kept for the life of the process */
    return added < 0 ? -2 : added;
}

static long long size_of(walk_t *w, PyObject *o)
{
    PyObject *r = PyObject_CallOneArg(w->getsizeof, o);
    long long n = r != NULL ? PyLong_AsLongLong(r) : -1;
    Py_XDECREF(r);
    if (n < 0) {
        PyErr_Clear(); /* a __sizeof__ that fails counts as nothing */
        n = 0;
    }
    return n;
}

static void visit(walk_t *w, PyObject *o)
{
    int fresh = px_py_ptrset_add(&w->seen, o);
    if (fresh <= 0) {
        w->nomem |= fresh < 0;
        return;
    }
    kind_t kind = classify(w, o);
    if (kind == K_IGNORED)
        return;
    if (kind == K_REFUSED) {
        w->skipped++;
        return;
    }
    int taken = take(w->sh, o);
    if (taken == -2) {
        w->nomem = true;
        return;
    }
    if (taken == -1) {
        w->skipped++;
    } else {
        long long size = size_of(w, o);
        w->objects++;
        w->bytes += size;
        if (taken == 1) {
            w->new_objects++;
            w->new_bytes += size;
        }
    }
    walk_children(w, o, kind);
}

static PyObject *counts(walk_t *w)
{
    return Py_BuildValue("{sLsLsLsLsLsO}", "objects", w->objects, "bytes", w->bytes, "new_objects",
                         w->new_objects, "new_bytes", w->new_bytes, "skipped", w->skipped,
                         "immortal", w->sh->writes_fields ? Py_True : Py_False);
}

/* numpy.ndarray when numpy is already imported (share() never imports it). */
static PyObject *find_ndarray(void)
{
    PyObject *name = PyUnicode_FromString("numpy"), *numpy = NULL, *t = NULL;
    if (name != NULL)
        numpy = PyImport_GetModule(name);
    Py_XDECREF(name);
    if (numpy != NULL)
        t = PyObject_GetAttrString(numpy, "ndarray");
    Py_XDECREF(numpy);
    if (t != NULL && !PyType_Check(t))
        Py_CLEAR(t);
    PyErr_Clear();
    return t;
}

PyObject *px_py_share(PyObject *module, PyObject *roots)
{
    px_module_state_t *st = PyModule_GetState(module);
    walk_t w = {.sh = st->share};
    PyObject *result = NULL;

    w.getsizeof = PySys_GetObject("getsizeof"); // borrowed
    if (w.getsizeof == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "share() needs sys.getsizeof");
        return NULL;
    }
    Py_INCREF(w.getsizeof);
    if (lock_share(w.sh) < 0) {
        Py_DECREF(w.getsizeof);
        return NULL;
    }
    w.ndarray = find_ndarray();
    for (Py_ssize_t i = PyTuple_GET_SIZE(roots); i-- > 0;) /* each argument, not their tuple */
        push(&w, PyTuple_GET_ITEM(roots, i));
    while (w.len > 0 && !w.nomem) {
        PyObject *o = w.stack[--w.len];
        visit(&w, o);
        Py_DECREF(o); /* a no-op once o is immortal */
    }
    while (w.len > 0)
        Py_DECREF(w.stack[--w.len]);
    w.sh->total_objects += w.new_objects; /* also when memory ran out: those stay shared */
    w.sh->total_bytes += w.new_bytes;
    unlock_share(w.sh);
    if (w.nomem)
        PyErr_NoMemory();
    else
        result = counts(&w);
    free(w.stack);
    px_py_ptrset_free(&w.seen);
    Py_XDECREF(w.ndarray);
    Py_DECREF(w.getsizeof);
    return result;
}

PyObject *px_py_share_stats(PyObject *module, PyObject *unused)
{
    struct px_py_share *sh = ((px_module_state_t *)PyModule_GetState(module))->share;
    long long objects, bytes;
    (void)unused;
    if (lock_share(sh) < 0)
        return NULL;
    objects = sh->total_objects;
    bytes = sh->total_bytes;
    unlock_share(sh);
    return Py_BuildValue("{sLsL}", "objects", objects, "bytes", bytes);
}

PyObject *px_py_share_info(PyObject *module, PyObject *unused)
{
    struct px_py_share *sh = ((px_module_state_t *)PyModule_GetState(module))->share;
    (void)unused;
    return Py_BuildValue("{sOss}", "immortal", sh->writes_fields ? Py_True : Py_False, "reason",
                         sh->no_write_reason);
}

#if PX_SHARE_WRITES_FIELDS
/* Check the layout this file was compiled against on the running interpreter:
 * None is immortal as we would make it, and a fresh object is owned by this
 * thread with a local count of one. NULL when all holds, else the reason. */
static const char *layout_problem(void)
{
    const char *problem = NULL;
    if ((Py_Version >> 16) != (PY_VERSION_HEX >> 16))
        return "the running interpreter's version differs from the one pyparallel was built for";
    if (!_Py_IsImmortal(Py_None) || Py_None->ob_ref_local != _Py_IMMORTAL_REFCNT_LOCAL ||
        Py_None->ob_ref_shared != 0)
        return "None does not have the immortal reference-count fields this build expects";
    PyObject *probe = PyList_New(0);
    if (probe == NULL)
        return "out of memory while checking the object layout";
    if (probe->ob_tid != _Py_ThreadId() || probe->ob_ref_local != 1 ||
        (probe->ob_ref_shared >> _Py_REF_SHARED_SHIFT) != 0)
        problem = "a new object does not have the reference-count fields this build expects";
    Py_DECREF(probe);
    return problem;
}
#endif

int px_py_share_init(px_module_state_t *st)
{
    struct px_py_share *sh = PyMem_RawCalloc(1, sizeof(*sh));

    if (sh == NULL || (sh->lock = PyThread_allocate_lock()) == NULL) {
        PyMem_RawFree(sh);
        PyErr_NoMemory();
        return -1;
    }
    st->share = sh; /* px_py_share_free releases it, also after a failure below */
    /* Every class made by a class statement (or type(name, bases, dict)) gets
     * the same tp_dealloc; it tells those classes apart from types defined in C. */
    PyObject *probe = PyObject_CallFunction((PyObject *)&PyType_Type, "s()N", "probe",
                                            PyDict_New());
    if (probe == NULL)
        return -1;
    sh->python_class_dealloc = ((PyTypeObject *)probe)->tp_dealloc;
    Py_DECREF(probe);
#if PX_SHARE_WRITES_FIELDS
    const char *problem = layout_problem();
    sh->writes_fields = problem == NULL;
    atomic_store(&counts_writable, sh->writes_fields);
    sh->no_write_reason = problem ? problem : "";
#elif defined(Py_GIL_DISABLED)
    sh->no_write_reason = "no test covers the object layout of this interpreter version";
#else
    sh->no_write_reason = "this interpreter has a GIL: reference counting is not contended";
#endif
    return 0;
}

void px_py_share_free(px_module_state_t *st)
{
    struct px_py_share *sh = st->share;

    if (sh == NULL)
        return;
    st->share = NULL;
    /* The objects in kept keep the reference share() gave them: shared objects
     * are never freed (their users may hold them without a reference). Only
     * the set's own memory goes. */
    px_py_ptrset_free(&sh->kept);
    PyThread_free_lock(sh->lock);
    PyMem_RawFree(sh);
}
