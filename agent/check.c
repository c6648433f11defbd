/* Looking for a release: TUF refresh, choice of the release for this device
 * (repo-layout.md), then download and staging in one pass: the bundle reader verifies and
 * extracts the bytes into staging/ while they arrive (agent/stream.c), the part file
 * downloads/<sha256>.part keeps them for a resume, and a stream whose length and SHA-256 are
 * the signed target's is renamed into bundles/<version>. Also the offline install of a bundle
 * file and `explain`, which share the same rules. */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "agent_int.h"
#include "ota/bundle.h"
#include "ota/cjson.h"
#include "ota/fetch.h"
#include "ota/fsutil.h"
#include "ota/hash.h"
#include "ota/keys.h"
#include "ota/tufclient.h"

/* ---- the TUF client ------------------------------------------------------------------ */

struct tuf {
    struct ota_tuf_client *c;
    struct ota_fetch_opts  fetch;
    char                   meta_dir[AGENT_PATH_MAX];
    char                   meta_url[AGENT_PATH_MAX];
    char                   targets_url[AGENT_PATH_MAX];
    char                   ua[64];
};

static void
fetch_progress(void *ctx, uint64_t done, uint64_t total)
{
    (void)ctx;
    (void)done;
    (void)total;
}

static ota_err
tuf_open(struct ota_agent *a, struct tuf *t, int refresh, struct ota_diag *d)
{
    struct ota_tuf_client_opts o;
    char                       root[AGENT_PATH_MAX];
    ota_err                    rc;

    memset(t, 0, sizeof(*t));
    if (agent_path(a, t->meta_dir, "metadata") != OTA_OK ||
        agent_path(a, root, "metadata/root.json") != OTA_OK ||
        snprintf(t->meta_url, sizeof(t->meta_url), "%s/metadata", a->cfg->repository_url) >=
            (int)sizeof(t->meta_url) ||
        snprintf(t->targets_url, sizeof(t->targets_url), "%s/targets", a->cfg->repository_url) >=
            (int)sizeof(t->targets_url))
        return ota_diag_set(d, OTA_E_TOO_BIG, "path or URL too long");
    if (access(root, F_OK) != 0) {
        /* First start: the root shipped with the app becomes the trust anchor. */
        rc = ota_tuf_client_init(t->meta_dir, a->cfg->trusted_root, d);
        if (rc != OTA_OK) {
            ota_diag_prefix(d, "trusted root '%s'", a->cfg->trusted_root);
            return rc;
        }
    }
    snprintf(t->ua, sizeof(t->ua), "ota-agent/%s", OTA_AGENT_VERSION);
    t->fetch.connect_timeout_s = (long)a->cfg->connect_timeout_s;
    t->fetch.low_speed_time_s = (long)a->cfg->low_speed_time_s;
    t->fetch.ca_file = a->cfg->ca_file;
    t->fetch.user_agent = t->ua;
    t->fetch.progress = fetch_progress;
    memset(&o, 0, sizeof(o));
    o.metadata_dir = t->meta_dir;
    o.metadata_url = t->meta_url;
    o.fetch = &t->fetch;
    o.now = a->fixed_now;
    rc = ota_tuf_client_open(&o, &t->c, d);
    if (rc == OTA_OK && refresh)
        rc = ota_tuf_client_refresh(t->c, d);
    if (rc != OTA_OK) {
        ota_tuf_client_free(t->c);
        t->c = NULL;
    }
    return rc;
}

static void
tuf_close(struct tuf *t)
{
    ota_tuf_client_free(t->c);
    t->c = NULL;
}

/* ---- the rules ----------------------------------------------------------------------- */

/* One bundle target, its custom metadata and how each rule judges it for this device. */
struct cand {
    int                valid;
    struct ota_release rel;
    char              *rel_json; /* canonical JSON of rel */
    char               path[1024];
    uint64_t           length;
    unsigned char      sha256[OTA_SHA256_LEN];
    char               sha_hex[OTA_SHA256_HEX];
    int                listed; /* on the device's channel */
    long long          rollout;
    int                yanked, breaking;
    int                runtime_ok, agent_ok, bucket_ok;
    unsigned           bucket;
};

static void
cand_clear(struct cand *c)
{
    ota_release_clear(&c->rel);
    free(c->rel_json);
    memset(c, 0, sizeof(*c));
}

