/* The WebSocket handshake's building blocks with their published test
 * vectors: SHA-1 (FIPS 180-4 examples), base64 (RFC 4648 section 10), the
 * accept key (RFC 6455 section 1.3), and incremental UTF-8 validation
 * (valid text, every class of invalid sequence, fail-fast, splits). */
#include "px/base64.h"
#include "px/sha1.h"
#include "px/websocket.h"
#include "px_test.h"

#include <errno.h>

static void hex(const uint8_t *d, size_t n, char *out)
{
    for (size_t i = 0; i < n; i++)
        sprintf(out + 2 * i, "%02x", d[i]);
}

static void check_sha1(const char *msg, size_t reps, const char *want)
{
    uint8_t d[PX_SHA1_LEN];
    char got[41];
    px_sha1_t s;

    px_sha1_init(&s);
    for (size_t i = 0; i < reps; i++)
        px_sha1_update(&s, msg, strlen(msg));
    px_sha1_final(&s, d);
    hex(d, sizeof(d), got);
    PX_CHECK_STR(got, want);
}

static void test_sha1(void)
{
    check_sha1("", 1, "da39a3ee5e6b4b0d3255bfef95601890afd80709");
    check_sha1("abc", 1, "a9993e364706816aba3e25717850c26c9cd0d89d");
    check_sha1("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq", 1,
               "84983e441c3bd26ebaae4aa1f95129e5e54670f1");
    check_sha1("a", 1000000, "34aa973cd4c4daa4f61eeb2bdbad27316534016f");
    /* 55, 56 and 64 bytes: the padding's edge cases */
    check_sha1("0123456789012345678901234567890123456789012345678901234", 1,
               "9f3a4ce7f66b1b74c34da2c5d732c39f81e0f8df");
    check_sha1("0", 56, "2a04b5125ba4030ef13232ecf1b72849f6ec9e97");
    check_sha1("0", 64, "0114498021cb8c4f1519f96bdf58dd806f3adb63");
}

static void test_base64(void)
{
    static const char *const vec[][2] = {{"", ""},
                                         {"f", "Zg=="},
                                         {"fo", "Zm8="},
                                         {"foo", "Zm9v"},
                                         {"foob", "Zm9vYg=="},
                                         {"fooba", "Zm9vYmE="},
                                         {"foobar", "Zm9vYmFy"}};
    char out[64], dec[64];

    for (size_t i = 0; i < PX_ARRAY_SIZE(vec); i++) {
        size_t n = px_base64_encode(vec[i][0], strlen(vec[i][0]), out);
        PX_CHECK_EQ(n, strlen(vec[i][1]));
        PX_CHECK_MEM(out, vec[i][1], n);
        PX_CHECK_EQ(px_base64_decode(vec[i][1], n, dec, sizeof(dec)), strlen(vec[i][0]));
        PX_CHECK_MEM(dec, vec[i][0], strlen(vec[i][0]));
    }
    PX_CHECK_EQ(px_base64_decode("Zh==", 4, dec, sizeof(dec)), -EINVAL); /* bits left set */
    PX_CHECK_EQ(px_base64_decode("Zm9", 3, dec, sizeof(dec)), -EINVAL);
    PX_CHECK_EQ(px_base64_decode("Zm=v", 4, dec, sizeof(dec)), -EINVAL);
    PX_CHECK_EQ(px_base64_decode("Zm9v Zg==", 9, dec, sizeof(dec)), -EINVAL);
    PX_CHECK_EQ(px_base64_decode("Zm9vYmFy", 8, dec, 5), -ENOSPC);
}

static void test_accept_key(void)
{
    char out[PX_WS_ACCEPT_LEN + 1];
    const char *key = "dGhlIHNhbXBsZSBub25jZQ==";

    px_ws_accept_key((px_view_t){key, strlen(key)}, out);
    PX_CHECK_STR(out, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
}

static int utf8(const char *s, size_t n)
{
    px_utf8_t u;

    px_utf8_init(&u);
    if (px_utf8_feed(&u, s, n) < 0)
        return -1;
    return px_utf8_complete(&u) ? 1 : 0;
}

static void test_utf8(void)
{
    static const char *const valid[] = {"",
                                        "hello",
                                        "\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5",
                                        "\xf4\x8f\xbf\xbf",
                                        "\xef\xbf\xbf",
                                        "\xed\x9f\xbf",
                                        "\xee\x80\x80",
                                        "\xf0\x90\x80\x80",
                                        "\xc2\x80",
                                        "0123456789abcdef0123456789abcdef\xc3\xa9"};
    static const char *const invalid[] = {
        "\x80",
        "\xbf",
        "\xc0\xaf",
        "\xc1\xbf", /* overlong 2 */
        "\xe0\x80\xaf",
        "\xf0\x80\x80\xaf",
        "\xed\xa0\x80",
        "\xed\xbf\xbf", /* surrogates */
        "\xf4\x90\x80\x80",
        "\xf5\x80\x80\x80",
        "\xfe",
        "\xff",
        "\xc2\x41",
        "hello\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xed\xa0\x80"
        "edited"};

    for (size_t i = 0; i < PX_ARRAY_SIZE(valid); i++)
        PX_CHECK_EQ(utf8(valid[i], strlen(valid[i])), 1);
    for (size_t i = 0; i < PX_ARRAY_SIZE(invalid); i++)
        PX_CHECK_EQ(utf8(invalid[i], strlen(invalid[i])), -1);
    /* cut sequences are incomplete, not invalid */
    PX_CHECK_EQ(utf8("\xf0\x90\x80", 3), 0);
    PX_CHECK_EQ(utf8("\xe2\x82", 2), 0);
    /* fed a byte at a time, the same verdicts; invalid at the first bad byte */
    {
        const char *s = "\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xf4\x90\x80\x80";
        px_utf8_t u;
        size_t i;

        px_utf8_init(&u);
        for (i = 0; i < strlen(s); i++)
            if (px_utf8_feed(&u, s + i, 1) < 0)
                break;
        PX_CHECK_EQ(i, 12);                             /* F4 90: the 90 can never follow F4 */
        PX_CHECK_EQ(px_utf8_feed(&u, "a", 1), -EILSEQ); /* stays in error */
    }
}

int main(void)
{
    test_sha1();
    test_base64();
    test_accept_key();
    test_utf8();
    printf("ok\n");
    return 0;
}
