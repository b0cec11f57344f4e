/* test_proto.c -- frame header encoding, payload writer/reader, streaming decoder. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

/* cmocka.h needs the headers above first: its own block, so that it stays last. */
#include <cmocka.h>

#include <string.h>

#include "common/buf.h"
#include "proto/proto.h"

/* ---- header ---- */

static void test_header_encode_little_endian(void **state)
{
    (void)state;
    uint8_t h[PROTO_HEADER_SIZE];
    memset(h, 0xAA, sizeof(h));
    proto_header_encode(h, 0x04030201u, 0x0D0C0B0Au);
    /* length first, then type, each little-endian */
    const uint8_t want[PROTO_HEADER_SIZE] = {0x0A, 0x0B, 0x0C, 0x0D, 0x01, 0x02, 0x03, 0x04};
    assert_memory_equal(h, want, sizeof(want));
}

static void test_header_roundtrip(void **state)
{
    (void)state;
    const uint32_t types[] = {0, PROTO_MSG_CALL, 0xFFFFFFFFu, 0x80000000u};
    const uint32_t lengths[] = {0, 1, 0xFFFFFFFFu, 0x00012345u};
    for (size_t i = 0; i < 4; i++) {
        uint8_t h[PROTO_HEADER_SIZE];
        uint32_t type = 123, length = 456;
        proto_header_encode(h, types[i], lengths[i]);
        proto_header_decode(h, &type, &length);
        assert_int_equal(type, types[i]);
        assert_int_equal(length, lengths[i]);
    }
}

static void test_header_decode_known_bytes(void **state)
{
    (void)state;
    const uint8_t h[PROTO_HEADER_SIZE] = {0x10, 0x00, 0x00, 0x00, 0x06, 0x00, 0x00, 0x00};
    uint32_t type = 0, length = 0;
    proto_header_decode(h, &type, &length);
    assert_int_equal(length, 16);
    assert_int_equal(type, PROTO_MSG_RESULT);
}

/* ---- writer ---- */

static void test_frame_begin_end_empty(void **state)
{
    (void)state;
    buf_t b = BUF_INIT;
    size_t start = proto_frame_begin(&b, PROTO_MSG_ZYGOTE_READY);
    assert_int_equal(start, 0);
    proto_frame_end(&b, start, 0);
    assert_int_equal(b.len, PROTO_HEADER_SIZE);
    uint32_t type, length;
    proto_header_decode((const uint8_t *)b.data, &type, &length);
    assert_int_equal(type, PROTO_MSG_ZYGOTE_READY);
    assert_int_equal(length, 0);
    buf_free(&b);
}

static void test_put_u32_and_bytes_layout(void **state)
{
    (void)state;
    buf_t b = BUF_INIT;
    size_t start = proto_frame_begin(&b, PROTO_MSG_SPAWNED);
    proto_put_u32(&b, 0x11223344u);
    proto_put_bytes(&b, "abc", 3);
    proto_frame_end(&b, start, 0);

    const uint8_t want[] = {
        11,   0,    0,    0,    PROTO_MSG_SPAWNED,
        0,    0,    0,          /* header: 4 + 4 + 3 = 11 */
        0x44, 0x33, 0x22, 0x11, /* u32 */
        3,    0,    0,    0,    'a',
        'b',  'c', /* bytes */
    };
    assert_int_equal(b.len, sizeof(want));
    assert_memory_equal(b.data, want, sizeof(want));
    buf_free(&b);
}

static void test_frame_end_counts_extra(void **state)
{
    (void)state;
    buf_t b = BUF_INIT;
    size_t start = proto_frame_begin(&b, PROTO_MSG_CALL);
    proto_put_bytes(&b, "id", 2);    /* 6 bytes */
    proto_put_u32(&b, 30000);        /* 4 bytes */
    proto_frame_end(&b, start, 100); /* 100 body bytes sent separately */
    uint32_t type, length;
    proto_header_decode((const uint8_t *)b.data, &type, &length);
    assert_int_equal(type, PROTO_MSG_CALL);
    assert_int_equal(length, 110);
    /* extra is counted, not stored */
    assert_int_equal(b.len, PROTO_HEADER_SIZE + 10);
    buf_free(&b);
}

