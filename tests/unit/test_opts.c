/* test_opts.c -- GNU-style option parsing with environment fallback. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

/* cmocka.h needs the headers above first: its own block, so that it stays last. */
#include <cmocka.h>

#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "cli/opts.h"
#include "common/num.h"

/* Targets of the spec table, reset before every test. */
static long port;
static double timeout_s;
static size_t max_body;
static bool verbose;
static const char *code_dir;
static opt_list_t envs;

static const opt_spec_t specs[] = {
    {"port", 'p', OPT_LONG, &port, "TEST_OPTS_PORT", 1, 65535, "PORT", "port to listen on"},
    {"timeout", 't', OPT_DOUBLE, &timeout_s, "TEST_OPTS_TIMEOUT", 0.5, 900, "SEC", "timeout"},
    {"max-body", 0, OPT_SIZE, &max_body, "TEST_OPTS_MAX_BODY", 1, 1073741824.0, "BYTES", "max"},
    {"verbose", 'v', OPT_FLAG, &verbose, "TEST_OPTS_VERBOSE", 0, 0, NULL, "say more"},
    {"code-dir", 'c', OPT_STRING, &code_dir, "TEST_OPTS_CODE_DIR", 0, 0, "DIR", "code"},
    {"env", 'e', OPT_MULTI, &envs, NULL, 0, 0, "K=V", "an environment variable"},
    {NULL, 0, 0, NULL, NULL, 0, 0, NULL, NULL},
};

static const char *pos[4];
static int npos;
static bool help;
static char err[PYRT_ERR_LEN];

static int setup(void **state)
{
    (void)state;
    port = 3000;
    timeout_s = 30;
    max_body = 1234;
    verbose = false;
    code_dir = "default";
    memset(&envs, 0, sizeof(envs));
    memset(pos, 0, sizeof(pos));
    npos = -1;
    help = true; /* opts_parse must reset it */
    memset(err, 0, sizeof(err));
    unsetenv("TEST_OPTS_PORT");
    unsetenv("TEST_OPTS_TIMEOUT");
    unsetenv("TEST_OPTS_MAX_BODY");
    unsetenv("TEST_OPTS_VERBOSE");
    unsetenv("TEST_OPTS_CODE_DIR");
    return 0;
}

/* Parses a NULL-terminated list of arguments with at most `maxpos` positionals. */
static int parse_max(int maxpos, char **argv)
{
    int argc = 0;
    while (argv[argc])
        argc++;
    return opts_parse(specs, argc, argv, pos, maxpos, &npos, &help, err);
}

#define PARSE(...) parse_max(2, (char *[]){__VA_ARGS__, NULL})
#define PARSE_MAX(n, ...) parse_max((n), (char *[]){__VA_ARGS__, NULL})

static void test_no_arguments_keeps_defaults(void **state)
{
    (void)state;
    char *argv[] = {NULL};
    assert_int_equal(parse_max(2, argv), 0);
    assert_int_equal(npos, 0);
    assert_false(help);
    assert_int_equal(port, 3000);
    assert_string_equal(code_dir, "default");
    assert_false(verbose);
}

static void test_long_forms_and_positionals_any_order(void **state)
{
    (void)state;
    assert_int_equal(PARSE("first", "--port", "8080", "second", "--code-dir=/srv/fn"), 0);
    assert_int_equal(port, 8080);
    assert_string_equal(code_dir, "/srv/fn");
    assert_int_equal(npos, 2);
    assert_string_equal(pos[0], "first");
    assert_string_equal(pos[1], "second");
}

static void test_short_forms(void **state)
{
    (void)state;
    assert_int_equal(PARSE("-p", "81", "-t2.5", "-c", "dir"), 0);
    assert_int_equal(port, 81);
    assert_true(timeout_s == 2.5);
    assert_string_equal(code_dir, "dir");
    assert_int_equal(npos, 0);
}

static void test_long_equals_value(void **state)
{
    (void)state;
    assert_int_equal(PARSE("--port=65535", "--timeout=0.5"), 0);
    assert_int_equal(port, 65535);
    assert_true(timeout_s == 0.5);
}

