/*
 * The health endpoint (px_http_config_t.health_path), answered by the server
 * itself so that a load balancer's checks never wait behind the application.
 */
#include <string.h>

#include "early.h"

#define NO_STORE "Cache-Control: no-store\r\n"

bool px__http_answer_health(px_conn_t *c, px_http_server_t *s, const px_http_request_t *req,
                            const char *path)
{
    bool head = req->method.len == 4 && memcmp(req->method.base, "HEAD", 4) == 0;
    bool get = req->method.len == 3 && memcmp(req->method.base, "GET", 3) == 0;
    px_http_exchange_t x = {.conn = c,
                            .req = req,
                            .srv = s,
                            .head = head,
                            .keep_alive = req->keep_alive,
                            .match = {.route = -1}};

    if (path == NULL || !(get || head) || req->path.len != strlen(path) ||
        memcmp(req->path.base, path, req->path.len) != 0)
        return false;
    /* Draining: this process stops (or hands over to a new one); the
     * balancer is to send new requests elsewhere. */
    if (px_conn_draining(c))
        px_http_respond(&x, 503, "text/plain; charset=utf-8", NO_STORE, strlen(NO_STORE),
                        "draining\n", 9);
    else
        px_http_respond(&x, 200, "text/plain; charset=utf-8", NO_STORE, strlen(NO_STORE), "ok\n",
                        3);
    if (!x.keep_alive)
        px_conn_close(c);
    return true;
}
