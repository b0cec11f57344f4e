/* json.h -- the little JSON the master writes itself: escaped strings in error bodies and
 * in JSON log records. */
#ifndef PYRT_JSON_H
#define PYRT_JSON_H

#include <stddef.h>

#include "common/buf.h"

/* Appends `s` as a JSON string, quotes included: json_append_text. */
void json_append_string(buf_t *b, const char *s, size_t len);

/* Appends any bytes as a JSON string, quotes included, that every JSON parser takes:
 * valid UTF-8 kept, control characters escaped, and each byte of an invalid sequence
 * (overlong forms, surrogates, past U+10FFFF, cut short) written as U+FFFD. For text
 * pyrt did not write: a function's output in a JSON log record. */
void json_append_text(buf_t *b, const char *s, size_t len);

/* {"message": "<msg>", "code": <code>} */
void json_error_body(buf_t *b, int code, const char *msg);

#endif
