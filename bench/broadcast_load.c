/*
 * Broadcast load generator for a chat server (every line any client sends goes
 * to every client): RECEIVERS connections that only read, SENDERS connections
 * that write one SIZE-byte line per send() and read as well, one epoll loop.
 *
 * Flow control, so that a server is measured at the rate it delivers rather
 * than at how much it can buffer: the senders stop while the slowest receiver
 * is WINDOW lines behind what was sent (at most WINDOW * SIZE bytes wait for
 * any client). Every line names its sender and a sequence number; each
 * receiver checks that it gets every sender's lines in order, none missing.
 * Lines the server sends of its own (a greeting starting with '*') are skipped.
 * A connection the server accepts late starts with the first line it gets from
 * each sender (the warm-up lets every connection in before counting starts).
 *
 * Counts between the end of WARMUP and the end of SECONDS and prints one line:
 *
 *   deliveries_per_sec=N sent_per_sec=N sender_deliveries_per_sec=N
 *   latency_ms_mean=X latency_ms_max=X seconds=S receivers=R senders=S size=B
 *   cpu=U server_cpu=U
 *
 * deliveries: lines read by the receivers; sender_deliveries: by the senders
 * (which get every line too); latency: from a sender's send() to reading its
 * own line back. cpu: this process's CPU time over the interval (1.0 = one CPU
 * busy: near 1 means the generator, not the server, may be the limit);
 * server_cpu: the same for process PID (from /proc), 0 without one. Exits 1 on
 * any error (refused connection, a connection the server closes, a line lost
 * or out of order).
 *
 *   broadcast_load HOST PORT [RECEIVERS=1000] [SENDERS=10] [SECONDS=4]
 *                  [SIZE=64] [WARMUP=1] [WINDOW=256] [PID=0]
 */
#define _GNU_SOURCE
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_SIZE 1024
#define MAX_SENDERS 99
#define RING 65536 /* send times kept per sender: more than any window */

struct conn {
    int fd;
    int sender;       /* its index among the senders, or -1 for a receiver */
    uint64_t lines;   /* lines of the senders read on it */
    uint64_t *expect; /* next sequence number expected from each sender */
    size_t part_len;  /* bytes of an unfinished line */
    char part[MAX_SIZE];
    size_t out_off; /* bytes of the current line written (senders) */
    uint64_t seq;   /* sequence number of the line being written (senders) */
    int out_armed;
};

