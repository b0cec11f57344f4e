/* reqline.h -- the request line's syntax, checked before http-parser sees it.
 *
 * Debian's http-parser is built without HTTP_PARSER_STRICT, so it takes "HTTX/1.1"
 * for a version. pyrt answers a malformed request line with 400 before anything
 * else, so the line is checked here first: method token, one space, a target without
 * spaces or control characters, one space, HTTP/DIGIT.DIGIT, then CRLF (or LF). */
#ifndef PYRT_REQLINE_H
#define PYRT_REQLINE_H

#include <stdbool.h>
#include <stddef.h>

/* `line` runs up to and including its LF. */
bool reqline_valid(const char *line, size_t len);

#endif