static void test_frame_begin_after_existing_data(void **state)
{
    (void)state;
    buf_t b = BUF_INIT;
    size_t s1 = proto_frame_begin(&b, PROTO_MSG_READY);
    proto_put_u32(&b, 42);
    proto_frame_end(&b, s1, 0);
    size_t s2 = proto_frame_begin(&b, PROTO_MSG_SPAWN);
    assert_int_equal(s2, PROTO_HEADER_SIZE + 4);
    proto_put_u32(&b, 7);
    proto_put_u32(&b, 8);
    proto_frame_end(&b, s2, 0);

    uint32_t type, length;
    proto_header_decode((const uint8_t *)b.data, &type, &length);
    assert_int_equal(type, PROTO_MSG_READY);
    assert_int_equal(length, 4); /* first frame's header left untouched */
    proto_header_decode((const uint8_t *)b.data + s2, &type, &length);
    assert_int_equal(type, PROTO_MSG_SPAWN);
    assert_int_equal(length, 8);
    buf_free(&b);
}

/* ---- reader ---- */

static void test_reader_roundtrip_result(void **state)
{
    (void)state;
    buf_t b = BUF_INIT;
    proto_put_u32(&b, 200);
    proto_put_u32(&b, PROTO_RESULT_RECYCLE);
    proto_put_u32(&b, 1);
    proto_put_bytes(&b, "content-type", 12);
    proto_put_bytes(&b, "text/plain", 10);
    proto_put_bytes(&b, "", 0);
    proto_put_bytes(&b, "hello", 5);

    proto_reader_t r;
    proto_reader_init(&r, b.data, b.len);
    assert_int_equal(proto_get_u32(&r), 200);
    assert_int_equal(proto_get_u32(&r), PROTO_RESULT_RECYCLE);
    assert_int_equal(proto_get_u32(&r), 1);
    uint32_t n = 99;
    const uint8_t *p = proto_get_bytes(&r, &n);
    assert_non_null(p);
    assert_int_equal(n, 12);
    assert_memory_equal(p, "content-type", 12);
    p = proto_get_bytes(&r, &n);
    assert_int_equal(n, 10);
    assert_memory_equal(p, "text/plain", 10);
    p = proto_get_bytes(&r, &n);
    assert_non_null(p);
    assert_int_equal(n, 0);
    p = proto_get_bytes(&r, &n);
    assert_int_equal(n, 5);
    assert_memory_equal(p, "hello", 5);
    assert_int_equal(r.left, 0);
    assert_int_equal(r.error, 0);
    buf_free(&b);
}

static void test_reader_short_u32_sets_error(void **state)
{
    (void)state;
    const uint8_t payload[3] = {1, 2, 3};
    proto_reader_t r;
    proto_reader_init(&r, payload, sizeof(payload));
    assert_int_equal(r.error, 0);
    assert_int_equal(proto_get_u32(&r), 0);
    assert_int_equal(r.error, 1);
}

static void test_reader_bytes_length_past_end(void **state)
{
    (void)state;
    /* claims 10 bytes, only 3 follow */
    const uint8_t payload[] = {10, 0, 0, 0, 'a', 'b', 'c'};
    proto_reader_t r;
    proto_reader_init(&r, payload, sizeof(payload));
    uint32_t n = 77;
    assert_null(proto_get_bytes(&r, &n));
    assert_int_equal(n, 0);
    assert_int_equal(r.error, 1);
}

static void test_reader_huge_length_rejected(void **state)
{
    (void)state;
    const uint8_t payload[] = {0xFF, 0xFF, 0xFF, 0xFF, 'x'};
    proto_reader_t r;
    proto_reader_init(&r, payload, sizeof(payload));
    uint32_t n = 1;
    assert_null(proto_get_bytes(&r, &n));
    assert_int_equal(r.error, 1);
}