static size_t msg_size;
static int nsenders;
static double *sent_at; /* [sender][RING] */
static int measuring;
static double lat_sum, lat_max;
static uint64_t lat_count;
static uint64_t recv_lines, send_lines; /* totals read by receivers, by senders */

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double cpu_seconds(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
           (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

/* CPU seconds process pid has used (user + system), 0 when unknown. */
static double proc_cpu_seconds(int pid)
{
    char path[64], buf[1024], *p;
    unsigned long long ut, st;
    FILE *f;
    size_t n;

    if (pid <= 0)
        return 0;
    snprintf(path, sizeof(path), "/proc/%d/stat", pid);
    f = fopen(path, "r");
    if (f == NULL)
        return 0;
    n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = 0;
    p = strrchr(buf, ')'); /* the command name may hold spaces */
    if (p == NULL ||
        sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut, &st) != 2)
        return 0;
    return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

static void die(const char *what)
{
    fprintf(stderr, "broadcast_load: %s: %s\n", what, strerror(errno));
    exit(1);
}

static void fail(const char *what)
{
    fprintf(stderr, "broadcast_load: %s\n", what);
    exit(1);
}

static int connect_to(const struct addrinfo *ai)
{
    int one = 1;
    int fd = socket(ai->ai_family, ai->ai_socktype, ai->ai_protocol);

    if (fd < 0)
        die("socket");
    if (connect(fd, ai->ai_addr, ai->ai_addrlen) < 0)
        die("connect");
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    return fd;
}

/* Line seq of sender s: "SS NNNNNNNNNNNN xxx...\n", SIZE bytes. */
static void format_line(char *out, int s, uint64_t seq)
{
    int n = snprintf(out, msg_size, "%02d %012llu ", s, (unsigned long long)seq);
    memset(out + n, 'x', msg_size - (size_t)n - 1);
    out[msg_size - 1] = '\n';
}

/* One complete line (without its newline) read on c. */
static void take_line(struct conn *c, const char *line, size_t len)
{
    unsigned s;
    uint64_t seq = 0;
    int k;

    if (len > 0 && line[0] == '*')
        return; /* the server's own line */
    /* "SS NNNNNNNNNNNN ": parsed by hand, sscanf would cost more than the rest */
    if (len != msg_size - 1 || line[2] != ' ' || line[15] != ' ')
        fail("a line that no sender sent");
    s = (unsigned)(line[0] - '0') * 10 + (unsigned)(line[1] - '0');
    for (k = 3; k < 15; k++)
        seq = seq * 10 + (uint64_t)(line[k] - '0');
    if (s >= (unsigned)nsenders)
        fail("a line that no sender sent");
    if (c->expect[s] == UINT64_MAX) {
        /* A connection the server took in after the first lines were sent
         * starts with a later one; those it missed count as read for the
         * window, not for the rates (the warm-up covers them). */
        c->expect[s] = seq;
        c->lines += seq;
    }
    if (seq != c->expect[s]) {
        fprintf(stderr, "broadcast_load: sender %u: line %llu where %llu was due\n", s,
                (unsigned long long)seq, (unsigned long long)c->expect[s]);
        exit(1);
    }
    c->expect[s]++;
    c->lines++;
    if (c->sender < 0) {
        recv_lines++;
    } else {
        send_lines++;
        if (c->sender == (int)s && measuring) {
            double lat = now() - sent_at[(size_t)s * RING + seq % RING];
            lat_sum += lat;
            lat_count++;
            if (lat > lat_max)
                lat_max = lat;
        }
    }
}

static void pump_in(struct conn *c)
{
    char buf[1 << 16];

    for (;;) {
        ssize_t n = recv(c->fd, buf, sizeof(buf), MSG_DONTWAIT);
        const char *p, *end, *nl;

        if (n < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                return;
            if (errno == EINTR)
                continue;
            die("recv");
        }
        if (n == 0)
            fail("the server closed a connection");
        p = buf;
        end = buf + n;
        if (c->part_len > 0) { /* finish the line begun in the last read */
            nl = memchr(p, '\n', (size_t)(end - p));
            size_t take = nl ? (size_t)(nl - p) : (size_t)(end - p);
            if (c->part_len + take >= MAX_SIZE)
                fail("a line longer than any sent");
            memcpy(c->part + c->part_len, p, take);
            c->part_len += take;
            if (nl == NULL)
                continue;
            take_line(c, c->part, c->part_len);
            c->part_len = 0;
            p = nl + 1;
        }
        while ((nl = memchr(p, '\n', (size_t)(end - p))) != NULL) {
            take_line(c, p, (size_t)(nl - p));
            p = nl + 1;
        }
        if (p < end) {
            if ((size_t)(end - p) >= MAX_SIZE)
                fail("a line longer than any sent");
            memcpy(c->part, p, (size_t)(end - p));
            c->part_len = (size_t)(end - p);
        }
        if (n < (ssize_t)sizeof(buf))
            return;
    }
}

/* Write the rest of sender c's current line; 1 when it is all out. */
static int pump_out(struct conn *c)
{
    char line[MAX_SIZE];

    format_line(line, c->sender, c->seq);
    while (c->out_off < msg_size) {
        ssize_t n = send(c->fd, line + c->out_off, msg_size - c->out_off,
                         MSG_DONTWAIT | MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                return 0;
            if (errno == EINTR)
                continue;
            die("send");
        }
        c->out_off += (size_t)n;
    }
    return 1;
}

/* True once every connection has had a line from every sender: the server
 * has taken them all in. */
static int all_joined(const struct conn *conns, int nconns)
{
    for (int i = 0; i < nconns; i++)
        for (int s = 0; s < nsenders; s++)
            if (conns[i].expect[s] == UINT64_MAX)
                return 0;
    return 1;
}

static void arm_out(int ep, struct conn *c, int on)
{
    struct epoll_event ev = {.events = EPOLLIN | (on ? EPOLLOUT : 0), .data.ptr = c};

    if (on != c->out_armed && epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev) < 0)
        die("epoll_ctl");
    c->out_armed = on;
}

int main(int argc, char **argv)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *ai;
    struct epoll_event evs[512];
    struct conn *conns;
    int nrecv, nconns, ep, i, rc, pid, rr = 0;
    double secs, warmup, t0, t_start = 0, t_end, cpu_start = 0, srv_start = 0;
    uint64_t window, sent = 0, slowest = 0, sent_start = 0, recv_start = 0, send_start = 0;

    if (argc < 3) {
        fprintf(stderr, "usage: broadcast_load HOST PORT [RECEIVERS] [SENDERS] [SECONDS] [SIZE] "
                        "[WARMUP] [WINDOW] [PID]\n");
        return 2;
    }
    nrecv = argc > 3 ? atoi(argv[3]) : 1000;
    nsenders = argc > 4 ? atoi(argv[4]) : 10;
    secs = argc > 5 ? atof(argv[5]) : 4.0;
    msg_size = argc > 6 ? (size_t)atol(argv[6]) : 64;
    warmup = argc > 7 ? atof(argv[7]) : 1.0;
    window = argc > 8 ? (uint64_t)atoll(argv[8]) : 256;
    pid = argc > 9 ? atoi(argv[9]) : 0;
    if (nrecv < 1 || nsenders < 1 || nsenders > MAX_SENDERS || secs <= 0 || msg_size < 20 ||
        msg_size >= MAX_SIZE || warmup < 0 || window < 1 || window >= RING) {
        fprintf(stderr, "broadcast_load: bad arguments\n");
        return 2;
    }
    {
        struct rlimit rl;
        if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
            rl.rlim_cur = rl.rlim_max;
            setrlimit(RLIMIT_NOFILE, &rl);
        }
    }
    rc = getaddrinfo(argv[1], argv[2], &hints, &ai);
    if (rc != 0) {
        fprintf(stderr, "broadcast_load: %s: %s\n", argv[1], gai_strerror(rc));
        return 1;
    }
    ep = epoll_create1(0);
    if (ep < 0)
        die("epoll_create1");
    nconns = nrecv + nsenders;
    conns = calloc((size_t)nconns, sizeof(*conns));
    sent_at = calloc((size_t)nsenders * RING, sizeof(*sent_at));
    if (!conns || !sent_at)
        die("calloc");
    for (i = 0; i < nconns; i++) {
        struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &conns[i]};
        conns[i].fd = connect_to(ai);
        conns[i].sender = i < nrecv ? -1 : i - nrecv;
        conns[i].expect = malloc((size_t)nsenders * sizeof(uint64_t));
        if (!conns[i].expect)
            die("malloc");
        memset(conns[i].expect, 0xff, (size_t)nsenders * sizeof(uint64_t)); /* none seen yet */
        if (epoll_ctl(ep, EPOLL_CTL_ADD, conns[i].fd, &ev) < 0)
            die("epoll_ctl");
    }
    freeaddrinfo(ai);
    /* Let the server take in every connection before the first line. */
    usleep(200000);

    t0 = now();
    t_end = t0 + warmup + secs + 3600; /* set when the measurement starts */
    for (;;) {
        double t = now();
        int n, can_send;

        if (!measuring && t >= t0 + warmup && all_joined(conns, nconns)) {
            measuring = 1;
            t_start = t;
            t_end = t + secs;
            cpu_start = cpu_seconds();
            srv_start = proc_cpu_seconds(pid);
            sent_start = sent;
            recv_start = recv_lines;
            send_start = send_lines;
        }
        if (t >= t_end)
            break;
        if (!measuring && t >= t0 + warmup + 30)
            fail("some connections got no line within 30 s of the warm-up");
        /* Send while the slowest client is less than a window behind. */
        if (sent - slowest >= window) {
            slowest = UINT64_MAX;
            for (i = 0; i < nconns; i++)
                if (conns[i].lines < slowest)
                    slowest = conns[i].lines;
        }
        can_send = 0;
        while (sent - slowest < window) {
            struct conn *c = NULL;
            for (i = 0; i < nsenders && c == NULL; i++) {
                struct conn *s = &conns[nrecv + (rr++ % nsenders)];
                if (!s->out_armed)
                    c = s;
            }
            if (c == NULL)
                break; /* every sender waits for room in its socket */
            sent_at[(size_t)c->sender * RING + c->seq % RING] = now();
            sent++;
            if (pump_out(c)) {
                c->seq++;
                c->out_off = 0;
            } else {
                arm_out(ep, c, 1);
            }
            can_send = 1;
        }
        n = epoll_wait(ep, evs, 512, can_send ? 0 : 10);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            die("epoll_wait");
        }
        for (i = 0; i < n; i++) {
            struct conn *c = evs[i].data.ptr;

            if (evs[i].events & (EPOLLERR | EPOLLHUP))
                fail("connection error (the server closed a connection)");
            if (evs[i].events & EPOLLIN)
                pump_in(c);
            if ((evs[i].events & EPOLLOUT) && c->out_armed && pump_out(c)) {
                c->seq++;
                c->out_off = 0;
                arm_out(ep, c, 0);
            }
        }
    }
    {
        double elapsed = now() - t_start;
        double cpu = (cpu_seconds() - cpu_start) / elapsed;
        double srv = pid > 0 ? (proc_cpu_seconds(pid) - srv_start) / elapsed : 0;

        printf("deliveries_per_sec=%.0f sent_per_sec=%.0f sender_deliveries_per_sec=%.0f "
               "latency_ms_mean=%.3f latency_ms_max=%.3f seconds=%.3f receivers=%d senders=%d "
               "size=%zu cpu=%.2f server_cpu=%.2f\n",
               (double)(recv_lines - recv_start) / elapsed, (double)(sent - sent_start) / elapsed,
               (double)(send_lines - send_start) / elapsed,
               lat_count ? lat_sum / (double)lat_count * 1e3 : 0.0, lat_max * 1e3, elapsed, nrecv,
               nsenders, msg_size, cpu, srv);
    }
    for (i = 0; i < nconns; i++) {
        close(conns[i].fd);
        free(conns[i].expect);
    }
    free(conns);
    free(sent_at);
    close(ep);
    return 0;
}
