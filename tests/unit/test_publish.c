/* ota-publish library: repository changes and the rules that refuse them, with exact error
 * codes, and the served tree byte-for-byte unchanged after every refusal. */
#define _XOPEN_SOURCE 700
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <ftw.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "ota/fsutil.h"
#include "ota/hash.h"
#include "ota/publish.h"

static char                      dir[256];
static char                      repo[300];
static struct ota_passphrase_src pass = { -1, "OTA_TEST_PASSPHRASE", 0 };

/* ------------------------------------------------------------ tree digest */

static struct ota_sha256 tree_h;

static int
tree_visit(const char *path, const struct stat *st, int type, struct FTW *f)
{
    unsigned char *buf = NULL;
    size_t         len = 0;

    (void)f;
    ota_sha256_update(&tree_h, path, strlen(path) + 1);
    ota_sha256_update(&tree_h, &st->st_mode, sizeof st->st_mode);
    if (type == FTW_F && ota_read_file(path, 1 << 26, &buf, &len, NULL) == OTA_OK) {
        ota_sha256_update(&tree_h, buf, len);
        free(buf);
    }
    return 0;
}

/* Entries are visited in directory order, which is stable for an unchanged directory. */
static void
tree_digest(const char *root, unsigned char out[OTA_SHA256_LEN])
{
    assert_int_equal(ota_sha256_init(&tree_h), OTA_OK);
    assert_int_equal(nftw(root, tree_visit, 16, FTW_PHYS), 0);
    ota_sha256_final(&tree_h, out);
}

/* ------------------------------------------------------------ fixtures */

static void
write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");

    assert_non_null(f);
    fputs(text, f);
    assert_int_equal(fclose(f), 0);
}

static void
make_release(struct ota_release *r, const char *version, const char *model, const char *reads)
{
    memset(r, 0, sizeof *r);
    snprintf(r->app, sizeof r->app, "com.example.t");
    snprintf(r->version, sizeof r->version, "%s", version);
    assert_int_equal(ota_version_parse(version, &r->v), OTA_OK);
    snprintf(r->model, sizeof r->model, "%s", model);
    snprintf(r->runtime_min, sizeof r->runtime_min, "1.0");
    snprintf(r->min_agent, sizeof r->min_agent, "0.1");
    if (reads != NULL) {
        r->reads_models = calloc(1, sizeof *r->reads_models);
        assert_non_null(r->reads_models);
        snprintf(r->reads_models[0], sizeof r->reads_models[0], "%s", reads);
        r->n_reads_models = 1;
    }
}

/* Pack a small tree as version/model into dir/name, signed with the repository's keys. */
static void
pack(const char *name, const char *version, const char *model, const char *reads)
{
    struct ota_repo       *r = NULL;
    struct ota_release     rel;
    struct ota_pack_opts   o;
    struct ota_pack_result res;
    struct ota_diag        d;
    char                   src[400], out[400], f[500];

    snprintf(src, sizeof src, "%s/src-%s", dir, version);
    snprintf(out, sizeof out, "%s/%s", dir, name);
    assert_int_equal(ota_mkdir_p(src, 0755, NULL), OTA_OK);
    snprintf(f, sizeof f, "%s/index.js", src);
    write_file(f, version);
    make_release(&rel, version, model, reads);
    assert_int_equal(ota_repo_open(repo, &pass, &r, &d), OTA_OK);
    memset(&o, 0, sizeof o);
    o.src_dir = src;
    o.out_path = out;
    o.release = &rel;
    o.sign = ota_repo_bundle_signer;
    o.sign_ctx = r;
    o.threads = 1;
    o.force = 1;
    assert_int_equal(ota_bundle_pack(&o, &res, &d), OTA_OK);
    ota_repo_close(r);
    ota_release_clear(&rel);
}

