/* Release metadata: version ordering vectors and exact rejections, ids, the strict JSON form
 * (round trip, unknown keys, bad fields), runtime ranges and reads_models. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "ota/cjson.h"
#include "ota/release.h"

static struct ota_version
V(const char *s)
{
    struct ota_version v;

    memset(&v, 0xa5, sizeof v);
    assert_int_equal(ota_version_parse(s, &v), OTA_OK);
    return v;
}

static void
test_version_order(void **state)
{
    /* each strictly below the next */
    static const char *const asc[] = { "0",   "0.0.0.1", "0.1", "1",    "1.0.1", "1.2",
                                       "1.9", "1.10",    "2",   "2.0.0.1", "10",  "4294967295" };
    size_t                   i, j;

    (void)state;
    for (i = 0; i < sizeof asc / sizeof *asc; i++) {
        for (j = 0; j < sizeof asc / sizeof *asc; j++) {
            struct ota_version a = V(asc[i]), b = V(asc[j]);
            int                want = i < j ? -1 : i > j ? 1 : 0;
            int                got = ota_version_cmp(&a, &b);
            if (got != want)
                fail_msg("cmp(%s, %s) = %d, want %d", asc[i], asc[j], got, want);
        }
    }
    {
        struct ota_version a = V("1.10"), b = V("1.10.0"), c = V("1.10.0.0"), one = V("1");
        struct ota_version one0 = V("1.0");
        assert_int_equal(ota_version_cmp(&a, &b), 0);
        assert_int_equal(ota_version_cmp(&b, &c), 0);
        assert_int_equal(ota_version_cmp(&one, &one0), 0);
        assert_int_equal(a.n, 2);
        assert_int_equal(c.n, 4);
        assert_int_equal(c.part[1], 10);
    }
}

static void
test_version_rejects(void **state)
{
    static const char *const bad[] = {
        "",         "01",        "1.01",      "00",         "1.",         ".1",
        "1..2",     "a",         "-1",        "+1",         "1.2.3.4.5",  "4294967296",
        "1.2a",     " 1",        "1 ",        "v1",         "1,2",        "99999999999999999999",
        "1.-1",     "0x10",      "1.2.3.",    "1.4294967296",
        "1.2.3.4294967295999", /* overflow in the last part */
    };
    size_t i;

    (void)state;
    for (i = 0; i < sizeof bad / sizeof *bad; i++) {
        struct ota_version v, before;
        memset(&v, 0x5a, sizeof v);
        before = v;
        if (ota_version_parse(bad[i], &v) != OTA_E_FORMAT)
            fail_msg("'%s' accepted", bad[i]);
        assert_memory_equal(&v, &before, sizeof v); /* untouched on failure */
    }
    assert_int_equal(ota_version_parse(NULL, &(struct ota_version){ { 0 }, 0 }), OTA_E_FORMAT);
}

static void
test_version_format(void **state)
{
    static const char *const ok[] = { "0", "1.4", "1.4.2", "1.4.2.7", "4294967295.0.4294967295.1",
                                      "10.0" };
    char                     out[OTA_VERSION_STR_MAX];
    size_t                   i;

    (void)state;
    for (i = 0; i < sizeof ok / sizeof *ok; i++) {
        struct ota_version v = V(ok[i]);
        ota_version_format(&v, out);
        assert_string_equal(out, ok[i]);
    }
}

static void
test_ids(void **state)
{
    char long_id[OTA_ID_MAX + 2];

    (void)state;
    assert_true(ota_id_valid("com.example.field"));
    assert_true(ota_id_valid("m2"));
    assert_true(ota_id_valid("A_b-c.9"));
    assert_true(ota_id_valid("9"));
    assert_false(ota_id_valid(""));
    assert_false(ota_id_valid("-x"));
    assert_false(ota_id_valid(".x"));
    assert_false(ota_id_valid("_x"));
    assert_false(ota_id_valid("a b"));
    assert_false(ota_id_valid("a/b"));
    assert_false(ota_id_valid("caf\xc3\xa9"));
    assert_false(ota_id_valid(NULL));
    memset(long_id, 'a', OTA_ID_MAX);
    long_id[OTA_ID_MAX] = '\0';
    assert_true(ota_id_valid(long_id));
    long_id[OTA_ID_MAX] = 'a';
    long_id[OTA_ID_MAX + 1] = '\0';
    assert_false(ota_id_valid(long_id));
}

