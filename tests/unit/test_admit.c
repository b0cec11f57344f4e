/* test_admit.c -- the rule a complete execution request passes before it is a job
 * (master/admit.c), the same for HTTP and `pyrt run`. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

/* cmocka.h needs the headers above first: its own block, so that it stays last. */
#include <cmocka.h>

#include <string.h>

#include "master/admit.h"

static serve_config_t config(contract_t contract)
{
    serve_config_t cfg = {0};
    cfg.contract = contract;
    cfg.default_timeout = 30;
    cfg.max_timeout = 60;
    return cfg;
}

static void run_json(const serve_config_t *cfg, const char *body, admit_t *out,
                     body_check_t **check)
{
    *check = body_check_new();
    assert_non_null(*check);
    body_check_feed(*check, body, strlen(body));
    admit_json(cfg, *check, strlen(body), out);
}

static void test_empty_body_is_refused_500(void **state)
{
    (void)state;
    serve_config_t cfg = config(CONTRACT_SEED);
    admit_t a;
    admit_json(&cfg, NULL, 0, &a); /* before the out-of-memory check, as always */
    assert_int_equal(a.status, 500);
    assert_string_equal(a.message, "no data received");
}

static void test_no_parser_is_refused_500(void **state)
{
    (void)state;
    serve_config_t cfg = config(CONTRACT_SEED);
    admit_t a;
    admit_json(&cfg, NULL, 2, &a);
    assert_int_equal(a.status, 500);
    assert_string_equal(a.message, "out of memory for the JSON parser");
}

static void test_not_json_is_refused_400(void **state)
{
    (void)state;
    serve_config_t cfg = config(CONTRACT_SEED);
    admit_t a;
    body_check_t *check;
    run_json(&cfg, "[1]", &a, &check);
    assert_int_equal(a.status, 400);
    assert_string_equal(a.message, "request body must be a JSON object");
    body_check_free(check);
}

static void test_seed_timeout_is_the_body_s_capped(void **state)
{
    (void)state;
    serve_config_t cfg = config(CONTRACT_SEED);
    admit_t a;
    body_check_t *check;
    run_json(&cfg, "{\"timeout\": 5, \"path\": \"p\", \"file\": \"f.py\"}", &a, &check);
    assert_int_equal(a.status, 0);
    assert_true(a.timeout == 5);
    assert_string_equal(a.target, "p\nf.py");
    body_check_free(check);
    run_json(&cfg, "{\"timeout\": 500}", &a, &check);
    assert_true(a.timeout == 60);
    body_check_free(check);
    run_json(&cfg, "{}", &a, &check);
    assert_true(a.timeout == 30);
    body_check_free(check);
}

static void test_v2_ignores_the_body_s_timeout(void **state)
{
    (void)state;
    serve_config_t cfg = config(CONTRACT_V2);
    admit_t a;
    body_check_t *check;
    run_json(&cfg, "{\"timeout\": 5}", &a, &check);
    assert_int_equal(a.status, 0);
    assert_true(a.timeout == 30);
    body_check_free(check);
}

static void test_v5_takes_the_given_timeout_capped(void **state)
{
    (void)state;
    serve_config_t cfg = config(CONTRACT_V5);
    admit_t a;
    admit_v5(&cfg, true, 7, &a);
    assert_int_equal(a.status, 0);
    assert_true(a.timeout == 7);
    admit_v5(&cfg, true, 600, &a);
    assert_true(a.timeout == 60);
    admit_v5(&cfg, false, 0, &a);
    assert_true(a.timeout == 30);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_empty_body_is_refused_500),
        cmocka_unit_test(test_no_parser_is_refused_500),
        cmocka_unit_test(test_not_json_is_refused_400),
        cmocka_unit_test(test_seed_timeout_is_the_body_s_capped),
        cmocka_unit_test(test_v2_ignores_the_body_s_timeout),
        cmocka_unit_test(test_v5_takes_the_given_timeout_capped),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
