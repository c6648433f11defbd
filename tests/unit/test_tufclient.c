/* TUF client workflow (spec section 5) against repositories built by this test in a temp dir
 * and served with file:// URLs: fresh refresh, root rotation, thresholds, rollback, freeze,
 * mix-and-match, endless data, fast-forward recovery, delegations, and the conformance CLI.
 * Every failure asserts the exact code and that the trusted metadata on disk did not change
 * (except for what the specification says to persist before the failing step). */
#include <dirent.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "cli_tuf.h"
#include "ota/fetch.h"
#include "ota/tuf.h"
#include "ota/tufclient.h"
#include "tuf_fixture.h"

#define NOW 1795521600 /* 2026-11-24T12:00:00Z */
#define DAY 86400
#define FAR_FUTURE 4102444800 /* 2100-01-01T00:00:00Z */

static struct fx_key K[12];

/* ---- repository builder --------------------------------------------------------------- */

struct repo {
    char           dir[64];
    char           meta[128];   /* served metadata */
    char           tdir[128];   /* served targets */
    char           client[128]; /* the client's metadata_dir */
    char           url[192];    /* file://.../metadata */
    char           turl[192];   /* file://.../targets */
    int            consistent;
    int            meta_hashes; /* snapshot/timestamp metafiles carry length and sha256 */
    struct fx_role roles[4];
    long long      root_v, ts_v, snap_v, tg_v;
    int64_t        root_exp, ts_exp, snap_exp, tg_exp;
    json_t        *targets;     /* path -> entry */
    json_t        *delegations; /* NULL or the top-level delegations object */
    json_t        *snap_meta;   /* entries of delegated roles */
    char          *tg_bytes, *snap_bytes;
    size_t         tg_len, snap_len;
};

static void
write_file(const char *path, const void *buf, size_t len)
{
    FILE *f = fopen(path, "wb");

    assert_non_null(f);
    assert_int_equal(fwrite(buf, 1, len, f), len);
    assert_int_equal(fclose(f), 0);
}

static void
repo_write(struct repo *r, const char *name, const void *buf, size_t len)
{
    char p[512];

    snprintf(p, sizeof p, "%s/%s", r->meta, name);
    write_file(p, buf, len);
}

/* Temp dirs of repositories still open: a failed assertion leaves its test early, so the
 * group teardown removes what the test could not. */
static char live[64][64];

static void
live_set(const char *dir, int on)
{
    size_t i;

    for (i = 0; i < 64; i++) {
        if (on && live[i][0] == '\0') {
            snprintf(live[i], sizeof live[i], "%s", dir);
            return;
        }
        if (!on && strcmp(live[i], dir) == 0) {
            live[i][0] = '\0';
            return;
        }
    }
}

static void
repo_init(struct repo *r)
{
    memset(r, 0, sizeof *r);
    snprintf(r->dir, sizeof r->dir, "/tmp/ota-test-tufc.XXXXXX");
    assert_non_null(mkdtemp(r->dir));
    live_set(r->dir, 1);
    snprintf(r->meta, sizeof r->meta, "%s/metadata", r->dir);
    snprintf(r->tdir, sizeof r->tdir, "%s/targets", r->dir);
    snprintf(r->client, sizeof r->client, "%s/client", r->dir);
    snprintf(r->url, sizeof r->url, "file://%s", r->meta);
    snprintf(r->turl, sizeof r->turl, "file://%s", r->tdir);
    assert_int_equal(mkdir(r->meta, 0755), 0);
    assert_int_equal(mkdir(r->tdir, 0755), 0);
    r->consistent = 1;
    r->meta_hashes = 1;
    r->roles[0] = (struct fx_role){{&K[0]}, 1, 1};
    r->roles[1] = (struct fx_role){{&K[1]}, 1, 1};
    r->roles[2] = (struct fx_role){{&K[2]}, 1, 1};
    r->roles[3] = (struct fx_role){{&K[3]}, 1, 1};
    r->root_v = r->ts_v = r->snap_v = r->tg_v = 1;
    r->root_exp = r->ts_exp = r->snap_exp = r->tg_exp = FAR_FUTURE;
    r->targets = json_object();
    r->snap_meta = json_object();
}

static void
repo_free(struct repo *r)
{
    json_decref(r->targets);
    json_decref(r->delegations);
    json_decref(r->snap_meta);
    free(r->tg_bytes);
    free(r->snap_bytes);
    if (ota_rm_rf(r->dir, NULL) != OTA_OK)
        fprintf(stderr, "cannot remove %s\n", r->dir);
    live_set(r->dir, 0);
}

static void
publish_root_signed_by(struct repo *r, const struct fx_key *const *signers, size_t n)
{
    json_t *doc =
        fx_sign(fx_root_signed(r->root_v, r->root_exp, r->consistent, r->roles), signers, n);
    size_t len;
    char  *b = fx_bytes(doc, &len), name[64];

    snprintf(name, sizeof name, "%lld.root.json", r->root_v);
    repo_write(r, name, b, len);
    free(b);
    json_decref(doc);
}

static void
publish_root(struct repo *r)
{
    publish_root_signed_by(r, r->roles[0].keys, r->roles[0].n);
}

static char *
versioned(const struct repo *r, long long v, const char *name)
{
    static char buf[4][800];
    static int  i;
    char       *p = buf[i++ % 4];

    if (r->consistent)
        snprintf(p, sizeof buf[0], "%lld.%s", v, name);
    else
        snprintf(p, sizeof buf[0], "%s", name);
    return p;
}

static void
publish_targets(struct repo *r)
{
    json_t *doc = fx_sign(fx_targets_signed(r->tg_v, r->tg_exp, json_deep_copy(r->targets),
                                            r->delegations ? json_deep_copy(r->delegations) : NULL),
                          r->roles[3].keys, r->roles[3].n);

    free(r->tg_bytes);
    r->tg_bytes = fx_bytes(doc, &r->tg_len);
    repo_write(r, versioned(r, r->tg_v, "targets.json"), r->tg_bytes, r->tg_len);
    json_decref(doc);
}

static void
publish_snapshot(struct repo *r)
{
    json_t *meta = json_deep_copy(r->snap_meta), *doc;

    json_object_set_new(meta, "targets.json",
                        fx_meta_entry(r->tg_v, r->meta_hashes ? r->tg_bytes : NULL, r->tg_len));
    doc =
        fx_sign(fx_snapshot_signed(r->snap_v, r->snap_exp, meta), r->roles[2].keys, r->roles[2].n);
    free(r->snap_bytes);
    r->snap_bytes = fx_bytes(doc, &r->snap_len);
    repo_write(r, versioned(r, r->snap_v, "snapshot.json"), r->snap_bytes, r->snap_len);
    json_decref(doc);
}

