/*
 * Private to the io_uring backend (backend_uring.c) and its probe
 * (uring_probe.c): how a ring is set up, so that the probe tests the ring the
 * workers will get.
 */
#ifndef PX_CORE_URING_H
#define PX_CORE_URING_H

#include <liburing.h>

/* The provided-buffer group of every receive. */
#define PX_URING_BUF_GROUP 0

/* Set up ring with entries submission slots as the workers want it. 0 or
 * -errno (-EINVAL: the kernel does not know a set-up flag). */
int px__uring_ring_init(struct io_uring *ring, unsigned entries);

#endif
