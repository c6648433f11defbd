/* Canonical JSON: encoder vectors (key order, escapes, control characters, non-ASCII) and the
 * strict parser's rejections with their exact error codes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "ota/cjson.h"

static void
roundtrip(const char *in, const char *want)
{
    json_t *v = NULL;
    char   *out = NULL;
    size_t  len = 0;
    struct ota_diag d;

    assert_int_equal(ota_cjson_parse(in, strlen(in), OTA_JSON_MAX, &v, &d), OTA_OK);
    assert_int_equal(ota_cjson_encode(v, OTA_JSON_MAX, &out, &len, &d), OTA_OK);
    assert_int_equal(len, strlen(want));
    assert_memory_equal(out, want, len);
    free(out);
    json_decref(v);
}

static void
test_vectors(void **state)
{
    (void)state;
    /* key order by bytes; uppercase sorts before lowercase; no whitespace */
    roundtrip("{ \"b\": 1, \"a\": [true, false, null], \"B\": \"x\" }",
              "{\"B\":\"x\",\"a\":[true,false,null],\"b\":1}");
    /* only quote and backslash escaped; control characters raw */
    roundtrip("{\"s\":\"q\\\"b\\\\n\\nt\\tz\\u0001\"}",
              "{\"s\":\"q\\\"b\\\\n\nt\tz\x01\"}");
    /* non-ASCII stays raw UTF-8; \u escapes decode to UTF-8; sort by UTF-8 bytes */
    roundtrip("{\"\\u00e9\":1,\"z\":2,\"\xc3\xa0\":3}",
              "{\"z\":2,\"\xc3\xa0\":3,\"\xc3\xa9\":1}");
    /* negative and large integers */
    roundtrip("[-1,0,9007199254740993]", "[-1,0,9007199254740993]");
    roundtrip("{}", "{}");
    roundtrip("{\"a\":{\"d\":[],\"c\":{}}}", "{\"a\":{\"c\":{},\"d\":[]}}");
}

static void
expect_parse(const char *in, size_t max, ota_err want)
{
    json_t         *v = NULL;
    struct ota_diag d;

    assert_int_equal(ota_cjson_parse(in, strlen(in), max, &v, &d), want);
    assert_null(v);
    assert_true(strlen(d.msg) > 0);
}

static void
test_rejects(void **state)
{
    (void)state;
    expect_parse("{\"a\":1,\"a\":2}", OTA_JSON_MAX, OTA_E_FORMAT);    /* duplicate key */
    expect_parse("{\"a\":1.5}", OTA_JSON_MAX, OTA_E_FORMAT);          /* real number */
    expect_parse("{\"a\":1e3}", OTA_JSON_MAX, OTA_E_FORMAT);          /* exponent is real */
    expect_parse("{\"a\":\"\\u0000\"}", OTA_JSON_MAX, OTA_E_FORMAT);  /* NUL in string */
    expect_parse("{\"a\":\"\xff\"}", OTA_JSON_MAX, OTA_E_FORMAT);     /* invalid UTF-8 */
    expect_parse("{\"a\":1} x", OTA_JSON_MAX, OTA_E_FORMAT);          /* trailing garbage */
    expect_parse("{\"a\":1", OTA_JSON_MAX, OTA_E_FORMAT);             /* truncated */
    expect_parse("[1,2,3,4,5,6,7,8,9,10]", 8, OTA_E_TOO_BIG);         /* over the cap */
    expect_parse("99999999999999999999999", OTA_JSON_MAX, OTA_E_FORMAT); /* overflow */
}

static void
test_encode_rejects_real_and_cap(void **state)
{
    json_t         *v = json_pack("{s:f}", "x", 1.5);
    char           *out = NULL;
    size_t          len = 0;
    struct ota_diag d;

    (void)state;
    assert_int_equal(ota_cjson_encode(v, OTA_JSON_MAX, &out, &len, &d), OTA_E_FORMAT);
    assert_null(out);
    json_decref(v);
    v = json_pack("{s:s}", "key", "a long value");
    assert_int_equal(ota_cjson_encode(v, 10, &out, &len, &d), OTA_E_TOO_BIG);
    assert_null(out);
    json_decref(v);
}

static void
test_accessors(void **state)
{
    json_t         *v = NULL, *o;
    const char     *s;
    long long       i;
    struct ota_diag d;
    static const char *const allowed[] = { "s", "i", "o", NULL };

    static const char doc[] = "{\"s\":\"abc\",\"i\":5,\"o\":{},\"x\":1}";

    (void)state;
    assert_int_equal(ota_cjson_parse(doc, strlen(doc), 100, &v, &d), OTA_OK);
    assert_int_equal(ota_json_get_str(v, "s", 3, 1, &s, &d), OTA_OK);
    assert_string_equal(s, "abc");
    assert_int_equal(ota_json_get_str(v, "s", 2, 1, &s, &d), OTA_E_FORMAT);
    assert_int_equal(ota_json_get_str(v, "i", 2, 1, &s, &d), OTA_E_FORMAT);
    assert_int_equal(ota_json_get_int(v, "i", 0, 10, &i, &d), OTA_OK);
    assert_int_equal(i, 5);
    assert_int_equal(ota_json_get_int(v, "i", 6, 10, &i, &d), OTA_E_FORMAT);
    assert_int_equal(ota_json_get_obj(v, "o", &o, &d), OTA_OK);
    assert_int_equal(ota_json_get_obj(v, "missing", &o, &d), OTA_E_FORMAT);
    assert_int_equal(ota_json_only_keys(v, allowed, &d), OTA_E_FORMAT);
    assert_non_null(strstr(d.msg, "'x'"));
    json_decref(v);
}

static void
test_parse_data(void **state)
{
    static const char *const bad[] = {
        "{\"a\":1,\"a\":2}", "{\"a\":\"\\u0000\"}", "{\"a\":\"\xff\"}", "{\"a\":1} x",
        "{\"a\":1", "99999999999999999999999", NULL,
    };
    static const char good[] = "{\"lat\":52.37,\"n\":-3,\"e\":1e3,\"s\":\"x\"}";
    json_t         *v = NULL;
    struct ota_diag d;
    size_t          i;

    (void)state;
    assert_int_equal(ota_json_parse_data(good, strlen(good), 100, &v, &d), OTA_OK);
    assert_true(json_is_real(json_object_get(v, "lat")));
    json_decref(v);
    v = NULL;
    assert_int_equal(ota_json_parse_data(good, strlen(good), 8, &v, &d), OTA_E_TOO_BIG);
    assert_null(v);
    for (i = 0; bad[i] != NULL; i++) {
        assert_int_equal(ota_json_parse_data(bad[i], strlen(bad[i]), 100, &v, &d), OTA_E_FORMAT);
        assert_null(v);
    }
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_vectors),
        cmocka_unit_test(test_rejects),
        cmocka_unit_test(test_encode_rejects_real_and_cap),
        cmocka_unit_test(test_accessors),
        cmocka_unit_test(test_parse_data),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