static void
publish_timestamp(struct repo *r)
{
    json_t *doc =
        fx_sign(fx_timestamp_signed(
                    r->ts_v, r->ts_exp,
                    fx_meta_entry(r->snap_v, r->meta_hashes ? r->snap_bytes : NULL, r->snap_len)),
                r->roles[1].keys, r->roles[1].n);
    size_t len;
    char  *b = fx_bytes(doc, &len);

    repo_write(r, "timestamp.json", b, len);
    free(b);
    json_decref(doc);
}

static void
publish_all(struct repo *r)
{
    publish_targets(r);
    publish_snapshot(r);
    publish_timestamp(r);
}

/* A delegated role's document, listed in the next snapshot. targets/delegations stolen. */
static void
publish_role(struct repo *r, const char *name, long long v, json_t *targets, json_t *delegations,
             const struct fx_key *const *signers, size_t n)
{
    json_t *doc = fx_sign(fx_targets_signed(v, FAR_FUTURE, targets, delegations), signers, n);
    size_t  len;
    char   *b = fx_bytes(doc, &len), fname[700], *vname, *slash;

    /* The client asks for quote(name): a file:// URL decodes that back to name, so the file
     * is stored under the name itself ("a/b" in a directory "1.a"). */
    snprintf(fname, sizeof fname, "%s.json", name);
    vname = versioned(r, v, fname);
    slash = strrchr(vname, '/');
    if (slash != NULL) {
        char dir[1024];
        snprintf(dir, sizeof dir, "%s/%.*s", r->meta, (int)(slash - vname), vname);
        assert_int_equal(ota_mkdir_p(dir, 0755, NULL), OTA_OK);
    }
    repo_write(r, vname, b, len);
    json_object_set_new(r->snap_meta, fname, fx_meta_entry(v, r->meta_hashes ? b : NULL, len));
    free(b);
    json_decref(doc);
}

/* Add a target whose content is served under targets/ (hash-prefixed when consistent). */
static void
add_target(struct repo *r, json_t *targets, const char *path, const char *content, json_t *custom)
{
    char        hex[OTA_SHA256_HEX], p[1024], dir[512];
    const char *slash = strrchr(path, '/');

    json_object_set_new(targets, path, fx_target_entry(content, strlen(content), custom));
    assert_int_equal(ota_sha256_hex(content, strlen(content), hex), OTA_OK);
    snprintf(dir, sizeof dir, "%s/%.*s", r->tdir, slash ? (int)(slash - path) : 0, path);
    assert_int_equal(ota_mkdir_p(dir, 0755, NULL), OTA_OK);
    if (r->consistent)
        snprintf(p, sizeof p, "%s/%s.%s", dir, hex, slash ? slash + 1 : path);
    else
        snprintf(p, sizeof p, "%s/%s", r->tdir, path);
    write_file(p, content, strlen(content));
}

/* ---- client helpers ------------------------------------------------------------------- */

static void
client_init(struct repo *r)
{
    char            root[256];
    struct ota_diag d;

    snprintf(root, sizeof root, "%s/1.root.json", r->meta);
    assert_int_equal(ota_tuf_client_init(r->client, root, &d), OTA_OK);
}

static struct ota_tuf_client_opts
opts_at(const struct repo *r, int64_t now)
{
    struct ota_tuf_client_opts o;

    memset(&o, 0, sizeof o);
    o.metadata_dir = r->client;
    o.metadata_url = r->url;
    o.now = now;
    return o;
}

/* Open and refresh; *out (if not NULL) receives the client on success. */
static ota_err
refresh_opts(const struct ota_tuf_client_opts *o, struct ota_tuf_client **out, struct ota_diag *d)
{
    struct ota_tuf_client *c = NULL;
    ota_err                rc;

    memset(d, 0, sizeof *d);
    rc = ota_tuf_client_open(o, &c, d);
    if (rc == OTA_OK)
        rc = ota_tuf_client_refresh(c, d);
    if (rc != OTA_OK)
        assert_true(strlen(d->msg) > 0);
    if (rc == OTA_OK && out != NULL)
        *out = c;
    else
        ota_tuf_client_free(c);
    return rc;
}

static ota_err
refresh_at(const struct repo *r, int64_t now, struct ota_tuf_client **out)
{
    struct ota_tuf_client_opts o = opts_at(r, now);
    struct ota_diag            d;

    return refresh_opts(&o, out, &d);
}

static int
name_cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Names and digests of every file in the client's metadata_dir, sorted: equal strings mean
 * nothing changed. Caller frees. */
static char *
fingerprint(const struct repo *r)
{
    DIR           *dir = opendir(r->client);
    struct dirent *e;
    char          *names[64], *out = calloc(1, 64 * 400);
    size_t         n = 0, i;

    assert_non_null(dir);
    assert_non_null(out);
    while ((e = readdir(dir)) != NULL) {
        if (e->d_name[0] == '.' && (e->d_name[1] == '\0' || strcmp(e->d_name, "..") == 0))
            continue;
        assert_true(n < 64);
        names[n++] = strdup(e->d_name);
    }
    closedir(dir);
    qsort(names, n, sizeof *names, name_cmp);
    for (i = 0; i < n; i++) {
        char               p[512], hex[OTA_SHA256_HEX];
        unsigned char      h[OTA_SHA256_LEN];
        unsigned long long len;
        snprintf(p, sizeof p, "%s/%s", r->client, names[i]);
        assert_int_equal(ota_sha256_file(p, h, &len, NULL), OTA_OK);
        ota_hex_encode(h, sizeof h, hex);
        snprintf(out + strlen(out), 400, "%s:%s\n", names[i], hex);
        free(names[i]);
    }
    return out;
}

/* Refresh must fail with want and leave the client's files exactly as they were. */
static void
expect_refresh_fails(const struct repo *r, int64_t now, ota_err want)
{
    char *before = fingerprint(r), *after;

    assert_int_equal(refresh_at(r, now, NULL), want);
    after = fingerprint(r);
    assert_string_equal(before, after);
    free(before);
    free(after);
}

static int
client_has(const struct repo *r, const char *name)
{
    char        p[512];
    struct stat st;

    snprintf(p, sizeof p, "%s/%s", r->client, name);
    return stat(p, &st) == 0;
}

/* The client's copy of name equals the repository file rname. */
static void
assert_same_file(const struct repo *r, const char *name, const char *rname)
{
    char           a[512], b[512];
    unsigned char *x = NULL, *y = NULL;
    size_t         xl = 0, yl = 0;

    snprintf(a, sizeof a, "%s/%s", r->client, name);
    snprintf(b, sizeof b, "%s/%s", r->meta, rname);
    assert_int_equal(ota_read_file(a, 1 << 24, &x, &xl, NULL), OTA_OK);
    assert_int_equal(ota_read_file(b, 1 << 24, &y, &yl, NULL), OTA_OK);
    assert_int_equal(xl, yl);
    assert_memory_equal(x, y, xl);
    free(x);
    free(y);
}

