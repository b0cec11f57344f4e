/* fuzz.h -- what the libFuzzer targets share: a check that says what broke, and chunk
 * sizes drawn from the input (so a split is part of what is fuzzed, and reproducible).
 *
 * Each target is tests/fuzz/fuzz_<name>.c, built by mk/fuzz.mk with
 * -fsanitize=fuzzer,address,undefined; its first comment line says what it fuzzes and
 * what it asserts beyond "no crash, no leak, no undefined behaviour". */
#ifndef PYRT_FUZZ_H
#define PYRT_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

/* Not assert(): it must hold in every build, and it prints what the target expected. */
#define FUZZ_CHECK(cond, ...)                                                                      \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "%s:%d: check failed: %s: ", __FILE__, __LINE__, #cond);               \
            fprintf(stderr, __VA_ARGS__);                                                          \
            fputc('\n', stderr);                                                                   \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

/* Chunk sizes for feeding `left` bytes in pieces, from a seed the input chose: mostly
 * 1-16 bytes (splits everywhere), sometimes up to 256, sometimes all that is left. */
typedef struct fuzz_chunker {
    uint32_t state;
} fuzz_chunker_t;

static inline void fuzz_chunker_init(fuzz_chunker_t *c, uint32_t seed)
{
    c->state = seed * 2654435761u + 0x9e3779b9u;
    if (c->state == 0)
        c->state = 1;
}

static inline size_t fuzz_chunk(fuzz_chunker_t *c, size_t left)
{
    uint32_t x = c->state; /* xorshift32 */
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    c->state = x;
    size_t n;
    switch (x & 3) {
    case 0: n = left; break;
    case 1: n = 1 + (x >> 8) % 256; break;
    default: n = 1 + (x >> 8) % 16; break;
    }
    return n < left ? n : left;
}

#endif
