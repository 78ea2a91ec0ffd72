/*
 * Incremental UTF-8 validation (RFC 3629): text that arrives in pieces (the
 * fragments of a WebSocket text message) is checked as it comes, and an
 * invalid sequence is reported at its first byte that cannot belong to any
 * valid text, not at the end of the message. Pure: any thread, on its own
 * state.
 */
#ifndef PX_UTF8_H
#define PX_UTF8_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct px_utf8 {
    uint8_t _need;    /* continuation bytes still expected */
    uint8_t _lo, _hi; /* range of the next byte of a sequence */
} px_utf8_t;

static inline void px_utf8_init(px_utf8_t *u)
{
    u->_need = 0;
    u->_lo = 0x80;
    u->_hi = 0xbf;
}

/* Check the next len bytes. 0 while everything so far can start valid text;
 * -EILSEQ as soon as it cannot (the state then stays in error). */
int px_utf8_feed(px_utf8_t *u, const void *data, size_t len);

/* True when the bytes fed end on a character boundary (no sequence cut). */
static inline bool px_utf8_complete(const px_utf8_t *u)
{
    return u->_need == 0;
}

#endif
