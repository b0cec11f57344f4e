/* json_check.h -- a small JSON validator of the fuzz targets' own, written from RFC 8259
 * and RFC 3629 and sharing no code with pyrt: the judge that fuzz_json and fuzz_body
 * hold pyrt's JSON code to.
 *
 * Two strictnesses. JC_STRICT: the RFC's grammar, strings of valid UTF-8 (no overlong
 * forms, no surrogates, nothing past U+10FFFF), \u escapes that pair their surrogates.
 * JC_LENIENT: what yajl (and pyrt's body check in front of it) may also take: any byte
 * from 0x80 up in a string, any \u escape, \v and \f as white space. */
#ifndef PYRT_FUZZ_JSON_CHECK_H
#define PYRT_FUZZ_JSON_CHECK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

enum jc_mode { JC_STRICT, JC_LENIENT };
enum jc_timeout { JC_TIMEOUT_ABSENT, JC_TIMEOUT_VALID, JC_TIMEOUT_INVALID };

typedef struct jc {
    const uint8_t *s;
    size_t len, pos;
    enum jc_mode mode;
    unsigned depth;
    bool too_deep; /* nested past JC_DEPTH_MAX: no verdict */
    /* Decoded string (UTF-8), when `out` is set: jc_string() writes up to out_cap bytes
     * and counts all of them in out_len. */
    uint8_t *out;
    size_t out_cap, out_len;
    /* The top-level "timeout", as pyrt reads it: the last such key wins. */
    enum jc_timeout timeout_state;
    double timeout;
} jc_t;

#define JC_DEPTH_MAX 1000 /* recursion: keeps the stack small under ASan */

/* Decodes one UTF-8 sequence at s: its length, or 0 when it is not valid UTF-8. */
static inline size_t jc_utf8(const uint8_t *s, size_t left, uint32_t *cp)
{
    size_t n;
    uint32_t v, min;
    if (s[0] < 0x80) {
        *cp = s[0];
        return 1;
    }
    if ((s[0] & 0xe0) == 0xc0)
        n = 2, v = s[0] & 0x1f, min = 0x80;
    else if ((s[0] & 0xf0) == 0xe0)
        n = 3, v = s[0] & 0x0f, min = 0x800;
    else if ((s[0] & 0xf8) == 0xf0)
        n = 4, v = s[0] & 0x07, min = 0x10000;
    else
        return 0;
    if (left < n)
        return 0;
    for (size_t i = 1; i < n; i++) {
        if ((s[i] & 0xc0) != 0x80)
            return 0;
        v = v << 6 | (s[i] & 0x3f);
    }
    if (v < min || v > 0x10ffff || (v >= 0xd800 && v <= 0xdfff))
        return 0;
    *cp = v;
    return n;
}

static inline void jc_emit(jc_t *j, uint32_t cp)
{
    uint8_t b[4];
    size_t n;
    if (cp < 0x80)
        b[0] = (uint8_t)cp, n = 1;
    else if (cp < 0x800)
        b[0] = (uint8_t)(0xc0 | cp >> 6), b[1] = (uint8_t)(0x80 | (cp & 0x3f)), n = 2;
    else if (cp < 0x10000)
        b[0] = (uint8_t)(0xe0 | cp >> 12), b[1] = (uint8_t)(0x80 | ((cp >> 6) & 0x3f)),
        b[2] = (uint8_t)(0x80 | (cp & 0x3f)), n = 3;
    else
        b[0] = (uint8_t)(0xf0 | cp >> 18), b[1] = (uint8_t)(0x80 | ((cp >> 12) & 0x3f)),
        b[2] = (uint8_t)(0x80 | ((cp >> 6) & 0x3f)), b[3] = (uint8_t)(0x80 | (cp & 0x3f)), n = 4;
    for (size_t i = 0; i < n; i++, j->out_len++)
        if (j->out && j->out_len < j->out_cap)
            j->out[j->out_len] = b[i];
}

static inline void jc_emit_raw(jc_t *j, const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++, j->out_len++)
        if (j->out && j->out_len < j->out_cap)
            j->out[j->out_len] = p[i];
}