static int
setup(void **state)
{
    unsigned char i;

    (void)state;
    for (i = 0; i < 12; i++)
        fx_key_init(&K[i], (unsigned char)(i + 1));
    return 0;
}

/* A repository at version 1 everywhere with one target, and a client initialised from it. */
static void
std_repo(struct repo *r)
{
    repo_init(r);
    add_target(r, r->targets, "app/app-1.0.ota", "bundle one",
               json_pack("{s:{s:b}}", "ota", "yanked", 0));
    publish_root(r);
    publish_all(r);
    client_init(r);
}

/* ---- tests ---------------------------------------------------------------------------- */

static int
count_cb(void *ctx, const struct ota_tuf_target *t)
{
    (void)t;
    (*(int *)ctx)++;
    return 0;
}

static void
test_fresh_refresh(void **state)
{
    struct repo            r;
    struct ota_tuf_client *c = NULL;
    struct ota_tuf_target  t;
    struct ota_diag        d;
    unsigned char          h[OTA_SHA256_LEN];
    char                   hex[OTA_SHA256_HEX], want[512];
    char                  *u;
    int                    n = 0;
    uint64_t               before;
    struct stat            st;

    (void)state;
    std_repo(&r);
    assert_true(client_has(&r, "root.json"));
    assert_false(client_has(&r, "timestamp.json"));
    assert_int_equal(refresh_at(&r, NOW, &c), OTA_OK);
    assert_int_equal(ota_tuf_client_version(c, "root"), 1);
    assert_int_equal(ota_tuf_client_version(c, "timestamp"), 1);
    assert_int_equal(ota_tuf_client_version(c, "snapshot"), 1);
    assert_int_equal(ota_tuf_client_version(c, "targets"), 1);
    assert_int_equal(ota_tuf_client_version(c, "other"), 0);
    assert_same_file(&r, "timestamp.json", "timestamp.json");
    assert_same_file(&r, "snapshot.json", "1.snapshot.json");
    assert_same_file(&r, "targets.json", "1.targets.json");
    assert_int_equal(ota_tuf_client_find_target(c, "app/app-1.0.ota", &t, &d), OTA_OK);
    assert_string_equal(t.path, "app/app-1.0.ota");
    assert_int_equal(t.length, 10);
    assert_int_equal(ota_sha256_buf("bundle one", 10, h), OTA_OK);
    assert_memory_equal(t.sha256, h, sizeof h);
    assert_non_null(t.custom);
    assert_int_equal(ota_tuf_client_find_target(c, "app/app-2.0.ota", &t, &d), OTA_E_NOT_FOUND);
    assert_int_equal(ota_tuf_client_foreach_target(c, count_cb, &n, &d), OTA_OK);
    assert_int_equal(n, 1);
    assert_int_equal(ota_tuf_client_find_target(c, "app/app-1.0.ota", &t, &d), OTA_OK);
    /* consistent snapshots: HASH.NAME beside the path; base with or without '/' */
    ota_hex_encode(h, sizeof h, hex);
    snprintf(want, sizeof want, "%s/app/%s.app-1.0.ota", r.turl, hex);
    u = ota_tuf_client_target_url(c, r.turl, &t);
    assert_string_equal(u, want);
    free(u);
    snprintf(want, sizeof want, "%s/", r.turl);
    u = ota_tuf_client_target_url(c, want, &t);
    snprintf(want, sizeof want, "%s/app/%s.app-1.0.ota", r.turl, hex);
    assert_string_equal(u, want);
    free(u);
    assert_non_null(ota_tuf_client_targets_keys(c));
    assert_string_equal(ota_tuf_client_targets_keys(c)->keys[0].keyid, K[3].keyid);
    ota_tuf_client_free(c);
    /* nothing new: only timestamp.json is transferred, nothing is rewritten */
    assert_int_equal(stat(r.client, &st), 0);
    {
        char       *fp = fingerprint(&r), *fp2;
        char        p[512];
        struct stat ts;
        snprintf(p, sizeof p, "%s/timestamp.json", r.meta);
        assert_int_equal(stat(p, &ts), 0);
        before = ota_fetch_bytes_total();
        assert_int_equal(refresh_at(&r, NOW, &c), OTA_OK);
        assert_int_equal(ota_fetch_bytes_total() - before, (uint64_t)ts.st_size);
        fp2 = fingerprint(&r);
        assert_string_equal(fp, fp2);
        free(fp);
        free(fp2);
    }
    /* lookups need a refresh first */
    ota_tuf_client_free(c);
    {
        struct ota_tuf_client_opts o = opts_at(&r, NOW);
        assert_int_equal(ota_tuf_client_open(&o, &c, &d), OTA_OK);
        assert_int_equal(ota_tuf_client_version(c, "targets"), 1); /* local copy, verified */
        assert_int_equal(ota_tuf_client_find_target(c, "app/app-1.0.ota", &t, &d), OTA_E_STATE);
        ota_tuf_client_free(c);
    }
    repo_free(&r);
}

static void
test_not_consistent_and_no_hashes(void **state)
{
    struct repo            r;
    struct ota_tuf_client *c = NULL;
    struct ota_tuf_target  t;
    struct ota_diag        d;
    char                   want[512];
    char                  *u;

    (void)state;
    repo_init(&r);
    r.consistent = 0;
    r.meta_hashes = 0;
    add_target(&r, r.targets, "dir/file.txt", "content", NULL);
    publish_root(&r);
    publish_all(&r);
    client_init(&r);
    assert_int_equal(refresh_at(&r, NOW, &c), OTA_OK);
    assert_same_file(&r, "snapshot.json", "snapshot.json");
    assert_int_equal(ota_tuf_client_find_target(c, "dir/file.txt", &t, &d), OTA_OK);
    u = ota_tuf_client_target_url(c, r.turl, &t);
    snprintf(want, sizeof want, "%s/dir/file.txt", r.turl);
    assert_string_equal(u, want);
    free(u);
    ota_tuf_client_free(c);
    /* without digests in the metafiles, versions alone tell a new snapshot and targets from
     * the local copies */
    add_target(&r, r.targets, "dir/new.txt", "new", NULL);
    r.ts_v = r.snap_v = r.tg_v = 2;
    publish_all(&r);
    assert_int_equal(refresh_at(&r, NOW, &c), OTA_OK);
    assert_int_equal(ota_tuf_client_version(c, "snapshot"), 2);
    assert_int_equal(ota_tuf_client_version(c, "targets"), 2);
    assert_int_equal(ota_tuf_client_find_target(c, "dir/new.txt", &t, &d), OTA_OK);
    ota_tuf_client_free(c);
    repo_free(&r);
}

