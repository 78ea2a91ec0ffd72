/*
 * The io_uring probe: which of the features the engine uses (PX_URING_* in
 * px/engine.h) this kernel offers.
 *
 * The opcode table says little: multishot accept and receive, provided-buffer
 * rings and cancel by file are flags and registrations of old opcodes. So
 * each feature is tried for real, on a small ring of the probe's own, with
 * sockets it makes for the purpose (socket pairs, and a listening Unix socket
 * in the abstract namespace: no file, no port). A kernel that does not know a
 * feature answers the request with -EINVAL at once; every wait is bounded all
 * the same, and a feature that does not answer in time counts as missing.
 */
#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "internal.h"
#include "uring.h"

#define PROBE_ENTRIES 8        /* submission slots of the probe's ring */
#define PROBE_BUFS 2           /* provided buffers (a power of two) */
#define PROBE_BUF_SIZE 64      /* bytes each */
#define PROBE_BUFS_OFFSET 1024 /* where they start in the page of the buffer ring */
#define PROBE_WAIT_MS 1000     /* the longest wait for one completion */

/* user_data of the probe's requests. */
enum {
    TAG_RECV = 1,
    TAG_CAP,
    TAG_ACCEPT,
    TAG_POLL,
    TAG_CANCEL
};

typedef struct probe {
    struct io_uring ring;
    void *page; /* the buffer ring, then the buffers */
    size_t page_size;
    struct io_uring_buf_ring *br;
    char *bufs;
} probe_t;

static const struct {
    unsigned bit;
    const char *key;  /* for PX_URING_MASK */
    const char *name; /* for the line that says why epoll serves */
} features[] = {
    {PX_URING_SETUP, "setup", "the ring set-up the engine asks for (Linux 5.19)"},
    {PX_URING_OPS, "ops", "an operation the engine submits (accept, recv, sendmsg, poll, cancel)"},
    {PX_URING_BUF_RING, "buf_ring", "provided buffer rings (Linux 5.19)"},
    {PX_URING_RECV_MULTISHOT, "recv_multishot", "multishot receive (Linux 6.0)"},
    {PX_URING_ACCEPT_MULTISHOT, "accept_multishot", "multishot accept (Linux 5.19)"},
    {PX_URING_CANCEL_FD, "cancel_fd", "cancelling by file descriptor (Linux 5.19)"},
    {PX_URING_RECV_CAP, "recv_cap", "a byte cap on multishot receives"},
};

const char *px_uring_feature_name(unsigned f)
{
    size_t i;

    for (i = 0; i < PX_ARRAY_SIZE(features); i++)
        if (features[i].bit == f)
            return features[i].name;
    return NULL;
}

unsigned px_uring_mask_parse(const char *s)
{
    unsigned mask = 0;
    size_t i, n;

    while (s != NULL && *s != '\0') {
        n = strcspn(s, ",");
        for (i = 0; i < PX_ARRAY_SIZE(features); i++)
            if (strlen(features[i].key) == n && memcmp(features[i].key, s, n) == 0)
                mask |= features[i].bit;
        s += n;
        if (*s == ',')
            s++;
    }
    return mask;
}

/* The next completion of the request tagged tag, at most PROBE_WAIT_MS away;
 * completions of other requests are consumed on the way (their buffers given
 * back). 0 or -errno (-ETIME). */
static int probe_wait(probe_t *p, uint64_t tag, struct io_uring_cqe *out)
{
    struct __kernel_timespec ts = {
        .tv_sec = PROBE_WAIT_MS / 1000,
        .tv_nsec = (PROBE_WAIT_MS % 1000) * 1000000LL,
    };
    struct io_uring_cqe *cqe;
    int rc;

    for (;;) {
        rc = io_uring_wait_cqe_timeout(&p->ring, &cqe, &ts);
        if (rc < 0)
            return rc;
        *out = *cqe;
        io_uring_cqe_seen(&p->ring, cqe);
        if (out->flags & IORING_CQE_F_BUFFER) {
            unsigned bid = out->flags >> IORING_CQE_BUFFER_SHIFT;
            io_uring_buf_ring_add(p->br, p->bufs + (size_t)bid * PROBE_BUF_SIZE, PROBE_BUF_SIZE,
                                  (unsigned short)bid, io_uring_buf_ring_mask(PROBE_BUFS), 0);
            io_uring_buf_ring_advance(p->br, 1);
        }
        if (io_uring_cqe_get_data64(out) == tag)
            return 0;
    }
}

