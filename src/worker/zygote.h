/* zygote.h -- the zygote: Python initialised once, workers forked from it on SPAWN
 * (see zygote.c). `pyrt __zygote` (cli/cmd_zygote.c) parses the master's arguments
 * and runs it. */
#ifndef PYRT_ZYGOTE_H
#define PYRT_ZYGOTE_H

#include "proto/zygote.h"

/* Runs the zygote until the master closes its control socket; the process's exit
 * status. (The workers it forks never return from here.) */
int zygote_main(const zygote_args_t *args);

#endif