static void test_reader_error_is_sticky(void **state)
{
    (void)state;
    const uint8_t payload[] = {5, 0, 0, 0, 9, 0, 0, 0};
    proto_reader_t r;
    proto_reader_init(&r, payload, 2); /* too short for anything */
    assert_int_equal(proto_get_u32(&r), 0);
    assert_int_equal(r.error, 1);
    r.left = sizeof(payload); /* even with data, getters keep failing */
    assert_int_equal(proto_get_u32(&r), 0);
    uint32_t n = 3;
    assert_null(proto_get_bytes(&r, &n));
    assert_int_equal(n, 0);
    size_t rest = 3;
    assert_null(proto_get_rest(&r, &rest));
    assert_int_equal(rest, 0);
    assert_int_equal(r.error, 1);
}

static void test_reader_get_rest(void **state)
{
    (void)state;
    buf_t b = BUF_INIT;
    proto_put_bytes(&b, "req-1", 5);
    proto_put_u32(&b, 1500);
    buf_append_str(&b, "{\"a\": 1}");

    proto_reader_t r;
    proto_reader_init(&r, b.data, b.len);
    uint32_t n;
    const uint8_t *id = proto_get_bytes(&r, &n);
    assert_int_equal(n, 5);
    assert_memory_equal(id, "req-1", 5);
    assert_int_equal(proto_get_u32(&r), 1500);
    size_t rest_len = 0;
    const uint8_t *rest = proto_get_rest(&r, &rest_len);
    assert_int_equal(rest_len, 8);
    assert_memory_equal(rest, "{\"a\": 1}", 8);
    assert_int_equal(r.left, 0);
    /* another rest is empty, not an error */
    rest = proto_get_rest(&r, &rest_len);
    assert_int_equal(rest_len, 0);
    assert_int_equal(r.error, 0);
    /* but reading a u32 past the end is */
    proto_get_u32(&r);
    assert_int_equal(r.error, 1);
    buf_free(&b);
}

/* ---- streaming decoder ---- */

/* LOG and OUTPUT: one layout, written and read back; short or padded is refused. */
static void test_text_frame_roundtrip(void **state)
{
    (void)state;
    buf_t b = BUF_INIT;
    proto_put_text_frame(&b, PROTO_MSG_OUTPUT, 7, 1, "a line\n", 7);
    uint32_t type, length;
    proto_header_decode((const uint8_t *)b.data, &type, &length);
    assert_int_equal(type, PROTO_MSG_OUTPUT);
    assert_int_equal(length, b.len - PROTO_HEADER_SIZE);
    proto_text_t t;
    const char *payload = b.data + PROTO_HEADER_SIZE;
    assert_int_equal(proto_get_text(payload, length, &t), 0);
    assert_int_equal(t.seq, 7);
    assert_int_equal(t.stream, 1);
    assert_int_equal(t.len, 7);
    assert_memory_equal(t.text, "a line\n", 7);
    assert_int_equal(proto_get_text(payload, length - 1, &t), -1); /* short */
    buf_append(&b, "x", 1);                                        /* may move the data */
    payload = b.data + PROTO_HEADER_SIZE;
    assert_int_equal(proto_get_text(payload, length + 1, &t), -1); /* a byte left over */
    buf_free(&b);
}

static void build_frame(buf_t *b, uint32_t type, const char *payload)
{
    size_t start = proto_frame_begin(b, type);
    buf_append_str(b, payload);
    proto_frame_end(b, start, 0);
}

static void test_decoder_empty_needs_more(void **state)
{
    (void)state;
    proto_decoder_t d;
    proto_decoder_init(&d, 1024);
    proto_frame_t f;
    assert_int_equal(proto_decoder_next(&d, &f), 0);
    proto_decoder_free(&d);
}

