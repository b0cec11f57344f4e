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
#include "common/contract.h"
#include "common/log.h"
#include "common/num.h"
#include "master/config.h"
#include "master/pool.h"
#include "master/run.h"

/* The function's own output, as it printed it. */
static void write_output(const char *stream, const char *text, size_t len)
{
    (void)stream;
    fprintf(stderr, "%.*s\n", (int)len, text);
}

/* The execution from the flags: v5 takes an HTTP request (--method, --path, --body,
 * --header), the others a JSON body (--payload, --env, --header, --file). Flags of the
 * other kind are refused by name rather than ignored. 0, or -1 with err. */
static int build_request(const serve_config_t *cfg, const exec_request_t *req, const char *method,
                         const char *target, const char *http_body, run_request_t *run, char *err,
                         size_t errlen)
{
    if (cfg->contract != CONTRACT_V5) {
        const char *v5_only = method ? "--method" : target ? "--path" : http_body ? "--body" : NULL;
        if (v5_only) {
            snprintf(err, errlen, "%s is for --contract v5 (this runs the %s contract)", v5_only,
                     contract_name(cfg->contract));
            return -1;
        }
        return exec_request_body(req, cfg->contract == CONTRACT_V2 ? "variables" : "env",
                                 cfg->max_body, &run->body, err, errlen);
    }
    const char *seed_only = req->payload     ? "--payload"
                            : req->env.count ? "--env"
                            : req->file      ? "--file"
                                             : NULL;
    if (seed_only) {
        snprintf(err, errlen, "%s is not part of the v5 contract: use --body and --header",
                 seed_only);
        return -1;
    }
    if (req->timeout &&
        (num_parse_double(req->timeout, &run->timeout) < 0 || !(run->timeout > 0))) {
        snprintf(err, errlen, "--timeout %s: expected a number of seconds > 0", req->timeout);
        return -1;
    }
    return exec_request_v5(method ? method : "GET", target ? target : "/", &req->headers, http_body,
                           cfg->max_body, &run->head, &run->body, err, errlen);
}

int cmd_run(int argc, char **argv)
{
    serve_config_t cfg = {
        .code_dir = ".",
        .host = "-",
        .workers = 1,
        .default_timeout = 0, /* not given: serve_config_finish decides */
        .max_timeout = 900,
        .max_body = 20 * 1024 * 1024,
        .max_queue = 1,
        .read_timeout = 30,
        .idle_timeout = 75,
        .max_connections = 1,
        .log_level = "warn",
        /* One execution of one's own code, run by hand: it sees its real pid. */
        .no_worker_namespaces = true,
    };
    exec_request_t req = {0};
    const char *entrypoint = NULL;
    const char *contract = NULL;
    const char *method = NULL, *target = NULL, *http_body = NULL;
    const opt_spec_t specs[] = {
        SERVE_CONTRACT_OPTS(&contract, &cfg),
        {"method", 'X', OPT_STRING, &method, NULL, 0, 0, "METHOD",
         "v5: the request's method (default GET)"},
        {"path", 0, OPT_STRING, &target, NULL, 0, 0, "PATH",
         "v5: the request's path and query, e.g. /x?y=1 (default /)"},
        {"body", 'd', OPT_STRING, &http_body, NULL, 0, 0, "TEXT|@FILE",
         "v5: the request's body, or @FILE to read it from FILE"},
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
        printf(
            "usage: pyrt run [DIR] [options]\n\n"
            "Runs the function in DIR (default .) once, as the server would run it for\n"
            "one request, and prints the answer's body to stdout; the function's output,\n"
            "the status and any error (a traceback) go to stderr. Exit status 0 for 2xx.\n\n"
            "  pyrt run examples/echo --payload '{\"a\": 1}' --env K=v --header h=v\n"
            "  pyrt run --contract v5 DIR --method GET --path '/x?y=1' --header k=v --body @f\n\n"
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
    if (serve_config_finish(&cfg, contract, entrypoint, code_dir, err, sizeof(err)) < 0) {
        fprintf(stderr, "pyrt run: %s\n", err);
        return 1;
    }
    run_request_t run = {BUF_INIT, BUF_INIT, 0};
    if (build_request(&cfg, &req, method, target, http_body, &run, err, sizeof(err)) < 0) {
        fprintf(stderr, "pyrt run: %s\n", err);
        buf_free(&run.body);
        buf_free(&run.head);
        return 2;
    }
    pool_set_output(write_output);
    run_answer_t answer;
    int rc = master_run_once(&cfg, &run, &answer, err, sizeof(err));
    buf_free(&run.body);
    buf_free(&run.head);
    if (rc < 0) {
        fprintf(stderr, "pyrt run: %s\n", err);
        run_answer_free(&answer);
        return 1;
    }
    char status_line[512];
    snprintf(status_line, sizeof(status_line), "pyrt run: status %d, %.1f ms, req=%s",
             answer.status, answer.ms, answer.id);
    int exit_status = exec_request_show(answer.status, answer.body.data ? answer.body.data : "",
                                        answer.body.len, status_line);
    run_answer_free(&answer);
    return exit_status;
}