static void
test_root_rotation(void **state)
{
    struct repo            r;
    struct ota_tuf_client *c = NULL;
    const struct fx_key   *v2[] = {&K[0], &K[5]}, *v3[] = {&K[5], &K[6]}, *old[] = {&K[0]};

    (void)state;
    std_repo(&r);
    /* 1 -> 2: root key K0 -> K5, targets key K3 -> K7; signed by old and new */
    r.root_v = 2;
    r.roles[0] = (struct fx_role){{&K[5]}, 1, 1};
    r.roles[3] = (struct fx_role){{&K[7]}, 1, 1};
    publish_root_signed_by(&r, v2, 2);
    /* 2 -> 3: K5 -> K6 */
    r.root_v = 3;
    r.roles[0] = (struct fx_role){{&K[6]}, 1, 1};
    publish_root_signed_by(&r, v3, 2);
    r.tg_v = 2;
    r.snap_v = 2;
    r.ts_v = 2;
    publish_all(&r);
    assert_int_equal(refresh_at(&r, NOW, &c), OTA_OK);
    assert_int_equal(ota_tuf_client_version(c, "root"), 3);
    assert_int_equal(ota_tuf_client_version(c, "targets"), 2);
    assert_string_equal(ota_tuf_client_targets_keys(c)->keys[0].keyid, K[7].keyid);
    ota_tuf_client_free(c);
    assert_same_file(&r, "root.json", "3.root.json");
    /* a rotated-away key is no longer trusted: 4.root.json by K0 alone (threshold of v1, not of
     * the trusted v3) */
    r.root_v = 4;
    publish_root_signed_by(&r, old, 1);
    expect_refresh_fails(&r, NOW, OTA_E_THRESHOLD);
    assert_same_file(&r, "root.json", "3.root.json");
    /* nor is the rotated-away targets key */
    {
        char p[512];
        snprintf(p, sizeof p, "%s/4.root.json", r.meta);
        assert_int_equal(unlink(p), 0);
    }
    r.roles[3] = (struct fx_role){{&K[3]}, 1, 1}; /* sign targets v3 with the old key */
    r.tg_v = 3;
    r.snap_v = 3;
    r.ts_v = 3;
    publish_all(&r);
    assert_int_equal(refresh_at(&r, NOW, NULL), OTA_E_THRESHOLD);
    assert_same_file(&r, "targets.json", "2.targets.json");
    repo_free(&r);
}

static void
test_root_needs_both_thresholds(void **state)
{
    struct repo          r;
    const struct fx_key *new_only[] = {&K[5]}, *old_only[] = {&K[0]};
    char                 p[512];

    (void)state;
    std_repo(&r);
    assert_int_equal(refresh_at(&r, NOW, NULL), OTA_OK);
    r.root_v = 2;
    r.roles[0] = (struct fx_role){{&K[5]}, 1, 1};
    /* signed only by the new key: the trusted root's threshold is not met */
    publish_root_signed_by(&r, new_only, 1);
    expect_refresh_fails(&r, NOW, OTA_E_THRESHOLD);
    /* signed only by the old key: the new root's own threshold is not met */
    publish_root_signed_by(&r, old_only, 1);
    expect_refresh_fails(&r, NOW, OTA_E_THRESHOLD);
    /* a root that skips a version */
    snprintf(p, sizeof p, "%s/2.root.json", r.meta);
    assert_int_equal(unlink(p), 0);
    {
        const struct fx_key *both[] = {&K[0], &K[5]};
        r.root_v = 3;
        publish_root_signed_by(&r, both, 2);
        assert_int_equal(rename(strcat(strcpy(p, r.meta), "/3.root.json"),
                                strcat(strcpy(p + 256, r.meta), "/2.root.json")),
                         0);
    }
    expect_refresh_fails(&r, NOW, OTA_E_FORMAT);
    /* an older root served as the next one */
    {
        const struct fx_key *both[] = {&K[0], &K[5]};
        r.root_v = 1;
        publish_root_signed_by(&r, both, 2);
        snprintf(p, sizeof p, "%s/1.root.json", r.meta);
        assert_int_equal(rename(p, strcat(strcpy(p + 256, r.meta), "/2.root.json")), 0);
    }
    expect_refresh_fails(&r, NOW, OTA_E_ROLLBACK);
    repo_free(&r);
}

static void
test_threshold_not_met(void **state)
{
    struct repo r;

    (void)state;
    repo_init(&r);
    add_target(&r, r.targets, "a", "a", NULL);
    r.roles[1] = (struct fx_role){{&K[1], &K[4]}, 2, 2};
    publish_root(&r);
    r.roles[1].n = 1; /* timestamp signed by K1 only */
    publish_all(&r);
    client_init(&r);
    expect_refresh_fails(&r, NOW, OTA_E_THRESHOLD);
    assert_false(client_has(&r, "timestamp.json"));
    r.roles[1].n = 2;
    publish_timestamp(&r);
    assert_int_equal(refresh_at(&r, NOW, NULL), OTA_OK);
    repo_free(&r);
}

static void
test_rollbacks(void **state)
{
    struct repo r;
    char       *ts1, *fp;
    size_t      ts1_len;
    char        p[512];

    (void)state;
    std_repo(&r);
    /* v2 everywhere, trusted */
    r.ts_v = r.snap_v = r.tg_v = 2;
    publish_all(&r);
    assert_int_equal(refresh_at(&r, NOW, NULL), OTA_OK);
    snprintf(p, sizeof p, "%s/timestamp.json", r.meta);
    assert_int_equal(ota_read_file(p, 1 << 20, (unsigned char **)&ts1, &ts1_len, NULL), OTA_OK);

    /* timestamp version 1, properly signed */
    r.ts_v = 1;
    publish_timestamp(&r);
    expect_refresh_fails(&r, NOW, OTA_E_ROLLBACK);

    /* timestamp version 3 naming snapshot version 1 */
    r.ts_v = 3;
    r.snap_v = 1;
    r.tg_v = 1;
    publish_targets(&r);
    publish_snapshot(&r);
    publish_timestamp(&r);
    expect_refresh_fails(&r, NOW, OTA_E_ROLLBACK);

    /* snapshot version 3 naming targets version 1 (below the trusted 2) */
    r.ts_v = 4;
    r.snap_v = 3;
    r.tg_v = 1;
    publish_snapshot(&r);
    publish_timestamp(&r);
    fp = fingerprint(&r);
    assert_int_equal(refresh_at(&r, NOW, NULL), OTA_E_ROLLBACK);
    /* the verified timestamp is kept (spec 5.4.5); snapshot and targets are untouched */
    assert_same_file(&r, "timestamp.json", "timestamp.json");
    assert_same_file(&r, "snapshot.json", "2.snapshot.json");
    assert_same_file(&r, "targets.json", "2.targets.json");
    free(fp);

    /* snapshot dropping targets.json is impossible (format); dropping a delegated role is a
     * rollback too: covered by test_tuf. Targets: snapshot names targets 3, the file served
     * as 3.targets.json is a re-signed version 2. */
    r.ts_v = 5;
    r.snap_v = 4;
    r.tg_v = 2;
    json_object_set_new(r.targets, "b", fx_target_entry("b", 1, NULL));
    {
        char a[512], b[512];
        snprintf(a, sizeof a, "%s/2.targets.json", r.meta);
        snprintf(b, sizeof b, "%s/old-2.targets.json", r.meta);
        assert_int_equal(rename(a, b), 0);
    }
    publish_targets(&r); /* version 2 with new content */
    repo_write(&r, "3.targets.json", r.tg_bytes, r.tg_len);
    r.tg_v = 3; /* snapshot says 3, with the digest of that file */
    publish_snapshot(&r);
    publish_timestamp(&r);
    assert_int_equal(refresh_at(&r, NOW, NULL), OTA_E_ROLLBACK);
    assert_same_file(&r, "snapshot.json", "4.snapshot.json");
    assert_same_file(&r, "targets.json", "old-2.targets.json");
    free(ts1);
    repo_free(&r);
}

