/* queue.h -- executions waiting for a worker, first in, first out. O(1) push, pop and
 * removal (a queued job whose client left or whose deadline passed leaves the middle). */
#ifndef PYRT_QUEUE_H
#define PYRT_QUEUE_H

#include <stddef.h>

#include "master/job.h"

typedef struct job_queue {
    job_t *head, *tail;
    size_t length;
} job_queue_t;

void queue_init(job_queue_t *q);
void queue_push(job_queue_t *q, job_t *job);
void queue_push_front(job_queue_t *q, job_t *job); /* one that lost its worker: next */
job_t *queue_pop(job_queue_t *q);
void queue_remove(job_queue_t *q, job_t *job);

#endif
