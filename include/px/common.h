/* Small shared definitions of the engine: branch hints, container_of, views. */
#ifndef PX_COMMON_H
#define PX_COMMON_H

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>

#define PX_LIKELY(x) __builtin_expect(!!(x), 1)
#define PX_UNLIKELY(x) __builtin_expect(!!(x), 0)

#define PX_CONTAINER_OF(ptr, type, member) ((type *)((char *)(ptr)-offsetof(type, member)))

#define PX_ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
#define PX_MIN(a, b) ((a) < (b) ? (a) : (b))
#define PX_MAX(a, b) ((a) > (b) ? (a) : (b))

/* Cache line, to keep per-thread hot data apart. */
#define PX_CACHELINE 64

/* A read-only view into memory owned by someone else (a receive buffer, mostly). */
typedef struct px_view {
    const char *base;
    size_t len;
} px_view_t;

#endif