static ota_err
opt_bool(const json_t *o, const char *key, int *out, struct ota_diag *d)
{
    const json_t *v = json_object_get(o, key);
    *out = 0;
    if (v == NULL)
        return OTA_OK;
    if (!json_is_boolean(v))
        return ota_diag_set(d, OTA_E_FORMAT, "'%s' is not a boolean", key);
    *out = json_is_true(v);
    return OTA_OK;
}

static int
version_le_agent(const char *min_agent)
{
    struct ota_version m, me;
    if (min_agent[0] == '\0')
        return 1;
    if (ota_version_parse(min_agent, &m) != OTA_OK ||
        ota_version_parse(OTA_AGENT_VERSION, &me) != OTA_OK)
        return 0;
    return ota_version_cmp(&m, &me) <= 0;
}

static int
runtime_ok(struct ota_agent *a, const struct ota_release *r)
{
    struct ota_version rt;
    return ota_version_parse(a->cfg->runtime_version, &rt) == OTA_OK &&
           ota_release_runtime_admits(r, &rt);
}

/* Fill c from target t. OTA_E_NOT_FOUND: not a bundle of this app (skipped silently). */
static ota_err
cand_from_target(struct ota_agent *a, const struct ota_tuf_target *t, struct cand *c,
                 struct ota_diag *d)
{
    const json_t *ota, *rel, *chans, *r;
    size_t        len;
    ota_err       rc;
    json_t       *norm = NULL;

    memset(c, 0, sizeof(*c));
    ota = t->custom ? json_object_get(t->custom, "ota") : NULL;
    rel = ota ? json_object_get(ota, "release") : NULL;
    if (!json_is_object(ota) || !json_is_object(rel))
        return OTA_E_NOT_FOUND;
    r = json_object_get(rel, "app");
    if (!json_is_string(r) || strcmp(json_string_value(r), a->cfg->app) != 0)
        return OTA_E_NOT_FOUND;
    rc = ota_release_from_json(rel, &c->rel, d);
    if (rc != OTA_OK)
        goto bad;
    norm = ota_release_to_json(&c->rel);
    if (norm == NULL) {
        rc = ota_diag_set(d, OTA_E_NOMEM, "out of memory");
        goto bad;
    }
    rc = ota_cjson_encode(norm, OTA_JSON_MAX, &c->rel_json, &len, d);
    if (rc != OTA_OK)
        goto bad;
    rc = opt_bool(ota, "yanked", &c->yanked, d);
    if (rc == OTA_OK)
        rc = opt_bool(ota, "breaking", &c->breaking, d);
    if (rc != OTA_OK)
        goto bad;
    chans = json_object_get(ota, "channels");
    if (chans != NULL && !json_is_object(chans)) {
        rc = ota_diag_set(d, OTA_E_FORMAT, "'channels' is not an object");
        goto bad;
    }
    r = chans ? json_object_get(chans, a->cfg->channel) : NULL;
    if (r != NULL) {
        if (!json_is_integer(r) || json_integer_value(r) < 0 || json_integer_value(r) > 100) {
            rc = ota_diag_set(d, OTA_E_FORMAT, "rollout of channel '%s' is not 0..100",
                              a->cfg->channel);
            goto bad;
        }
        c->listed = 1;
        c->rollout = json_integer_value(r);
    }
    if (snprintf(c->path, sizeof(c->path), "%s", t->path) >= (int)sizeof(c->path)) {
        rc = ota_diag_set(d, OTA_E_TOO_BIG, "target path too long");
        goto bad;
    }
    c->length = t->length;
    memcpy(c->sha256, t->sha256, OTA_SHA256_LEN);
    ota_hex_encode(t->sha256, OTA_SHA256_LEN, c->sha_hex);
    c->runtime_ok = runtime_ok(a, &c->rel);
    c->agent_ok = version_le_agent(c->rel.min_agent);
    rc = check_bucket(a->device_id, a->cfg->app, c->rel.version, &c->bucket);
    if (rc != OTA_OK) {
        ota_diag_set(d, rc, "cannot compute the rollout bucket");
        goto bad;
    }
    c->bucket_ok = c->listed && c->bucket < (unsigned)c->rollout;
    c->valid = 1;
    json_decref(norm);
    return OTA_OK;
bad:
    ota_diag_prefix(d, "target '%s'", t->path);
    json_decref(norm);
    cand_clear(c);
    return rc;
}

static int
offered(const struct cand *c)
{
    return c->listed && !c->yanked && c->runtime_ok && c->agent_ok && c->bucket_ok;
}

/* 1 if this device refuses version again: it failed its trial here or was rolled back from
 * (until a newer version appears, which is a different version). */
