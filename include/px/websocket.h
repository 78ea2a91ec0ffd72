/*
 * WebSocket (RFC 6455), the protocol alone: the opening handshake checked and
 * answered, a strict incremental frame parser, the frame writer, close codes.
 * Nothing here touches a connection or allocates; px/ws_server.h puts it on
 * the HTTP server's connections. Pure: any thread, each on its own state.
 */
#ifndef PX_WEBSOCKET_H
#define PX_WEBSOCKET_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "px/common.h"
#include "px/http_parser.h"
#include "px/utf8.h"

/* Opcodes (section 5.2). */
enum {
    PX_WS_CONTINUATION = 0x0,
    PX_WS_TEXT = 0x1,
    PX_WS_BINARY = 0x2,
    PX_WS_CLOSE = 0x8,
    PX_WS_PING = 0x9,
    PX_WS_PONG = 0xa,
};

/* Or'ed into an opcode for px_ws_frame_header: the frame's RSV1 bit, which
 * marks a compressed message's first frame under permessage-deflate. */
#define PX_WS_RSV1 0x40

/* Close codes (section 7.4.1) the server sends. */
enum {
    PX_WS_CLOSE_NORMAL = 1000,
    PX_WS_CLOSE_GOING_AWAY = 1001,
    PX_WS_CLOSE_PROTOCOL = 1002,
    PX_WS_CLOSE_UNSUPPORTED = 1003,
    PX_WS_CLOSE_NO_STATUS = 1005, /* never sent: a close frame without a code */
    PX_WS_CLOSE_ABNORMAL = 1006,  /* never sent: no close frame at all */
    PX_WS_CLOSE_INVALID_DATA = 1007,
    PX_WS_CLOSE_POLICY = 1008,
    PX_WS_CLOSE_TOO_BIG = 1009,
    PX_WS_CLOSE_INTERNAL = 1011,
    PX_WS_CLOSE_TRY_AGAIN = 1013, /* over the server's memory budget */
};

/* The longest payload of a control frame (section 5.5). */
#define PX_WS_MAX_CONTROL 125
/* The longest frame header: 2 bytes, 8 of length, 4 of mask. */
#define PX_WS_MAX_HEADER 14
/* Sec-WebSocket-Accept's length (base64 of a SHA-1). */
#define PX_WS_ACCEPT_LEN 28

/* True for a close code a peer may send in a close frame: 1000-1003,
 * 1007-1011 (1012-1014 as registered since), and 3000-4999. */
bool px_ws_close_code_valid(unsigned code);

/* ---- opening handshake (section 4.2) ---------------------------------------- */

typedef struct px_ws_handshake {
    px_view_t key;    /* Sec-WebSocket-Key as sent */
    px_view_t origin; /* Origin, or empty */
    int status;       /* on failure: the HTTP status to answer */
} px_ws_handshake_t;

/* Check that req (a parsed request head whose headers the caller kept) asks
 * for a WebSocket: GET, HTTP/1.1, Upgrade: websocket, Connection: upgrade, a
 * Sec-WebSocket-Key that is base64 of 16 bytes, Sec-WebSocket-Version 13, no
 * body. 0 with out filled; -EINVAL with out->status 400 (a malformed or
 * incomplete upgrade), 426 (a version other than 13: answer with
 * "Sec-WebSocket-Version: 13") or 405 (not GET). Views point into req. */
int px_ws_handshake_check(const px_http_request_t *req, px_ws_handshake_t *out);

/* Sec-WebSocket-Accept of key (section 4.2.2): base64(SHA-1(key + GUID)) in
 * out (PX_WS_ACCEPT_LEN bytes + NUL). */
void px_ws_accept_key(px_view_t key, char out[PX_WS_ACCEPT_LEN + 1]);

/* True when name[0..len) is one of the subprotocols req offers (its
 * Sec-WebSocket-Protocol headers, comma-separated lists; compared exactly, as
 * section 4.1 says they are case-sensitive). */
bool px_ws_protocol_offered(const px_http_request_t *req, const char *name, size_t len);

/* The value of req's first header called name (case-insensitive), or an
 * empty view with a NULL base. */
px_view_t px_ws_header(const px_http_request_t *req, const char *name);

/* ---- frames (section 5) ------------------------------------------------------ */