static bool has_ops(probe_t *p)
{
    static const int ops[] = {IORING_OP_ACCEPT, IORING_OP_RECV, IORING_OP_SENDMSG,
                              IORING_OP_POLL_ADD, IORING_OP_ASYNC_CANCEL};
    struct io_uring_probe *probe = io_uring_get_probe_ring(&p->ring);
    bool ok = probe != NULL;
    size_t i;

    for (i = 0; ok && i < PX_ARRAY_SIZE(ops); i++)
        ok = io_uring_opcode_supported(probe, ops[i]);
    if (probe != NULL)
        io_uring_free_probe(probe);
    return ok;
}

static bool has_buf_ring(probe_t *p)
{
    struct io_uring_buf_reg reg;
    unsigned i;

    p->page_size = (size_t)sysconf(_SC_PAGESIZE);
    p->page = mmap(NULL, p->page_size, PROT_READ | PROT_WRITE, MAP_ANONYMOUS | MAP_PRIVATE, -1, 0);
    if (p->page == MAP_FAILED) {
        p->page = NULL;
        return false;
    }
    p->br = p->page;
    p->bufs = (char *)p->page + PROBE_BUFS_OFFSET;
    io_uring_buf_ring_init(p->br);
    memset(&reg, 0, sizeof(reg));
    reg.ring_addr = (unsigned long)p->br;
    reg.ring_entries = PROBE_BUFS;
    reg.bgid = PX_URING_BUF_GROUP;
    if (io_uring_register_buf_ring(&p->ring, &reg, 0) < 0)
        return false;
    for (i = 0; i < PROBE_BUFS; i++)
        io_uring_buf_ring_add(p->br, p->bufs + (size_t)i * PROBE_BUF_SIZE, PROBE_BUF_SIZE,
                              (unsigned short)i, io_uring_buf_ring_mask(PROBE_BUFS), (int)i);
    io_uring_buf_ring_advance(p->br, PROBE_BUFS);
    return true;
}

/* Arm a multishot receive into the provided buffers on sv[0] with two bytes
 * waiting, capped at cap bytes (0: no cap). First completion in *first; the
 * receive has ended when this returns (EOF ends one that goes on). */
static int recv_once(probe_t *p, uint64_t tag, unsigned cap, struct io_uring_cqe *first)
{
    struct io_uring_sqe *sqe;
    struct io_uring_cqe cqe;
    int sv[2], rc;

    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) < 0)
        return -errno;
    rc = -EIO;
    if (write(sv[1], "px", 2) != 2 || (sqe = io_uring_get_sqe(&p->ring)) == NULL)
        goto out;
    io_uring_prep_recv_multishot(sqe, sv[0], NULL, 0, 0);
    sqe->flags |= IOSQE_BUFFER_SELECT;
    sqe->buf_group = PX_URING_BUF_GROUP;
    sqe->file_index = cap; /* the cap is sqe->optlen, which liburing 2.3 calls file_index */
    io_uring_sqe_set_data64(sqe, tag);
    rc = io_uring_submit(&p->ring);
    if (rc < 0)
        goto out;
    rc = probe_wait(p, tag, first);
    if (rc == 0 && (first->flags & IORING_CQE_F_MORE)) {
        shutdown(sv[1], SHUT_WR); /* still armed: end it with EOF */
        while (probe_wait(p, tag, &cqe) == 0 && (cqe.flags & IORING_CQE_F_MORE))
            ;
    }
out:
    close(sv[0]);
    close(sv[1]);
    return rc;
}

/* Multishot: the first completion says more are coming. */
static bool has_recv_multishot(probe_t *p)
{
    struct io_uring_cqe cqe;

    return recv_once(p, TAG_RECV, 0, &cqe) == 0 && cqe.res == 2 && (cqe.flags & IORING_CQE_F_MORE);
}

/* A kernel that does not know the cap refuses the field with -EINVAL; one
 * that knows it ends a receive capped at one byte after its first completion
 * (which may overshoot the cap) instead of keeping it armed. */