static int
refused_here(struct ota_agent *a, const char *version)
{
    struct rel r;
    int        refused = 0;

    memset(&r, 0, sizeof(r));
    if (state_rel_get(&a->st, version, &r, NULL) == OTA_OK)
        refused = r.state == REL_FAILED || r.state == REL_ROLLED_BACK;
    rel_clear(&r);
    return refused;
}

struct pick {
    struct ota_agent *a;
    const char       *active; /* "" if none */
    struct cand       best;   /* check: the release to install */
    struct cand       newest; /* explain: the newest on the channel */
    int               explain;
    unsigned          skipped; /* malformed targets of this app */
    struct ota_diag   skip_diag;
    /* Versions of this app the repository has yanked (check withdraws them if staged). */
    char   yanked[32][OTA_VERSION_STR_MAX];
    size_t n_yanked;
};

static int
cand_newer(const struct cand *x, const struct cand *than)
{
    return !than->valid || ota_version_cmp(&x->rel.v, &than->rel.v) > 0;
}

static int
pick_cb(void *ctx, const struct ota_tuf_target *t)
{
    struct pick *p = ctx;
    struct cand  c;
    struct cand *slot;
    ota_err      rc;

    rc = cand_from_target(p->a, t, &c, &p->skip_diag);
    if (rc == OTA_E_NOT_FOUND)
        return 0;
    if (rc != OTA_OK) {
        p->skipped++;
        return 0;
    }
    if (c.yanked && p->n_yanked < sizeof(p->yanked) / sizeof(p->yanked[0]))
        snprintf(p->yanked[p->n_yanked++], OTA_VERSION_STR_MAX, "%s", c.rel.version);
    if (p->explain) {
        if (!c.listed || !cand_newer(&c, &p->newest))
            goto drop;
        slot = &p->newest;
    } else {
        if (!offered(&c) || !cand_newer(&c, &p->best) || refused_here(p->a, c.rel.version))
            goto drop;
        slot = &p->best;
    }
    cand_clear(slot);
    *slot = c;
    return 0;
drop:
    cand_clear(&c);
    return 0;
}

/* ---- staging ------------------------------------------------------------------------- */

/* Names a release in progress callbacks. */
struct sink {
    struct ota_agent *a;
    const char       *version;
};

static void
download_progress(void *ctx, uint64_t done, uint64_t total)
{
    struct sink *s = ctx;
    if (s->a->progress)
        s->a->progress(s->a->progress_ctx, "download", s->version, done, total);
}

static ota_err
verify_targets(void *ctx, const void *msg, size_t len, const json_t *sigs, struct ota_diag *d)
{
    const struct ota_role_keys *role = ctx;
    if (role == NULL || role->nkeys == 0)
        return ota_diag_set(d, OTA_E_KEY_UNKNOWN, "no trusted targets keys");
    return ota_threshold_verify(role, sigs, msg, len, NULL, d);
}

static void
stage_progress(void *ctx, uint64_t done, uint64_t total)
{
    struct sink *s = ctx;
    if (s->a->progress)
        s->a->progress(s->a->progress_ctx, "stage", s->version, done, total);
}

/* check_manifest for a repository release: the bundle must carry exactly the release that
 * the signed targets metadata describes. */
static ota_err
match_target(void *ctx, const struct ota_manifest *m, struct ota_diag *d)
{
    const struct cand *c = ctx;
    json_t            *j = ota_release_to_json(&m->release);
    char              *txt = NULL;
    size_t             len;
    ota_err            rc;

    if (j == NULL)
        return ota_diag_set(d, OTA_E_NOMEM, "out of memory");
    rc = ota_cjson_encode(j, OTA_JSON_MAX, &txt, &len, d);
    json_decref(j);
    if (rc != OTA_OK)
        return rc;
    if (strcmp(txt, c->rel_json) != 0)
        rc = ota_diag_set(d, OTA_E_DIGEST,
                          "bundle manifest release '%s' differs from the signed target '%s'",
                          m->release.version, c->path);
    free(txt);
    return rc;
}