static void test_double_dash_ends_options(void **state)
{
    (void)state;
    assert_int_equal(PARSE("--port", "99", "--", "--verbose", "-p"), 0);
    assert_int_equal(port, 99);
    assert_false(verbose);
    assert_int_equal(npos, 2);
    assert_string_equal(pos[0], "--verbose");
    assert_string_equal(pos[1], "-p");
}

static void test_single_dash_is_positional(void **state)
{
    (void)state;
    assert_int_equal(PARSE("-"), 0);
    assert_int_equal(npos, 1);
    assert_string_equal(pos[0], "-");
}

static void test_unknown_long_option_named(void **state)
{
    (void)state;
    assert_int_equal(PARSE("--bogus=3"), -1);
    assert_non_null(strstr(err, "--bogus"));
    assert_null(strstr(err, "=3"));
}

static void test_unknown_short_option_named(void **state)
{
    (void)state;
    assert_int_equal(PARSE("-x"), -1);
    assert_non_null(strstr(err, "-x"));
}

static void test_missing_value(void **state)
{
    (void)state;
    assert_int_equal(PARSE("--port"), -1);
    assert_non_null(strstr(err, "--port"));
    assert_non_null(strstr(err, "needs a value"));

    setup(NULL);
    assert_int_equal(PARSE("positional", "-c"), -1);
    assert_non_null(strstr(err, "-c"));
    assert_non_null(strstr(err, "needs a value"));
}

static void test_flag_forms(void **state)
{
    (void)state;
    assert_int_equal(PARSE("--verbose"), 0);
    assert_true(verbose);

    setup(NULL);
    assert_int_equal(PARSE("-v"), 0);
    assert_true(verbose);

    setup(NULL);
    verbose = true;
    assert_int_equal(PARSE("--verbose=off"), 0);
    assert_false(verbose);

    setup(NULL);
    assert_int_equal(PARSE("--verbose=maybe"), -1);
    assert_non_null(strstr(err, "--verbose"));
    assert_non_null(strstr(err, "maybe"));
}

static void test_flag_does_not_consume_next_argument(void **state)
{
    (void)state;
    assert_int_equal(PARSE("--verbose", "false"), 0);
    assert_true(verbose);
    assert_int_equal(npos, 1);
    assert_string_equal(pos[0], "false");
}

static void test_long_bounds(void **state)
{
    (void)state;
    assert_int_equal(PARSE("--port", "1"), 0);
    assert_int_equal(port, 1);

    setup(NULL);
    assert_int_equal(PARSE("--port", "0"), -1);
    assert_non_null(strstr(err, "--port"));
    assert_int_equal(port, 3000); /* not stored */

    setup(NULL);
    assert_int_equal(PARSE("--port", "65536"), -1);
    assert_non_null(strstr(err, "--port"));
    assert_non_null(strstr(err, "65536"));

    setup(NULL);
    assert_int_equal(PARSE("-p", "99999999999999999999999"), -1);
    assert_non_null(strstr(err, "-p"));
}

static void test_long_bad_text(void **state)
{
    (void)state;
    const char *bad[] = {"abc", "80x", "8.5", ""};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        setup(NULL);
        char arg[64];
        strcpy(arg, "--port=");
        strcat(arg, bad[i]);
        assert_int_equal(PARSE(arg), -1);
        assert_non_null(strstr(err, "--port"));
        assert_int_equal(port, 3000);
    }
}

static void test_double_bounds_and_bad_text(void **state)
{
    (void)state;
    assert_int_equal(PARSE("--timeout", "900"), 0);
    assert_true(timeout_s == 900);

    const char *bad[] = {"0.4", "900.1", "-1", "nan", "inf", "1e999", "1.5s", "x"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        setup(NULL);
        assert_int_equal(PARSE("--timeout", (char *)bad[i]), -1);
        assert_non_null(strstr(err, "--timeout"));
        assert_true(timeout_s == 30);
    }
}

static void test_size_suffixes(void **state)
{
    (void)state;
    struct {
        const char *text;
        size_t want;
    } cases[] = {
        {"512", 512},
        {"4K", 4096},
        {"4k", 4096},
        {"2M", 2u * 1024 * 1024},
        {"1G", 1024u * 1024 * 1024},
        {"3KiB", 3072},
        {"3KB", 3072},
        {"20MiB", 20u * 1024 * 1024},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        setup(NULL);
        assert_int_equal(PARSE("--max-body", (char *)cases[i].text), 0);
        assert_int_equal(max_body, cases[i].want);
    }
}