static void
test_expired_and_frozen(void **state)
{
    struct repo r;

    (void)state;
    /* a fresh client offered an expired timestamp */
    repo_init(&r);
    r.ts_exp = NOW - 1;
    publish_root(&r);
    publish_all(&r);
    client_init(&r);
    expect_refresh_fails(&r, NOW, OTA_E_EXPIRED);
    assert_false(client_has(&r, "timestamp.json"));
    /* expiry at exactly the start time counts as expired */
    r.ts_exp = NOW;
    publish_timestamp(&r);
    expect_refresh_fails(&r, NOW, OTA_E_EXPIRED);
    /* a timestamp valid for a day: fine now, frozen two days later (same timestamp served) */
    r.ts_exp = NOW + DAY;
    publish_timestamp(&r);
    assert_int_equal(refresh_at(&r, NOW, NULL), OTA_OK);
    expect_refresh_fails(&r, NOW + 2 * DAY, OTA_E_EXPIRED);
    /* snapshot, targets, root expired */
    r.ts_exp = FAR_FUTURE;
    r.ts_v = 2;
    r.snap_v = 2;
    r.snap_exp = NOW - DAY;
    publish_snapshot(&r);
    publish_timestamp(&r);
    assert_int_equal(refresh_at(&r, NOW, NULL), OTA_E_EXPIRED);
    assert_same_file(&r, "snapshot.json", "1.snapshot.json");
    r.ts_v = 3;
    r.snap_v = 3;
    r.snap_exp = FAR_FUTURE;
    r.tg_v = 2;
    r.tg_exp = NOW - DAY;
    publish_all(&r);
    assert_int_equal(refresh_at(&r, NOW, NULL), OTA_E_EXPIRED);
    assert_same_file(&r, "targets.json", "1.targets.json");
    r.ts_v = 4;
    r.snap_v = 4;
    r.tg_v = 3;
    r.tg_exp = FAR_FUTURE;
    publish_all(&r);
    assert_int_equal(refresh_at(&r, NOW, NULL), OTA_OK);
    r.root_v = 2;
    r.root_exp = NOW - DAY;
    publish_root(&r);
    assert_int_equal(refresh_at(&r, NOW, NULL), OTA_E_EXPIRED);
    /* the expired root was verified and persisted (spec 5.3.8) before the freeze check */
    assert_same_file(&r, "root.json", "2.root.json");
    repo_free(&r);
}

static void
test_mix_and_match(void **state)
{
    struct repo r;
    char       *snap_a;
    size_t      snap_a_len;

    (void)state;
    std_repo(&r);
    assert_int_equal(refresh_at(&r, NOW, NULL), OTA_OK);
    /* Timestamp names snapshot 2 by digest; the served 2.snapshot.json is another, validly
     * signed snapshot 2 of the same length (only its expiry differs). */
    r.snap_v = 2;
    r.tg_v = 1;
    publish_snapshot(&r);
    snap_a = r.snap_bytes;
    snap_a_len = r.snap_len;
    r.snap_bytes = NULL;
    r.ts_v = 2;
    {
        /* timestamp over snapshot A */
        char *keep = r.snap_bytes;
        r.snap_bytes = snap_a;
        r.snap_len = snap_a_len;
        publish_timestamp(&r);
        r.snap_bytes = keep;
    }
    r.snap_exp = FAR_FUTURE - DAY; /* snapshot B, same length */
    publish_snapshot(&r);
    assert_int_equal(r.snap_len, snap_a_len);
    assert_memory_not_equal(r.snap_bytes, snap_a, snap_a_len);
    assert_int_equal(refresh_at(&r, NOW, NULL), OTA_E_DIGEST);
    assert_same_file(&r, "snapshot.json", "1.snapshot.json");
    assert_same_file(&r, "timestamp.json", "timestamp.json"); /* the timestamp did verify */
    /* the same for targets named by the snapshot */
    r.ts_v = 3;
    r.snap_v = 3;
    r.tg_v = 2;
    publish_targets(&r);
    publish_snapshot(&r);
    publish_timestamp(&r);
    r.tg_exp = FAR_FUTURE - DAY;
    publish_targets(&r); /* 2.targets.json replaced after the snapshot was signed */
    assert_int_equal(refresh_at(&r, NOW, NULL), OTA_E_DIGEST);
    assert_same_file(&r, "targets.json", "1.targets.json");
    free(snap_a);
    repo_free(&r);
}

