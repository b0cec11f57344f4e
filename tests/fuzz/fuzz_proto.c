/* fuzz_proto.c -- a worker's channel bytes through proto's decoder and readers, and its gate slot.
 *
 * Fuzzes what the master reads from a worker (or the zygote): the frame decoder of
 * proto/proto.c fed in chunks, the reader over each frame's payload the way channel.c
 * and spawn.c read READY, RESULT (result_parse), LOG, OUTPUT and SPAWNED, and a gate slot
 * (proto/gate.h) that user code may have scribbled on. Asserts: frames come out the same
 * whatever the chunks (type, length, payload), and only whole frames within the size
 * limit; -1 exactly when the next header announces more than the limit; every reader
 * pointer lies in its payload and the bytes it counts add up; a gate slot not in a state
 * the master made is CONFUSED and left alone.
 * Input: bytes 0-1 pick the size limit and seed the chunks, 2-13 are the gate slot and
 * seq, the rest is the channel stream. */
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "fuzz.h"
#include "master/pool_internal.h"
#include "proto/gate.h"
#include "proto/proto.h"

/* Reads a payload as the master's handlers do, checking the reader as it goes. */
static void read_payload(const proto_frame_t *f)
{
    proto_reader_t r;
    proto_reader_init(&r, f->payload, f->length);
    const uint8_t *end = f->payload + f->length;
    switch (f->type) {
    case PROTO_MSG_RESULT: {
        result_t res;
        (void)result_parse(f->payload, f->length, &res);
        result_free(&res);
        return;
    }
    case PROTO_MSG_READY:
    case PROTO_MSG_GO: (void)proto_get_u32(&r); break;
    case PROTO_MSG_LOG:
    case PROTO_MSG_OUTPUT: {
        proto_text_t t;
        if (proto_get_text(f->payload, f->length, &t) == 0)
            FUZZ_CHECK(t.text >= f->payload && t.len == (size_t)(end - t.text),
                       "text is not the rest of the payload");
        return;
    }
    case PROTO_MSG_SPAWNED: {
        (void)proto_get_u32(&r);
        (void)proto_get_u32(&r);
        uint32_t n;
        const uint8_t *text = proto_get_bytes(&r, &n);
        if (!r.error)
            FUZZ_CHECK(text >= f->payload && n <= (size_t)(end - text), "bytes outside payload");
        else
            FUZZ_CHECK(text == NULL && n == 0, "failed get_bytes gave %u bytes", n);
        break;
    }
    default:
        /* Unknown types: read fields until the payload runs out. */
        while (!r.error && r.left > 0) {
            uint32_t n;
            const uint8_t *p = proto_get_bytes(&r, &n);
            if (!r.error)
                FUZZ_CHECK(p >= f->payload && n <= (size_t)(end - p), "bytes outside payload");
        }
        break;
    }
    FUZZ_CHECK(r.error || r.p + r.left == end, "reader lost track: %zu left", r.left);
    size_t rest;
    const uint8_t *p = proto_get_rest(&r, &rest);
    FUZZ_CHECK(r.error ? p == NULL && rest == 0 : p + rest == end, "rest outside payload");
}

typedef struct outcome {
    unsigned frames;
    int last; /* the last proto_decoder_next() result */
    uint64_t digest;
} outcome_t;

static void run(const uint8_t *s, size_t len, uint32_t max, bool whole, uint32_t seed, outcome_t *o)
{
    memset(o, 0, sizeof(*o));
    o->digest = 0xcbf29ce484222325ull;
    proto_decoder_t d;
    proto_decoder_init(&d, max);
    fuzz_chunker_t ch;
    fuzz_chunker_init(&ch, seed);
    for (size_t off = 0; off < len && o->last >= 0;) {
        size_t n = whole ? len - off : fuzz_chunk(&ch, len - off);
        proto_decoder_feed(&d, s + off, n);
        off += n;
        proto_frame_t f;
        while ((o->last = proto_decoder_next(&d, &f)) == 1) {
            FUZZ_CHECK(f.length <= max, "frame of %u bytes over the limit %u", f.length, max);
            FUZZ_CHECK(f.payload == (const uint8_t *)d.in.data + PROTO_HEADER_SIZE &&
                           PROTO_HEADER_SIZE + (size_t)f.length <= d.in.len,
                       "frame outside the buffer");
            o->frames++;
            uint32_t hdr[2] = {f.type, f.length};
            for (size_t i = 0; i < sizeof(hdr); i++)
                o->digest = (o->digest ^ ((uint8_t *)hdr)[i]) * 0x100000001b3ull;
            for (size_t i = 0; i < f.length; i++)
                o->digest = (o->digest ^ f.payload[i]) * 0x100000001b3ull;
            read_payload(&f);
            proto_decoder_pop(&d, &f);
        }
        if (o->last < 0) {
            uint32_t type, length;
            proto_header_decode((const uint8_t *)d.in.data, &type, &length);
            FUZZ_CHECK(length > max, "-1 for a frame of %u bytes, limit %u", length, max);
        }
    }
    proto_decoder_free(&d);
}

static void gate(const uint8_t *in)
{
    static gate_t g; /* a page, as the memfd the master maps */
    uint64_t value;
    uint32_t seq;
    memcpy(&value, in, 8);
    memcpy(&seq, in + 8, 4);
    _Atomic uint64_t *slot = &g.slot[seq % GATE_SLOTS];
    atomic_store(slot, value);
    gate_outcome_t o = gate_cancel(&g, seq);
    uint64_t mine = (uint64_t)seq << 2;
    uint64_t now = atomic_load(slot);
    if (value == (mine | GATE_PENDING))
        FUZZ_CHECK(o == GATE_WON && now == (mine | GATE_TAKEN_BACK), "pending: %d", o);
    else if (value == (mine | GATE_RUNNING))
        FUZZ_CHECK(o == GATE_STARTED && now == value, "running: %d", o);
    else if (value == (mine | GATE_TAKEN_BACK))
        FUZZ_CHECK(o == GATE_CANCELLED && now == value, "taken back: %d", o);
    else
        FUZZ_CHECK(o == GATE_CONFUSED && now == value, "slot %#llx for seq %u: outcome %d",
                   (unsigned long long)value, seq, o);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t len)
{
    if (len < 14)
        return 0;
    /* Limits as the master sets them: tiny, the zygote's, or a body limit plus slack. */
    static const uint32_t limits[] = {
        0, 4, 64, ZYGOTE_FRAME_MAX, 1024 * 1024 + CHANNEL_FRAME_SLACK, UINT32_MAX};
    uint32_t max = limits[data[0] % (sizeof(limits) / sizeof(limits[0]))];
    uint32_t seed = data[1];
    gate(data + 2);
    const uint8_t *s = data + 14;
    len -= 14;

    outcome_t whole, split;
    run(s, len, max, true, seed, &whole);
    run(s, len, max, false, seed, &split);
    FUZZ_CHECK(whole.frames == split.frames && whole.last == split.last &&
                   whole.digest == split.digest,
               "whole: %u frames, then %d; in chunks: %u, then %d", whole.frames, whole.last,
               split.frames, split.last);
    return 0;
}
