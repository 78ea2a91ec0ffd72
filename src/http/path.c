/*
 * Request paths: the strict decoder for file names under a document root and
 * the lenient one for route parameters. See include/px/http_path.h.
 */
#include "px/http_path.h"

#include <errno.h>
#include <limits.h>

#include "grammar.h"

int px_http_path_decode(const char *in_, size_t len, char *out, size_t outcap)
{
    const unsigned char *in = (const unsigned char *)in_;
    size_t i = 1, o = 1, seg = 1;

    if (len == 0 || in[0] != '/')
        return -EINVAL;
    if (outcap > (size_t)INT_MAX)
        outcap = (size_t)INT_MAX;
    if (outcap < 2)
        return -ENAMETOOLONG;
    out[0] = '/';
    for (;;) {
        int c = -1; /* -1: end of input, which closes the last segment */
        if (i < len) {
            c = in[i++];
            if (c == '%') {
                if (len - i < 2 || !http_hexval[in[i]] || !http_hexval[in[i + 1]])
                    return -EINVAL;
                c = (http_hexval[in[i]] - 1) << 4 | (http_hexval[in[i + 1]] - 1);
                i += 2;
            }
            if (c == 0 || c == '\\')
                return -EINVAL;
        }
        if (c == '/' || c == -1) {
            size_t sl = o - seg;
            if (sl == 2 && out[seg] == '.' && out[seg + 1] == '.')
                return -EINVAL;
            if (sl == 1 && out[seg] == '.') {
                o = seg;
            } else if (sl > 0 && c == '/') {
                if (o >= outcap - 1)
                    return -ENAMETOOLONG;
                out[o++] = '/';
                seg = o;
            }
            if (c == -1)
                break;
            continue;
        }
        if (o >= outcap - 1)
            return -ENAMETOOLONG;
        out[o++] = (char)c;
    }
    out[o] = '\0';
    return (int)o;
}

int px_http_unquote(const char *in_, size_t len, char *out, size_t outcap)
{
    const unsigned char *in = (const unsigned char *)in_;
    size_t i = 0, o = 0;

    if (len > (size_t)INT_MAX)
        return -EOVERFLOW;
    while (i < len) {
        unsigned c = in[i++];
        /* A '%' without two hex digits after it is an ordinary byte. */
        if (c == '%' && len - i >= 2 && HTTP_HEX(in[i]) && HTTP_HEX(in[i + 1])) {
            c = (unsigned)(HTTP_HEX(in[i]) - 1) << 4 | (unsigned)(HTTP_HEX(in[i + 1]) - 1);
            i += 2;
        }
        if (o == outcap)
            return -ENAMETOOLONG;
        out[o++] = (char)c;
    }
    return (int)o;
}
