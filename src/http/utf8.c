/*
 * UTF-8 validation as the table of RFC 3629 section 4 gives the well-formed
 * sequences: the second byte's range depends on the first (no overlongs, no
 * surrogates, nothing past U+10FFFF), the others are 80..BF. See
 * include/px/utf8.h.
 */
#include <errno.h>
#include <string.h>

#include "px/utf8.h"

#define ERROR_NEED 0xff

int px_utf8_feed(px_utf8_t *u, const void *data, size_t len)
{
    const uint8_t *p = data, *end = p + len;
    unsigned need = u->_need;
    uint8_t lo = u->_lo, hi = u->_hi;

    if (need == ERROR_NEED)
        return -EILSEQ;
    while (p < end) {
        uint8_t b = *p;

        if (need > 0) {
            if (b < lo || b > hi)
                goto bad;
            need--;
            lo = 0x80;
            hi = 0xbf;
            p++;
            continue;
        }
        if (b < 0x80) {
            /* ASCII runs, eight bytes at a time */
            while (end - p >= 8) {
                uint64_t w;
                memcpy(&w, p, 8);
                if (w & 0x8080808080808080ull)
                    break;
                p += 8;
            }
            while (p < end && *p < 0x80)
                p++;
            continue;
        }
        lo = 0x80;
        hi = 0xbf;
        if (b >= 0xc2 && b <= 0xdf) {
            need = 1;
        } else if (b >= 0xe0 && b <= 0xef) {
            need = 2;
            if (b == 0xe0)
                lo = 0xa0; /* overlong */
            else if (b == 0xed)
                hi = 0x9f; /* surrogates */
        } else if (b >= 0xf0 && b <= 0xf4) {
            need = 3;
            if (b == 0xf0)
                lo = 0x90; /* overlong */
            else if (b == 0xf4)
                hi = 0x8f; /* past U+10FFFF */
        } else {
            goto bad; /* 80..C1 (continuation, overlong lead), F5..FF */
        }
        p++;
    }
    u->_need = (uint8_t)need;
    u->_lo = lo;
    u->_hi = hi;
    return 0;
bad:
    u->_need = ERROR_NEED;
    return -EILSEQ;
}
