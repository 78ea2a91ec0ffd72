/*
 * The chunked body decoder (RFC 9112 section 7.1): incremental, in place, one
 * byte-driven state machine whose limits count what the client sends.
 */
#include "px/http_parser.h"

#include <limits.h>
#include <string.h>

#include "grammar.h"

#define CHUNK_EXT_MAX 1024u /* a chunk line's extensions, with their whitespace */
#define TRAILERS_MAX 16384u /* whole trailer section */

enum {
    CK_SIZE,      /* hex digits */
    CK_EXT_BWS,   /* whitespace after the size or a value: more, or ';' */
    CK_EXT_NAME0, /* after ';' (and whitespace) */
    CK_EXT_NAME,
    CK_EXT_NAME_BWS, /* whitespace after a name: more, '=' or ';' */
    CK_EXT_VALUE0,   /* after '=' (and whitespace) */
    CK_EXT_TOKEN,
    CK_EXT_QUOTED,
    CK_EXT_QPAIR, /* after a backslash in a quoted string */
    CK_EXT_QEND,  /* after the closing quote */
    CK_SIZE_LF,
    CK_DATA,
    CK_DATA_CR,
    CK_DATA_LF,
    CK_TRAILER0, /* start of a trailer line, or the final CRLF */
    CK_TRAILER_NAME,
    CK_TRAILER_VALUE,
    CK_TRAILER_LF,
    CK_END_LF,
    CK_DONE,
    CK_ERROR,
};

void px_http_chunked_init(px_http_chunked_t *d, uint64_t max_body)
{
    memset(d, 0, sizeof(*d));
    d->_state = CK_SIZE;
    d->max_body = max_body;
}

uint64_t px_http_chunked_raw_max(uint64_t max_body)
{
    uint64_t slack = max_body / 16 + PX_HTTP_CHUNKED_SLACK;
    return max_body > UINT64_MAX - slack ? UINT64_MAX : max_body + slack;
}

static bool is_bws(unsigned c)
{
    return c == ' ' || c == '\t';
}

