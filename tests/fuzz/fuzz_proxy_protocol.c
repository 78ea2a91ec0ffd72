/*
 * libFuzzer target for the PROXY protocol parser (px/proxy_protocol.h).
 *
 * Every prefix of the input is parsed. The answers must be consistent as a
 * connection's reads would see them: a header is never longer than what was
 * passed; once some prefix is a header of n bytes, every longer prefix is the
 * same header (same length, same addresses) and every shorter one is
 * incomplete; once a prefix is refused, every longer one is refused. Any
 * disagreement traps.
 */
#include "px/proxy_protocol.h"

#include <stdint.h>
#include <string.h>

#define LIMIT (PX_PROXY_V2_MAX + 64)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *s = (const char *)data;
    px_proxy_header_t first, h;
    int header = 0;
    bool refused = false;

    if (size > LIMIT)
        size = LIMIT;
    memset(&first, 0, sizeof(first));
    for (size_t k = 0; k <= size; k++) {
        int rc = px_proxy_parse(s, k, &h);

        if (rc > 0 && (size_t)rc > k)
            __builtin_trap();
        if (refused && rc != PX_PROXY_ERROR)
            __builtin_trap();
        if (header > 0 &&
            (rc != header || h.version != first.version || h.local != first.local ||
             h.addr_len != first.addr_len || memcmp(&h.src, &first.src, sizeof(h.src)) != 0 ||
             memcmp(&h.dst, &first.dst, sizeof(h.dst)) != 0))
            __builtin_trap();
        if (rc == PX_PROXY_ERROR)
            refused = true;
        else if (rc > 0 && header == 0) {
            header = rc;
            first = h;
            /* Shorter prefixes were all incomplete (checked as they came). */
        } else if (rc != PX_PROXY_INCOMPLETE && rc <= 0)
            __builtin_trap();
        if (header == 0 && rc == PX_PROXY_INCOMPLETE && refused)
            __builtin_trap();
    }
    return 0;
}
