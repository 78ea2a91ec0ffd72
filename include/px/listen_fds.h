/*
 * Listening sockets a process is handed instead of binding its own: by the
 * service manager (socket activation, the LISTEN_FDS convention) or by the old
 * process of a zero-downtime restart. Parsing the environment is the embedder's
 * business; the engine only needs to know which sockets belong together.
 *
 * A group is every inherited socket bound to one address: one socket from a
 * service manager, or one per worker of the old process (SO_REUSEPORT). A
 * listen whose listen_fd is a socket of a group serves every socket of the
 * group and binds nothing (px_engine_listen).
 */
#ifndef PX_LISTEN_FDS_H
#define PX_LISTEN_FDS_H

#include "px/common.h"

#define PX_LISTEN_GROUP_MAX 256 /* sockets in one group */

/* Record fds[0..n) as one group. The table keeps duplicates (close-on-exec,
 * non-blocking), so the caller keeps its own descriptors. Any thread.
 * 0, -EINVAL (n out of range, a descriptor that is not a socket), -ENOMEM,
 * or -errno of dup/fstat. */
int px_listen_fds_adopt(const int *fds, int n);

/* The table's descriptors of the group holding the socket fd refers to (the
 * same socket, whatever the descriptor number), at most max of them, in the
 * order adopted. Returns their count, 0 when fd is no adopted socket, or
 * -errno of fstat. The descriptors stay the table's. Any thread. */
int px_listen_fds_group(int fd, int *out, int max);

#endif
