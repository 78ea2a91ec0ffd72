/* Thread states of the engine's threads (threadstate.c): which PyThreadState
 * each engine thread runs Python with, when it is attached, and the hand-off
 * brackets around application code. */
#ifndef PX_PY_THREADSTATE_H
#define PX_PY_THREADSTATE_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include "px/engine.h"

/* The hooks that give every engine thread (workers and hand-off spares) a
 * long-lived thread state of the calling interpreter: created when the thread
 * starts, detached whenever it may sleep, deleted when it exits. Main thread,
 * thread state attached. */
void px_py_thread_hooks(px_thread_hooks_t *hooks, void *arg);

/* Attach the calling engine thread's thread state if it is detached; on a
 * thread that is not an engine thread (it runs Python already) nothing
 * changes. Returns the attached thread state. w is the worker being run. */
PyThreadState *px_py_attach(px_worker_t *w);

/* Hand-off (px/engine.h). Application code runs with the worker released, so
 * that a spare thread can take the worker over while the code blocks:
 *
 *     bool released = px_py_release(w);
 *     r = PyObject_Call...(...);
 *     px_py_reacquire(w, released);
 *
 * and the binding's engine calls made from that code (Transport methods) are
 * bracketed the other way round with px_py_engine_enter / px_py_engine_leave.
 * Both brackets leave the thread state attached. */
static inline bool px_py_release(px_worker_t *w)
{
    return px_worker_release(w);
}

static inline void px_py_reacquire(px_worker_t *w, bool released)
{
    if (released) {
        px_worker_reacquire(w); /* may sleep, detached, until w comes back */
        px_py_attach(w);
    }
}

static inline bool px_py_engine_enter(px_worker_t *w)
{
    bool reacquired = px_worker_reacquire(w);
    if (reacquired)
        px_py_attach(w);
    return reacquired;
}

static inline void px_py_engine_leave(px_worker_t *w, bool entered)
{
    if (entered)
        px_worker_release_again(w); /* as the code's own bracket released */
}

#endif