static inline bool jc_ws(const jc_t *j, uint8_t c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' ||
           (j->mode == JC_LENIENT && (c == '\v' || c == '\f'));
}

static inline void jc_skip_ws(jc_t *j)
{
    while (j->pos < j->len && jc_ws(j, j->s[j->pos]))
        j->pos++;
}

static inline int jc_hex4(const jc_t *j, size_t at)
{
    if (j->len - at < 4)
        return -1;
    int v = 0;
    for (size_t i = 0; i < 4; i++) {
        uint8_t c = j->s[at + i];
        int d = c >= '0' && c <= '9'   ? c - '0'
                : c >= 'a' && c <= 'f' ? c - 'a' + 10
                : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                       : -1;
        if (d < 0)
            return -1;
        v = v * 16 + d;
    }
    return v;
}

/* A string starting at the opening quote; decodes it into j->out (resets out_len). */
static inline bool jc_string(jc_t *j)
{
    j->out_len = 0;
    if (j->pos >= j->len || j->s[j->pos] != '"')
        return false;
    j->pos++;
    while (j->pos < j->len) {
        uint8_t c = j->s[j->pos];
        if (c == '"') {
            j->pos++;
            return true;
        }
        if (c < 0x20)
            return false;
        if (c == '\\') {
            if (j->pos + 1 >= j->len)
                return false;
            uint8_t e = j->s[j->pos + 1];
            const char *from = "\"\\/bfnrt", *to = "\"\\/\b\f\n\r\t";
            const char *hit = e ? strchr(from, e) : NULL;
            if (hit) {
                jc_emit(j, (uint8_t)to[hit - from]);
                j->pos += 2;
                continue;
            }
            if (e != 'u')
                return false;
            int u = jc_hex4(j, j->pos + 2);
            if (u < 0)
                return false;
            j->pos += 6;
            uint32_t cp = (uint32_t)u;
            if (cp >= 0xd800 && cp <= 0xdbff && j->len - j->pos >= 6 && j->s[j->pos] == '\\' &&
                j->s[j->pos + 1] == 'u') {
                int lo = jc_hex4(j, j->pos + 2);
                if (lo >= 0xdc00 && lo <= 0xdfff) {
                    cp = 0x10000 + ((cp - 0xd800) << 10) + ((uint32_t)lo - 0xdc00);
                    j->pos += 6;
                }
            }
            if (cp >= 0xd800 && cp <= 0xdfff) {
                if (j->mode == JC_STRICT)
                    return false; /* a lone surrogate */
                cp = 0xfffd;
            }
            jc_emit(j, cp);
            continue;
        }
        if (c < 0x80) {
            jc_emit(j, c);
            j->pos++;
            continue;
        }
        uint32_t cp;
        size_t n = jc_utf8(j->s + j->pos, j->len - j->pos, &cp);
        if (n == 0) {
            if (j->mode == JC_STRICT)
                return false;
            n = 1;
        }
        jc_emit_raw(j, j->s + j->pos, n);
        j->pos += n;
    }
    return false;
}

static inline bool jc_digits(jc_t *j)
{
    size_t start = j->pos;
    while (j->pos < j->len && j->s[j->pos] >= '0' && j->s[j->pos] <= '9')
        j->pos++;
    return j->pos > start;
}

static inline bool jc_number(jc_t *j)
{
    if (j->pos < j->len && j->s[j->pos] == '-')
        j->pos++;
    if (j->pos < j->len && j->s[j->pos] == '0')
        j->pos++;
    else if (!jc_digits(j))
        return false;
    if (j->pos < j->len && j->s[j->pos] == '.') {
        j->pos++;
        if (!jc_digits(j))
            return false;
    }
    if (j->pos < j->len && (j->s[j->pos] == 'e' || j->s[j->pos] == 'E')) {
        j->pos++;
        if (j->pos < j->len && (j->s[j->pos] == '+' || j->s[j->pos] == '-'))
            j->pos++;
        if (!jc_digits(j))
            return false;
    }
    return true;
}