static ota_err
record_staged(struct ota_agent *a, const struct ota_release *rel, int breaking, const char *sha_hex,
              uint64_t length, const char *source, struct ota_diag *d)
{
    struct rel r;
    json_t    *j = NULL;
    size_t     len;
    ota_err    rc;

    memset(&r, 0, sizeof(r));
    j = ota_release_to_json(rel);
    if (j == NULL)
        return ota_diag_set(d, OTA_E_NOMEM, "out of memory");
    rc = ota_cjson_encode(j, OTA_JSON_MAX, &r.release_json, &len, d);
    json_decref(j);
    if (rc != OTA_OK)
        return rc;
    snprintf(r.version, sizeof(r.version), "%s", rel->version);
    snprintf(r.model, sizeof(r.model), "%s", rel->model);
    snprintf(r.sha256, sizeof(r.sha256), "%s", sha_hex);
    snprintf(r.source, sizeof(r.source), "%s", source);
    r.state = REL_STAGED;
    r.breaking = breaking;
    r.length = (int64_t)length;
    r.staged_at = agent_now(a);
    r.present = 1;
    rc = state_begin(&a->st, d);
    if (rc == OTA_OK)
        rc = state_rel_put(&a->st, &r, d);
    if (rc == OTA_OK)
        rc = state_history_add(&a->st, agent_now(a), "staged", r.version, source, d);
    if (rc == OTA_OK)
        rc = state_commit(&a->st, d);
    else
        state_rollback(&a->st);
    rel_clear(&r);
    return rc;
}

/* What a failed stage leaves of the download. The transfer's failures (network, timeout, a
 * short body) and local ones (disk full, no memory) keep it for a resume; a stream the reader
 * refused is not the signed bundle, or not one that stages: starting again from its prefix
 * could only fail again. */
static int
keep_download(ota_err rc, const struct stream_info *si)
{
    return si->failed || rc == OTA_E_IO || rc == OTA_E_NOMEM;
}

/* Download the release and stage it in one pass (agent/stream.c): the reader verifies and
 * extracts the bytes into staging/ as they arrive, and they are appended to the part file for
 * a resume. Only a stream whose length and SHA-256 are the signed target's is renamed into
 * bundles/. */
static ota_err
fetch_and_stage(struct ota_agent *a, struct tuf *t, const struct ota_tuf_target *tt,
                const struct cand *c, const char *part, struct ota_agent_check *res,
                struct ota_diag *d)
{
    struct ota_bundle_read_opts o;
    struct ota_manifest        *m = NULL;
    struct stream              *st = NULL;
    struct stream_info          si;
    struct sink                 s;
    char                        staging[AGENT_PATH_MAX];
    char                       *url = NULL;
    int                         dfd;
    ota_err                     rc;

    memset(&si, 0, sizeof(si));
    staging[0] = '\0';
    url = ota_tuf_client_target_url(t->c, t->targets_url, tt);
    if (url == NULL)
        return ota_diag_set(d, OTA_E_NOMEM, "out of memory");
    rc = layout_new_staging(a, c->rel.version, staging, d);
    if (rc != OTA_OK) {
        staging[0] = '\0';
        goto out;
    }
    memset(&s, 0, sizeof(s));
    s.a = a;
    s.version = c->rel.version;
    rc = stream_open(&t->fetch, url, part, c->length, download_progress, &s, &st, d);
    if (rc != OTA_OK)
        goto out;
    memset(&o, 0, sizeof(o));
    o.read = stream_read;
    o.read_ctx = st;
    o.verify = verify_targets;
    o.verify_ctx = (void *)ota_tuf_client_targets_keys(t->c);
    o.check_manifest = match_target;
    o.check_ctx = (void *)c;
    o.dest_dir = staging;
    o.sync = 0; /* synced below, once the part file is gone */
    o.max_length = c->length;
    o.expect_sha256 = c->sha256;
    o.expect_length = c->length;
    rc = ota_bundle_read(&o, &m, d);
    /* The reader is done with the stream (at its end, or failed): stop the transfer. */
    stream_stop(st, &si);
    stream_close(st, rc != OTA_OK && keep_download(rc, &si));
    st = NULL;
    res->downloaded_now = si.received > 0;
    if (rc != OTA_OK) {
        if (!keep_download(rc, &si)) {
            unlink(part);
            best_effort(state_meta_set(&a->st, "download", NULL, NULL));
            /* The bytes resumed from disk may be what is wrong (a torn write, a changed
             * file): say that the download is discarded, so the next check starts at 0. */
            if (si.prefix > 0) {
                char why[sizeof(d->msg)] = "";
                if (d != NULL)
                    memcpy(why, d->msg, sizeof(why));
                rc = ota_diag_set(d, OTA_E_DIGEST,
                                  "download resumed from %llu bytes on disk is not the signed "
                                  "bundle, discarded: %s",
                                  (unsigned long long)si.prefix, why);
            }
        }
        if (!si.failed)
            ota_diag_prefix(d, "staging %s", c->rel.version);
        else
            ota_diag_prefix(d, "downloading release %s", c->rel.version);
        goto out;
    }
    /* Verified: the part file has served. Removed before the sync, so that its pages are
     * dropped rather than written (a crash from here on downloads it again). */
    unlink(part);
    dfd = open(staging, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0 || syncfs(dfd) != 0) {
        rc = ota_diag_sys(d, OTA_E_IO, errno, "cannot sync '%s'", staging);
        if (dfd >= 0)
            close(dfd);
        goto out;
    }
    close(dfd);
    rc = layout_commit_staging(a, staging, c->rel.version, d);
    if (rc != OTA_OK)
        goto out;
    staging[0] = '\0';
    rc = record_staged(a, &c->rel, c->breaking, c->sha_hex, c->length, "repository", d);
    if (rc != OTA_OK)
        goto out;
    best_effort(state_meta_set(&a->st, "download", NULL, NULL));
out:
    stream_close(st, 1);
    if (staging[0] != '\0')
        best_effort(ota_rm_rf(staging, NULL));
    ota_manifest_free(m);
    free(url);
    return rc;
}