int px_http_chunked_decode(px_http_chunked_t *d, char *buf, size_t *len)
{
    size_t n = *len, src = 0, dst = 0;
    uint64_t raw_max = px_http_chunked_raw_max(d->max_body);
    int st = 400;

    if (d->_state == CK_ERROR)
        return PX_HTTP_ERROR;
    if (n > INT_MAX)
        goto fail;
    if (d->_state == CK_DONE) {
        *len = 0;
        return (int)n;
    }
    while (src < n) {
        unsigned c = (unsigned char)buf[src];
        uint32_t s = d->_state;

        if (s == CK_DATA) {
            size_t take = n - src;
            if (take > d->_size)
                take = (size_t)d->_size;
            /* extensions after the size may have used up what it could take */
            if (take > raw_max - d->raw)
                take = (size_t)(raw_max - d->raw);
            if (take == 0) {
                d->raw++; /* the byte over the limit, as below */
                st = 413;
                goto fail;
            }
            if (dst != src)
                memmove(buf + dst, buf + src, take);
            dst += take;
            src += take;
            d->_size -= take;
            d->total += take;
            d->raw += take;
            if (d->_size == 0)
                d->_state = CK_DATA_CR;
            continue;
        }
        src++;
        /* Everything before the trailers counts against the raw limit: what a
         * client sends, not only what it decodes to, so framing and extensions
         * cannot stretch a body past its limit. */
        if (s < CK_TRAILER0 && ++d->raw > raw_max) {
            st = 413;
            goto fail;
        }
        if (s >= CK_EXT_BWS && s <= CK_EXT_QEND && ++d->_line > CHUNK_EXT_MAX)
            goto fail;
        if (s >= CK_TRAILER0 && s <= CK_END_LF && ++d->_line > TRAILERS_MAX)
            goto fail;
        switch (s) {
        case CK_SIZE:
            if (http_hexval[c]) {
                if (d->_count == 16)
                    goto fail;
                d->_size = d->_size << 4 | (uint64_t)(http_hexval[c] - 1);
                d->_count++;
                break;
            }
            if (d->_count == 0)
                goto fail;
            if (d->_size > d->max_body - d->total || d->_size > raw_max - d->raw) {
                st = 413;
                goto fail;
            }
            if (c == ';')
                d->_state = CK_EXT_NAME0;
            else if (is_bws(c)) /* BWS before ';' (RFC 9112 section 7.1.1) */
                d->_state = CK_EXT_BWS;
            else if (c == '\r')
                d->_state = CK_SIZE_LF;
            else
                goto fail;
            break;
        case CK_EXT_BWS:
            if (c == ';')
                d->_state = CK_EXT_NAME0;
            else if (!is_bws(c))
                goto fail;
            break;
        case CK_EXT_NAME0:
            if (is_bws(c))
                break;
            if (!(http_ctype[c] & C_TOKEN))
                goto fail;
            d->_state = CK_EXT_NAME;
            break;
        case CK_EXT_NAME:
        case CK_EXT_TOKEN:
            if (http_ctype[c] & C_TOKEN)
                break;
            if (c == '=' && s == CK_EXT_NAME)
                d->_state = CK_EXT_VALUE0;
            else if (c == ';')
                d->_state = CK_EXT_NAME0;
            else if (c == '\r')
                d->_state = CK_SIZE_LF;
            else if (is_bws(c))
                d->_state = s == CK_EXT_NAME ? CK_EXT_NAME_BWS : CK_EXT_BWS;
            else
                goto fail;
            break;
        case CK_EXT_NAME_BWS:
            if (c == '=')
                d->_state = CK_EXT_VALUE0;
            else if (c == ';')
                d->_state = CK_EXT_NAME0;
            else if (!is_bws(c))
                goto fail;
            break;
        case CK_EXT_VALUE0:
            if (c == '"')
                d->_state = CK_EXT_QUOTED;
            else if (http_ctype[c] & C_TOKEN)
                d->_state = CK_EXT_TOKEN;
            else if (!is_bws(c))
                goto fail;
            break;
        case CK_EXT_QUOTED:
            if (c == '"')
                d->_state = CK_EXT_QEND;
            else if (c == '\\')
                d->_state = CK_EXT_QPAIR;
            else if (!(http_ctype[c] & C_VALUE))
                goto fail;
            break;
        case CK_EXT_QPAIR:
            if (!(http_ctype[c] & C_VALUE))
                goto fail;
            d->_state = CK_EXT_QUOTED;
            break;
        case CK_EXT_QEND:
            if (c == ';')
                d->_state = CK_EXT_NAME0;
            else if (is_bws(c))
                d->_state = CK_EXT_BWS;
            else if (c == '\r')
                d->_state = CK_SIZE_LF;
            else
                goto fail;
            break;
        case CK_SIZE_LF:
            if (c != '\n')
                goto fail;
            d->_line = 0;
            d->_state = d->_size ? CK_DATA : CK_TRAILER0;
            break;
        case CK_DATA_CR:
            if (c != '\r')
                goto fail;
            d->_state = CK_DATA_LF;
            break;
        case CK_DATA_LF:
            if (c != '\n')
                goto fail;
            d->_size = 0;
            d->_count = 0;
            d->_state = CK_SIZE;
            break;
        case CK_TRAILER0:
            if (c == '\r')
                d->_state = CK_END_LF;
            else if (http_ctype[c] & C_TOKEN)
                d->_state = CK_TRAILER_NAME; /* obs-fold, ':' or LF fail */
            else
                goto fail;
            break;
        case CK_TRAILER_NAME:
            if (c == ':')
                d->_state = CK_TRAILER_VALUE;
            else if (!(http_ctype[c] & C_TOKEN))
                goto fail;
            break;
        case CK_TRAILER_VALUE:
            if (c == '\r')
                d->_state = CK_TRAILER_LF;
            else if (!(http_ctype[c] & C_VALUE))
                goto fail;
            break;
        case CK_TRAILER_LF:
            if (c != '\n')
                goto fail;
            d->_state = CK_TRAILER0;
            break;
        case CK_END_LF:
            if (c != '\n')
                goto fail;
            d->_state = CK_DONE;
            *len = dst;
            return (int)(n - src);
        default: goto fail;
        }
    }
    *len = dst;
    return PX_HTTP_INCOMPLETE;

fail:
    d->_state = CK_ERROR;
    d->status = st;
    return PX_HTTP_ERROR;
}
