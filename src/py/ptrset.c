/* A set of object addresses: open addressing, linear probing, kept at most
 * half full. Plain malloc: it is used while the walk holds share()'s lock. */
#include "ptrset.h"

#include <stdlib.h>
#include <string.h>

static size_t ptr_hash(uintptr_t p, size_t mask)
{
    uint64_t h = (uint64_t)p >> 4; /* objects are 16-byte aligned */
    h *= 0x9E3779B97F4A7C15ull;
    return (size_t)(h >> 17) & mask;
}

static int grow(px_py_ptrset_t *s)
{
    size_t cap = s->cap ? s->cap * 2 : 1024;
    uintptr_t *slots = calloc(cap, sizeof *slots);
    if (slots == NULL)
        return -1;
    for (size_t i = 0; i < s->cap; i++) {
        uintptr_t p = s->slots[i];
        if (p == 0)
            continue;
        size_t j = ptr_hash(p, cap - 1);
        while (slots[j] != 0)
            j = (j + 1) & (cap - 1);
        slots[j] = p;
    }
    free(s->slots);
    s->slots = slots;
    s->cap = cap;
    return 0;
}

int px_py_ptrset_add(px_py_ptrset_t *s, const void *ptr)
{
    uintptr_t p = (uintptr_t)ptr;
    if ((s->len + 1) * 2 > s->cap && grow(s) < 0)
        return -1;
    size_t mask = s->cap - 1;
    for (size_t j = ptr_hash(p, mask);; j = (j + 1) & mask) {
        if (s->slots[j] == p)
            return 0;
        if (s->slots[j] == 0) {
            s->slots[j] = p;
            s->len++;
            return 1;
        }
    }
}

void px_py_ptrset_free(px_py_ptrset_t *s)
{
    free(s->slots);
    memset(s, 0, sizeof *s);
}
