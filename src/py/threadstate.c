/*
 * Thread states of the engine's threads. Each engine thread gets one
 * long-lived PyThreadState when it starts (PyGILState_Ensure), attaches it
 * lazily when a callback needs Python, and detaches it before it may sleep
 * (in the kernel, waiting for its worker, parked as a spare), so that a
 * sleeping thread neither holds the GIL nor holds up a stop-the-world
 * collection.
 *
 * The thread state belongs to the thread, not to the worker: when a callback
 * blocks, the worker's other callbacks run on a spare thread meanwhile, and
 * both threads run Python at once. That is why the record is a thread-local
 * and not part of the module state: it describes this thread only.
 */
#include "binding.h"

typedef struct thread_py {
    PyThreadState *ts;
    PyGILState_STATE gil_state;
    bool attached;
} thread_py_t;

static _Thread_local thread_py_t thread_py; /* engine threads only */

PyThreadState *px_py_attach(px_worker_t *w)
{
    thread_py_t *tp = &thread_py;
    (void)w;

    if (tp->ts == NULL) /* not an engine thread: it runs Python already */
        return PyThreadState_Get();
    if (!tp->attached) {
        PyEval_RestoreThread(tp->ts);
        tp->attached = true;
    }
    return tp->ts;
}

static void hook_thread_start(px_worker_t *w, void *arg)
{
    thread_py_t *tp = &thread_py;
    (void)w;
    (void)arg;

    tp->gil_state = PyGILState_Ensure();
    tp->ts = PyThreadState_Get();
    PyEval_SaveThread();
    tp->attached = false;
}

/* The thread may sleep: detach. */
static void hook_before_wait(px_worker_t *w, void *arg)
{
    thread_py_t *tp = &thread_py;
    (void)w;
    (void)arg;
    if (tp->attached) {
        tp->attached = false;
        PyEval_SaveThread();
    }
}

static void hook_thread_stop(px_worker_t *w, void *arg)
{
    thread_py_t *tp = &thread_py;
    (void)arg;
    px_py_attach(w);
    px_py_http_thread_exit();
    px_py_wsgi_thread_exit();
    tp->attached = false;
    tp->ts = NULL;
    PyGILState_Release(tp->gil_state);
}

void px_py_thread_hooks(px_thread_hooks_t *hooks, void *arg)
{
    hooks->thread_start = hook_thread_start;
    hooks->thread_stop = hook_thread_stop;
    hooks->before_wait = hook_before_wait;
    hooks->arg = arg;
}