static void
record_tuf_versions(struct ota_agent *a, struct tuf *t)
{
    static const char *const roles[] = {"root", "timestamp", "snapshot", "targets"};
    for (size_t i = 0; i < 4; i++)
        best_effort(state_tuf_set(&a->st, roles[i], ota_tuf_client_version(t->c, roles[i]), NULL));
}

/* A yanked release is never installed: one staged before it was yanked is withdrawn (the active
 * release is left alone; a newer release replaces it). */
static void
withdraw_yanked(struct ota_agent *a, const struct pick *p)
{
    char p_dir[AGENT_PATH_MAX];

    for (size_t i = 0; i < p->n_yanked; i++) {
        struct rel r;
        memset(&r, 0, sizeof(r));
        if (state_rel_get(&a->st, p->yanked[i], &r, NULL) == OTA_OK && r.state == REL_STAGED &&
            agent_path(a, p_dir, "bundles/%s", r.version) == OTA_OK &&
            state_begin(&a->st, NULL) == OTA_OK) {
            /* Record first: a crash before the removal leaves an unrecorded tree, which
             * recovery removes. */
            if (state_rel_delete(&a->st, r.version, NULL) == OTA_OK &&
                state_history_add(&a->st, agent_now(a), "withdrawn", r.version,
                                  "yanked by the repository", NULL) == OTA_OK &&
                state_commit(&a->st, NULL) == OTA_OK)
                best_effort(ota_rm_rf(p_dir, NULL));
            else
                state_rollback(&a->st);
        }
        rel_clear(&r);
    }
}

ota_err
check_run(struct ota_agent *a, struct ota_agent_check *res, struct ota_diag *d)
{
    struct ota_agent_check r;
    struct ota_tuf_target  tt;
    struct tuf             t;
    struct pick            p;
    struct rel             have;
    char                   active[OTA_VERSION_STR_MAX], part[AGENT_PATH_MAX];
    uint64_t               bytes0 = ota_fetch_bytes_total();
    ota_err                rc;

    memset(&r, 0, sizeof(r));
    memset(&p, 0, sizeof(p));
    memset(&have, 0, sizeof(have));
    rc = agent_pointers(a, active, NULL, d);
    if (rc != OTA_OK)
        return rc;
    rc = tuf_open(a, &t, 1, d);
    if (rc != OTA_OK) {
        if (res != NULL) {
            r.bytes = ota_fetch_bytes_total() - bytes0;
            *res = r;
        }
        return rc;
    }
    record_tuf_versions(a, &t);
    p.a = a;
    p.active = active;
    rc = ota_tuf_client_foreach_target(t.c, pick_cb, &p, d);
    if (rc != OTA_OK)
        goto out;
    withdraw_yanked(a, &p);
    if (!p.best.valid)
        goto done;
    if (active[0] != '\0') {
        struct ota_version av;
        if (ota_version_parse(active, &av) == OTA_OK && ota_version_cmp(&p.best.rel.v, &av) <= 0)
            goto done;
    }
    r.found = 1;
    snprintf(r.version, sizeof(r.version), "%s", p.best.rel.version);
    if (state_rel_get(&a->st, p.best.rel.version, &have, NULL) == OTA_OK && have.present) {
        r.staged = 1;
        goto done;
    }
    if ((long long)p.best.length > a->cfg->max_bundle_bytes) {
        rc = ota_diag_set(d, OTA_E_TOO_BIG, "release %s is %llu bytes, max_bundle_bytes is %lld",
                          p.best.rel.version, (unsigned long long)p.best.length,
                          a->cfg->max_bundle_bytes);
        goto out;
    }
    rc = ota_tuf_client_find_target(t.c, p.best.path, &tt, d);
    if (rc != OTA_OK)
        goto out;
    if (agent_path(a, part, "downloads/%s.part", p.best.sha_hex) != OTA_OK) {
        rc = ota_diag_set(d, OTA_E_TOO_BIG, "path too long");
        goto out;
    }
    best_effort(state_meta_set(&a->st, "download", p.best.sha_hex, NULL));
    rc = fetch_and_stage(a, &t, &tt, &p.best, part, &r, d);
    if (rc != OTA_OK)
        goto out;
    r.staged = 1;
done:
out:
    /* Everything this check received, metadata included; on failure too. */
    r.bytes = ota_fetch_bytes_total() - bytes0;
    if (res != NULL)
        *res = r;
    rel_clear(&have);
    cand_clear(&p.best);
    cand_clear(&p.newest);
    tuf_close(&t);
    return rc;
}