static void test_decoder_byte_by_byte(void **state)
{
    (void)state;
    buf_t b = BUF_INIT;
    build_frame(&b, PROTO_MSG_READY, "payload!");
    proto_decoder_t d;
    proto_decoder_init(&d, 1024);
    proto_frame_t f;
    for (size_t i = 0; i + 1 < b.len; i++) {
        proto_decoder_feed(&d, b.data + i, 1);
        assert_int_equal(proto_decoder_next(&d, &f), 0);
    }
    proto_decoder_feed(&d, b.data + b.len - 1, 1);
    assert_int_equal(proto_decoder_next(&d, &f), 1);
    assert_int_equal(f.type, PROTO_MSG_READY);
    assert_int_equal(f.length, 8);
    assert_memory_equal(f.payload, "payload!", 8);
    proto_decoder_pop(&d, &f);
    assert_int_equal(proto_decoder_next(&d, &f), 0);
    assert_int_equal(d.in.len, 0);
    proto_decoder_free(&d);
    buf_free(&b);
}

static void test_decoder_two_frames_one_feed(void **state)
{
    (void)state;
    buf_t b = BUF_INIT;
    build_frame(&b, PROTO_MSG_SPAWNED, "first");
    build_frame(&b, PROTO_MSG_RESULT, "second-frame");
    proto_decoder_t d;
    proto_decoder_init(&d, 1024);
    proto_decoder_feed(&d, b.data, b.len);

    proto_frame_t f;
    assert_int_equal(proto_decoder_next(&d, &f), 1);
    assert_int_equal(f.type, PROTO_MSG_SPAWNED);
    assert_int_equal(f.length, 5);
    assert_memory_equal(f.payload, "first", 5);
    proto_decoder_pop(&d, &f);

    assert_int_equal(proto_decoder_next(&d, &f), 1);
    assert_int_equal(f.type, PROTO_MSG_RESULT);
    assert_int_equal(f.length, 12);
    assert_memory_equal(f.payload, "second-frame", 12);
    proto_decoder_pop(&d, &f);

    assert_int_equal(proto_decoder_next(&d, &f), 0);
    proto_decoder_free(&d);
    buf_free(&b);
}

static void test_decoder_frame_and_a_half(void **state)
{
    (void)state;
    buf_t b = BUF_INIT;
    build_frame(&b, PROTO_MSG_READY, "aa");
    build_frame(&b, PROTO_MSG_CALL, "bbbbbb");
    size_t split = PROTO_HEADER_SIZE + 2 + 5; /* first frame + 5 bytes of the second header */
    proto_decoder_t d;
    proto_decoder_init(&d, 64);
    proto_decoder_feed(&d, b.data, split);
    proto_frame_t f;
    assert_int_equal(proto_decoder_next(&d, &f), 1);
    assert_int_equal(f.type, PROTO_MSG_READY);
    assert_memory_equal(f.payload, "aa", 2);
    proto_decoder_pop(&d, &f);
    assert_int_equal(proto_decoder_next(&d, &f), 0);
    proto_decoder_feed(&d, b.data + split, b.len - split);
    assert_int_equal(proto_decoder_next(&d, &f), 1);
    assert_int_equal(f.type, PROTO_MSG_CALL);
    assert_int_equal(f.length, 6);
    assert_memory_equal(f.payload, "bbbbbb", 6);
    proto_decoder_pop(&d, &f);
    proto_decoder_free(&d);
    buf_free(&b);
}

static void test_decoder_over_max_length(void **state)
{
    (void)state;
    proto_decoder_t d;
    proto_decoder_init(&d, 16);
    uint8_t h[PROTO_HEADER_SIZE];
    proto_header_encode(h, PROTO_MSG_RESULT, 17);
    proto_decoder_feed(&d, h, sizeof(h));
    proto_frame_t f;
    /* known from the header alone, before any payload arrives */
    assert_int_equal(proto_decoder_next(&d, &f), -1);
    proto_decoder_free(&d);
}