static bool has_recv_cap(probe_t *p)
{
    struct io_uring_cqe cqe;

    return recv_once(p, TAG_CAP, 1, &cqe) == 0 && cqe.res > 0 && !(cqe.flags & IORING_CQE_F_MORE);
}

/* One connection accepted, and the accept stays armed. The request ends with
 * the ring. */
static bool has_accept_multishot(probe_t *p)
{
    struct sockaddr_un addr = {.sun_family = AF_UNIX};
    socklen_t len = sizeof(addr);
    struct io_uring_sqe *sqe;
    struct io_uring_cqe cqe;
    bool ok = false;
    int lfd, cfd = -1;

    lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (lfd < 0)
        return false;
    /* Binding just the family picks a free abstract name (autobind). */
    if (bind(lfd, (struct sockaddr *)&addr, sizeof(sa_family_t)) < 0 ||
        getsockname(lfd, (struct sockaddr *)&addr, &len) < 0 || listen(lfd, 1) < 0 ||
        (sqe = io_uring_get_sqe(&p->ring)) == NULL)
        goto out;
    io_uring_prep_multishot_accept(sqe, lfd, NULL, NULL, SOCK_CLOEXEC);
    io_uring_sqe_set_data64(sqe, TAG_ACCEPT);
    if (io_uring_submit(&p->ring) < 0)
        goto out;
    cfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (cfd < 0 || connect(cfd, (struct sockaddr *)&addr, len) < 0 ||
        probe_wait(p, TAG_ACCEPT, &cqe) < 0)
        goto out;
    ok = cqe.res >= 0 && (cqe.flags & IORING_CQE_F_MORE);
    if (cqe.res >= 0)
        close(cqe.res);
out:
    if (cfd >= 0)
        close(cfd);
    close(lfd);
    return ok;
}

/* Cancelling every request on a file finds the poll armed on it. */
static bool has_cancel_fd(probe_t *p)
{
    struct io_uring_sqe *sqe;
    struct io_uring_cqe cqe;
    bool ok = false;
    int sv[2];

    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) < 0)
        return false;
    if ((sqe = io_uring_get_sqe(&p->ring)) == NULL)
        goto out;
    io_uring_prep_poll_add(sqe, sv[0], POLLIN);
    io_uring_sqe_set_data64(sqe, TAG_POLL);
    if ((sqe = io_uring_get_sqe(&p->ring)) == NULL)
        goto out;
    io_uring_prep_cancel_fd(sqe, sv[0], IORING_ASYNC_CANCEL_ALL);
    io_uring_sqe_set_data64(sqe, TAG_CANCEL);
    if (io_uring_submit(&p->ring) < 0 || probe_wait(p, TAG_CANCEL, &cqe) < 0)
        goto out;
    ok = cqe.res >= 1; /* how many it cancelled */
out:
    close(sv[0]);
    close(sv[1]);
    return ok;
}

int px__uring_probe(unsigned *found)
{
    probe_t p;
    unsigned f = 0;
    int rc;

    *found = 0;
    if (getenv("PX_URING_REFUSE")) /* lets tests force the refusal path */
        return -EPERM;
    memset(&p, 0, sizeof(p));
    rc = px__uring_ring_init(&p.ring, PROBE_ENTRIES);
    if (rc == 0) {
        f |= PX_URING_SETUP;
    } else if (rc == -EINVAL) {
        /* An older kernel: a plain ring tells the rest. */
        rc = io_uring_queue_init(PROBE_ENTRIES, &p.ring, 0);
    }
    if (rc < 0)
        return rc;
    if (has_ops(&p))
        f |= PX_URING_OPS;
    if (has_buf_ring(&p)) {
        f |= PX_URING_BUF_RING;
        if (has_recv_multishot(&p)) {
            f |= PX_URING_RECV_MULTISHOT;
            if (has_recv_cap(&p))
                f |= PX_URING_RECV_CAP;
        }
    }
    if (has_accept_multishot(&p))
        f |= PX_URING_ACCEPT_MULTISHOT;
    if (has_cancel_fd(&p))
        f |= PX_URING_CANCEL_FD;
    io_uring_queue_exit(&p.ring);
    if (p.page != NULL)
        munmap(p.page, p.page_size);
    *found = f;
    return 0;
}
