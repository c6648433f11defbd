/* Fuzz the release (compatibility) metadata parser and the version parser.
 *
 * The input is tried both as a JSON document for ota_release_from_json and, raw, as a version
 * string and an id. Properties: an accepted release validates, survives to_json/from_json and
 * copy unchanged, and admits its own model; ota_version_parse and ota_id_valid agree with
 * small reference implementations of the rules in ota/release.h; an accepted version formats
 * back to the exact input; ota_version_cmp is antisymmetric and agrees with a reference. */
#include <jansson.h>

#include "fuzz.h"
#include "ota/cjson.h"
#include "ota/release.h"

/* Reference: 1..4 dot-separated parts of digits, no leading zeros, each <= 4294967295. */
static int
ref_version(const char *s, struct ota_version *v)
{
    const char *p = s;

    memset(v, 0, sizeof(*v));
    for (;;) {
        uint64_t x = 0;
        size_t   nd = 0;

        if (v->n == 4)
            return 0;
        while (*p >= '0' && *p <= '9') {
            if (nd == 1 && x == 0)
                return 0; /* leading zero */
            x = x * 10 + (uint64_t)(*p - '0');
            if (x > 4294967295u)
                return 0;
            nd++;
            p++;
        }
        if (nd == 0)
            return 0;
        v->part[v->n++] = (uint32_t)x;
        if (*p == '\0')
            return 1;
        if (*p != '.')
            return 0;
        p++;
    }
}

static int
ref_cmp(const struct ota_version *a, const struct ota_version *b)
{
    for (unsigned i = 0; i < 4; i++) {
        uint32_t x = i < a->n ? a->part[i] : 0, y = i < b->n ? b->part[i] : 0;
        if (x != y)
            return x < y ? -1 : 1;
    }
    return 0;
}

static int
sign(int x)
{
    return (x > 0) - (x < 0);
}

static int
ref_id(const char *s)
{
    size_t n = strlen(s);

    if (n < 1 || n > OTA_ID_MAX)
        return 0;
    if (!((s[0] >= 'a' && s[0] <= 'z') || (s[0] >= 'A' && s[0] <= 'Z') ||
          (s[0] >= '0' && s[0] <= '9')))
        return 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == '-'))
            return 0;
    }
    return 1;
}

static void
check_version_string(const char *s)
{
    struct ota_version v, r;
    char               buf[OTA_VERSION_STR_MAX];
    ota_err            rc;
    int                ok;

    memset(&v, 0xa5, sizeof(v));
    rc = ota_version_parse(s, &v);
    ok = ref_version(s, &r);
    FUZZ_CHECK((rc == OTA_OK) == ok);
    if (rc != OTA_OK) {
        FUZZ_CHECK(rc == OTA_E_FORMAT);
        return;
    }
    FUZZ_CHECK(v.n == r.n && memcmp(v.part, r.part, r.n * sizeof(r.part[0])) == 0);
    ota_version_format(&v, buf);
    FUZZ_CHECK(memchr(buf, '\0', sizeof(buf)) != NULL && strcmp(buf, s) == 0);
    FUZZ_CHECK(ota_version_cmp(&v, &v) == 0);
}

static void
check_versions(const uint8_t *data, size_t size)
{
    char              *s = fuzz_strndup(data, size);
    char              *nl = strchr(s, '\n');
    struct ota_version a, b;

    check_version_string(s);
    FUZZ_CHECK(ota_id_valid(s) == ref_id(s));
    if (nl != NULL) {
        *nl = '\0';
        check_version_string(s);
        check_version_string(nl + 1);
        if (ota_version_parse(s, &a) == OTA_OK && ota_version_parse(nl + 1, &b) == OTA_OK) {
            int c = ota_version_cmp(&a, &b);
            FUZZ_CHECK(sign(c) == ref_cmp(&a, &b));
            FUZZ_CHECK(sign(ota_version_cmp(&b, &a)) == -sign(c));
        }
    }
    free(s);
}

static void
check_same(const struct ota_release *a, const struct ota_release *b)
{
    FUZZ_CHECK(strcmp(a->app, b->app) == 0 && strcmp(a->version, b->version) == 0);
    FUZZ_CHECK(ota_version_cmp(&a->v, &b->v) == 0 && strcmp(a->model, b->model) == 0);
    FUZZ_CHECK(a->n_reads_models == b->n_reads_models);
    for (size_t i = 0; i < a->n_reads_models; i++)
        FUZZ_CHECK(strcmp(a->reads_models[i], b->reads_models[i]) == 0);
    FUZZ_CHECK(strcmp(a->runtime_min, b->runtime_min) == 0);
    FUZZ_CHECK(strcmp(a->runtime_max, b->runtime_max) == 0);
    FUZZ_CHECK(strcmp(a->min_agent, b->min_agent) == 0 && a->mandatory == b->mandatory);
    FUZZ_CHECK((a->notes == NULL) == (b->notes == NULL));
    FUZZ_CHECK(a->notes == NULL || strcmp(a->notes, b->notes) == 0);
}

static void
check_release(const uint8_t *data, size_t size)
{
    struct ota_release r, r2, r3;
    struct ota_diag    d;
    struct ota_version rt;
    json_t            *doc = NULL, *back = NULL;
    ota_err            rc;

    memset(&r, 0, sizeof(r));
    memset(&r2, 0, sizeof(r2));
    memset(&r3, 0, sizeof(r3));
    if (ota_cjson_parse(data, size, OTA_JSON_MAX, &doc, &d) != OTA_OK)
        return;
    memset(&d, 0, sizeof(d));
    rc = ota_release_from_json(doc, &r, &d);
    fuzz_check_diag(rc, &d);
    if (rc != OTA_OK)
        goto out;
    FUZZ_CHECK(r.n_reads_models <= OTA_READS_MODELS_MAX);
    FUZZ_CHECK(r.notes == NULL || strlen(r.notes) <= OTA_NOTES_MAX);
    memset(&d, 0, sizeof(d));
    rc = ota_release_validate(&r, &d);
    fuzz_check_diag(rc, &d);
    FUZZ_CHECK(rc == OTA_OK);
    FUZZ_CHECK(ota_release_reads_model(&r, r.model));
    for (size_t i = 0; i < r.n_reads_models; i++)
        FUZZ_CHECK(ota_release_reads_model(&r, r.reads_models[i]));
    if (ota_version_parse(r.runtime_min, &rt) == OTA_OK)
        FUZZ_CHECK(ota_release_runtime_admits(&r, &rt));

    back = ota_release_to_json(&r);
    FUZZ_CHECK(back != NULL);
    rc = ota_release_from_json(back, &r2, &d);
    if (rc != OTA_OK)
        fprintf(stderr, "to_json output refused: %s\n", d.msg);
    FUZZ_CHECK(rc == OTA_OK);
    check_same(&r, &r2);
    rc = ota_release_copy(&r3, &r, &d);
    FUZZ_CHECK(rc == OTA_OK);
    check_same(&r, &r3);
out:
    ota_release_clear(&r);
    ota_release_clear(&r2);
    ota_release_clear(&r3);
    json_decref(back);
    json_decref(doc);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    check_versions(data, size);
    check_release(data, size);
    return 0;
}
