/*
 * SHA-1 (FIPS 180-4), for the WebSocket opening handshake (RFC 6455 section
 * 4.2.2), where the protocol fixes it. Not for anything that needs collision
 * resistance. Pure: any thread, on its own context.
 */
#ifndef PX_SHA1_H
#define PX_SHA1_H

#include <stddef.h>
#include <stdint.h>

#define PX_SHA1_LEN 20

typedef struct px_sha1 {
    uint32_t h[5];
    uint64_t total; /* bytes hashed */
    uint8_t block[64];
    size_t used; /* bytes of block filled */
} px_sha1_t;

void px_sha1_init(px_sha1_t *s);
void px_sha1_update(px_sha1_t *s, const void *data, size_t len);
/* The digest of everything given; s must be initialised again before reuse. */
void px_sha1_final(px_sha1_t *s, uint8_t out[PX_SHA1_LEN]);

#endif
