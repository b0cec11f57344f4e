/* queue.c -- executions waiting for a worker (see queue.h). */
#include "master/queue.h"

void queue_init(job_queue_t *q)
{
    q->head = q->tail = NULL;
    q->length = 0;
}

void queue_push(job_queue_t *q, job_t *job)
{
    job->next = NULL;
    job->prev = q->tail;
    if (q->tail)
        q->tail->next = job;
    else
        q->head = job;
    q->tail = job;
    job->queued = true;
    q->length++;
}

void queue_push_front(job_queue_t *q, job_t *job)
{
    job->prev = NULL;
    job->next = q->head;
    if (q->head)
        q->head->prev = job;
    else
        q->tail = job;
    q->head = job;
    job->queued = true;
    q->length++;
}

void queue_remove(job_queue_t *q, job_t *job)
{
    if (!job->queued)
        return;
    if (job->prev)
        job->prev->next = job->next;
    else
        q->head = job->next;
    if (job->next)
        job->next->prev = job->prev;
    else
        q->tail = job->prev;
    job->prev = job->next = NULL;
    job->queued = false;
    q->length--;
}

job_t *queue_pop(job_queue_t *q)
{
    job_t *job = q->head;
    if (job)
        queue_remove(q, job);
    return job;
}
