/* test_secret.c -- the INTERNAL_RUNTIME_KEY: taking it and comparing against it. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

/* cmocka.h needs the headers above first: its own block, so that it stays last. */
#include <cmocka.h>

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>

#include "master/secret.h"

#define KEY "s3cret-key-0123456789"
#define KEY_LEN (sizeof(KEY) - 1)

static bool eq(const char *given, const char *key)
{
    return secret_equal_ct(given, strlen(given), key, strlen(key));
}

/* ---- secret_equal_ct ---- */

static void test_equal(void **state)
{
    (void)state;
    assert_true(eq(KEY, KEY));
    assert_true(eq("a", "a"));
}

static void test_different_last_byte(void **state)
{
    (void)state;
    assert_false(eq("s3cret-key-0123456788", KEY));
}

static void test_different_first_byte(void **state)
{
    (void)state;
    assert_false(eq("t3cret-key-0123456789", KEY));
}

static void test_given_is_prefix_of_key(void **state)
{
    (void)state;
    assert_false(eq("s3cret", KEY));
    assert_false(eq("s3cret-key-012345678", KEY)); /* one byte short */
}

static void test_key_is_prefix_of_given(void **state)
{
    (void)state;
    assert_false(eq(KEY "x", KEY));
    /* the comparison wraps the key: the key repeated must not match either */
    assert_false(eq(KEY KEY, KEY));
    assert_false(eq("abcabc", "abc"));
}

static void test_empty_given(void **state)
{
    (void)state;
    assert_false(secret_equal_ct("", 0, KEY, KEY_LEN));
    /* a NULL pointer with length 0 is never dereferenced */
    assert_false(secret_equal_ct(NULL, 0, KEY, KEY_LEN));
}

static void test_empty_key_never_matches(void **state)
{
    (void)state;
    assert_false(secret_equal_ct("", 0, "", 0));
    assert_false(secret_equal_ct("x", 1, "", 0));
}

static void test_same_length_different(void **state)
{
    (void)state;
    assert_false(eq("s3cret-KEY-0123456789", KEY));
    assert_false(eq("zzzzzzzzzzzzzzzzzzzzz", KEY));
    assert_int_equal(strlen("zzzzzzzzzzzzzzzzzzzzz"), KEY_LEN);
}

static void test_lengths_differing_by_high_bits(void **state)
{
    (void)state;
    /* lengths 1 and 257 differ only in bit 8: the length difference must count in all
     * its bytes, not just the low one. */
    char given[257];
    memset(given, 'a', sizeof(given));
    assert_false(secret_equal_ct(given, 257, "a", 1));
    assert_false(secret_equal_ct(given, 1, given, 257));
    assert_true(secret_equal_ct(given, 257, given, 257));
}

static void test_single_bit_difference_at_every_position(void **state)
{
    (void)state;
    /* Structural check: a one-bit change anywhere, for every bit, is a mismatch, and the
     * answer does not depend on the position. */
    char given[KEY_LEN];
    for (size_t i = 0; i < KEY_LEN; i++) {
        for (int bit = 0; bit < 8; bit++) {
            memcpy(given, KEY, KEY_LEN);
            given[i] = (char)((unsigned char)given[i] ^ (1u << bit));
            assert_false(secret_equal_ct(given, KEY_LEN, KEY, KEY_LEN));
        }
    }
    memcpy(given, KEY, KEY_LEN);
    assert_true(secret_equal_ct(given, KEY_LEN, KEY, KEY_LEN));
}

static void test_high_bytes(void **state)
{
    (void)state;
    const char a[] = {'\xff', '\x80', '\x00', 'k'};
    const char b[] = {'\xff', '\x80', '\x00', 'k'};
    const char c[] = {'\xff', '\x80', '\x01', 'k'};
    assert_true(secret_equal_ct(a, 4, b, 4));
    assert_false(secret_equal_ct(a, 4, c, 4));
}

/* ---- secret_take / secret_matches ----
 * These run in order: the unset and empty cases first, then the one that takes it. */

static void test_take_unset(void **state)
{
    (void)state;
    unsetenv("INTERNAL_RUNTIME_KEY");
    char err[256] = "";
    assert_int_equal(secret_take(CONTRACT_SEED, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "INTERNAL_RUNTIME_KEY"));
}

static void test_take_empty(void **state)
{
    (void)state;
    setenv("INTERNAL_RUNTIME_KEY", "", 1);
    char err[256] = "";
    assert_int_equal(secret_take(CONTRACT_SEED, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "INTERNAL_RUNTIME_KEY"));
    unsetenv("INTERNAL_RUNTIME_KEY");
}

static void test_take_truncates_error_to_errlen(void **state)
{
    (void)state;
    unsetenv("INTERNAL_RUNTIME_KEY");
    char err[16];
    memset(err, '#', sizeof(err));
    assert_int_equal(secret_take(CONTRACT_SEED, err, 8), -1);
    assert_int_equal(strlen(err), 7);
    assert_int_equal(err[8], '#'); /* nothing written past errlen */
}

