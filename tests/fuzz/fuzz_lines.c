/* fuzz_lines.c -- a worker's stdout/stderr bytes cut into lines (lines_split), in random chunks.
 *
 * Fuzzes master/lines.c, which cuts what user code writes to fd 1 and 2 into log lines.
 * Asserts that, whatever the chunks, the lines that come out are exactly this file's own
 * cut of the whole stream: a line ends at LF (dropped) or when it reaches `max` bytes,
 * and lines_flush() gives what is left; no line holds an LF or exceeds `max`.
 * Input: byte 0 picks `max` (1-256), byte 1 seeds the chunks, the rest is the stream. */
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "common/buf.h"
#include "fuzz.h"
#include "master/pool_internal.h"

typedef struct sink {
    size_t max;
    buf_t got; /* each line as its length (4 bytes), then its bytes */
} sink_t;

static void record(buf_t *b, const char *line, size_t len)
{
    uint32_t n = (uint32_t)len;
    buf_append(b, &n, sizeof(n));
    buf_append(b, line, len);
}

static void on_line(void *ctx, const char *line, size_t len)
{
    sink_t *s = ctx;
    FUZZ_CHECK(len <= s->max, "a line of %zu bytes, max %zu", len, s->max);
    FUZZ_CHECK(len == 0 || memchr(line, '\n', len) == NULL, "a line with LF");
    record(&s->got, line, len);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t len)
{
    if (len < 2)
        return 0;
    size_t max = (size_t)data[0] + 1;
    uint32_t seed = data[1];
    const char *s = (const char *)data + 2;
    len -= 2;

    /* The reference cut. */
    buf_t want = BUF_INIT;
    size_t start = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] == '\n') {
            record(&want, s + start, i - start);
            start = i + 1;
        } else if (i + 1 - start == max) {
            record(&want, s + start, max);
            start = i + 1;
        }
    }
    if (start < len)
        record(&want, s + start, len - start);

    sink_t sink = {max, BUF_INIT};
    buf_t partial = BUF_INIT;
    fuzz_chunker_t ch;
    fuzz_chunker_init(&ch, seed);
    for (size_t off = 0; off < len;) {
        size_t n = fuzz_chunk(&ch, len - off);
        lines_split(&partial, s + off, n, max, on_line, &sink);
        FUZZ_CHECK(partial.len < max, "%zu bytes kept, max %zu", partial.len, max);
        off += n;
    }
    lines_flush(&partial, on_line, &sink);
    FUZZ_CHECK(partial.len == 0, "flush left %zu bytes", partial.len);
    FUZZ_CHECK(sink.got.len == want.len &&
                   (want.len == 0 || memcmp(sink.got.data, want.data, want.len) == 0),
               "lines differ from the reference cut (%zu vs %zu bytes of record)", sink.got.len,
               want.len);
    buf_free(&partial);
    buf_free(&sink.got);
    buf_free(&want);
    return 0;
}