static void
test_endless_data(void **state)
{
    struct repo                r;
    struct ota_tuf_client_opts o;
    struct ota_diag            d;
    char                       pad[20001];
    json_t                    *s, *doc;
    char                      *b;
    size_t                     len;

    (void)state;
    std_repo(&r);
    memset(pad, 'x', sizeof pad - 1);
    pad[sizeof pad - 1] = '\0';
    /* a validly signed timestamp over the 16 KiB cap */
    s = fx_timestamp_signed(1, FAR_FUTURE, fx_meta_entry(1, r.snap_bytes, r.snap_len));
    json_object_set_new(s, "pad", json_string(pad));
    doc = fx_sign(s, r.roles[1].keys, 1);
    b = fx_bytes(doc, &len);
    repo_write(&r, "timestamp.json", b, len);
    free(b);
    json_decref(doc);
    expect_refresh_fails(&r, NOW, OTA_E_TOO_BIG);
    publish_timestamp(&r);
    assert_int_equal(refresh_at(&r, NOW, NULL), OTA_OK);
    /* a root over max_root_len */
    r.root_v = 2;
    s = fx_root_signed(2, FAR_FUTURE, 1, r.roles);
    json_object_set_new(s, "pad", json_string(pad));
    doc = fx_sign(s, r.roles[0].keys, 1);
    b = fx_bytes(doc, &len);
    repo_write(&r, "2.root.json", b, len);
    free(b);
    json_decref(doc);
    o = opts_at(&r, NOW);
    o.max_root_len = 16 << 10;
    {
        char *fp = fingerprint(&r), *fp2;
        assert_int_equal(refresh_opts(&o, NULL, &d), OTA_E_TOO_BIG);
        fp2 = fingerprint(&r);
        assert_string_equal(fp, fp2);
        free(fp);
        free(fp2);
    }
    o.max_root_len = 0; /* the default 512 KiB takes it */
    assert_int_equal(refresh_opts(&o, NULL, &d), OTA_OK);
    /* a snapshot longer than the length the timestamp gives */
    r.ts_v = 2;
    r.snap_v = 2;
    publish_snapshot(&r);
    publish_timestamp(&r);
    {
        char *longer = malloc(r.snap_len + 100);
        memcpy(longer, r.snap_bytes, r.snap_len);
        memset(longer + r.snap_len, ' ', 100); /* still the same JSON document */
        repo_write(&r, "2.snapshot.json", longer, r.snap_len + 100);
        free(longer);
    }
    assert_int_equal(refresh_at(&r, NOW, NULL), OTA_E_TOO_BIG);
    assert_same_file(&r, "snapshot.json", "1.snapshot.json");
    repo_free(&r);
}

static void
test_fast_forward_recovery(void **state)
{
    struct repo            r;
    struct ota_tuf_client *c = NULL;
    const struct fx_key   *both[] = {&K[0]};

    (void)state;
    std_repo(&r);
    /* an attacker with the timestamp key pushes timestamp 1000 */
    r.ts_v = 1000;
    publish_timestamp(&r);
    assert_int_equal(refresh_at(&r, NOW, NULL), OTA_OK);
    /* the repository recovers with timestamp 1 again: still a rollback for the client */
    r.ts_v = 1;
    publish_timestamp(&r);
    expect_refresh_fails(&r, NOW, OTA_E_ROLLBACK);
    /* rotating the timestamp key in a new root voids the fast-forwarded copy */
    r.root_v = 2;
    r.roles[1] = (struct fx_role){{&K[4]}, 1, 1};
    publish_root_signed_by(&r, both, 1);
    publish_timestamp(&r);
    assert_int_equal(refresh_at(&r, NOW, &c), OTA_OK);
    assert_int_equal(ota_tuf_client_version(c, "root"), 2);
    assert_int_equal(ota_tuf_client_version(c, "timestamp"), 1);
    ota_tuf_client_free(c);
    assert_same_file(&r, "timestamp.json", "timestamp.json");
    repo_free(&r);
}

static void
test_fast_forward_cleared_even_if_timestamp_fails(void **state)
{
    struct repo          r;
    const struct fx_key *k0[] = {&K[0]};

    (void)state;
    std_repo(&r);
    r.ts_v = 1000;
    publish_timestamp(&r);
    assert_int_equal(refresh_at(&r, NOW, NULL), OTA_OK);
    assert_true(client_has(&r, "timestamp.json"));
    /* a new root rotates the timestamp key; the new timestamp is not there yet */
    r.root_v = 2;
    r.roles[1] = (struct fx_role){{&K[4]}, 1, 1};
    publish_root_signed_by(&r, k0, 1);
    {
        char p[512];
        snprintf(p, sizeof p, "%s/timestamp.json", r.meta);
        assert_int_equal(unlink(p), 0);
    }
    assert_int_equal(refresh_at(&r, NOW, NULL), OTA_E_NOT_FOUND);
    assert_same_file(&r, "root.json", "2.root.json");
    assert_false(client_has(&r, "timestamp.json"));
    assert_false(client_has(&r, "snapshot.json"));
    repo_free(&r);
}

/* targets delegates to roles; helpers for the delegation tests */
static json_t *
delegations_of(const struct fx_key *key, json_t *roles)
{
    return json_pack("{s:{s:o}, s:o}", "keys", key->keyid, fx_key_json(key), "roles", roles);
}

static void
test_delegations(void **state)
{
    struct repo            r;
    struct ota_tuf_client *c = NULL;
    struct ota_tuf_target  t;
    struct ota_diag        d;
    const struct fx_key   *dk[] = {&K[4]}, *bad[] = {&K[5]};
    json_t                *apps;

    (void)state;
    repo_init(&r);
    add_target(&r, r.targets, "top.txt", "top", NULL);
    r.delegations = delegations_of(
        &K[4],
        json_pack("[o, o]", fx_delegated_role("apps", dk, 1, 1, json_pack("[s]", "apps/*"), 0),
                  fx_delegated_role("../evil", dk, 1, 1, json_pack("[s]", "evil/*"), 0)));
    apps = json_object();
    add_target(&r, apps, "apps/a.ota", "app a", NULL);
    add_target(&r, apps, "other/b.ota", "outside the role's paths", NULL);
    publish_role(&r, "apps", 1, apps, NULL, dk, 1);
    apps = json_object();
    add_target(&r, apps, "evil/x", "x", NULL);
    publish_role(&r, "../evil", 1, apps, NULL, dk, 1);
    publish_root(&r);
    publish_all(&r);
    client_init(&r);
    assert_int_equal(refresh_at(&r, NOW, &c), OTA_OK);
    /* delegated metadata is fetched lazily */
    assert_false(client_has(&r, "apps.json"));
    assert_int_equal(ota_tuf_client_find_target(c, "top.txt", &t, &d), OTA_OK);
    assert_false(client_has(&r, "apps.json"));
    assert_int_equal(ota_tuf_client_find_target(c, "apps/a.ota", &t, &d), OTA_OK);
    assert_int_equal(t.length, 5);
    assert_true(client_has(&r, "apps.json"));
    assert_same_file(&r, "apps.json", "1.apps.json");
    /* listed by the role but outside its paths: not trusted */
    assert_int_equal(ota_tuf_client_find_target(c, "other/b.ota", &t, &d), OTA_E_NOT_FOUND);
    /* a role name with '/' and '..' stays a single file in metadata_dir */
    assert_int_equal(ota_tuf_client_find_target(c, "evil/x", &t, &d), OTA_OK);
    assert_true(client_has(&r, "..%2Fevil.json"));
    {
        char        p[512];
        struct stat st;
        snprintf(p, sizeof p, "%s/evil.json", r.dir);
        assert_int_equal(stat(p, &st), -1);
    }
    ota_tuf_client_free(c);
    /* the local copy is used next time: no fetch of apps */
    {
        uint64_t before;
        assert_int_equal(refresh_at(&r, NOW, &c), OTA_OK);
        before = ota_fetch_bytes_total();
        assert_int_equal(ota_tuf_client_find_target(c, "apps/a.ota", &t, &d), OTA_OK);
        assert_int_equal(ota_fetch_bytes_total(), before);
        ota_tuf_client_free(c);
    }
    /* a delegated role signed by a key it was not given */
    apps = json_object();
    add_target(&r, apps, "apps/a.ota", "app a2", NULL);
    publish_role(&r, "apps", 2, apps, NULL, bad, 1);
    r.snap_v = 2;
    r.ts_v = 2;
    publish_snapshot(&r);
    publish_timestamp(&r);
    assert_int_equal(refresh_at(&r, NOW, &c), OTA_OK);
    {
        char *fp = fingerprint(&r), *fp2;
        assert_int_equal(ota_tuf_client_find_target(c, "apps/a.ota", &t, &d), OTA_E_THRESHOLD);
        fp2 = fingerprint(&r);
        assert_string_equal(fp, fp2);
        free(fp);
        free(fp2);
    }
    ota_tuf_client_free(c);
    repo_free(&r);
}

