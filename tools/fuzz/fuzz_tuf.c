/* Fuzz TUF metadata parsing (formats/ota/tuf.h) and the name, path and pattern rules that turn
 * metadata into file names.
 *
 * Each input is parsed as each of the four roles (a document names its own type, so at most one
 * parse can succeed). Properties of an accepted document: its accessors agree with it (type,
 * version >= 1, expiry boundary), a root gives keys and a threshold >= 1 for every top-level
 * role and no role changed against itself, a snapshot is no rollback of itself, every target
 * path is safe and found again by ota_tuf_targets_get, every delegated role name is usable and
 * gets a file name that stays in its directory; signature checks run over it. The raw input is
 * also fed to the path, role-name, quote and pattern functions. */
#include <jansson.h>

#include "fuzz.h"
#include "ota/tuf.h"

#define MAX_LEN (1u << 20)

static const char quote_keep[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-~";

static int
hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* quote(s, safe) keeps letters, digits, "_.-~" and the characters of safe (never '%' here),
 * escapes every other byte as %XX (upper case), refuses only what does not fit, and decodes
 * back to s. */
static void
check_quote(const char *s, const char *safe)
{
    char            out[2048];
    struct ota_diag d;
    size_t          i, j = 0, want = 0;
    ota_err         rc;

    for (i = 0; s[i] != '\0'; i++)
        want += (strchr(quote_keep, s[i]) || strchr(safe, s[i])) ? 1 : 3;
    memset(&d, 0, sizeof(d));
    rc = ota_tuf_quote(s, safe, out, sizeof(out), &d);
    fuzz_check_diag(rc, &d);
    if (rc != OTA_OK) {
        FUZZ_CHECK(rc == OTA_E_TOO_BIG && want + 1 > sizeof(out));
        return;
    }
    FUZZ_CHECK(strlen(out) == want);
    for (i = 0; out[i] != '\0'; i++, j++) {
        if (out[i] == '%') {
            int hi = hexval(out[i + 1]), lo = hi < 0 ? -1 : hexval(out[i + 2]);
            FUZZ_CHECK(hi >= 0 && lo >= 0 && s[j] == (char)(hi * 16 + lo));
            FUZZ_CHECK(!strchr(quote_keep, s[j]) && !strchr(safe, s[j]));
            i += 2;
        } else {
            FUZZ_CHECK(s[j] == out[i] && (strchr(quote_keep, out[i]) || strchr(safe, out[i])));
        }
    }
    FUZZ_CHECK(s[j] == '\0');
}

static void
check_strings(const uint8_t *data, size_t size)
{
    char           *s = fuzz_strndup(data, size);
    char           *nl = strchr(s, '\n');
    char            fname[OTA_TUF_FILENAME_MAX];
    struct ota_diag d;
    ota_err         rc, rn;

    memset(&d, 0, sizeof(d));
    rc = ota_tuf_target_path_check(s, &d);
    fuzz_check_diag(rc, &d);
    FUZZ_CHECK(rc == OTA_OK || rc == OTA_E_UNSAFE_PATH);
    if (rc == OTA_OK) {
        size_t n = strlen(s);
        FUZZ_CHECK(n >= 1 && n <= OTA_TUF_PATH_MAX && s[0] != '/' && !strchr(s, '\\'));
        FUZZ_CHECK(strstr(s, "//") == NULL && s[n - 1] != '/');
        FUZZ_CHECK(strcmp(s, "..") != 0 && strncmp(s, "../", 3) != 0 && !strstr(s, "/../"));
        FUZZ_CHECK(!(n >= 3 && strcmp(s + n - 3, "/..") == 0));
        /* Without wildcard characters a pattern matches exactly itself. */
        if (strpbrk(s, "*?[") == NULL)
            FUZZ_CHECK(ota_tuf_path_match(s, s));
    }

    memset(&d, 0, sizeof(d));
    rn = ota_tuf_role_name_check(s, &d);
    fuzz_check_diag(rn, &d);
    FUZZ_CHECK(rn == OTA_OK || rn == OTA_E_UNSAFE_PATH);
    memset(&d, 0, sizeof(d));
    memset(fname, 0x5a, sizeof(fname));
    rc = ota_tuf_role_filename(s, fname, &d);
    fuzz_check_diag(rc, &d);
    if (rn == OTA_OK)
        FUZZ_CHECK(rc == OTA_OK);
    if (rc == OTA_OK) {
        /* One file name in the metadata directory, never a path or a top-level role's file. */
        FUZZ_CHECK(memchr(fname, '\0', sizeof(fname)) != NULL && strlen(fname) <= 255);
        FUZZ_CHECK(strchr(fname, '/') == NULL);
        FUZZ_CHECK(strcmp(fname, ".") != 0 && strcmp(fname, "..") != 0);
        if (rn == OTA_OK) {
            FUZZ_CHECK(strcmp(fname, "root.json") != 0 && strcmp(fname, "timestamp.json") != 0);
            FUZZ_CHECK(strcmp(fname, "snapshot.json") != 0 && strcmp(fname, "targets.json") != 0);
        }
    }
    check_quote(s, "");
    check_quote(s, "/");

    if (nl != NULL) { /* "pattern\npath" */
        *nl = '\0';
        (void)ota_tuf_path_match(s, nl + 1);
        if (strpbrk(s, "*?[") == NULL)
            FUZZ_CHECK(ota_tuf_path_match(s, nl + 1) == (strcmp(s, nl + 1) == 0));
    }
    free(s);
}

struct visit {
    const struct ota_tuf_md *md;
    size_t                   n;
};

static int
on_target(void *ctx, const struct ota_tuf_targetinfo *t)
{
    struct visit                    *v = ctx;
    struct ota_tuf_targetinfo        got;
    struct ota_diag                  d;
    size_t                           nd = 0;
    const struct ota_tuf_delegation *dl = ota_tuf_targets_delegations(v->md, &nd);

    FUZZ_CHECK(t->path != NULL && ota_tuf_target_path_check(t->path, &d) == OTA_OK);
    FUZZ_CHECK(ota_tuf_targets_get(v->md, t->path, &got, &d) == OTA_OK);
    FUZZ_CHECK(strcmp(got.path, t->path) == 0 && got.length == t->length);
    FUZZ_CHECK(memcmp(got.sha256, t->sha256, OTA_SHA256_LEN) == 0 && got.custom == t->custom);
    for (size_t i = 0; i < nd; i++)
        (void)ota_tuf_delegation_matches(&dl[i], t->path);
    v->n++;
    return 0;
}

static void
check_role_keys(const struct ota_role_keys *rk)
{
    FUZZ_CHECK(rk != NULL && rk->threshold >= 1 && rk->nkeys <= OTA_TUF_MAX_KEYS);
    FUZZ_CHECK(rk->nkeys == 0 || rk->keys != NULL);
}

static void
check_doc(struct ota_tuf_md *md, enum ota_tuf_type type, const uint8_t *data, size_t size)
{
    struct ota_diag d;
    int64_t         exp = ota_tuf_md_expires(md);
    ota_err         rc;

    FUZZ_CHECK(ota_tuf_md_type(md) == type && ota_tuf_md_version(md) >= 1);
    FUZZ_CHECK(json_is_object(ota_tuf_md_signed(md)));
    FUZZ_CHECK(strcmp(ota_tuf_type_name(type),
                      json_string_value(json_object_get(ota_tuf_md_signed(md), "_type"))) == 0);
    FUZZ_CHECK(ota_tuf_md_check_expiry(md, exp, &d) == OTA_E_EXPIRED);
    if (exp > INT64_MIN)
        FUZZ_CHECK(ota_tuf_md_check_expiry(md, exp - 1, &d) == OTA_OK);

    switch (type) {
    case OTA_TUF_ROOT:
        for (int r = 0; r < OTA_TUF_NTYPES; r++) {
            const struct ota_role_keys *rk = ota_tuf_root_role(md, (enum ota_tuf_type)r);
            check_role_keys(rk);
            FUZZ_CHECK(!ota_tuf_root_role_changed(md, md, (enum ota_tuf_type)r));
        }
        (void)ota_tuf_root_consistent_snapshot(md);
        /* Signed by its own root keys? Either answer is fine; the check must not crash. */
        memset(&d, 0, sizeof(d));
        rc = ota_tuf_md_verify(md, ota_tuf_root_role(md, OTA_TUF_ROOT), &d);
        fuzz_check_diag(rc, &d);
        break;
    case OTA_TUF_TIMESTAMP: {
        const struct ota_tuf_metafile *mf = ota_tuf_timestamp_snapshot(md);
        FUZZ_CHECK(mf != NULL && mf->version >= 1 && mf->length >= -1);
        memset(&d, 0, sizeof(d));
        rc = ota_tuf_metafile_check(mf, data, size, &d);
        fuzz_check_diag(rc, &d);
        FUZZ_CHECK(rc == OTA_OK || rc == OTA_E_LENGTH || rc == OTA_E_DIGEST);
        break;
    }
    case OTA_TUF_SNAPSHOT: {
        const struct ota_tuf_metafile *mf = ota_tuf_snapshot_meta(md, "targets.json");
        FUZZ_CHECK(mf == NULL || (mf->version >= 1 && strcmp(mf->name, "targets.json") == 0));
        memset(&d, 0, sizeof(d));
        rc = ota_tuf_snapshot_check_rollback(md, md, &d);
        fuzz_check_diag(rc, &d);
        FUZZ_CHECK(rc == OTA_OK);
        break;
    }
    case OTA_TUF_TARGETS: {
        struct visit                     v = {md, 0};
        size_t                           nd = 0, n;
        const struct ota_tuf_delegation *dl = ota_tuf_targets_delegations(md, &nd);
        char                             fname[OTA_TUF_FILENAME_MAX];

        n = ota_tuf_targets_foreach(md, on_target, &v);
        FUZZ_CHECK(n == v.n && n <= OTA_TUF_MAX_TARGETS);
        FUZZ_CHECK(nd <= OTA_TUF_MAX_ROLES && (nd == 0 || dl != NULL));
        for (size_t i = 0; i < nd; i++) {
            FUZZ_CHECK(ota_tuf_role_name_check(dl[i].name, &d) == OTA_OK);
            FUZZ_CHECK(ota_tuf_role_filename(dl[i].name, fname, &d) == OTA_OK);
            FUZZ_CHECK(strchr(fname, '/') == NULL);
            FUZZ_CHECK((dl[i].paths == NULL) != (dl[i].hash_prefixes == NULL));
            check_role_keys(&dl[i].keys);
            memset(&d, 0, sizeof(d));
            rc = ota_tuf_md_verify(md, &dl[i].keys, &d);
            fuzz_check_diag(rc, &d);
        }
        break;
    }
    }
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int accepted = 0;

    for (int t = 0; t < OTA_TUF_NTYPES; t++) {
        struct ota_tuf_md *md = NULL;
        struct ota_diag    d;
        ota_err            rc;

        memset(&d, 0, sizeof(d));
        rc = ota_tuf_parse(data, size, MAX_LEN, (enum ota_tuf_type)t, &md, &d);
        fuzz_check_diag(rc, &d);
        if (rc != OTA_OK) {
            FUZZ_CHECK(md == NULL);
            FUZZ_CHECK(rc == OTA_E_FORMAT || rc == OTA_E_TOO_BIG || rc == OTA_E_KEY_UNKNOWN ||
                       rc == OTA_E_UNSAFE_PATH || rc == OTA_E_NOMEM);
            continue;
        }
        FUZZ_CHECK(md != NULL && ++accepted == 1);
        check_doc(md, (enum ota_tuf_type)t, data, size);
        ota_tuf_md_free(md);
    }
    if (size <= 4096)
        check_strings(data, size);
    return 0;
}
