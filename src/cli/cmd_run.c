/* cmd_run.c -- `pyrt run [DIR] [request flags]`: one execution, locally, through the
 * same zygote, worker and frames as the server (master/run.c), no HTTP and no key.
 * The body goes to stdout; the function's output, the status and any error message
 * (a traceback) to stderr. Exit status 0 for a 2xx answer. */
#include <stdio.h>
#include <string.h>

#include "cli/commands.h"
#include "cli/exec_request.h"
#include "cli/opts.h"
#include "cli/serve_setup.h"
#include "common/log.h"
#include "master/config.h"
#include "master/pool.h"
#include "master/run.h"

/* The function's own output, as it printed it. */
static void write_output(const char *stream, const char *text, size_t len)
{
    (void)stream;
    fprintf(stderr, "%.*s\n", (int)len, text);
}

int cmd_run(int argc, char **argv)
{
    serve_config_t cfg = {
        .code_dir = ".",
        .host = "-",
        .workers = 1,
        .default_timeout = 15,
        .max_timeout = 900,
        .max_body = 20 * 1024 * 1024,
        .max_queue = 1,
        .read_timeout = 30,
        .idle_timeout = 75,
        .max_connections = 1,
        .log_level = "warn",
    };
    exec_request_t req = {0};
    const char *entrypoint = NULL;
    const opt_spec_t specs[] = {
        EXEC_REQUEST_OPTS(&req),
        {"entrypoint", 0, OPT_STRING, &entrypoint, "ENTRYPOINT_NAME", 0, 0, "FILE",
         "the default file (default main.py, else index.py)"},
        {"max-memory", 0, OPT_LONG, &cfg.max_memory_mib, "PYRT_MAX_MEMORY", 0, 1 << 22, "MIB",
         "memory the execution may allocate (default 0: unlimited)"},
        {"max-body", 0, OPT_SIZE, &cfg.max_body, "PYRT_MAX_BODY", 1, 1024.0 * 1024 * 1024, "BYTES",
         "largest request or response body (default 20M)"},
        {"user", 'u', OPT_STRING, &cfg.user, "PYRT_USER", 0, 0, "NAME|UID",
         "started as root: run the function as this user"},
        {"log-level", 0, OPT_STRING, &cfg.log_level, NULL, 0, 0, "LEVEL",
         "pyrt's own messages: debug, info, warn or error (default warn)"},
        {0},
    };
    char err[PYRT_ERR_LEN];
    const char *positional[1];
    int npos = 0;
    bool help = false;
    if (opts_parse(specs, argc, argv, positional, 1, &npos, &help, err) < 0) {
        fprintf(stderr, "pyrt run: %s\n", err);
        return 2;
    }
    if (help) {
        printf("usage: pyrt run [DIR] [options]\n\n"
               "Runs the function in DIR (default .) once, as the server would run it for\n"
               "one request, and prints the answer's body to stdout; the function's output,\n"
               "the status and any error (a traceback) go to stderr. Exit status 0 for 2xx.\n\n"
               "  pyrt run examples/echo --payload '{\"a\": 1}' --env K=v --header h=v\n\n"
               "options:\n");
        opts_print_help(specs);
        return 0;
    }
    if (npos)
        cfg.code_dir = positional[0];
    log_level_t level;
    if (log_level_parse(cfg.log_level, &level) < 0) {
        fprintf(stderr, "pyrt run: --log-level: expected debug, info, warn or error, got '%s'\n",
                cfg.log_level);
        return 2;
    }
    log_init("run", level);

    char code_dir[PATH_MAX];
    if (serve_config_finish(&cfg, entrypoint, code_dir, err, sizeof(err)) < 0) {
        fprintf(stderr, "pyrt run: %s\n", err);
        return 1;
    }
    buf_t body = BUF_INIT;
    if (exec_request_body(&req, cfg.max_body, &body, err, sizeof(err)) < 0) {
        fprintf(stderr, "pyrt run: %s\n", err);
        buf_free(&body);
        return 2;
    }
    pool_set_output(write_output);
    run_answer_t answer;
    int rc = master_run_once(&cfg, &body, &answer, err, sizeof(err));
    buf_free(&body);
    if (rc < 0) {
        fprintf(stderr, "pyrt run: %s\n", err);
        run_answer_free(&answer);
        return 1;
    }
    char status_line[512];
    snprintf(status_line, sizeof(status_line), "pyrt run: status %d, %.1f ms, req=%s",
             answer.status, answer.ms, answer.id);
    int exit_status =
        exec_request_show(answer.status, answer.body.data ? answer.body.data : "",
                          answer.body.len, status_line);
    run_answer_free(&answer);
    return exit_status;
}