static void
test_terminating(void **state)
{
    struct repo            r;
    struct ota_tuf_client *c = NULL;
    struct ota_tuf_target  t;
    struct ota_diag        d;
    const struct fx_key   *dk[] = {&K[4]};
    json_t                *ta, *tb, *tc;
    int                    terminating;

    (void)state;
    for (terminating = 0; terminating <= 1; terminating++) {
        repo_init(&r);
        /* A (terminating or not) then B, both for "*"; A has C under it for "*" */
        r.delegations = delegations_of(
            &K[4], json_pack("[o, o]",
                             fx_delegated_role("A", dk, 1, 1, json_pack("[s]", "*"), terminating),
                             fx_delegated_role("B", dk, 1, 1, json_pack("[s]", "*"), 0)));
        ta = json_object();
        add_target(&r, ta, "in-a", "a", NULL);
        tc = json_object();
        add_target(&r, tc, "in-c", "c", NULL);
        tb = json_object();
        add_target(&r, tb, "in-b", "b", NULL);
        add_target(&r, tb, "in-c", "c from b", NULL);
        publish_role(
            &r, "A", 1, ta,
            delegations_of(&K[4], json_pack("[o]", fx_delegated_role("C", dk, 1, 1,
                                                                     json_pack("[s]", "*"), 0))),
            dk, 1);
        publish_role(&r, "B", 1, tb, NULL, dk, 1);
        publish_role(&r, "C", 1, tc, NULL, dk, 1);
        publish_root(&r);
        publish_all(&r);
        client_init(&r);
        assert_int_equal(refresh_at(&r, NOW, &c), OTA_OK);
        assert_int_equal(ota_tuf_client_find_target(c, "in-a", &t, &d), OTA_OK);
        /* pre-order: A's child C comes before A's sibling B */
        assert_int_equal(ota_tuf_client_find_target(c, "in-c", &t, &d), OTA_OK);
        assert_int_equal(t.length, 1);
        /* B is only reached when A does not terminate the search */
        assert_int_equal(ota_tuf_client_find_target(c, "in-b", &t, &d),
                         terminating ? OTA_E_NOT_FOUND : OTA_OK);
        ota_tuf_client_free(c);
        repo_free(&r);
    }
}

static void
test_delegation_bound(void **state)
{
    struct repo                r;
    struct ota_tuf_client     *c = NULL;
    struct ota_tuf_client_opts o;
    struct ota_tuf_target      t;
    struct ota_diag            d;
    const struct fx_key       *dk[] = {&K[4]};
    char                       name[8], next[8];
    int                        i;

    (void)state;
    repo_init(&r);
    /* targets -> r1 -> r2 -> r3 -> r4 (target in r4), and a cycle r4 -> r1 */
    r.delegations = delegations_of(
        &K[4], json_pack("[o]", fx_delegated_role("r1", dk, 1, 1, json_pack("[s]", "*"), 0)));
    for (i = 1; i <= 4; i++) {
        json_t *tg = json_object();
        snprintf(name, sizeof name, "r%d", i);
        snprintf(next, sizeof next, "r%d", i == 4 ? 1 : i + 1);
        if (i == 4)
            add_target(&r, tg, "deep", "deep", NULL);
        publish_role(
            &r, name, 1, tg,
            delegations_of(&K[4], json_pack("[o]", fx_delegated_role(next, dk, 1, 1,
                                                                     json_pack("[s]", "*"), 0))),
            dk, 1);
    }
    publish_root(&r);
    publish_all(&r);
    client_init(&r);
    o = opts_at(&r, NOW);
    o.max_delegations = 4; /* targets, r1, r2, r3 */
    assert_int_equal(refresh_opts(&o, &c, &d), OTA_OK);
    assert_int_equal(ota_tuf_client_find_target(c, "deep", &t, &d), OTA_E_NOT_FOUND);
    assert_false(client_has(&r, "r4.json"));
    ota_tuf_client_free(c);
    o.max_delegations = 5;
    assert_int_equal(refresh_opts(&o, &c, &d), OTA_OK);
    assert_int_equal(ota_tuf_client_find_target(c, "deep", &t, &d), OTA_OK);
    /* the cycle ends: every role visited once */
    assert_int_equal(ota_tuf_client_find_target(c, "nowhere", &t, &d), OTA_E_NOT_FOUND);
    ota_tuf_client_free(c);
    repo_free(&r);
}

static void
test_delegation_visits_once(void **state)
{
    struct repo                r;
    struct ota_tuf_client     *c = NULL;
    struct ota_tuf_client_opts o;
    struct ota_tuf_target      t;
    struct ota_diag            d;
    const struct fx_key       *dk[] = {&K[4]};
    json_t                    *te;

    (void)state;
    /* targets -> A, B; A -> C; B -> C, E; the target is in E. Visiting C once, the search
     * reaches E as its fifth role: targets, A, C, B, E. */
    repo_init(&r);
    r.delegations = delegations_of(
        &K[4], json_pack("[o, o]", fx_delegated_role("A", dk, 1, 1, json_pack("[s]", "*"), 0),
                         fx_delegated_role("B", dk, 1, 1, json_pack("[s]", "*"), 0)));
    publish_role(
        &r, "A", 1, json_object(),
        delegations_of(
            &K[4], json_pack("[o]", fx_delegated_role("C", dk, 1, 1, json_pack("[s]", "*"), 0))),
        dk, 1);
    publish_role(
        &r, "B", 1, json_object(),
        delegations_of(
            &K[4], json_pack("[o, o]", fx_delegated_role("C", dk, 1, 1, json_pack("[s]", "*"), 0),
                             fx_delegated_role("E", dk, 1, 1, json_pack("[s]", "*"), 0))),
        dk, 1);
    publish_role(&r, "C", 1, json_object(), NULL, dk, 1);
    te = json_object();
    add_target(&r, te, "in-e", "e", NULL);
    publish_role(&r, "E", 1, te, NULL, dk, 1);
    publish_root(&r);
    publish_all(&r);
    client_init(&r);
    o = opts_at(&r, NOW);
    o.max_delegations = 5;
    assert_int_equal(refresh_opts(&o, &c, &d), OTA_OK);
    assert_int_equal(ota_tuf_client_find_target(c, "in-e", &t, &d), OTA_OK);
    ota_tuf_client_free(c);
    o.max_delegations = 4;
    assert_int_equal(refresh_opts(&o, &c, &d), OTA_OK);
    assert_int_equal(ota_tuf_client_find_target(c, "in-e", &t, &d), OTA_E_NOT_FOUND);
    ota_tuf_client_free(c);
    repo_free(&r);
}