static void test_size_bad_text_and_bounds(void **state)
{
    (void)state;
    const char *bad[] = {"", "K", "-1", "4T", "4KiBx", "4 K", "2G", "0", " 5"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        setup(NULL);
        assert_int_equal(PARSE("--max-body", (char *)bad[i]), -1);
        assert_non_null(strstr(err, "--max-body"));
        assert_int_equal(max_body, 1234);
    }
}

static void test_parse_size_direct(void **state)
{
    (void)state;
    size_t v = 0;
    assert_int_equal(num_parse_size("1g", &v), 0);
    assert_int_equal(v, 1024u * 1024 * 1024);
    assert_int_equal(num_parse_size("18446744073709551615G", &v), -1); /* overflow */
    assert_int_equal(num_parse_size(NULL, &v), -1);
    long l = 0;
    assert_int_equal(num_parse_long("-42", &l), 0);
    assert_int_equal(l, -42);
    double d = 0;
    assert_int_equal(num_parse_double("1e-3", &d), 0);
    assert_true(fabs(d - 0.001) < 1e-12);
}

static void test_env_fallback(void **state)
{
    (void)state;
    setenv("TEST_OPTS_PORT", "4321", 1);
    setenv("TEST_OPTS_VERBOSE", "yes", 1);
    setenv("TEST_OPTS_MAX_BODY", "8K", 1);
    setenv("TEST_OPTS_CODE_DIR", "/from/env", 1);
    char *argv[] = {NULL};
    assert_int_equal(parse_max(2, argv), 0);
    assert_int_equal(port, 4321);
    assert_true(verbose);
    assert_int_equal(max_body, 8192);
    assert_string_equal(code_dir, "/from/env");
}

static void test_flag_wins_over_env(void **state)
{
    (void)state;
    setenv("TEST_OPTS_PORT", "4321", 1);
    setenv("TEST_OPTS_TIMEOUT", "not-a-number", 1); /* never read: given on the command line */
    assert_int_equal(PARSE("--port", "5555", "-t", "10"), 0);
    assert_int_equal(port, 5555);
    assert_true(timeout_s == 10);
}

static void test_env_bad_value_names_variable(void **state)
{
    (void)state;
    setenv("TEST_OPTS_PORT", "70000", 1);
    char *argv[] = {NULL};
    assert_int_equal(parse_max(2, argv), -1);
    assert_non_null(strstr(err, "TEST_OPTS_PORT"));

    setup(NULL);
    setenv("TEST_OPTS_VERBOSE", "perhaps", 1);
    assert_int_equal(parse_max(2, argv), -1);
    assert_non_null(strstr(err, "TEST_OPTS_VERBOSE"));
}

static void test_env_empty_ignored_except_string(void **state)
{
    (void)state;
    setenv("TEST_OPTS_PORT", "", 1);
    setenv("TEST_OPTS_CODE_DIR", "", 1);
    char *argv[] = {NULL};
    assert_int_equal(parse_max(2, argv), 0);
    assert_int_equal(port, 3000);
    assert_string_equal(code_dir, "");
}

static void test_help_requested(void **state)
{
    (void)state;
    assert_int_equal(PARSE("a", "--help"), 0);
    assert_true(help);
    assert_int_equal(npos, 1);

    setup(NULL);
    assert_int_equal(PARSE("-h"), 0);
    assert_true(help);

    setup(NULL);
    assert_int_equal(PARSE("--port", "1"), 0);
    assert_false(help);
}

static void test_too_many_positionals(void **state)
{
    (void)state;
    assert_int_equal(PARSE_MAX(1, "one", "two"), -1);
    assert_non_null(strstr(err, "two"));

    setup(NULL);
    assert_int_equal(PARSE_MAX(0, "--", "x"), -1);
    assert_non_null(strstr(err, "'x'"));
}

static void test_multi_repeats(void **state)
{
    (void)state;
    assert_int_equal(PARSE("-e", "A=1", "--env=B=2", "pos", "--env", "C=3", "-eD=4"), 0);
    assert_int_equal(envs.count, 4);
    assert_string_equal(envs.items[0], "A=1");
    assert_string_equal(envs.items[1], "B=2");
    assert_string_equal(envs.items[2], "C=3");
    assert_string_equal(envs.items[3], "D=4");
    assert_int_equal(npos, 1);
}