static ota_err
release(const char *name, const char *channel, int breaking)
{
    struct ota_repo        *r = NULL;
    struct ota_release_opts o = { channel, 100, breaking, 0 };
    struct ota_diag         d;
    char                    path[400];
    ota_err                 rc;

    snprintf(path, sizeof path, "%s/%s", dir, name);
    rc = ota_repo_open(repo, &pass, &r, &d);
    if (rc == OTA_OK)
        rc = ota_repo_release(r, path, &o, &d);
    if (rc != OTA_OK)
        assert_true(strlen(d.msg) > 0); /* every refusal says why */
    ota_repo_close(r);
    return rc;
}

static int
setup(void **state)
{
    struct ota_repo_init_opts o;
    struct ota_diag           d;

    (void)state;
    snprintf(dir, sizeof dir, "/tmp/ota-test-publish.XXXXXX");
    assert_non_null(mkdtemp(dir));
    snprintf(repo, sizeof repo, "%s/repo", dir);
    setenv("OTA_TEST_PASSPHRASE", "unit test passphrase", 1);
    memset(&o, 0, sizeof o);
    o.root_keys = 2;
    o.root_threshold = 2;
    assert_int_equal(ota_repo_init(repo, &o, &pass, &d), OTA_OK);
    return 0;
}

static int
teardown(void **state)
{
    (void)state;
    assert_int_equal(ota_rm_rf(dir, NULL), OTA_OK);
    return 0;
}

/* ------------------------------------------------------------ tests */

static void
test_init_refuses_existing(void **state)
{
    struct ota_repo_init_opts o;
    struct ota_diag           d;
    unsigned char             a[32], b[32];

    (void)state;
    memset(&o, 0, sizeof o);
    tree_digest(repo, a);
    assert_int_equal(ota_repo_init(repo, &o, &pass, &d), OTA_E_EXISTS);
    o.root_keys = 2;
    o.root_threshold = 3;
    assert_int_equal(ota_repo_init("/tmp/never-created-ota", &o, &pass, &d), OTA_E_INVALID);
    tree_digest(repo, b);
    assert_memory_equal(a, b, sizeof a);
    assert_int_equal(ota_repo_verify(repo, NULL, &d), OTA_OK);
}

static void
test_release_rules(void **state)
{
    unsigned char a[32], b[32];
    char          pub[400];
    struct ota_diag d;

    (void)state;
    snprintf(pub, sizeof pub, "%s/public", repo);
    pack("v1.ota", "1.0", "m1", NULL);
    assert_int_equal(release("v1.ota", "stable", 0), OTA_OK);
    assert_int_equal(ota_repo_verify(repo, NULL, &d), OTA_OK);

    tree_digest(pub, a);
    /* the same version again, and a lower one */
    assert_int_equal(release("v1.ota", "stable", 0), OTA_E_ROLLBACK);
    pack("v09.ota", "0.9", "m1", NULL);
    assert_int_equal(release("v09.ota", "stable", 0), OTA_E_ROLLBACK);
    /* a model change that is neither bridged nor declared */
    pack("v2.ota", "2.0", "m2", NULL);
    assert_int_equal(release("v2.ota", "stable", 0), OTA_E_BREAKING);
    /* a bad channel name */
    assert_int_equal(release("v2.ota", "../x", 0), OTA_E_INVALID);
    /* a wrong passphrase */
    setenv("OTA_TEST_PASSPHRASE", "wrong", 1);
    assert_int_equal(release("v2.ota", "stable", 1), OTA_E_PASSPHRASE);
    setenv("OTA_TEST_PASSPHRASE", "unit test passphrase", 1);
    tree_digest(pub, b);
    assert_memory_equal(a, b, sizeof a);

    /* a bridge release passes; the model change on another channel is not a change there */
    pack("v15.ota", "1.5", "m2", "m1");
    assert_int_equal(release("v15.ota", "stable", 0), OTA_OK);
    pack("v3.ota", "3.0", "m3", NULL);
    assert_int_equal(release("v3.ota", "stable", 1), OTA_OK);
    assert_int_equal(ota_repo_verify(repo, NULL, &d), OTA_OK);
}

