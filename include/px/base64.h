/*
 * Base64 with the standard alphabet and padding (RFC 4648 section 4), for the
 * WebSocket handshake's keys. Pure: any thread.
 */
#ifndef PX_BASE64_H
#define PX_BASE64_H

#include <stddef.h>
#include <sys/types.h>

/* Bytes px_base64_encode writes for len input bytes (without a NUL). */
#define PX_BASE64_LEN(len) ((((len) + 2) / 3) * 4)

/* Encode src[0..len) into out (PX_BASE64_LEN(len) bytes, not NUL-terminated).
 * Returns the bytes written. */
size_t px_base64_encode(const void *src, size_t len, char *out);

/* Decode src[0..len) (padded to a multiple of 4, no whitespace, unused bits
 * zero: the canonical form only) into out, which holds cap bytes. Returns the
 * bytes decoded, -EINVAL for anything but canonical base64, -ENOSPC when out
 * is too small. */
ssize_t px_base64_decode(const char *src, size_t len, void *out, size_t cap);

#endif
