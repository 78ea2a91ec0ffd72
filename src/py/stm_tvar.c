/* tvar: one transactional value. Outside atomic(), get reads the last
 * committed value and set is a transaction of its own. */
#include "stm.h"

#include <structmember.h>

typedef struct tvar {
    PyObject_HEAD px_py_tloc_t *t;
    PyObject *name;
    PyObject *weakrefs;
} tvar_t;

PyObject *px__stm_label(PyObject *self, PyObject *name)
{
    if (name != NULL && name != Py_None)
        return PyObject_Str(name);
    /* %p: 3.11's PyUnicode_FromFormat knows no %llx. */
    return PyUnicode_FromFormat("%s@%p", Py_TYPE(self)->tp_name, (void *)self);
}

static PyObject *tvar_new(PyTypeObject *type, PyObject *args, PyObject *kwargs)
{
    static char *names[] = {"value", "name", NULL};
    PyObject *value = Py_None, *name = Py_None, *label;
    tvar_t *self;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "|OO:tvar", names, &value, &name))
        return NULL;
    self = (tvar_t *)type->tp_alloc(type, 0);
    if (self == NULL)
        return NULL;
    self->name = Py_NewRef(name);
    label = px__stm_label((PyObject *)self, name);
    if (label == NULL) {
        Py_DECREF(self);
        return NULL;
    }
    self->t = px__stm_loc_new(label, Py_None, 0, value);
    Py_DECREF(label);
    if (self->t == NULL) {
        Py_DECREF(self);
        return NULL;
    }
    return (PyObject *)self;
}

static int tvar_traverse(PyObject *op, visitproc visit, void *arg)
{
    tvar_t *self = (tvar_t *)op;
    Py_VISIT(Py_TYPE(op));
    Py_VISIT(self->name);
    return self->t != NULL ? px__stm_loc_traverse(self->t, visit, arg) : 0;
}

static int tvar_clear(PyObject *op)
{
    tvar_t *self = (tvar_t *)op;
    if (self->t != NULL)
        px__stm_loc_clear(self->t);
    return 0;
}

void px__stm_tvar_dealloc(PyObject *op)
{
    tvar_t *self = (tvar_t *)op;
    PyTypeObject *tp = Py_TYPE(op);
    PyObject_GC_UnTrack(op);
    if (self->weakrefs != NULL)
        PyObject_ClearWeakRefs(op);
    if (self->t != NULL)
        px__stm_loc_retire(self->t); /* other threads' transactions may still check it */
    Py_XDECREF(self->name);
    tp->tp_free(op);
    Py_DECREF(tp);
}

static PyObject *tvar_get(PyObject *op, PyObject *unused)
{
    tvar_t *self = (tvar_t *)op;
    px_stm_thread_t *th = px__stm_tx();
    PyObject *v;
    (void)unused;
    if (th == NULL)
        return px__stm_peek(self->t);
    if (px__stm_get(th, self->t, &v) < 0)
        return NULL;
    return v;
}

static PyObject *tvar_set(PyObject *op, PyObject *value)
{
    tvar_t *self = (tvar_t *)op;
    px_stm_thread_t *th = px__stm_tx();
    if (th == NULL) {
        PyObject *args = PyTuple_Pack(1, value), *r;
        if (args == NULL)
            return NULL;
        r = px__stm_run_method(op, "set", args);
        Py_DECREF(args);
        return r;
    }
    if (px__stm_set(th, self->t, value) < 0)
        return NULL;
    Py_RETURN_NONE;
}

static PyObject *tvar_value_get(PyObject *op, void *closure)
{
    (void)closure;
    return tvar_get(op, NULL);
}

static int tvar_value_set(PyObject *op, PyObject *value, void *closure)
{
    PyObject *r;
    (void)closure;
    if (value == NULL) {
        PyErr_SetString(PyExc_AttributeError, "a tvar's value cannot be deleted");
        return -1;
    }
    r = tvar_set(op, value);
    Py_XDECREF(r);
    return r == NULL ? -1 : 0;
}

static PyObject *tvar_repr(PyObject *op)
{
    PyObject *v = tvar_get(op, NULL), *r;
    if (v == NULL)
        return NULL;
    r = PyUnicode_FromFormat("tvar(%R)", v);
    Py_DECREF(v);
    return r;
}

static PyMethodDef tvar_methods[] = {
    {"get", tvar_get, METH_NOARGS, "The value (in a transaction: in its snapshot)."},
    {"set", tvar_set, METH_O, "Set the value (outside atomic(): as a transaction of its own)."},
    {"__class_getitem__", Py_GenericAlias, METH_O | METH_CLASS, "tvar[T]"},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef tvar_getset[] = {
    {"value", tvar_value_get, tvar_value_set, "The value (get/set).", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyMemberDef tvar_members[] = {
    {"name", T_OBJECT, offsetof(tvar_t, name), READONLY,
     "The name in conflict statistics (None: type@address)."},
    {"__weaklistoffset__", T_PYSSIZET, offsetof(tvar_t, weakrefs), READONLY, NULL},
    {NULL, 0, 0, 0, NULL},
};

static PyType_Slot tvar_slots[] = {
    {Py_tp_doc, "tvar(value=None, name=None): one transactional value: v.get(), v.set(x) or "
                "v.value.\n\nOutside atomic(), get reads the last committed value and set is a "
                "transaction of its own."},
    {Py_tp_new, tvar_new},
    {Py_tp_dealloc, px__stm_tvar_dealloc},
    {Py_tp_traverse, tvar_traverse},
    {Py_tp_clear, tvar_clear},
    {Py_tp_repr, tvar_repr},
    {Py_tp_methods, tvar_methods},
    {Py_tp_getset, tvar_getset},
    {Py_tp_members, tvar_members},
    {0, NULL},
};

PyType_Spec px__stm_tvar_spec = {
    .name = "pyparallel.tvar",
    .basicsize = sizeof(tvar_t),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE | Py_TPFLAGS_HAVE_GC,
    .slots = tvar_slots,
};