static void test_multi_too_many(void **state)
{
    (void)state;
    char *argv[66];
    for (int i = 0; i < 65; i++)
        argv[i] = "-eK=V";
    argv[65] = NULL;
    assert_int_equal(parse_max(0, argv), -1);
    assert_non_null(strstr(err, "-e"));
    assert_int_equal(envs.count, 64);
}

static void test_value_may_start_with_dash(void **state)
{
    (void)state;
    assert_int_equal(PARSE("--code-dir", "-weird"), 0);
    assert_string_equal(code_dir, "-weird");
    assert_int_equal(npos, 0);
}

/* opts_parse_known: its own options taken, wherever they are; every other argument
 * passed on in order, a value of an unknown option included. */
static void test_parse_known_passes_the_rest_in_order(void **state)
{
    (void)state;
    char *argv[] = {"--workers", "4", "--port=80", "-x", "dir", "-c", "/srv", "--", "--port", "1"};
    char *rest[10];
    int nrest = -1;
    assert_int_equal(opts_parse_known(specs, 10, argv, rest, &nrest, &help, err), 0);
    assert_int_equal(port, 80);
    assert_string_equal(code_dir, "/srv");
    /* After --, nothing is taken: "--port 1" is the other's. */
    const char *want[] = {"--workers", "4", "-x", "dir", "--", "--port", "1"};
    assert_int_equal(nrest, 7);
    for (int i = 0; i < 7; i++)
        assert_string_equal(rest[i], want[i]);
    assert_false(help);
}

static void test_parse_known_checks_its_own(void **state)
{
    (void)state;
    char *argv[] = {"--other", "--port", "x"};
    char *rest[3];
    int nrest = 0;
    assert_int_equal(opts_parse_known(specs, 3, argv, rest, &nrest, &help, err), -1);
    assert_non_null(strstr(err, "--port"));
    char *argv2[] = {"--other", "-h"};
    assert_int_equal(opts_parse_known(specs, 2, argv2, rest, &nrest, &help, err), 0);
    assert_true(help);
    assert_int_equal(nrest, 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_no_arguments_keeps_defaults, setup),
        cmocka_unit_test_setup(test_parse_known_passes_the_rest_in_order, setup),
        cmocka_unit_test_setup(test_parse_known_checks_its_own, setup),
        cmocka_unit_test_setup(test_long_forms_and_positionals_any_order, setup),
        cmocka_unit_test_setup(test_short_forms, setup),
        cmocka_unit_test_setup(test_long_equals_value, setup),
        cmocka_unit_test_setup(test_double_dash_ends_options, setup),
        cmocka_unit_test_setup(test_single_dash_is_positional, setup),
        cmocka_unit_test_setup(test_unknown_long_option_named, setup),
        cmocka_unit_test_setup(test_unknown_short_option_named, setup),
        cmocka_unit_test_setup(test_missing_value, setup),
        cmocka_unit_test_setup(test_flag_forms, setup),
        cmocka_unit_test_setup(test_flag_does_not_consume_next_argument, setup),
        cmocka_unit_test_setup(test_long_bounds, setup),
        cmocka_unit_test_setup(test_long_bad_text, setup),
        cmocka_unit_test_setup(test_double_bounds_and_bad_text, setup),
        cmocka_unit_test_setup(test_size_suffixes, setup),
        cmocka_unit_test_setup(test_size_bad_text_and_bounds, setup),
        cmocka_unit_test_setup(test_parse_size_direct, setup),
        cmocka_unit_test_setup(test_env_fallback, setup),
        cmocka_unit_test_setup(test_flag_wins_over_env, setup),
        cmocka_unit_test_setup(test_env_bad_value_names_variable, setup),
        cmocka_unit_test_setup(test_env_empty_ignored_except_string, setup),
        cmocka_unit_test_setup(test_help_requested, setup),
        cmocka_unit_test_setup(test_too_many_positionals, setup),
        cmocka_unit_test_setup(test_multi_repeats, setup),
        cmocka_unit_test_setup(test_multi_too_many, setup),
        cmocka_unit_test_setup(test_value_may_start_with_dash, setup),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
