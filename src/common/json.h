/* json.h -- the little JSON the master writes itself: escaped strings in error bodies. */
#ifndef PYRT_JSON_H
#define PYRT_JSON_H

#include <stddef.h>

#include "common/buf.h"

/* Appends `s` as a JSON string, quotes included. Invalid UTF-8 is kept byte for byte
 * (the master only escapes its own messages and header-safe text). */
void json_append_string(buf_t *b, const char *s, size_t len);

/* {"message": "<msg>", "code": <code>} */
void json_error_body(buf_t *b, int code, const char *msg);

#endif
