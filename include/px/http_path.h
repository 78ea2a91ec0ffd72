/*
 * Decoding request paths (the path view of a parsed request, without its
 * query). Pure functions of their arguments, no allocation: any thread may call
 * them. Input is never read past in + len; out never overlaps in.
 */
#ifndef PX_HTTP_PATH_H
#define PX_HTTP_PATH_H

#include <stddef.h>

/* Percent-decode and normalise the path of a request (a path view, without the
 * query) for use as a file name under a document root.
 *
 * in must start with '/'. "%XX" is decoded (a decoded "%2F" separates segments
 * like '/'); empty and "." segments are dropped, a trailing '/' is kept. Writes a
 * NUL-terminated path starting with '/' to out and returns its length (without
 * the NUL). Returns -EINVAL for a malformed escape, a NUL or a backslash (raw or
 * decoded), a ".." segment or no leading '/'; -ENAMETOOLONG when out (outcap
 * bytes, NUL included) is too small. out must not overlap in. */
int px_http_path_decode(const char *in, size_t len, char *out, size_t outcap);

/* Percent-decode a route parameter (a part of a request path) the lenient way
 * URL libraries do: "%XX" with two hex digits becomes that byte, any other '%'
 * stays as it is, nothing is normalised or refused. The result is bytes (a
 * decoded "%2F" is a '/', "%00" a NUL); it is not NUL-terminated.
 *
 * Returns the length written to out (at most len; outcap >= len always
 * suffices), -ENAMETOOLONG when outcap is too small, -EOVERFLOW when len is
 * over INT_MAX. */
int px_http_unquote(const char *in, size_t len, char *out, size_t outcap);

#endif