static inline bool jc_literal(jc_t *j, const char *word)
{
    size_t n = strlen(word);
    if (j->len - j->pos < n || memcmp(j->s + j->pos, word, n) != 0)
        return false;
    j->pos += n;
    return true;
}

static inline bool jc_value(jc_t *j);

static inline bool jc_object(jc_t *j)
{
    j->pos++; /* '{' */
    jc_skip_ws(j);
    if (j->pos < j->len && j->s[j->pos] == '}') {
        j->pos++;
        return true;
    }
    for (;;) {
        jc_skip_ws(j);
        uint8_t key[8];
        uint8_t *saved = j->out;
        size_t saved_cap = j->out_cap;
        j->out = key, j->out_cap = sizeof(key);
        bool ok = jc_string(j);
        bool is_timeout = j->out_len == 7 && memcmp(key, "timeout", 7) == 0;
        j->out = saved, j->out_cap = saved_cap;
        if (!ok)
            return false;
        jc_skip_ws(j);
        if (j->pos >= j->len || j->s[j->pos] != ':')
            return false;
        j->pos++;
        jc_skip_ws(j);
        size_t at = j->pos;
        if (!jc_value(j))
            return false;
        if (j->depth == 1 && is_timeout) {
            /* A number above 0 (strtod of its text, as pyrt does), else invalid. */
            uint8_t c = j->s[at];
            j->timeout_state = JC_TIMEOUT_INVALID;
            if (c == '-' || (c >= '0' && c <= '9')) {
                char *text = strndup((const char *)j->s + at, j->pos - at);
                j->timeout = strtod(text, NULL);
                free(text);
                if (j->timeout > 0)
                    j->timeout_state = JC_TIMEOUT_VALID;
            }
        }
        jc_skip_ws(j);
        if (j->pos < j->len && j->s[j->pos] == ',') {
            j->pos++;
            continue;
        }
        if (j->pos < j->len && j->s[j->pos] == '}') {
            j->pos++;
            return true;
        }
        return false;
    }
}

static inline bool jc_array(jc_t *j)
{
    j->pos++; /* '[' */
    jc_skip_ws(j);
    if (j->pos < j->len && j->s[j->pos] == ']') {
        j->pos++;
        return true;
    }
    for (;;) {
        jc_skip_ws(j);
        if (!jc_value(j))
            return false;
        jc_skip_ws(j);
        if (j->pos < j->len && j->s[j->pos] == ',') {
            j->pos++;
            continue;
        }
        if (j->pos < j->len && j->s[j->pos] == ']') {
            j->pos++;
            return true;
        }
        return false;
    }
}

static inline bool jc_value(jc_t *j)
{
    if (j->pos >= j->len)
        return false;
    if (j->depth >= JC_DEPTH_MAX) {
        j->too_deep = true;
        return false;
    }
    uint8_t c = j->s[j->pos];
    bool ok;
    switch (c) {
    case '{':
        j->depth++;
        ok = jc_object(j);
        j->depth--;
        return ok;
    case '[':
        j->depth++;
        ok = jc_array(j);
        j->depth--;
        return ok;
    case '"': {
        uint8_t *saved = j->out;
        j->out = NULL; /* values are not kept */
        ok = jc_string(j);
        j->out = saved;
        return ok;
    }
    case 't': return jc_literal(j, "true");
    case 'f': return jc_literal(j, "false");
    case 'n': return jc_literal(j, "null");
    default: return jc_number(j);
    }
}

/* Is s one JSON document (white space around one value)? *is_object says whether the
 * value is an object. */
static inline bool jc_document(jc_t *j, const uint8_t *s, size_t len, enum jc_mode mode,
                               bool *is_object)
{
    memset(j, 0, sizeof(*j));
    j->s = s, j->len = len, j->mode = mode;
    jc_skip_ws(j);
    *is_object = j->pos < len && s[j->pos] == '{';
    if (!jc_value(j))
        return false;
    jc_skip_ws(j);
    return j->pos == len;
}

#endif
