/* The table of inherited listening sockets (px/listen_fds.h). Sockets are
 * known by their inode: a dup of an adopted descriptor is the same socket. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "px/listen_fds.h"

typedef struct entry {
    int fd;
    int group;
    dev_t dev;
    ino_t ino;
} entry_t;

static pthread_mutex_t table_lock = PTHREAD_MUTEX_INITIALIZER;
static entry_t *table;
static int table_len, table_cap, groups;

static int identify(int fd, dev_t *dev, ino_t *ino)
{
    struct stat st;

    if (fstat(fd, &st) < 0)
        return -errno;
    if (!S_ISSOCK(st.st_mode))
        return -EINVAL;
    *dev = st.st_dev;
    *ino = st.st_ino;
    return 0;
}

static int grow(int need)
{
    entry_t *t;
    int cap = table_cap ? table_cap : 8;

    while (cap < need)
        cap *= 2;
    if (cap == table_cap)
        return 0;
    t = realloc(table, sizeof(*t) * (size_t)cap);
    if (t == NULL)
        return -ENOMEM;
    table = t;
    table_cap = cap;
    return 0;
}

int px_listen_fds_adopt(const int *fds, int n)
{
    int i, rc, added = 0;

    if (n <= 0 || n > PX_LISTEN_GROUP_MAX)
        return -EINVAL;
    pthread_mutex_lock(&table_lock);
    rc = grow(table_len + n);
    for (i = 0; rc == 0 && i < n; i++) {
        entry_t *e = &table[table_len + i];
        int flags;

        rc = identify(fds[i], &e->dev, &e->ino);
        if (rc < 0)
            break;
        e->fd = fcntl(fds[i], F_DUPFD_CLOEXEC, 3);
        if (e->fd < 0) {
            rc = -errno;
            break;
        }
        added++;
        /* A service manager's sockets may block; the engine's never do. */
        flags = fcntl(e->fd, F_GETFL);
        if (flags >= 0 && !(flags & O_NONBLOCK))
            (void)fcntl(e->fd, F_SETFL, flags | O_NONBLOCK);
        e->group = groups;
    }
    if (rc < 0) {
        while (added-- > 0)
            close(table[table_len + added].fd);
    } else {
        table_len += n;
        groups++;
    }
    pthread_mutex_unlock(&table_lock);
    return rc;
}

int px_listen_fds_group(int fd, int *out, int max)
{
    dev_t dev;
    ino_t ino;
    int i, group = -1, count = 0;
    int rc = identify(fd, &dev, &ino);

    if (rc == -EINVAL)
        return 0; /* not a socket: not ours either */
    if (rc < 0)
        return rc;
    pthread_mutex_lock(&table_lock);
    for (i = 0; i < table_len && group < 0; i++)
        if (table[i].dev == dev && table[i].ino == ino)
            group = table[i].group;
    for (i = 0; group >= 0 && i < table_len && count < max; i++)
        if (table[i].group == group)
            out[count++] = table[i].fd;
    pthread_mutex_unlock(&table_lock);
    return count;
}
