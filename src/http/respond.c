/*
 * Response heads and their sending: the one writer of the status line and the
 * headers every response carries, with the fields the app chose checked before
 * anything reaches the wire. See include/px/http_server.h.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "px/http_response.h"
#include "px/http_server.h"

#include "respond.h"
#include "stream.h"

/* Appends for write_head: each checks the room left, so a head that does not
 * fit is -ENOBUFS instead of a truncated one. */
typedef struct head_buf {
    char *p;
    size_t len, cap;
    bool full;
} head_buf_t;

static void put(head_buf_t *h, const char *s, size_t n)
{
    if (h->full || n > h->cap - h->len) {
        h->full = true;
        return;
    }
    memcpy(h->p + h->len, s, n);
    h->len += n;
}

static void put_str(head_buf_t *h, const char *s)
{
    put(h, s, strlen(s));
}

static void put_uint(head_buf_t *h, uint64_t v)
{
    char digits[24];
    size_t i = sizeof(digits);

    do {
        digits[--i] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    put(h, digits + i, sizeof(digits) - i);
}

/* The status line and the headers every response carries, up to and without
 * the extra lines and the final CRLF. The one writer of response heads: app
 * answers, static routes, errors and 405s all come through here. */
static int write_head(px_http_exchange_t *x, char *out, size_t cap, int status,
                      const char *content_type, px__http_framing_t framing, uint64_t length)
{
    const px_http_request_t *req = x->req;
    head_buf_t h = {out, 0, cap, false};

    put(&h, "HTTP/1.1 ", 9);
    put_uint(&h, (uint64_t)status);
    put(&h, " ", 1);
    put_str(&h, x->reason ? x->reason : px_http_reason(status));
    put(&h, "\r\nServer: ", 10);
    put_str(&h, px__http_server_name(x->srv));
    put(&h, "\r\nDate: ", 8);
    put_str(&h, px_http_date());
    put(&h, "\r\n", 2);
    if (!x->keep_alive)
        put(&h, "Connection: close\r\n", 19);
    else if (req && req->minor_version == 0)
        put(&h, "Connection: keep-alive\r\n", 24);
    if (content_type) {
        put(&h, "Content-Type: ", 14);
        put_str(&h, content_type);
        put(&h, "\r\n", 2);
    }
    /* 1xx, 204 and 304 carry no body and no length. */
    if (status >= 200 && status != 204 && status != 304) {
        if (framing == PX__HTTP_LENGTH) {
            put(&h, "Content-Length: ", 16);
            put_uint(&h, length);
            put(&h, "\r\n", 2);
        } else if (framing == PX__HTTP_CHUNKED) {
            put(&h, "Transfer-Encoding: chunked\r\n", 28);
        }
    }
    return h.full ? -ENOBUFS : (int)h.len;
}

/* A head field the app chose would break the framing: log which and why; the
 * response is not sent (the caller, or answer(), sends 500 instead). */
static int refuse_fields(px_http_exchange_t *x, const px_http_field_fault_t *f)
{
    const px_http_request_t *req = x->req;
    char byte[8] = "";

    if (f->byte >= 0)
        snprintf(byte, sizeof(byte), " 0x%02x", (unsigned)f->byte & 0xffu);
    fprintf(stderr,
            "pyparallel: response to %.*s %.*s not sent (500 instead): header \"%.*s\": %s"
            "%s at offset %zu\n",
            req ? (int)PX_MIN(req->method.len, 32) : 1, req ? req->method.base : "-",
            req ? (int)PX_MIN(req->target.len, 200) : 1, req ? req->target.base : "-",
            (int)PX_MIN(f->name.len, 64), f->name.base, f->why, byte, f->offset);
    return -EINVAL;
}

static int respond_common(px_http_exchange_t *x, int status, const char *content_type,
                          const char *extra, size_t extra_len, px__http_framing_t framing,
                          uint64_t length, const void *body, size_t body_len)
{
    char head[1024];
    struct iovec iov[4];
    px_http_field_fault_t fault;
    int n, cnt = 0;

    if (x->responded)
        return -EALREADY;
    if (px_http_check_response_fields(status, x->reason ? x->reason : px_http_reason(status),
                                      content_type, extra, extra_len, &fault) < 0)
        return refuse_fields(x, &fault);
    if (px_conn_draining(x->conn))
        x->keep_alive = false; /* shutting down: the last answer on this connection */
    if (framing == PX__HTTP_UNTIL_CLOSE)
        x->keep_alive = false; /* the close ends the body */
    n = write_head(x, head, sizeof(head), status, content_type, framing, length);
    if (n < 0)
        return n; /* a head too long for the buffer: not answered, so a 500 goes instead */
    x->responded = true;
    if (x->body_stream != NULL)
        px__http_body_responding(x->body_stream);
    iov[cnt++] = (struct iovec){head, (size_t)n};
    if (extra && extra_len)
        iov[cnt++] = (struct iovec){(void *)extra, extra_len};
    iov[cnt++] = (struct iovec){(void *)"\r\n", 2};
    if (status < 200 || status == 204 || status == 304)
        body_len = 0; /* these statuses never carry a body (RFC 9110 6.4.1) */
    if (body_len && !x->head)
        iov[cnt++] = (struct iovec){(void *)body, body_len};
    return px_conn_send(x->conn, iov, cnt);
}

int px_http_respond(px_http_exchange_t *x, int status, const char *content_type, const char *extra,
                    size_t extra_len, const void *body, size_t len)
{
    return respond_common(x, status, content_type, extra, extra_len, PX__HTTP_LENGTH, len, body,
                          len);
}

int px_http_respond_file(px_http_exchange_t *x, int status, const char *content_type,
                         const char *extra, size_t extra_len, int fd, off_t offset, size_t count)
{
    int rc = respond_common(x, status, content_type, extra, extra_len, PX__HTTP_LENGTH, count, NULL,
                            0);

    if (rc < 0 || x->head || count == 0) {
        close(fd);
        return rc;
    }
    rc = px_conn_sendfile(x->conn, fd, offset, count);
    /* The next pipelined request waits until this file has gone: a connection
     * holds one file open, however many requests it queues. */
    if (rc == 0)
        px_conn_wait_output(x->conn);
    return rc;
}

int px__http_send_head(px_http_exchange_t *x, int status, const char *content_type,
                       const char *extra, size_t extra_len, px__http_framing_t framing,
                       uint64_t length)
{
    return respond_common(x, status, content_type, extra, extra_len, framing, length, NULL, 0);
}
