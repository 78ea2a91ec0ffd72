/*
 * The health endpoint (private to src/http).
 */
#ifndef PX_HTTP_HEALTH_H
#define PX_HTTP_HEALTH_H

#include "px/http_server.h"

/* When req is a GET or HEAD of exactly path (NULL: no endpoint), answer it:
 * 200 "ok" while serving, 503 "draining" once the process is stopping or
 * handing over to a new one (px_conn_draining), so that a balancer sends new
 * requests elsewhere before the connections close. True when answered. */
bool px__http_answer_health(px_conn_t *c, px_http_server_t *s, const px_http_request_t *req,
                            const char *path);

#endif