/* ---- offline install ----------------------------------------------------------------- */

struct install_ctx {
    struct ota_agent *a;
    char              highest[OTA_VERSION_STR_MAX]; /* highest installed release */
};

static ota_err
install_check(void *ctx, const struct ota_manifest *m, struct ota_diag *d)
{
    struct install_ctx       *ic = ctx;
    struct ota_agent         *a = ic->a;
    const struct ota_release *r = &m->release;

    if (strcmp(r->app, a->cfg->app) != 0)
        return ota_diag_set(d, OTA_E_INCOMPATIBLE, "bundle is for app '%s', this device runs '%s'",
                            r->app, a->cfg->app);
    if (ic->highest[0] != '\0') {
        struct ota_version h;
        if (ota_version_parse(ic->highest, &h) == OTA_OK && ota_version_cmp(&r->v, &h) <= 0)
            return ota_diag_set(d, OTA_E_ROLLBACK,
                                "bundle version %s is not newer than installed %s", r->version,
                                ic->highest);
    }
    if (!runtime_ok(a, r))
        return ota_diag_set(d, OTA_E_INCOMPATIBLE, "release %s does not run on runtime %s",
                            r->version, a->cfg->runtime_version);
    if (!version_le_agent(r->min_agent))
        return ota_diag_set(d, OTA_E_INCOMPATIBLE, "release %s needs agent %s, this is %s",
                            r->version, r->min_agent, OTA_AGENT_VERSION);
    return OTA_OK;
}

ota_err
check_install_file(struct ota_agent *a, const char *path, const char *source,
                   char version[OTA_VERSION_STR_MAX], struct ota_diag *d)
{
    struct ota_bundle_read_opts o;
    struct ota_manifest        *m = NULL;
    struct install_ctx          ic;
    struct sink                 s;
    struct tuf                  t;
    struct rel                 *list = NULL;
    size_t                      n = 0;
    char                        staging[AGENT_PATH_MAX];
    unsigned char               sha[OTA_SHA256_LEN];
    char                        sha_hex[OTA_SHA256_HEX];
    uint64_t                    len = 0;
    ota_err                     rc;

    staging[0] = '\0';
    memset(&ic, 0, sizeof(ic));
    ic.a = a;
    rc = state_rel_list(&a->st, &list, &n, d);
    if (rc != OTA_OK)
        return rc;
    for (size_t i = 0; i < n; i++) {
        if (list[i].present || list[i].state != REL_STAGED) {
            snprintf(ic.highest, sizeof(ic.highest), "%s", list[i].version);
            break;
        }
    }
    rel_list_free(list, n);
    rc = tuf_open(a, &t, 0, d);
    if (rc != OTA_OK)
        return rc;
    rc = layout_new_staging(a, source, staging, d);
    if (rc != OTA_OK) {
        staging[0] = '\0';
        goto out;
    }
    memset(&s, 0, sizeof(s));
    s.a = a;
    s.version = source;
    memset(&o, 0, sizeof(o));
    o.verify = verify_targets;
    o.verify_ctx = (void *)ota_tuf_client_targets_keys(t.c);
    o.check_manifest = install_check;
    o.check_ctx = &ic;
    o.dest_dir = staging;
    o.sync = 1;
    o.max_length = (uint64_t)a->cfg->max_bundle_bytes;
    o.progress = stage_progress;
    o.progress_ctx = &s;
    /* The digest recorded for status, computed by the same pass; the bundle is authenticated
     * by its manifest. */
    o.got_sha256 = sha;
    o.got_length = &len;
    rc = ota_bundle_read_file(path, &o, &m, d);
    if (rc != OTA_OK) {
        ota_diag_prefix(d, "'%s'", path);
        goto out;
    }
    ota_hex_encode(sha, sizeof(sha), sha_hex);
    rc = layout_commit_staging(a, staging, m->release.version, d);
    if (rc != OTA_OK)
        goto out;
    staging[0] = '\0';
    rc = record_staged(a, &m->release, 0, sha_hex, len, source, d);
    if (rc != OTA_OK)
        goto out;
    snprintf(version, OTA_VERSION_STR_MAX, "%s", m->release.version);
out:
    if (staging[0] != '\0')
        best_effort(ota_rm_rf(staging, NULL));
    ota_manifest_free(m);
    tuf_close(&t);
    return rc;
}

