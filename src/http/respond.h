/*
 * What the response writer (respond.c) needs of the server (private to
 * src/http).
 */
#ifndef PX_HTTP_RESPOND_H
#define PX_HTTP_RESPOND_H

#include "px/http_server.h"

/* The Server header's value. */
const char *px__http_server_name(const px_http_server_t *s);

#endif
