/*
 * Requests answered before their body (private to src/http): the bodies that
 * nothing takes, read and dropped as they arrive, and the Allow line of
 * OPTIONS *, answered by the server itself; and the health endpoint
 * (health.c), answered before the application.
 */
#ifndef PX_HTTP_EARLY_H
#define PX_HTTP_EARLY_H

#include <sys/types.h>

#include "px/http_parser.h"
#include "px/http_router.h"
#include "px/http_server.h"

/* A body being dropped: Content-Length bytes to come, or a chunked body whose
 * decoded bytes are thrown away. */
typedef struct px__http_drop {
    bool chunked;
    uint64_t left;
    px_http_chunked_t dec;
} px__http_drop_t;

/* Prepare d to drop the body of req (whose head was parsed with max_body). */
void px__http_drop_init(px__http_drop_t *d, const px_http_request_t *req, uint64_t max_body);

/* Read the body out of data[0..len) without keeping any of it. Returns the
 * bytes it took (what follows belongs to the next request), *done set when the
 * body ended with them; -1 for a malformed chunked body or one over the limits.
 * data is only read. */
ssize_t px__http_drop(px__http_drop_t *d, const char *data, size_t len, bool *done);

/* Whether a route of these methods takes a body: GET and HEAD content has no
 * defined meaning (RFC 9110 section 9.3.1), so a route of only those drops a
 * body unread, as nginx's static files do. */
bool px__http_methods_take_body(const char *const *methods, size_t n);

/* "Allow: M1, M2...\r\n" listing every method the routes of r take, GET and
 * HEAD when there are static routes, and OPTIONS; malloc'd (NULL: no memory). */
char *px__http_options_allow(const px_http_router_t *r, bool statics);

/* When req is a GET or HEAD of exactly path (NULL: no endpoint), answer it:
 * 200 "ok" while serving, 503 "draining" once the process is stopping or
 * handing over to a new one (px_conn_draining), so that a balancer sends new
 * requests elsewhere before the connections close. True when answered. */
bool px__http_answer_health(px_conn_t *c, px_http_server_t *s, const px_http_request_t *req,
                            const char *path);

#endif
