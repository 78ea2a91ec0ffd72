/*
 * Protocol factories: a callable that is not a class, called once per
 * connection. What it returns is the protocol; its class decides which
 * callbacks exist, as a registered class does. The attributes of each class
 * met are read once, into a spec kept with the factory's (a list that only
 * grows, read without a lock by every worker).
 */
#include "binding.h"

/* Has obj's class any of the callbacks that make it a protocol? */
static bool is_protocol(const px_py_proto_spec_t *s)
{
    return s->has_made || s->has_data || s->has_lines || s->has_complete || s->has_lost ||
           s->has_failed || s->has_recv_shutdown || s->has_send_shutdown || s->initial_bytes ||
           s->next_bytes;
}

static int refuse(px_py_proto_spec_t *spec, PyObject *instance)
{
    PyObject *listen;

    if (instance == Py_None) {
        PyErr_Format(PyExc_TypeError, "protocol factory %R returned None, not a protocol",
                     spec->cls);
        return -1;
    }
    if (PyType_Check(instance)) {
        PyErr_Format(PyExc_TypeError,
                     "protocol factory %R returned the class %R, not a protocol instance "
                     "(register the class itself)",
                     spec->cls, instance);
        return -1;
    }
    listen = PyObject_GetAttrString(instance, "__px_listen__");
    if (listen == NULL)
        PyErr_Clear();
    Py_XDECREF(listen);
    if (listen != NULL) {
        PyErr_Format(PyExc_TypeError,
                     "protocol factory %R returned an HttpServer instance, which serves a whole "
                     "server: register the class itself",
                     spec->cls);
        return -1;
    }
    PyErr_Format(PyExc_TypeError,
                 "protocol factory %R returned an instance of %.200s, not a protocol (none of "
                 "connection_made, data_received, lines_received, send_complete, "
                 "connection_lost, connection_failed, initial_bytes_to_send, "
                 "next_bytes_to_send)",
                 spec->cls, Py_TYPE(instance)->tp_name);
    return -1;
}

static px_py_proto_spec_t *find(px_py_proto_spec_t *spec, PyObject *type)
{
    px_py_proto_spec_t *m = atomic_load_explicit(&spec->made, memory_order_acquire);

    for (; m != NULL; m = m->next_made)
        if (m->cls == type)
            return m;
    return NULL;
}

px_py_proto_spec_t *px_py_factory_spec(px_py_proto_spec_t *spec, PyObject *instance)
{
    PyObject *type = (PyObject *)Py_TYPE(instance);
    px_py_proto_spec_t *m = PyType_Check(instance) ? NULL : find(spec, type), *head;
    unsigned sock_flags;

    if (m != NULL)
        return m;
    if (instance == Py_None || PyType_Check(instance)) {
        refuse(spec, instance);
        return NULL;
    }
    m = PyMem_Calloc(1, sizeof(*m));
    if (m == NULL) {
        PyErr_NoMemory();
        return NULL;
    }
    m->cls = Py_NewRef(type);
    m->engine = spec->engine;
    if (px_py_proto_spec_fill(m, type, &sock_flags, &m->idle_timeout_ms) < 0 ||
        (!is_protocol(m) && refuse(spec, instance) < 0)) {
        px_py_proto_spec_free(m);
        return NULL;
    }
    /* Another worker may have added the same class meanwhile: keep one. */
    head = atomic_load_explicit(&spec->made, memory_order_acquire);
    do {
        px_py_proto_spec_t *other = NULL;
        for (px_py_proto_spec_t *p = head; p != NULL; p = p->next_made)
            if (p->cls == type)
                other = p;
        if (other != NULL) {
            px_py_proto_spec_free(m);
            return other;
        }
        m->next_made = head;
    } while (!atomic_compare_exchange_weak_explicit(&spec->made, &head, m, memory_order_acq_rel,
                                                    memory_order_acquire));
    return m;
}

void px_py_factory_specs_free(px_py_proto_spec_t *spec)
{
    px_py_proto_spec_t *m = atomic_exchange(&spec->made, NULL), *next;

    for (; m != NULL; m = next) {
        next = m->next_made;
        px_py_proto_spec_free(m);
    }
}

int px_py_factory_specs_traverse(px_py_proto_spec_t *spec, visitproc visit, void *arg)
{
    for (px_py_proto_spec_t *m = atomic_load(&spec->made); m != NULL; m = m->next_made) {
        Py_VISIT(m->cls);
        Py_VISIT(m->initial_bytes);
        Py_VISIT(m->next_bytes);
    }
    return 0;
}

void px_py_factory_specs_clear(px_py_proto_spec_t *spec)
{
    for (px_py_proto_spec_t *m = atomic_load(&spec->made); m != NULL; m = m->next_made) {
        Py_CLEAR(m->cls);
        Py_CLEAR(m->initial_bytes);
        Py_CLEAR(m->next_bytes);
    }
}