static const char full_doc[] =
    "{\"app\":\"com.example.field\",\"mandatory\":true,\"min_agent\":\"0.1\",\"model\":\"m3\","
    "\"notes\":\"fixes \\\"sync\\\"\\nline two \xc3\xa9\",\"reads_models\":[\"m2\",\"m1\"],"
    "\"runtime\":{\"max\":\"3.9\",\"min\":\"3.0\"},\"version\":\"1.4.0\"}";

static ota_err
parse_doc(const char *doc, struct ota_release *r, struct ota_diag *d)
{
    json_t *v = NULL;
    ota_err rc;

    assert_int_equal(ota_cjson_parse(doc, strlen(doc), OTA_JSON_MAX, &v, d), OTA_OK);
    rc = ota_release_from_json(v, r, d);
    json_decref(v);
    return rc;
}

static void
test_json_roundtrip(void **state)
{
    struct ota_release r, c;
    struct ota_diag    d;
    json_t            *j;
    char              *out = NULL;
    size_t             len = 0;

    (void)state;
    memset(&r, 0, sizeof r);
    assert_int_equal(parse_doc(full_doc, &r, &d), OTA_OK);
    assert_string_equal(r.app, "com.example.field");
    assert_string_equal(r.version, "1.4.0");
    assert_int_equal(r.v.n, 3);
    assert_int_equal(r.v.part[1], 4);
    assert_string_equal(r.model, "m3");
    assert_int_equal(r.n_reads_models, 2);
    assert_string_equal(r.reads_models[0], "m2");
    assert_string_equal(r.reads_models[1], "m1");
    assert_string_equal(r.runtime_min, "3.0");
    assert_string_equal(r.runtime_max, "3.9");
    assert_string_equal(r.min_agent, "0.1");
    assert_int_equal(r.mandatory, 1);
    assert_string_equal(r.notes, "fixes \"sync\"\nline two \xc3\xa9");

    /* back to JSON: the canonical bytes of the input (the "\n" escape becomes a raw newline) */
    j = ota_release_to_json(&r);
    assert_non_null(j);
    assert_int_equal(ota_cjson_encode(j, OTA_JSON_MAX, &out, &len, &d), OTA_OK);
    {
        json_t *in = NULL;
        char   *want = NULL;
        size_t  wlen = 0;
        assert_int_equal(ota_cjson_parse(full_doc, strlen(full_doc), OTA_JSON_MAX, &in, &d),
                         OTA_OK);
        assert_int_equal(ota_cjson_encode(in, OTA_JSON_MAX, &want, &wlen, &d), OTA_OK);
        assert_int_equal(len, wlen);
        assert_memory_equal(out, want, len);
        assert_non_null(memchr(out, '\n', len));
        free(want);
        json_decref(in);
    }
    free(out);
    json_decref(j);

    /* deep copy survives the original */
    assert_int_equal(ota_release_copy(&c, &r, &d), OTA_OK);
    ota_release_clear(&r);
    assert_null(r.notes);
    assert_string_equal(c.reads_models[1], "m1");
    assert_string_equal(c.notes, "fixes \"sync\"\nline two \xc3\xa9");
    assert_int_equal(ota_release_validate(&c, &d), OTA_OK);
    ota_release_clear(&c);
}

static void
test_json_minimal(void **state)
{
    static const char  doc[] = "{\"app\":\"a\",\"mandatory\":false,\"min_agent\":\"0\",\"model\":"
                               "\"m1\",\"reads_models\":[],\"runtime\":{\"min\":\"1\"},"
                               "\"version\":\"2\"}";
    struct ota_release r;
    struct ota_diag    d;
    json_t            *j;
    char              *out = NULL;
    size_t             len = 0;

    (void)state;
    assert_int_equal(parse_doc(doc, &r, &d), OTA_OK);
    assert_null(r.notes);
    assert_null(r.reads_models);
    assert_string_equal(r.runtime_max, "");
    j = ota_release_to_json(&r);
    assert_int_equal(ota_cjson_encode(j, OTA_JSON_MAX, &out, &len, &d), OTA_OK);
    assert_string_equal(out, doc); /* no "max", no "notes" when absent */
    free(out);
    json_decref(j);
    ota_release_clear(&r);
}

/* Replace the first occurrence of from in full_doc with to and expect OTA_E_FORMAT, with the
 * output struct untouched. */