static void test_decoder_exactly_max_length(void **state)
{
    (void)state;
    buf_t b = BUF_INIT;
    build_frame(&b, PROTO_MSG_RESULT, "0123456789abcdef"); /* 16 */
    proto_decoder_t d;
    proto_decoder_init(&d, 16);
    proto_decoder_feed(&d, b.data, b.len);
    proto_frame_t f;
    assert_int_equal(proto_decoder_next(&d, &f), 1);
    assert_int_equal(f.length, 16);
    proto_decoder_pop(&d, &f);
    proto_decoder_free(&d);
    buf_free(&b);
}

static void test_decoder_empty_payload_frame(void **state)
{
    (void)state;
    buf_t b = BUF_INIT;
    build_frame(&b, PROTO_MSG_ZYGOTE_READY, "");
    proto_decoder_t d;
    proto_decoder_init(&d, 0);
    proto_decoder_feed(&d, b.data, b.len);
    proto_frame_t f;
    assert_int_equal(proto_decoder_next(&d, &f), 1);
    assert_int_equal(f.type, PROTO_MSG_ZYGOTE_READY);
    assert_int_equal(f.length, 0);
    proto_decoder_pop(&d, &f);
    assert_int_equal(proto_decoder_next(&d, &f), 0);
    proto_decoder_free(&d);
    buf_free(&b);
}

static void test_decoder_payload_read_back_with_reader(void **state)
{
    (void)state;
    buf_t b = BUF_INIT;
    size_t start = proto_frame_begin(&b, PROTO_MSG_SPAWNED);
    proto_put_u32(&b, 3);
    proto_put_u32(&b, 4242);
    proto_put_bytes(&b, "fork failed", 11);
    proto_frame_end(&b, start, 0);

    proto_decoder_t d;
    proto_decoder_init(&d, 1 << 20);
    proto_decoder_feed(&d, b.data, b.len);
    proto_frame_t f;
    assert_int_equal(proto_decoder_next(&d, &f), 1);
    proto_reader_t r;
    proto_reader_init(&r, f.payload, f.length);
    assert_int_equal(proto_get_u32(&r), 3);
    assert_int_equal(proto_get_u32(&r), 4242);
    uint32_t n;
    const uint8_t *msg = proto_get_bytes(&r, &n);
    assert_int_equal(n, 11);
    assert_memory_equal(msg, "fork failed", 11);
    assert_int_equal(r.error, 0);
    assert_int_equal(r.left, 0);
    proto_decoder_pop(&d, &f);
    proto_decoder_free(&d);
    buf_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_header_encode_little_endian),
        cmocka_unit_test(test_header_roundtrip),
        cmocka_unit_test(test_header_decode_known_bytes),
        cmocka_unit_test(test_frame_begin_end_empty),
        cmocka_unit_test(test_put_u32_and_bytes_layout),
        cmocka_unit_test(test_frame_end_counts_extra),
        cmocka_unit_test(test_frame_begin_after_existing_data),
        cmocka_unit_test(test_reader_roundtrip_result),
        cmocka_unit_test(test_text_frame_roundtrip),
        cmocka_unit_test(test_reader_short_u32_sets_error),
        cmocka_unit_test(test_reader_bytes_length_past_end),
        cmocka_unit_test(test_reader_huge_length_rejected),
        cmocka_unit_test(test_reader_error_is_sticky),
        cmocka_unit_test(test_reader_get_rest),
        cmocka_unit_test(test_decoder_empty_needs_more),
        cmocka_unit_test(test_decoder_byte_by_byte),
        cmocka_unit_test(test_decoder_two_frames_one_feed),
        cmocka_unit_test(test_decoder_frame_and_a_half),
        cmocka_unit_test(test_decoder_over_max_length),
        cmocka_unit_test(test_decoder_exactly_max_length),
        cmocka_unit_test(test_decoder_empty_payload_frame),
        cmocka_unit_test(test_decoder_payload_read_back_with_reader),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