/* What the parser hands over. Payload bytes come unmasked, in pieces: a data
 * frame's as they arrive, a control frame's whole at its end. */
typedef struct px_ws_parser_cb {
    /* len payload bytes of the message being received (opcode: its first
     * frame's, TEXT or BINARY); fin: the message ends with them. A message's
     * total never passes max_message; its text is valid UTF-8 so far (whole
     * at fin), unless it is compressed (the parser's compressed: the
     * callback inflates and checks it). < 0 stops the parser with that
     * return, and its close code follows it: -EMSGSIZE 1009, -EILSEQ 1007,
     * -EPROTO 1002, -ENOBUFS 1013, anything else 1011. */
    int (*on_data)(void *arg, int opcode, const char *data, size_t len, bool fin);
    /* A complete control frame (CLOSE, PING, PONG), payload <= 125 bytes; a
     * CLOSE's code and reason checked (code 0: none). < 0 stops the parser. */
    int (*on_control)(void *arg, int opcode, const char *data, size_t len, unsigned code);
} px_ws_parser_cb_t;

typedef struct px_ws_parser {
    /* settings */
    uint64_t max_frame;   /* payload of one frame; over it: 1009 */
    uint64_t max_message; /* payload of one message (all its frames); 1009 */
    bool client;          /* parse a server's frames (unmasked); false: a
                             client's, which must be masked */
    bool deflate;         /* permessage-deflate was agreed: RSV1 may mark a
                             message's first frame (set after init) */
    /* results */
    unsigned close_code; /* after an error: the close code to send */
    bool compressed;     /* the message being received had RSV1 */
    /* private */
    uint8_t _hdr[PX_WS_MAX_HEADER];
    uint8_t _hdr_len, _hdr_need, _len_end;
    uint8_t _opcode, _fin, _rsv1;
    uint8_t _mask[4];
    bool _in_frame;   /* header read, payload follows */
    bool _in_message; /* a fragmented message awaits continuations */
    uint8_t _msg_opcode;
    uint64_t _left;    /* payload bytes of the frame not read yet */
    uint64_t _off;     /* payload bytes of the frame read (mask phase) */
    uint64_t _msg_len; /* payload of the message so far */
    px_utf8_t _utf8;
    uint8_t _ctl[PX_WS_MAX_CONTROL];
    uint8_t _ctl_len;
    int _err; /* sticky */
} px_ws_parser_t;

/* Prepare p (zeroed settings: max_frame/max_message 0 mean no limit but
 * UINT64_MAX >> 1). */
void px_ws_parser_init(px_ws_parser_t *p, uint64_t max_frame, uint64_t max_message, bool client);

/* Parse data[0..len), calling cb as frames complete. Returns the bytes
 * consumed (all of them unless a callback stopped it: then the bytes up to
 * and including what it was told), or < 0: -EPROTO (close_code 1002: bad
 * header bits, opcode, masking, length encoding, control frame rules,
 * continuation out of place, close payload), -EILSEQ (1007: invalid UTF-8 in
 * text or a close reason), -EMSGSIZE (1009: over max_frame or max_message,
 * seen from the header, before its payload), or a callback's error. An error
 * is sticky: further calls return it. */
ssize_t px_ws_parse(px_ws_parser_t *p, const char *data, size_t len, const px_ws_parser_cb_t *cb,
                    void *arg);

/* Write the header of a frame of len payload bytes (fin, opcode, which may
 * carry PX_WS_RSV1; mask: NULL
 * for a server's frame, else the 4 bytes it is masked with) into out. Returns
 * its length (2..14). The payload follows it as is (masking it is the
 * caller's: px_ws_mask). */
size_t px_ws_frame_header(uint8_t out[PX_WS_MAX_HEADER], bool fin, int opcode, uint64_t len,
                          const uint8_t *mask);

/* XOR data[0..len) with mask, the payload at offset off of its frame. */
void px_ws_mask(uint8_t *data, size_t len, const uint8_t mask[4], uint64_t off);

/* The payload of a close frame with code (0: none) and reason[0..len)
 * (cut to fit 123 bytes at a character boundary) in out; its length. */
size_t px_ws_close_payload(uint8_t out[PX_WS_MAX_CONTROL], unsigned code, const char *reason,
                           size_t len);

#endif
