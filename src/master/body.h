/* body.h -- checks an execution body as it arrives, with yajl's streaming parser.
 *
 * The master must answer "not JSON" itself and know the execution's timeout the moment
 * the body is complete (time in the queue counts toward it), without parsing a 20 MiB
 * body in one go on its loop: each chunk is fed as it is read. The raw bytes go to the
 * worker unchanged, where CPython's json builds the objects.
 *
 * What it checks: valid JSON (yajl 2.1 checks UTF-8 only loosely: overlong forms and
 * code points past U+10FFFF pass here, and the worker's json.loads answers 400), a
 * top-level object, and the
 * top-level "timeout" (a number > 0; the last duplicate key wins, as in Python). */
#ifndef PYRT_BODY_H
#define PYRT_BODY_H

#include <stdbool.h>
#include <stddef.h>

typedef struct body_check body_check_t;

body_check_t *body_check_new(void);
void body_check_free(body_check_t *bc);
void body_check_feed(body_check_t *bc, const void *data, size_t len);

/* After the last chunk: 0 and the timeout (has_timeout false when absent), or -1 with
 * a message for the 400 answer. */
int body_check_finish(body_check_t *bc, bool *has_timeout, double *timeout, const char **error);

/* After a successful finish: "PATH\nFILE" as the body names them ("-" for one not
 * given): which function the execution runs, to tell restart storms apart. */
void body_check_target(const body_check_t *bc, char *out, size_t size);

#endif