static void test_take_set(void **state)
{
    (void)state;
    setenv("INTERNAL_RUNTIME_KEY", KEY, 1);
    char *env_value = getenv("INTERNAL_RUNTIME_KEY");
    assert_non_null(env_value);
    char err[256] = "";
    assert_int_equal(secret_take(CONTRACT_SEED, err, sizeof(err)), 0);
    assert_null(getenv("INTERNAL_RUNTIME_KEY"));
    /* the value was overwritten where it lay (glibc keeps setenv's strings allocated) */
    assert_memory_equal(env_value, "xxxxxxxxxxxxxxxxxxxxx", KEY_LEN);
    assert_int_equal(prctl(PR_GET_DUMPABLE, 0, 0, 0, 0), 0);

    assert_true(secret_matches(KEY, KEY_LEN));
    assert_false(secret_matches(KEY, KEY_LEN - 1));
    assert_false(secret_matches(KEY "!", KEY_LEN + 1));
    assert_false(secret_matches("", 0));
    assert_false(secret_matches("s3cret-key-0123456780", KEY_LEN));
}

/* ---- base64 (RFC 4648, section 10) ---- */

static void test_base64_vectors(void **state)
{
    (void)state;
    static const char *const vectors[][2] = {
        {"", ""},
        {"f", "Zg=="},
        {"fo", "Zm8="},
        {"foo", "Zm9v"},
        {"foob", "Zm9vYg=="},
        {"fooba", "Zm9vYmE="},
        {"foobar", "Zm9vYmFy"},
    };
    for (size_t i = 0; i < sizeof(vectors) / sizeof(vectors[0]); i++) {
        char out[16];
        secret_base64((const unsigned char *)vectors[i][0], strlen(vectors[i][0]), out);
        assert_string_equal(out, vectors[i][1]);
    }
    char out[8];
    const unsigned char high[] = {0xff, 0xfe, 0xfd};
    secret_base64(high, 3, out);
    assert_string_equal(out, "//79");
}

/* ---- v5: OPEN_RUNTIMES_SECRET, its Authorization twin, the empty secret ---- */

static void test_take_v5_unset(void **state)
{
    (void)state;
    unsetenv("OPEN_RUNTIMES_SECRET");
    char err[256] = "";
    assert_int_equal(secret_take(CONTRACT_V5, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "OPEN_RUNTIMES_SECRET"));
}

static void test_take_v5_hides_both_and_knows_authorization(void **state)
{
    (void)state;
    setenv("OPEN_RUNTIMES_SECRET", "test-secret-key", 1);
    setenv("INTERNAL_RUNTIME_KEY", "other-key", 1);
    char *v5_value = getenv("OPEN_RUNTIMES_SECRET");
    char *seed_value = getenv("INTERNAL_RUNTIME_KEY");
    char err[256] = "";
    assert_int_equal(secret_take(CONTRACT_V5, err, sizeof(err)), 0);
    assert_null(getenv("OPEN_RUNTIMES_SECRET"));
    assert_null(getenv("INTERNAL_RUNTIME_KEY"));
    assert_memory_equal(v5_value, "xxxxxxxxxxxxxxx", 15);
    assert_memory_equal(seed_value, "xxxxxxxxx", 9);
    assert_false(secret_disabled());
    assert_true(secret_matches("test-secret-key", 15));
    assert_false(secret_matches("other-key", 9));
    /* base64("opr:test-secret-key"), as the executor sends it */
    static const char auth[] = "Basic b3ByOnRlc3Qtc2VjcmV0LWtleQ==";
    assert_true(secret_is_authorization(auth, sizeof(auth) - 1));
    assert_false(secret_is_authorization(auth, sizeof(auth) - 2));
    assert_false(secret_is_authorization("Basic b3ByOnRlc3Qtc2VjcmV0LWtleA==", sizeof(auth) - 1));
    assert_false(secret_is_authorization("Bearer abc", 10));
}

static void test_take_v5_empty_disables(void **state)
{
    (void)state;
    setenv("OPEN_RUNTIMES_SECRET", "", 1);
    char err[256] = "";
    assert_int_equal(secret_take(CONTRACT_V5, err, sizeof(err)), 0);
    assert_true(secret_disabled());
    assert_false(secret_matches("", 0)); /* http.c asks secret_disabled() first */
    assert_false(secret_is_authorization("Basic b3ByOg==", 14)); /* no twin to hide */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_equal),
        cmocka_unit_test(test_different_last_byte),
        cmocka_unit_test(test_different_first_byte),
        cmocka_unit_test(test_given_is_prefix_of_key),
        cmocka_unit_test(test_key_is_prefix_of_given),
        cmocka_unit_test(test_empty_given),
        cmocka_unit_test(test_empty_key_never_matches),
        cmocka_unit_test(test_same_length_different),
        cmocka_unit_test(test_lengths_differing_by_high_bits),
        cmocka_unit_test(test_single_bit_difference_at_every_position),
        cmocka_unit_test(test_high_bytes),
        cmocka_unit_test(test_take_unset),
        cmocka_unit_test(test_take_empty),
        cmocka_unit_test(test_take_truncates_error_to_errlen),
        cmocka_unit_test(test_take_set),
        cmocka_unit_test(test_base64_vectors),
        cmocka_unit_test(test_take_v5_unset),
        cmocka_unit_test(test_take_v5_hides_both_and_knows_authorization),
        cmocka_unit_test(test_take_v5_empty_disables),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
