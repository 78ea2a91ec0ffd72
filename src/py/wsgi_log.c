/*
 * The access log of `pyparallel serve --access-log`: one line per response in
 * the common log format, appended to a buffer of the worker's own (its lock is
 * only ever contended by the writer taking the buffer), and written by a
 * thread of the Python layer that calls wsgi_access_log_take() a few times a
 * second. A worker never waits for the disk; past a cap (a writer that cannot
 * keep up) lines are dropped and counted rather than held.
 */
#include "wsgi.h"

#include <pthread.h>
#include <time.h>

#define STRIPES 64
#define STRIPE_CAP ((size_t)8 << 20)

typedef struct stripe {
    pthread_mutex_t lock;
    char *buf;
    size_t len, cap;
    unsigned long long dropped;
} stripe_t;

static stripe_t stripes[STRIPES] = {
    [0 ... STRIPES - 1] = {.lock = PTHREAD_MUTEX_INITIALIZER},
};

/* "[03/Dec/2026:13:45:00 +0000]", made at most once a second per thread. */
static const char *log_time(void)
{
    static _Thread_local char text[40];
    static _Thread_local time_t made = -1;
    time_t now = time(NULL);
    struct tm tm;

    if (now != made) {
        gmtime_r(&now, &tm);
        strftime(text, sizeof(text), "[%d/%b/%Y:%H:%M:%S +0000]", &tm);
        made = now;
    }
    return text;
}

void px_py_wsgi_log(px_worker_t *w, const px_py_peer_t *peer, const px_http_request_t *req,
                    int status, size_t bytes)
{
    stripe_t *s = &stripes[(unsigned)px_worker_index(w) % STRIPES];
    char line[512];
    int target = (int)PX_MIN(req->target.len, (size_t)300);
    int n = snprintf(line, sizeof(line), "%s - - %s \"%.*s %.*s HTTP/1.%d\" %d %zu\n",
                     peer->host[0] ? peer->host : "-", log_time(), (int)PX_MIN(req->method.len, 32),
                     req->method.base, target, req->target.base, req->minor_version, status, bytes);

    if (n <= 0)
        return;
    if ((size_t)n >= sizeof(line))
        n = sizeof(line) - 1;
    pthread_mutex_lock(&s->lock);
    if (s->len + (size_t)n > s->cap) {
        size_t cap = PX_MAX(s->cap * 2, (size_t)16384);
        char *p = cap <= STRIPE_CAP ? realloc(s->buf, cap) : NULL;
        if (p == NULL) {
            s->dropped++;
            pthread_mutex_unlock(&s->lock);
            return;
        }
        s->buf = p;
        s->cap = cap;
    }
    memcpy(s->buf + s->len, line, (size_t)n);
    s->len += (size_t)n;
    pthread_mutex_unlock(&s->lock);
}

/* wsgi_access_log_take() -> (bytes, dropped): every line buffered since the
 * last call, and how many were dropped. */
PyObject *px_py_wsgi_log_take(PyObject *module, PyObject *unused)
{
    PyObject *out = PyBytes_FromStringAndSize(NULL, 0), *joined;
    unsigned long long dropped = 0;

    (void)module;
    (void)unused;
    for (int i = 0; out != NULL && i < STRIPES; i++) {
        stripe_t *s = &stripes[i];
        char *buf;
        size_t len;

        pthread_mutex_lock(&s->lock);
        buf = s->buf;
        len = s->len;
        dropped += s->dropped;
        s->buf = NULL;
        s->len = s->cap = 0;
        s->dropped = 0;
        pthread_mutex_unlock(&s->lock);
        if (len == 0) {
            free(buf);
            continue;
        }
        joined = PyBytes_FromStringAndSize(NULL, PyBytes_GET_SIZE(out) + (Py_ssize_t)len);
        if (joined != NULL) {
            memcpy(PyBytes_AS_STRING(joined), PyBytes_AS_STRING(out),
                   (size_t)PyBytes_GET_SIZE(out));
            memcpy(PyBytes_AS_STRING(joined) + PyBytes_GET_SIZE(out), buf, len);
        }
        free(buf);
        Py_SETREF(out, joined);
    }
    if (out == NULL)
        return NULL;
    return Py_BuildValue("(NK)", out, dropped);
}