static void
expect_bad(const char *from, const char *to, const char *msg_part)
{
    char               doc[16384];
    const char        *at = strstr(full_doc, from);
    struct ota_release r, before;
    struct ota_diag    d;

    assert_non_null(at);
    snprintf(doc, sizeof doc, "%.*s%s%s", (int)(at - full_doc), full_doc, to, at + strlen(from));
    memset(&r, 0x77, sizeof r);
    before = r;
    d.msg[0] = '\0';
    if (parse_doc(doc, &r, &d) != OTA_E_FORMAT)
        fail_msg("accepted: %s", doc);
    assert_memory_equal(&r, &before, sizeof r);
    if (msg_part != NULL && strstr(d.msg, msg_part) == NULL)
        fail_msg("message '%s' does not mention '%s'", d.msg, msg_part);
}

static void
test_json_rejects(void **state)
{
    char notes[OTA_NOTES_MAX + 40], models[2048];
    int  i;

    (void)state;
    expect_bad("\"mandatory\"", "\"channel\":\"beta\",\"mandatory\"", "'channel'");
    expect_bad("\"min\":\"3.0\"", "\"min\":\"3.0\",\"x\":1", "'x'");
    expect_bad("com.example.field", "-bad", "app");
    expect_bad("com.example.field", "a b", "app");
    expect_bad("com.example.field",
               "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", "app");
    expect_bad("\"m3\"", "\"m/3\"", "model");
    expect_bad("[\"m2\",\"m1\"]", "[\"m2\",\"bad id\"]", NULL);
    expect_bad("[\"m2\",\"m1\"]", "[\"m2\",\"m2\"]", "twice");
    expect_bad("[\"m2\",\"m1\"]", "[\"m2\",7]", NULL);
    expect_bad("\"1.4.0\"", "\"1.04.0\"", "version");
    expect_bad("\"1.4.0\"", "\"1.4.0-beta\"", "version");
    expect_bad("\"1.4.0\"", "1", "version");
    expect_bad("\"max\":\"3.9\"", "\"max\":\"2.9\"", "runtime min");
    expect_bad("\"max\":\"3.9\"", "\"max\":\"3.x\"", "runtime max");
    expect_bad("\"min_agent\":\"0.1\"", "\"min_agent\":\"\"", "min_agent");
    expect_bad("\"mandatory\":true,", "", "mandatory");
    expect_bad("\"mandatory\":true", "\"mandatory\":1", "mandatory");
    expect_bad("\"max\":\"3.9\",\"min\":\"3.0\"", "\"max\":\"3.9\"", "'min'");
    expect_bad("\"runtime\":{\"max\":\"3.9\",\"min\":\"3.0\"}", "\"runtime\":\"3.0\"",
               "runtime");

    /* notes of OTA_NOTES_MAX bytes pass, one more fails */
    memset(notes, 'n', sizeof notes);
    notes[OTA_NOTES_MAX] = '\0';
    {
        char               doc[8192];
        struct ota_release r;
        struct ota_diag    d;
        snprintf(doc, sizeof doc, "{\"app\":\"a\",\"mandatory\":false,\"min_agent\":\"0\","
                                  "\"model\":\"m\",\"notes\":\"%s\",\"reads_models\":[],"
                                  "\"runtime\":{\"min\":\"1\"},\"version\":\"1\"}",
                 notes);
        assert_int_equal(parse_doc(doc, &r, &d), OTA_OK);
        ota_release_clear(&r);
    }
    notes[OTA_NOTES_MAX] = 'n';
    notes[OTA_NOTES_MAX + 1] = '\0';
    {
        char to[OTA_NOTES_MAX + 64];
        snprintf(to, sizeof to, "\"notes\":\"%s\"", notes);
        expect_bad("\"notes\":\"fixes \\\"sync\\\"\\nline two \xc3\xa9\"", to, "notes");
    }

    /* 32 reads_models pass, 33 fail */
    for (int n = 32; n <= 33; n++) {
        char               doc[4096];
        size_t             off = 0;
        struct ota_release r;
        struct ota_diag    d;
        off += (size_t)snprintf(models + off, sizeof models - off, "[");
        for (i = 0; i < n; i++)
            off += (size_t)snprintf(models + off, sizeof models - off, "%s\"m%d\"", i ? "," : "",
                                    i);
        snprintf(models + off, sizeof models - off, "]");
        snprintf(doc, sizeof doc, "{\"app\":\"a\",\"mandatory\":false,\"min_agent\":\"0\","
                                  "\"model\":\"m\",\"reads_models\":%s,"
                                  "\"runtime\":{\"min\":\"1\"},\"version\":\"1\"}",
                 models);
        memset(&r, 0, sizeof r);
        assert_int_equal(parse_doc(doc, &r, &d), n == 32 ? OTA_OK : OTA_E_FORMAT);
        if (n == 32)
            assert_int_equal(r.n_reads_models, 32);
        ota_release_clear(&r);
    }

    /* not an object at all */
    {
        struct ota_release r;
        struct ota_diag    d;
        json_t            *v = json_array();
        assert_int_equal(ota_release_from_json(v, &r, &d), OTA_E_FORMAT);
        json_decref(v);
    }
}

