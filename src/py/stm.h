/* Transactions (AME): the binding of the STM core (px/stm.h).
 *
 * stm.c: the I/O guard, module functions and set-up; stm_run.c: atomic(),
 * retries and the irrevocable fallback, statistics; stm_loc.c: locations as
 * the containers use them, and tvar; stm_tdict.c, stm_tlist.c: the other two
 * containers. */
#ifndef PX_PY_STM_H
#define PX_PY_STM_H

#include "binding.h"
#include "px/stm.h"

/* Create TransactionError/IOInTransactionError in st, the container types and
 * the functions, and add them to m. Called once from module exec; -1 with an
 * exception set. */
int px_py_stm_init(PyObject *m, px_module_state_t *st);

/* 0 when no transaction runs on this thread; otherwise raise
 * IOInTransactionError naming `what` and return -1. Any thread; C code that
 * performs I/O on behalf of Python calls it first. */
int px_py_stm_refuse(px_module_state_t *st, const char *what);

/* True while a transaction runs on this thread. */
bool px_py_stm_active(void);

/* True for a tvar, tdict or tlist (not a Python subclass): share() makes them
 * immortal without looking into them, as every transaction of every thread
 * touches the containers' reference counts. */
bool px_py_stm_is_container(PyObject *o);

/* A location of a container: the core's, plus what names it in conflict
 * statistics (both owned). key is Py_None for a tvar and NULL for a
 * container's length. Made by px__stm_loc_new, freed through the core's
 * epochs (px__stm_loc_retire) because transactions of other threads may still
 * validate it after its container is gone. Its value is NULL when absent. */
typedef struct px_py_tloc {
    px_stm_loc_t loc;
    PyObject *label;
    PyObject *key;
    Py_hash_t hash;
    long long ival; /* tdict: the key's value when it is a small int (int_key) */
    bool int_key;
} px_py_tloc_t;
_Static_assert(sizeof(px_py_tloc_t) <= PX_CACHELINE, "a location fits one cache line");

px_py_tloc_t *px__stm_loc_new(PyObject *label, PyObject *key, Py_hash_t hash, PyObject *value);
void px__stm_loc_retire(px_py_tloc_t *t);
/* Garbage collection of the containers: visit t's value and key; drop its
 * value (through the epochs). */
int px__stm_loc_traverse(px_py_tloc_t *t, visitproc visit, void *arg);
void px__stm_loc_clear(px_py_tloc_t *t);
/* Memory readers may still walk (an outgrown table): freed after them. */
void px__stm_mem_retire(void *p);

/* This thread's record; NULL with MemoryError. */
px_stm_thread_t *px__stm_thread(void);

/* Pin the calling thread for a walk of a container's table (tp_traverse,
 * which gc.get_referents runs outside the collector, beside commits that
 * replace tables); unpin with px_stm_unpin. NULL (out of memory, no error
 * set): the walk is skipped, which only keeps objects alive. */
px_stm_thread_t *px__stm_walk_pin(void);
/* The record when a transaction runs on this thread, else NULL. */
px_stm_thread_t *px__stm_tx(void);

/* In a transaction (th): the value of t (a new reference; NULL for absent,
 * with *err 0) or -1 with an exception (a conflict or MemoryError). */
int px__stm_get(px_stm_thread_t *th, px_py_tloc_t *t, PyObject **value);
/* In a transaction: buffer value (a new reference is taken; NULL deletes). */
int px__stm_set(px_stm_thread_t *th, px_py_tloc_t *t, PyObject *value);
/* Outside transactions: the last committed value (a new reference or NULL). */
PyObject *px__stm_peek(px_py_tloc_t *t);

/* Run callable(*args) as a transaction of its own (outside any), or join the
 * running one: what atomic() does. */
PyObject *px__stm_run(PyObject *callable, PyObject *args, PyObject *kwargs);
/* Call self.<name>(*args) as a transaction of its own. */
PyObject *px__stm_run_method(PyObject *self, const char *name, PyObject *args);

/* The label of a container: its name, or "<type>@<address>". */
PyObject *px__stm_label(PyObject *self, PyObject *name);

/* stm_stats(), stm_config(), in_transaction() (stm_run.c). */
PyObject *px__stm_stats(PyObject *module, PyObject *args, PyObject *kwargs);
PyObject *px__stm_config(PyObject *module, PyObject *args, PyObject *kwargs);
PyObject *px__stm_atomic(PyObject *module, PyObject *const *args, Py_ssize_t nargs,
                         PyObject *kwnames);
int px__stm_run_init(PyObject *m);
/* Install the I/O guard (once; cheap after): the first atomic() does. */
int px__stm_guard_io(void);

void px__stm_tvar_dealloc(PyObject *op);
void px__stm_td_dealloc(PyObject *op);
void px__stm_tl_dealloc(PyObject *op);

extern PyType_Spec px__stm_tvar_spec, px__stm_tdict_spec, px__stm_tlist_spec;

#endif