/* ---- explain ------------------------------------------------------------------------- */

static int add_rule(json_t *rules, const char *rule, int ok, const char *fmt, ...) OTA_PRINTF(4, 5);

static int
add_rule(json_t *rules, const char *rule, int ok, const char *fmt, ...)
{
    char    detail[512];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(detail, sizeof(detail), fmt, ap);
    va_end(ap);
    return json_array_append_new(
        rules, json_pack("{s:s, s:b, s:s}", "rule", rule, "ok", ok, "detail", detail));
}

/* explain works offline, from the targets metadata the TUF client stored (verified) at the
 * last successful check. Calls pick_cb for each top-level target. */
static ota_err
foreach_trusted_target(struct ota_agent *a, struct pick *p, struct ota_diag *d)
{
    char           path[AGENT_PATH_MAX];
    unsigned char *buf = NULL;
    size_t         len = 0;
    json_t        *doc = NULL, *targets, *t;
    const char    *name;
    ota_err        rc;

    if (agent_path(a, path, "metadata/targets.json") != OTA_OK)
        return ota_diag_set(d, OTA_E_TOO_BIG, "path too long");
    rc = ota_read_file(path, OTA_JSON_MAX, &buf, &len, d);
    if (rc == OTA_E_NOT_FOUND)
        return ota_diag_set(d, OTA_E_NOT_FOUND, "no check has succeeded yet: no trusted targets");
    if (rc == OTA_OK)
        rc = ota_cjson_parse(buf, len, OTA_JSON_MAX, &doc, d);
    if (rc != OTA_OK)
        goto out;
    targets = json_object_get(json_object_get(doc, "signed"), "targets");
    if (!json_is_object(targets)) {
        rc = ota_diag_set(d, OTA_E_FORMAT, "'%s' has no targets", path);
        goto out;
    }
    json_object_foreach(targets, name, t)
    {
        struct ota_tuf_target tt;
        const char           *hex =
            json_string_value(json_object_get(json_object_get(t, "hashes"), "sha256"));
        json_t *l = json_object_get(t, "length");

        memset(&tt, 0, sizeof(tt));
        if (hex == NULL || !json_is_integer(l) || json_integer_value(l) < 0 ||
            ota_hex_decode(hex, tt.sha256, sizeof(tt.sha256)) != OTA_OK)
            continue;
        tt.path = name;
        tt.length = (uint64_t)json_integer_value(l);
        tt.custom = json_object_get(t, "custom");
        pick_cb(p, &tt);
    }
out:
    json_decref(doc);
    free(buf);
    return rc;
}