/* ---- the conformance CLI -------------------------------------------------------------- */

static int
run_cli(const char *first, ...)
{
    char       *argv[32];
    int         argc = 0;
    va_list     ap;
    const char *a;

    argv[argc++] = (char *)"tuf";
    va_start(ap, first);
    for (a = first; a != NULL; a = va_arg(ap, const char *))
        argv[argc++] = (char *)a;
    va_end(ap);
    argv[argc] = NULL;
    return ota_agent_cli_tuf(argc, argv);
}

static void
test_cli(void **state)
{
    struct repo    r;
    char           root[256], tdir[256], p[512];
    unsigned char *buf = NULL;
    size_t         len = 0;
    struct stat    st;
    DIR           *dir;
    struct dirent *e;
    int            files = 0;

    (void)state;
    repo_init(&r);
    add_target(&r, r.targets, "dir/file one.txt", "first content", NULL);
    add_target(&r, r.targets, "plain.txt", "plain", NULL);
    publish_root(&r);
    publish_all(&r);
    snprintf(root, sizeof root, "%s/1.root.json", r.meta);
    snprintf(tdir, sizeof tdir, "%s/downloads", r.dir);
    assert_int_equal(mkdir(r.client, 0755), 0);
    assert_int_equal(mkdir(tdir, 0755), 0);
    /* options in any order */
    assert_int_equal(run_cli("init", "--metadata-dir", r.client, root, NULL), 0);
    assert_true(client_has(&r, "root.json"));
    assert_int_equal(run_cli("--metadata-url", r.url, "refresh", "--metadata-dir", r.client, NULL),
                     0);
    assert_true(client_has(&r, "targets.json"));
    assert_int_equal(run_cli("--metadata-dir", r.client, "--metadata-url", r.url, "--target-name",
                             "dir/file one.txt", "--target-name", "plain.txt", "--target-dir", tdir,
                             "--target-base-url", r.turl, "download", NULL),
                     0);
    snprintf(p, sizeof p, "%s/dir%%2Ffile%%20one.txt", tdir);
    assert_int_equal(ota_read_file(p, 1000, &buf, &len, NULL), OTA_OK);
    assert_int_equal(len, 13);
    assert_memory_equal(buf, "first content", 13);
    free(buf);
    snprintf(p, sizeof p, "%s/plain.txt", tdir);
    assert_int_equal(stat(p, &st), 0);
    /* a cached copy with the signed digest is not fetched again: remove the served file */
    {
        char hex[OTA_SHA256_HEX], served[512];
        assert_int_equal(ota_sha256_hex("plain", 5, hex), OTA_OK);
        snprintf(served, sizeof served, "%s/%s.plain.txt", r.tdir, hex);
        assert_int_equal(unlink(served), 0);
    }
    assert_int_equal(run_cli("--metadata-dir", r.client, "--metadata-url", r.url, "--target-name",
                             "plain.txt", "--target-dir", tdir, "--target-base-url", r.turl,
                             "download", NULL),
                     0);
    /* served content that does not match its metadata is not stored */
    {
        char hex[OTA_SHA256_HEX], served[512];
        assert_int_equal(ota_sha256_hex("first content", 13, hex), OTA_OK);
        snprintf(served, sizeof served, "%s/dir/%s.file one.txt", r.tdir, hex);
        write_file(served, "FIRST CONTENT", 13);
        snprintf(p, sizeof p, "%s/dir%%2Ffile%%20one.txt", tdir);
        assert_int_equal(unlink(p), 0);
    }
    assert_int_equal(run_cli("--metadata-dir", r.client, "--metadata-url", r.url, "--target-name",
                             "dir/file one.txt", "--target-dir", tdir, "--target-base-url", r.turl,
                             "download", NULL),
                     1);
    dir = opendir(tdir);
    assert_non_null(dir);
    while ((e = readdir(dir)) != NULL)
        if (e->d_name[0] != '.')
            files++;
    closedir(dir);
    assert_int_equal(files, 1); /* plain.txt only: no partial or temp file left */
    /* unknown target, usage errors */
    assert_int_equal(run_cli("--metadata-dir", r.client, "--metadata-url", r.url, "--target-name",
                             "nope", "--target-dir", tdir, "--target-base-url", r.turl, "download",
                             NULL),
                     1);
    assert_int_equal(run_cli("--metadata-dir", r.client, "refresh", NULL), 1);
    assert_int_equal(run_cli("--metadata-dir", r.client, "frobnicate", NULL), 1);
    assert_int_equal(run_cli("--metadata-dir", r.client, "--bogus", "x", "refresh", NULL), 1);
    assert_int_equal(run_cli("refresh", "--metadata-url", r.url, NULL), 1);
    repo_free(&r);
}

static int
teardown(void **state)
{
    size_t i;

    (void)state;
    for (i = 0; i < 64; i++)
        if (live[i][0] != '\0' && ota_rm_rf(live[i], NULL) != OTA_OK)
            fprintf(stderr, "cannot remove %s\n", live[i]);
    return 0;
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fresh_refresh),
        cmocka_unit_test(test_not_consistent_and_no_hashes),
        cmocka_unit_test(test_root_rotation),
        cmocka_unit_test(test_root_needs_both_thresholds),
        cmocka_unit_test(test_threshold_not_met),
        cmocka_unit_test(test_rollbacks),
        cmocka_unit_test(test_expired_and_frozen),
        cmocka_unit_test(test_mix_and_match),
        cmocka_unit_test(test_endless_data),
        cmocka_unit_test(test_fast_forward_recovery),
        cmocka_unit_test(test_fast_forward_cleared_even_if_timestamp_fails),
        cmocka_unit_test(test_delegations),
        cmocka_unit_test(test_terminating),
        cmocka_unit_test(test_delegation_bound),
        cmocka_unit_test(test_delegation_visits_once),
        cmocka_unit_test(test_cli),
    };

    return cmocka_run_group_tests(tests, setup, teardown);
}
