/* proto.c -- frame encoding and decoding (see proto.h). */
#include "proto/proto.h"

#include <string.h>

static void put_le32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
    p[2] = (uint8_t)(v >> 16);
    p[3] = (uint8_t)(v >> 24);
}

static uint32_t get_le32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

void proto_header_encode(uint8_t out[PROTO_HEADER_SIZE], uint32_t type, uint32_t length)
{
    put_le32(out, length);
    put_le32(out + 4, type);
}

void proto_header_decode(const uint8_t in[PROTO_HEADER_SIZE], uint32_t *type, uint32_t *length)
{
    *length = get_le32(in);
    *type = get_le32(in + 4);
}

size_t proto_frame_begin(buf_t *b, uint32_t type)
{
    size_t start = b->len;
    uint8_t header[PROTO_HEADER_SIZE];
    proto_header_encode(header, type, 0);
    buf_append(b, header, sizeof(header));
    return start;
}

void proto_frame_end(buf_t *b, size_t frame_start, size_t extra)
{
    size_t length = b->len - frame_start - PROTO_HEADER_SIZE + extra;
    put_le32((uint8_t *)b->data + frame_start, (uint32_t)length);
}

void proto_put_u32(buf_t *b, uint32_t v)
{
    uint8_t p[4];
    put_le32(p, v);
    buf_append(b, p, sizeof(p));
}

void proto_put_bytes(buf_t *b, const void *data, size_t len)
{
    proto_put_u32(b, (uint32_t)len);
    buf_append(b, data, len);
}

void proto_reader_init(proto_reader_t *r, const void *payload, size_t len)
{
    r->p = payload;
    r->left = len;
    r->error = 0;
}

uint32_t proto_get_u32(proto_reader_t *r)
{
    if (r->error || r->left < 4) {
        r->error = 1;
        return 0;
    }
    uint32_t v = get_le32(r->p);
    r->p += 4;
    r->left -= 4;
    return v;
}

const uint8_t *proto_get_bytes(proto_reader_t *r, uint32_t *len)
{
    uint32_t n = proto_get_u32(r);
    if (r->error || r->left < n) {
        r->error = 1;
        *len = 0;
        return NULL;
    }
    const uint8_t *p = r->p;
    r->p += n;
    r->left -= n;
    *len = n;
    return p;
}

const uint8_t *proto_get_rest(proto_reader_t *r, size_t *len)
{
    if (r->error) {
        *len = 0;
        return NULL;
    }
    const uint8_t *p = r->p;
    *len = r->left;
    r->p += r->left;
    r->left = 0;
    return p;
}

void proto_decoder_init(proto_decoder_t *d, uint32_t max_length)
{
    buf_init(&d->in);
    d->max_length = max_length;
}

void proto_decoder_free(proto_decoder_t *d)
{
    buf_free(&d->in);
}

void proto_decoder_feed(proto_decoder_t *d, const void *data, size_t len)
{
    buf_append(&d->in, data, len);
}

int proto_decoder_next(proto_decoder_t *d, proto_frame_t *frame)
{
    if (d->in.len < PROTO_HEADER_SIZE)
        return 0;
    uint32_t type, length;
    proto_header_decode((const uint8_t *)d->in.data, &type, &length);
    if (length > d->max_length)
        return -1;
    if (d->in.len - PROTO_HEADER_SIZE < length)
        return 0;
    frame->type = type;
    frame->length = length;
    frame->payload = (const uint8_t *)d->in.data + PROTO_HEADER_SIZE;
    return 1;
}

void proto_decoder_pop(proto_decoder_t *d, const proto_frame_t *frame)
{
    buf_consume(&d->in, PROTO_HEADER_SIZE + (size_t)frame->length);
}

void proto_put_http_head(buf_t *b, const char *method, size_t method_len, const char *target,
                         size_t target_len, uint32_t count, const buf_t *pairs)
{
    proto_put_bytes(b, method, method_len);
    proto_put_bytes(b, target, target_len);
    proto_put_u32(b, count);
    buf_append(b, pairs->data ? pairs->data : "", pairs->len);
}

void proto_put_text_frame(buf_t *b, uint32_t type, uint32_t seq, uint32_t stream, const void *text,
                          size_t len)
{
    size_t start = proto_frame_begin(b, type);
    proto_put_u32(b, seq);
    proto_put_u32(b, stream);
    proto_put_bytes(b, text, len);
    proto_frame_end(b, start, 0);
}

int proto_get_text(const void *payload, size_t len, proto_text_t *out)
{
    proto_reader_t r;
    proto_reader_init(&r, payload, len);
    out->seq = proto_get_u32(&r);
    out->stream = proto_get_u32(&r);
    out->text = proto_get_bytes(&r, &out->len);
    return r.error || r.left != 0 ? -1 : 0;
}