ota_err
check_explain(struct ota_agent *a, json_t **out, struct ota_diag *d)
{
    struct pick         p;
    struct rel          have;
    struct gate_verdict v;
    struct ota_diag     gd;
    struct stat         st;
    char                active[OTA_VERSION_STR_MAX], part[AGENT_PATH_MAX];
    char               *gate_rec = NULL;
    json_t             *rules = NULL, *o = NULL;
    const struct cand  *c;
    int                 have_rel, downloaded, failed;
    ota_err             rc;

    memset(&p, 0, sizeof(p));
    memset(&have, 0, sizeof(have));
    rc = agent_pointers(a, active, NULL, d);
    if (rc != OTA_OK)
        return rc;
    p.a = a;
    p.active = active;
    p.explain = 1;
    rc = foreach_trusted_target(a, &p, d);
    if (rc != OTA_OK)
        goto out;
    c = &p.newest;
    if (!c->valid) {
        rc = ota_diag_set(d, OTA_E_NOT_FOUND, "no release of '%s' on channel '%s'", a->cfg->app,
                          a->cfg->channel);
        goto out;
    }
    rules = json_array();
    if (rules == NULL)
        goto nomem;
    have_rel = state_rel_get(&a->st, c->rel.version, &have, NULL) == OTA_OK;
    failed = have_rel && (have.state == REL_FAILED || have.state == REL_ROLLED_BACK);
    if (c->yanked)
        add_rule(rules, "offered", 0, "no: yanked");
    else if (failed)
        add_rule(rules, "offered", 0, "no: %s on this device%s%s",
                 have.state == REL_FAILED ? "failed its trial" : "rolled back",
                 have.reason[0] ? ": " : "", have.reason);
    else
        add_rule(rules, "offered", 1, "yes: channel '%s' at %lld%%", a->cfg->channel, c->rollout);
    add_rule(rules, "runtime", c->runtime_ok, "%s: device runtime %s, release needs %s..%s",
             c->runtime_ok ? "yes" : "no", a->cfg->runtime_version, c->rel.runtime_min,
             c->rel.runtime_max[0] ? c->rel.runtime_max : "");
    add_rule(rules, "min_agent", c->agent_ok, "%s: needs agent %s, this is %s",
             c->agent_ok ? "yes" : "no", c->rel.min_agent[0] ? c->rel.min_agent : "any",
             OTA_AGENT_VERSION);
    add_rule(rules, "rollout", c->bucket_ok, "%s: bucket %u %s %lld%%", c->bucket_ok ? "yes" : "no",
             c->bucket, c->bucket_ok ? "<" : ">=", c->rollout);
    downloaded = have_rel && have.present;
    if (!downloaded && agent_path(a, part, "downloads/%s.part", c->sha_hex) == OTA_OK &&
        stat(part, &st) == 0)
        add_rule(rules, "downloaded", 0, "partly: %lld of %llu bytes", (long long)st.st_size,
                 (unsigned long long)c->length);
    else
        add_rule(rules, "downloaded", downloaded, "%s", downloaded ? "yes" : "no");
    add_rule(rules, "staged", have_rel && have.present, "%s%s%s",
             have_rel && have.present ? "yes: " : "no", have_rel && have.present ? "bundles/" : "",
             have_rel && have.present ? c->rel.version : "");
    memset(&gd, 0, sizeof(gd));
    if (gate_evaluate(a, &c->rel, c->breaking, &v, &gd) != OTA_OK)
        add_rule(rules, "gate", 0, "closed: %s", gd.msg);
    else if (v.open)
        add_rule(rules, "gate", 1, "open: no pending change that %s cannot carry", c->rel.version);
    else {
        const char *serr = NULL;
        json_t     *g = NULL;
        if (state_meta_get(&a->st, "gate", &gate_rec, NULL) == OTA_OK && gate_rec != NULL &&
            ota_cjson_parse(gate_rec, strlen(gate_rec), OTA_JSON_MAX, &g, NULL) == OTA_OK)
            serr = json_string_value(json_object_get(g, "sync_error"));
        add_rule(rules, "gate", 0, "closed: waiting for sync: %llu change%s under model %s%s%s%s",
                 (unsigned long long)v.count, v.count == 1 ? "" : "s", v.model,
                 serr && serr[0] ? " (last sync: " : "", serr ? serr : "",
                 serr && serr[0] ? ")" : "");
        json_decref(g);
    }
    if (strcmp(active, c->rel.version) == 0) {
        add_rule(rules, "active", 1, "yes");
    } else {
        struct ota_version av;
        int                newer = active[0] != '\0' && ota_version_parse(active, &av) == OTA_OK &&
                    ota_version_cmp(&av, &c->rel.v) > 0;
        add_rule(rules, "active", 0, "no: active is %s%s", active[0] ? active : "nothing",
                 newer ? " (newer)" : "");
    }
    o = json_pack("{s:s, s:s, s:s, s:o}", "version", c->rel.version, "channel", a->cfg->channel,
                  "target", c->path, "rules", rules);
    rules = NULL;
    if (o == NULL)
        goto nomem;
    *out = o;
    goto out;
nomem:
    rc = ota_diag_set(d, OTA_E_NOMEM, "out of memory");
out:
    free(gate_rec);
    json_decref(rules);
    rel_clear(&have);
    cand_clear(&p.best);
    cand_clear(&p.newest);
    return rc;
}
