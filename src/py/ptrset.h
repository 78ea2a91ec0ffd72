/* A set of object addresses (ptrset.c): what share() has seen and kept. */
#ifndef PX_PY_PTRSET_H
#define PX_PY_PTRSET_H

#include <stddef.h>
#include <stdint.h>

/* Zero-initialised is empty. Not thread-safe: its owner serialises use. */
typedef struct px_py_ptrset {
    uintptr_t *slots; /* 0 = empty */
    size_t cap;       /* a power of two */
    size_t len;
} px_py_ptrset_t;

/* 1 if ptr was added, 0 if it was there, -1 when out of memory. */
int px_py_ptrset_add(px_py_ptrset_t *s, const void *ptr);
/* Release the set's memory; it is empty again. */
void px_py_ptrset_free(px_py_ptrset_t *s);

#endif