static void
test_channel_operations(void **state)
{
    struct ota_repo *r = NULL;
    struct ota_diag  d;
    unsigned char    a[32], b[32];
    char             pub[400];

    (void)state;
    snprintf(pub, sizeof pub, "%s/public", repo);
    pack("v1.ota", "1.0", "m1", NULL);
    assert_int_equal(release("v1.ota", "beta", 0), OTA_OK);
    assert_int_equal(ota_repo_open(repo, &pass, &r, &d), OTA_OK);
    assert_int_equal(ota_repo_promote(r, "com.example.t", "beta", "stable", NULL, 10, 0, &d),
                     OTA_OK);
    assert_int_equal(ota_repo_rollout(r, "com.example.t", "stable", NULL, 50, &d), OTA_OK);
    assert_int_equal(ota_repo_rollout(r, "com.example.t", "stable", NULL, 101, &d),
                     OTA_E_INVALID);
    assert_int_equal(ota_repo_rollout(r, "com.example.t", "nightly", NULL, 5, &d),
                     OTA_E_NOT_FOUND);
    assert_int_equal(ota_repo_yank(r, "com.example.t", "1.0", &d), OTA_OK);
    ota_repo_close(r);
    tree_digest(pub, a);
    assert_int_equal(ota_repo_open(repo, &pass, &r, &d), OTA_OK);
    assert_int_equal(ota_repo_yank(r, "com.example.t", "1.0", &d), OTA_E_STATE);
    assert_int_equal(ota_repo_yank(r, "com.example.t", "7.0", &d), OTA_E_NOT_FOUND);
    assert_int_equal(ota_repo_republish(r, "com.example.t", "1.0", "0.5", "stable", 100, &d),
                     OTA_E_ROLLBACK);
    ota_repo_close(r);
    tree_digest(pub, b);
    assert_memory_equal(a, b, sizeof a);
    assert_int_equal(ota_repo_open(repo, &pass, &r, &d), OTA_OK);
    assert_int_equal(ota_repo_republish(r, "com.example.t", "1.0", "1.1", "stable", 100, &d),
                     OTA_OK);
    ota_repo_close(r);
    assert_int_equal(ota_repo_verify(repo, NULL, &d), OTA_OK);
}

static void
test_rotation_and_tamper(void **state)
{
    struct ota_repo *r = NULL;
    struct ota_diag  d;
    char             path[400];
    unsigned char   *buf = NULL;
    size_t           len = 0;
    char            *p;

    (void)state;
    pack("v1.ota", "1.0", "m1", NULL);
    assert_int_equal(release("v1.ota", "stable", 0), OTA_OK);
    assert_int_equal(ota_repo_open(repo, &pass, &r, &d), OTA_OK);
    assert_int_equal(ota_repo_refresh(r, 1, &d), OTA_OK);
    assert_int_equal(ota_repo_rotate(r, OTA_ROLE_ROOT, NULL, 0, 1, &d), OTA_OK);
    ota_repo_close(r);
    r = NULL;
    assert_int_equal(ota_repo_verify(repo, NULL, &d), OTA_OK);

    /* a tampered timestamp no longer verifies, and the publisher refuses to build on it */
    snprintf(path, sizeof path, "%s/public/metadata/timestamp.json", repo);
    assert_int_equal(ota_read_file(path, 1 << 20, &buf, &len, NULL), OTA_OK);
    p = strstr((char *)buf, "\"expires\":\"");
    assert_non_null(p);
    p += 11 + 18; /* the last digit of the seconds: a later expiry, not signed by anyone */
    *p = *p == '9' ? '8' : '9';
    assert_int_equal(ota_write_file_atomic(path, buf, len, 0644, 0, NULL), OTA_OK);
    free(buf);
    assert_int_equal(ota_repo_open(repo, &pass, &r, &d), OTA_E_THRESHOLD);
    assert_null(r);
    assert_int_not_equal(ota_repo_verify(repo, NULL, &d), OTA_OK);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_init_refuses_existing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_release_rules, setup, teardown),
        cmocka_unit_test_setup_teardown(test_channel_operations, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rotation_and_tamper, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