static void
fill(struct ota_release *r)
{
    memset(r, 0, sizeof *r);
    strcpy(r->app, "com.example.field");
    strcpy(r->version, "2.0");
    r->v = V("2.0");
    strcpy(r->model, "m2");
    strcpy(r->runtime_min, "3.0");
    strcpy(r->runtime_max, "3.9");
    strcpy(r->min_agent, "0.1");
}

static void
test_validate_struct(void **state)
{
    struct ota_release r;
    struct ota_diag    d;
    char               models[2][OTA_ID_MAX + 1] = { "m1", "m0" };

    (void)state;
    fill(&r);
    assert_int_equal(ota_release_validate(&r, &d), OTA_OK);
    r.v = V("2.1"); /* parsed form disagrees with the string */
    assert_int_equal(ota_release_validate(&r, &d), OTA_E_FORMAT);
    fill(&r);
    strcpy(r.runtime_max, "2.9");
    assert_int_equal(ota_release_validate(&r, &d), OTA_E_FORMAT);
    fill(&r);
    r.n_reads_models = OTA_READS_MODELS_MAX + 1;
    r.reads_models = calloc(r.n_reads_models, sizeof *r.reads_models);
    for (size_t i = 0; i < r.n_reads_models; i++)
        snprintf(r.reads_models[i], OTA_ID_MAX + 1, "m%zu", i);
    assert_int_equal(ota_release_validate(&r, &d), OTA_E_FORMAT);
    r.n_reads_models = OTA_READS_MODELS_MAX;
    assert_int_equal(ota_release_validate(&r, &d), OTA_OK);
    ota_release_clear(&r);
    fill(&r);
    r.notes = (char *)"bad \xff utf-8";
    assert_int_equal(ota_release_validate(&r, &d), OTA_E_FORMAT);
    r.notes = NULL;
    r.reads_models = models;
    r.n_reads_models = 2;
    assert_int_equal(ota_release_validate(&r, &d), OTA_OK);
    assert_true(ota_release_reads_model(&r, "m2")); /* own model */
    assert_true(ota_release_reads_model(&r, "m1"));
    assert_true(ota_release_reads_model(&r, "m0"));
    assert_false(ota_release_reads_model(&r, "m3"));
    assert_false(ota_release_reads_model(&r, "m"));
    assert_false(ota_release_reads_model(&r, NULL));
}

static void
test_runtime_admits(void **state)
{
    struct ota_release r;
    struct ota_version v;

    (void)state;
    fill(&r);
    v = V("2.9.9");
    assert_false(ota_release_runtime_admits(&r, &v));
    v = V("3");
    assert_true(ota_release_runtime_admits(&r, &v)); /* 3 == 3.0, inclusive */
    v = V("3.9");
    assert_true(ota_release_runtime_admits(&r, &v));
    v = V("3.9.0.0");
    assert_true(ota_release_runtime_admits(&r, &v));
    v = V("3.9.1");
    assert_false(ota_release_runtime_admits(&r, &v));
    v = V("3.10");
    assert_false(ota_release_runtime_admits(&r, &v));
    r.runtime_max[0] = '\0'; /* no upper bound */
    v = V("400");
    assert_true(ota_release_runtime_admits(&r, &v));
    strcpy(r.runtime_min, "x"); /* a release that cannot say where it runs runs nowhere */
    assert_false(ota_release_runtime_admits(&r, &v));
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_version_order),   cmocka_unit_test(test_version_rejects),
        cmocka_unit_test(test_version_format),  cmocka_unit_test(test_ids),
        cmocka_unit_test(test_json_roundtrip),  cmocka_unit_test(test_json_minimal),
        cmocka_unit_test(test_json_rejects),    cmocka_unit_test(test_validate_struct),
        cmocka_unit_test(test_runtime_admits),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
