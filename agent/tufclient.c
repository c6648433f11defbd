/* TUF client: the detailed client workflow of the TUF specification 1.0.x, section 5.
 * See ota/tufclient.h.
 *
 * Trust flows one way: root.json on disk (self-signed) -> each new root (signed by the old
 * and by itself) -> timestamp -> snapshot -> targets -> delegated targets. A fetched document
 * lives only in memory until every check of its step has passed; then its exact bytes are
 * written atomically to metadata_dir. Local copies of timestamp, snapshot and targets are only
 * used after they verify again under the current root, and only as what they are: the
 * previous state for rollback checks, or the current state when the signed chain above still
 * names their exact version (a check that finds nothing new fetches only timestamp.json). */
#include "ota/tufclient.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ota/fsutil.h"
#include "ota/tuf.h"

#define DEF_ROTATIONS 32
#define DEF_DELEGATIONS 32
#define DEF_ROOT_LEN (512u << 10)
#define DEF_TIMESTAMP_LEN (16u << 10)
#define DEF_META_LEN (16u << 20)

/* A verified document with the digest of the bytes it came from. */
struct trusted {
    struct ota_tuf_md *md;
    size_t             len;
    unsigned char      sha256[OTA_SHA256_LEN];
};

/* A delegated role loaded during a lookup, verified with the keys its delegator gave it. */
struct role_entry {
    char          *name;
    char          *parent;
    struct trusted t;
};

struct ota_tuf_client {
    char                 *dir;
    char                 *url; /* without a trailing '/' */
    struct ota_fetch_opts fetch;
    int                   have_fetch;
    int64_t               now;
    unsigned              max_root_rotations;
    unsigned              max_delegations;
    size_t                max_root_len, max_timestamp_len, max_meta_len;

    struct ota_tuf_md *root;
    struct trusted     ts, snap, targets;
    int                refreshed; /* the top-level chain was verified by refresh */

    struct role_entry *roles;
    size_t             nroles, caproles;
};

static void
trusted_clear(struct trusted *t)
{
    ota_tuf_md_free(t->md);
    memset(t, 0, sizeof *t);
}

static void
roles_clear(struct ota_tuf_client *c)
{
    size_t i;

    for (i = 0; i < c->nroles; i++) {
        free(c->roles[i].name);
        free(c->roles[i].parent);
        trusted_clear(&c->roles[i].t);
    }
    c->nroles = 0;
}

static const struct ota_fetch_opts *
fetch_opts(const struct ota_tuf_client *c)
{
    return c->have_fetch ? &c->fetch : NULL;
}

static ota_err
dir_path(const struct ota_tuf_client *c, const char *name, char out[PATH_MAX], struct ota_diag *d)
{
    return ota_path_fmt(out, PATH_MAX, d, "%s/%s", c->dir, name);
}

/* <metadata_url>/<name>, or <metadata_url>/<version>.<name> when version > 0. name is
 * percent-encoded (role names may hold any character). */
static char *
meta_url(const struct ota_tuf_client *c, long long version, const char *name, const char *ext)
{
    size_t cap = strlen(c->url) + 3 * strlen(name) + strlen(ext) + 32;
    char  *enc = malloc(3 * strlen(name) + 1), *u = malloc(cap);

    if (enc == NULL || u == NULL ||
        ota_tuf_quote(name, "", enc, 3 * strlen(name) + 1, NULL) != OTA_OK) {
        free(enc);
        free(u);
        return NULL;
    }
    if (version > 0)
        snprintf(u, cap, "%s/%lld.%s%s", c->url, version, enc, ext);
    else
        snprintf(u, cap, "%s/%s%s", c->url, enc, ext);
    free(enc);
    return u;
}

/* Parse and verify bytes as type under role keys; fills t (digest of the bytes included). */
static ota_err
accept_bytes(const unsigned char *buf, size_t len, size_t max, enum ota_tuf_type type,
             const struct ota_role_keys *keys, struct trusted *t, struct ota_diag *d)
{
    struct ota_tuf_md *md = NULL;
    ota_err            rc;

    rc = ota_tuf_parse(buf, len, max, type, &md, d);
    if (rc == OTA_OK)
        rc = ota_tuf_md_verify(md, keys, d);
    if (rc == OTA_OK && ota_sha256_buf(buf, len, t->sha256) != OTA_OK)
        rc = ota_diag_set(d, OTA_E_CRYPTO, "cannot hash metadata");
    if (rc != OTA_OK) {
        ota_tuf_md_free(md);
        return rc;
    }
    t->md = md;
    t->len = len;
    return OTA_OK;
}

/* A local copy from metadata_dir, if it is there and verifies under keys. Errors are only
 * reported through the return code: a bad local copy is simply not trusted. */
static ota_err
load_local(const struct ota_tuf_client *c, const char *fname, size_t max, enum ota_tuf_type type,
           const struct ota_role_keys *keys, struct trusted *t)
{
    char           path[PATH_MAX];
    unsigned char *buf = NULL;
    size_t         len = 0;
    ota_err        rc;

    rc = dir_path(c, fname, path, NULL);
    if (rc == OTA_OK)
        rc = ota_read_file(path, max, &buf, &len, NULL);
    if (rc == OTA_OK)
        rc = accept_bytes(buf, len, max, type, keys, t, NULL);
    free(buf);
    return rc;
}

static ota_err
persist(const struct ota_tuf_client *c, const char *fname, const void *buf, size_t len,
        struct ota_diag *d)
{
    char    path[PATH_MAX];
    ota_err rc;

    rc = dir_path(c, fname, path, d);
    if (rc == OTA_OK)
        rc = ota_write_file_atomic(path, buf, len, 0644, 0, d);
    return rc;
}

static ota_err
remove_local(const struct ota_tuf_client *c, const char *fname, struct ota_diag *d)
{
    char    path[PATH_MAX];
    ota_err rc;

    rc = dir_path(c, fname, path, d);
    if (rc != OTA_OK)
        return rc;
    if (unlink(path) != 0 && errno != ENOENT)
        return ota_diag_sys(d, OTA_E_IO, errno, "cannot remove '%s'", path);
    return OTA_OK;
}

/* A version that must equal the one the signed chain above names. */
static ota_err
check_version(const struct ota_tuf_md *md, long long want, const char *what, struct ota_diag *d)
{
    long long v = ota_tuf_md_version(md);

    if (v == want)
        return OTA_OK;
    return ota_diag_set(d, v < want ? OTA_E_ROLLBACK : OTA_E_FORMAT,
                        "%s has version %lld, expected %lld", what, v, want);
}

/* Whether a verified local copy is exactly the document mf names and is still current. */
static int
local_is_current(const struct ota_tuf_client *c, const struct trusted *t,
                 const struct ota_tuf_metafile *mf)
{
    if (t->md == NULL || ota_tuf_md_version(t->md) != mf->version)
        return 0;
    if (mf->length >= 0 && (unsigned long long)mf->length != t->len)
        return 0;
    if (mf->has_sha256 && memcmp(mf->sha256, t->sha256, OTA_SHA256_LEN) != 0)
        return 0;
    return ota_tuf_md_check_expiry(t->md, c->now, NULL) == OTA_OK;
}

/* Fetch a document described by a metafile: at most its length (or max_meta_len), length and
 * hashes checked before the bytes are parsed (spec 5.5.2, 5.6.2). */
static ota_err
fetch_described(const struct ota_tuf_client *c, const char *url, const struct ota_tuf_metafile *mf,
                unsigned char **buf, size_t *len, size_t *cap_out, struct ota_diag *d)
{
    size_t  cap = c->max_meta_len;
    ota_err rc;

    if (mf->length >= 0 && (unsigned long long)mf->length < cap)
        cap = (size_t)mf->length;
    rc = ota_fetch_mem(fetch_opts(c), url, cap, buf, len, d);
    if (rc != OTA_OK)
        return rc;
    rc = ota_tuf_metafile_check(mf, *buf, *len, d);
    if (rc != OTA_OK) {
        free(*buf);
        *buf = NULL;
        return rc;
    }
    *cap_out = cap;
    return OTA_OK;
}

/* ---- open / init ---------------------------------------------------------------------- */

void
ota_tuf_client_free(struct ota_tuf_client *c)
{
    if (c == NULL)
        return;
    roles_clear(c);
    free(c->roles);
    trusted_clear(&c->ts);
    trusted_clear(&c->snap);
    trusted_clear(&c->targets);
    ota_tuf_md_free(c->root);
    free(c->dir);
    free(c->url);
    free(c);
}

/* Read and check a root file: well formed and signed by its own root role threshold. */
static ota_err
load_root_file(const char *path, size_t max, unsigned char **bufp, size_t *lenp,
               struct ota_tuf_md **out, struct ota_diag *d)
{
    struct ota_tuf_md *md = NULL;
    unsigned char     *buf = NULL;
    size_t             len = 0;
    ota_err            rc;

    rc = ota_read_file(path, max, &buf, &len, d);
    if (rc == OTA_OK)
        rc = ota_tuf_parse(buf, len, max, OTA_TUF_ROOT, &md, d);
    if (rc == OTA_OK)
        rc = ota_tuf_md_verify(md, ota_tuf_root_role(md, OTA_TUF_ROOT), d);
    if (rc != OTA_OK) {
        ota_diag_prefix(d, "trusted root '%s'", path);
        ota_tuf_md_free(md);
        free(buf);
        return rc;
    }
    if (bufp != NULL) {
        *bufp = buf;
        *lenp = len;
    } else {
        free(buf);
    }
    *out = md;
    return OTA_OK;
}

ota_err
ota_tuf_client_init(const char *metadata_dir, const char *trusted_root, struct ota_diag *d)
{
    struct ota_tuf_md *md = NULL;
    unsigned char     *buf = NULL;
    size_t             len = 0;
    char               path[PATH_MAX];
    ota_err            rc;

    rc = load_root_file(trusted_root, DEF_ROOT_LEN, &buf, &len, &md, d);
    if (rc != OTA_OK)
        return rc;
    if ((rc = ota_mkdir_p(metadata_dir, 0755, d)) == OTA_OK &&
        (rc = ota_path_fmt(path, sizeof path, d, "%s/root.json", metadata_dir)) == OTA_OK)
        rc = ota_write_file_atomic(path, buf, len, 0644, 0, d);
    ota_tuf_md_free(md);
    free(buf);
    return rc;
}

/* Drop local copies that no longer verify under the current root. */
static void
revalidate_locals(struct ota_tuf_client *c)
{
    struct {
        struct trusted   *t;
        enum ota_tuf_type type;
    } l[] = {
        {&c->ts, OTA_TUF_TIMESTAMP}, {&c->snap, OTA_TUF_SNAPSHOT}, {&c->targets, OTA_TUF_TARGETS}};
    size_t i;

    for (i = 0; i < sizeof l / sizeof l[0]; i++)
        if (l[i].t->md != NULL &&
            ota_tuf_md_verify(l[i].t->md, ota_tuf_root_role(c->root, l[i].type), NULL) != OTA_OK)
            trusted_clear(l[i].t);
}

ota_err
ota_tuf_client_open(const struct ota_tuf_client_opts *o, struct ota_tuf_client **out,
                    struct ota_diag *d)
{
    struct ota_tuf_client *c;
    char                   path[PATH_MAX];
    size_t                 n;
    ota_err                rc;

    if (o == NULL || o->metadata_dir == NULL)
        return ota_diag_set(d, OTA_E_INVALID, "no metadata directory given");
    c = calloc(1, sizeof *c);
    if (c == NULL)
        return ota_diag_set(d, OTA_E_NOMEM, "out of memory");
    c->dir = strdup(o->metadata_dir);
    c->url = o->metadata_url ? strdup(o->metadata_url) : NULL;
    if (c->dir == NULL || (o->metadata_url != NULL && c->url == NULL)) {
        rc = ota_diag_set(d, OTA_E_NOMEM, "out of memory");
        goto out;
    }
    if (c->url != NULL) {
        n = strlen(c->url);
        while (n > 0 && c->url[n - 1] == '/')
            c->url[--n] = '\0';
    }
    if (o->fetch != NULL) {
        c->fetch = *o->fetch; /* strings inside stay the caller's */
        c->have_fetch = 1;
    }
    /* The one start time of this update (spec 5.1): every expiry is checked against it. */
    c->now = o->now != 0 ? o->now : ota_now();
    c->max_root_rotations = o->max_root_rotations ? o->max_root_rotations : DEF_ROTATIONS;
    c->max_delegations = o->max_delegations ? o->max_delegations : DEF_DELEGATIONS;
    c->max_root_len = o->max_root_len ? o->max_root_len : DEF_ROOT_LEN;
    c->max_timestamp_len = o->max_timestamp_len ? o->max_timestamp_len : DEF_TIMESTAMP_LEN;
    c->max_meta_len = o->max_meta_len ? o->max_meta_len : DEF_META_LEN;

    rc = dir_path(c, "root.json", path, d);
    if (rc == OTA_OK)
        rc = load_root_file(path, c->max_root_len, NULL, NULL, &c->root, d);
    if (rc != OTA_OK)
        goto out;
    /* The rest only if it verifies; any problem just means we have no trusted copy. */
    (void)load_local(c, "timestamp.json", c->max_timestamp_len, OTA_TUF_TIMESTAMP,
                     ota_tuf_root_role(c->root, OTA_TUF_TIMESTAMP), &c->ts);
    (void)load_local(c, "snapshot.json", c->max_meta_len, OTA_TUF_SNAPSHOT,
                     ota_tuf_root_role(c->root, OTA_TUF_SNAPSHOT), &c->snap);
    (void)load_local(c, "targets.json", c->max_meta_len, OTA_TUF_TARGETS,
                     ota_tuf_root_role(c->root, OTA_TUF_TARGETS), &c->targets);
    *out = c;
    c = NULL;
out:
    ota_tuf_client_free(c);
    return rc;
}

/* ---- refresh -------------------------------------------------------------------------- */

/* After the root changed: fast-forward recovery (spec 5.3.11) deletes timestamp and snapshot
 * copies when their keys were rotated, whatever versions they claim; any other local copy
 * that no longer verifies under the new root is forgotten. */
static ota_err
after_rotation(struct ota_tuf_client *c, const struct ota_tuf_md *old, struct ota_diag *d)
{
    ota_err rc = OTA_OK;

    if (ota_tuf_root_role_changed(old, c->root, OTA_TUF_TIMESTAMP) ||
        ota_tuf_root_role_changed(old, c->root, OTA_TUF_SNAPSHOT)) {
        trusted_clear(&c->ts);
        trusted_clear(&c->snap);
        if ((rc = remove_local(c, "timestamp.json", d)) == OTA_OK &&
            (rc = remove_local(c, "snapshot.json", d)) == OTA_OK)
            rc = ota_fsync_dir(c->dir, d);
    }
    revalidate_locals(c);
    return rc;
}

/* Spec 5.3: follow the root chain one version at a time. */
static ota_err
update_root(struct ota_tuf_client *c, struct ota_diag *d)
{
    struct ota_tuf_md *start = c->root, *md = NULL;
    unsigned char     *buf = NULL;
    size_t             len = 0;
    unsigned           i;
    ota_err            rc = OTA_OK;

    for (i = 0; i < c->max_root_rotations && ota_tuf_md_version(c->root) < LLONG_MAX; i++) {
        long long next = ota_tuf_md_version(c->root) + 1;
        char     *url = meta_url(c, next, "root", ".json");
        if (url == NULL) {
            rc = ota_diag_set(d, OTA_E_NOMEM, "out of memory");
            break;
        }
        rc = ota_fetch_mem(fetch_opts(c), url, c->max_root_len, &buf, &len, d);
        free(url);
        if (rc == OTA_E_NOT_FOUND) {
            rc = OTA_OK; /* no newer root: the chain ends here */
            break;
        }
        if (rc != OTA_OK)
            break;
        rc = ota_tuf_parse(buf, len, c->max_root_len, OTA_TUF_ROOT, &md, d);
        /* Signed by a threshold of the trusted root's keys and of its own (spec 5.3.4). */
        if (rc == OTA_OK)
            rc = ota_tuf_md_verify(md, ota_tuf_root_role(c->root, OTA_TUF_ROOT), d);
        if (rc == OTA_OK)
            rc = ota_tuf_md_verify(md, ota_tuf_root_role(md, OTA_TUF_ROOT), d);
        if (rc == OTA_OK)
            rc = check_version(md, next, "root", d);
        if (rc == OTA_OK)
            rc = persist(c, "root.json", buf, len, d);
        free(buf);
        buf = NULL;
        if (rc != OTA_OK) {
            ota_diag_prefix(d, "root version %lld", next);
            break;
        }
        if (c->root != start)
            ota_tuf_md_free(c->root);
        c->root = md;
        md = NULL;
    }
    ota_tuf_md_free(md);
    /* Freeze (spec 5.3.10): the newest root must not have expired. */
    if (rc == OTA_OK)
        rc = ota_tuf_md_check_expiry(c->root, c->now, d);
    if (c->root != start) {
        /* Even when a later step failed, root.json on disk is c->root now: bring the other
         * copies in line with it. */
        ota_err rc2 = after_rotation(c, start, rc == OTA_OK ? d : NULL);
        if (rc == OTA_OK)
            rc = rc2;
        ota_tuf_md_free(start);
    }
    return rc;
}

/* Spec 5.4. */
static ota_err
update_timestamp(struct ota_tuf_client *c, struct ota_diag *d)
{
    struct trusted nt = {0};
    unsigned char *buf = NULL;
    size_t         len = 0;
    char          *url = meta_url(c, 0, "timestamp", ".json");
    ota_err        rc;

    if (url == NULL)
        return ota_diag_set(d, OTA_E_NOMEM, "out of memory");
    rc = ota_fetch_mem(fetch_opts(c), url, c->max_timestamp_len, &buf, &len, d);
    free(url);
    if (rc == OTA_OK)
        rc = accept_bytes(buf, len, c->max_timestamp_len, OTA_TUF_TIMESTAMP,
                          ota_tuf_root_role(c->root, OTA_TUF_TIMESTAMP), &nt, d);
    if (rc != OTA_OK)
        goto out;
    if (c->ts.md != NULL) {
        long long ov = ota_tuf_md_version(c->ts.md), nv = ota_tuf_md_version(nt.md);
        if (nv < ov) {
            rc = ota_diag_set(d, OTA_E_ROLLBACK, "timestamp version %lld is below the trusted %lld",
                              nv, ov);
            goto out;
        }
        if (nv == ov) {
            /* Nothing new (spec 5.4.3.1): keep the trusted copy, which must still be fresh. */
            rc = ota_tuf_md_check_expiry(c->ts.md, c->now, d);
            goto out;
        }
        if (ota_tuf_timestamp_snapshot(nt.md)->version <
            ota_tuf_timestamp_snapshot(c->ts.md)->version) {
            rc = ota_diag_set(d, OTA_E_ROLLBACK,
                              "timestamp version %lld lists snapshot version %lld, below the "
                              "trusted %lld",
                              nv, ota_tuf_timestamp_snapshot(nt.md)->version,
                              ota_tuf_timestamp_snapshot(c->ts.md)->version);
            goto out;
        }
    }
    if ((rc = ota_tuf_md_check_expiry(nt.md, c->now, d)) != OTA_OK ||
        (rc = persist(c, "timestamp.json", buf, len, d)) != OTA_OK)
        goto out;
    trusted_clear(&c->ts);
    c->ts = nt;
    nt.md = NULL;
out:
    trusted_clear(&nt);
    free(buf);
    return rc;
}

/* Spec 5.5. */
static ota_err
update_snapshot(struct ota_tuf_client *c, struct ota_diag *d)
{
    const struct ota_tuf_metafile *mf = ota_tuf_timestamp_snapshot(c->ts.md);
    struct trusted                 nt = {0};
    unsigned char                 *buf = NULL;
    size_t                         len = 0, cap = 0;
    char                          *url;
    ota_err                        rc;

    if (local_is_current(c, &c->snap, mf))
        return OTA_OK;
    url = meta_url(c, ota_tuf_root_consistent_snapshot(c->root) ? mf->version : 0, "snapshot",
                   ".json");
    if (url == NULL)
        return ota_diag_set(d, OTA_E_NOMEM, "out of memory");
    rc = fetch_described(c, url, mf, &buf, &len, &cap, d);
    free(url);
    if (rc == OTA_OK)
        rc = accept_bytes(buf, len, cap, OTA_TUF_SNAPSHOT,
                          ota_tuf_root_role(c->root, OTA_TUF_SNAPSHOT), &nt, d);
    if (rc == OTA_OK)
        rc = check_version(nt.md, mf->version, "snapshot", d);
    /* Rollback (spec 5.5.5) against the previous trusted snapshot, whatever its version. */
    if (rc == OTA_OK && c->snap.md != NULL)
        rc = ota_tuf_snapshot_check_rollback(c->snap.md, nt.md, d);
    if (rc == OTA_OK)
        rc = ota_tuf_md_check_expiry(nt.md, c->now, d);
    if (rc == OTA_OK)
        rc = persist(c, "snapshot.json", buf, len, d);
    if (rc == OTA_OK) {
        trusted_clear(&c->snap);
        c->snap = nt;
        nt.md = NULL;
    }
    trusted_clear(&nt);
    free(buf);
    return rc;
}

/* Load the targets document of a role (top-level "targets" or delegated) as the snapshot
 * names it (spec 5.6, the same rules for delegated roles). local, if not NULL, is a verified
 * local copy: when it is that exact version it is moved to *out (and local emptied) instead
 * of fetching. */
static ota_err
load_targets_role(const struct ota_tuf_client *c, const char *role,
                  const struct ota_role_keys *keys, struct trusted *local, struct trusted *out,
                  struct ota_diag *d)
{
    const struct ota_tuf_metafile *mf;
    struct trusted                 nt = {0};
    char                           fname[OTA_TUF_FILENAME_MAX], mname[OTA_TUF_FILENAME_MAX * 3];
    unsigned char                 *buf = NULL;
    size_t                         len = 0, cap = 0;
    char                          *url;
    ota_err                        rc;

    rc = ota_tuf_role_filename(role, fname, d);
    if (rc != OTA_OK)
        return rc;
    if ((size_t)snprintf(mname, sizeof mname, "%s.json", role) >= sizeof mname)
        return ota_diag_set(d, OTA_E_UNSAFE_PATH, "role name too long");
    mf = ota_tuf_snapshot_meta(c->snap.md, mname);
    if (mf == NULL)
        return ota_diag_set(d, OTA_E_FORMAT, "snapshot does not list '%.64s'", mname);
    if (local != NULL && local_is_current(c, local, mf)) {
        *out = *local;
        memset(local, 0, sizeof *local);
        return OTA_OK;
    }
    url = meta_url(c, ota_tuf_root_consistent_snapshot(c->root) ? mf->version : 0, role, ".json");
    if (url == NULL)
        return ota_diag_set(d, OTA_E_NOMEM, "out of memory");
    rc = fetch_described(c, url, mf, &buf, &len, &cap, d);
    free(url);
    if (rc == OTA_OK)
        rc = accept_bytes(buf, len, cap, OTA_TUF_TARGETS, keys, &nt, d);
    if (rc == OTA_OK)
        rc = check_version(nt.md, mf->version, role, d);
    if (rc == OTA_OK)
        rc = ota_tuf_md_check_expiry(nt.md, c->now, d);
    if (rc == OTA_OK)
        rc = persist(c, fname, buf, len, d);
    free(buf);
    if (rc != OTA_OK) {
        trusted_clear(&nt);
        return rc;
    }
    *out = nt;
    return OTA_OK;
}

ota_err
ota_tuf_client_refresh(struct ota_tuf_client *c, struct ota_diag *d)
{
    struct trusted nt = {0};
    ota_err        rc;

    c->refreshed = 0;
    roles_clear(c);
    if (c->url == NULL)
        return ota_diag_set(d, OTA_E_INVALID, "no metadata URL given");
    rc = update_root(c, d);
    if (rc == OTA_OK)
        rc = update_timestamp(c, d);
    if (rc == OTA_OK)
        rc = update_snapshot(c, d);
    if (rc == OTA_OK) {
        rc = load_targets_role(c, "targets", ota_tuf_root_role(c->root, OTA_TUF_TARGETS),
                               &c->targets, &nt, d);
        if (rc == OTA_OK) {
            trusted_clear(&c->targets); /* empty if it was moved to nt */
            c->targets = nt;
        }
    }
    if (rc == OTA_OK)
        c->refreshed = 1;
    return rc;
}

/* ---- lookups -------------------------------------------------------------------------- */

static ota_err
need_refresh(const struct ota_tuf_client *c, struct ota_diag *d)
{
    if (!c->refreshed || c->targets.md == NULL)
        return ota_diag_set(d, OTA_E_STATE, "TUF metadata has not been refreshed");
    return OTA_OK;
}

static void
to_target(const struct ota_tuf_targetinfo *ti, struct ota_tuf_target *t)
{
    t->path = ti->path;
    t->length = ti->length;
    memcpy(t->sha256, ti->sha256, OTA_SHA256_LEN);
    t->custom = ti->custom;
}

/* The verified document of a delegated role, loaded once per refresh for each delegator. */
static ota_err
delegated_role(struct ota_tuf_client *c, const char *parent, const struct ota_tuf_delegation *dl,
               const struct ota_tuf_md **out, struct ota_diag *d)
{
    struct role_entry *e;
    struct trusted     t = {0}, local = {0};
    char               fname[OTA_TUF_FILENAME_MAX];
    size_t             i;
    ota_err            rc;

    for (i = 0; i < c->nroles; i++)
        if (strcmp(c->roles[i].name, dl->name) == 0 && strcmp(c->roles[i].parent, parent) == 0) {
            *out = c->roles[i].t.md;
            return OTA_OK;
        }
    if (c->nroles == c->caproles) {
        size_t nc = c->caproles ? c->caproles * 2 : 8;
        void  *p = realloc(c->roles, nc * sizeof *c->roles);
        if (p == NULL)
            return ota_diag_set(d, OTA_E_NOMEM, "out of memory");
        c->roles = p;
        c->caproles = nc;
    }
    /* A local copy verified with this delegator's keys may spare the fetch. */
    if (ota_tuf_role_filename(dl->name, fname, NULL) == OTA_OK)
        (void)load_local(c, fname, c->max_meta_len, OTA_TUF_TARGETS, &dl->keys, &local);
    rc = load_targets_role(c, dl->name, &dl->keys, local.md ? &local : NULL, &t, d);
    trusted_clear(&local);
    if (rc != OTA_OK) {
        ota_diag_prefix(d, "delegated role '%.64s'", dl->name);
        return rc;
    }
    e = &c->roles[c->nroles];
    e->name = strdup(dl->name);
    e->parent = strdup(parent);
    if (e->name == NULL || e->parent == NULL) {
        free(e->name);
        free(e->parent);
        trusted_clear(&t);
        return ota_diag_set(d, OTA_E_NOMEM, "out of memory");
    }
    e->t = t;
    c->nroles++;
    *out = t.md;
    return OTA_OK;
}

struct visit {
    const char                      *name;   /* role to visit */
    const char                      *parent; /* its delegator */
    const struct ota_tuf_delegation *dl;     /* NULL for the top-level targets role */
};

ota_err
ota_tuf_client_find_target(struct ota_tuf_client *c, const char *path, struct ota_tuf_target *out,
                           struct ota_diag *d)
{
    struct visit *stack = NULL;
    const char  **visited = NULL;
    size_t        nstack = 0, capstack, nvisited = 0;
    ota_err       rc;

    rc = need_refresh(c, d);
    if (rc != OTA_OK)
        return rc;
    /* Each visited role pushes at most OTA_TUF_MAX_ROLES children. */
    capstack = (size_t)c->max_delegations * OTA_TUF_MAX_ROLES + 1;
    stack = malloc(capstack * sizeof *stack);
    visited = malloc(c->max_delegations * sizeof *visited);
    if (stack == NULL || visited == NULL) {
        rc = ota_diag_set(d, OTA_E_NOMEM, "out of memory");
        goto out;
    }
    /* Pre-order depth-first search from the top-level targets role (spec 5.6.7). */
    stack[nstack++] = (struct visit){"targets", NULL, NULL};
    while (nstack > 0 && nvisited < c->max_delegations) {
        struct visit                     v = stack[--nstack];
        const struct ota_tuf_md         *md = NULL;
        const struct ota_tuf_delegation *dls;
        struct ota_tuf_targetinfo        ti;
        size_t                           n, i, first, seen;

        for (seen = 0; seen < nvisited; seen++)
            if (strcmp(visited[seen], v.name) == 0)
                break;
        if (seen < nvisited)
            continue; /* a cycle or a role reached twice */
        if (v.dl == NULL) {
            md = c->targets.md;
        } else {
            rc = delegated_role(c, v.parent, v.dl, &md, d);
            if (rc != OTA_OK)
                goto out;
        }
        rc = ota_tuf_targets_get(md, path, &ti, NULL);
        if (rc == OTA_OK) {
            to_target(&ti, out);
            goto out;
        }
        visited[nvisited++] = v.name;
        dls = ota_tuf_targets_delegations(md, &n);
        first = nstack;
        for (i = 0; i < n; i++) {
            if (!ota_tuf_delegation_matches(&dls[i], path))
                continue;
            stack[nstack++] = (struct visit){dls[i].name, v.name, &dls[i]};
            if (dls[i].terminating) {
                /* Nothing outside this delegation may speak for path any more. */
                memmove(stack, stack + first, (nstack - first) * sizeof *stack);
                nstack -= first;
                first = 0;
                break;
            }
        }
        /* Reverse this role's children so the first delegation is popped first. */
        for (i = 0; i < (nstack - first) / 2; i++) {
            struct visit tmp = stack[first + i];
            stack[first + i] = stack[nstack - 1 - i];
            stack[nstack - 1 - i] = tmp;
        }
    }
    if (nstack > 0)
        rc = ota_diag_set(d, OTA_E_NOT_FOUND,
                          "no target '%.128s' within the %u roles searched (the limit)", path,
                          c->max_delegations);
    else
        rc = ota_diag_set(d, OTA_E_NOT_FOUND, "no target '%.128s'", path);
out:
    free(stack);
    free(visited);
    return rc;
}

struct foreach_ctx {
    int (*cb)(void *ctx, const struct ota_tuf_target *t);
    void *ctx;
};

static int
foreach_one(void *ctx, const struct ota_tuf_targetinfo *ti)
{
    struct foreach_ctx   *f = ctx;
    struct ota_tuf_target t;

    to_target(ti, &t);
    return f->cb(f->ctx, &t);
}

ota_err
ota_tuf_client_foreach_target(struct ota_tuf_client *c,
                              int (*cb)(void *ctx, const struct ota_tuf_target *t), void *ctx,
                              struct ota_diag *d)
{
    struct foreach_ctx f = {cb, ctx};
    ota_err            rc = need_refresh(c, d);

    if (rc != OTA_OK)
        return rc;
    (void)ota_tuf_targets_foreach(c->targets.md, foreach_one, &f);
    return OTA_OK;
}

char *
ota_tuf_client_target_url(const struct ota_tuf_client *c, const char *base,
                          const struct ota_tuf_target *t)
{
    size_t blen = strlen(base), cap = 3 * strlen(t->path) + 1;
    char  *enc = malloc(cap), *u;
    char   hex[OTA_SHA256_HEX];

    while (blen > 0 && base[blen - 1] == '/')
        blen--;
    u = malloc(blen + cap + sizeof hex + 2);
    /* Same encoding as the reference client's quote(path): '/' kept, the rest made URL-safe. */
    if (enc == NULL || u == NULL || ota_tuf_quote(t->path, "/", enc, cap, NULL) != OTA_OK) {
        free(enc);
        free(u);
        return NULL;
    }
    if (ota_tuf_root_consistent_snapshot(c->root)) {
        /* HASH.FILENAME in the target's directory (spec 5.7.3). */
        const char *slash = strrchr(enc, '/');
        size_t      dir = slash ? (size_t)(slash - enc) + 1 : 0;
        ota_hex_encode(t->sha256, OTA_SHA256_LEN, hex);
        sprintf(u, "%.*s/%.*s%s.%s", (int)blen, base, (int)dir, enc, hex, enc + dir);
    } else {
        sprintf(u, "%.*s/%s", (int)blen, base, enc);
    }
    free(enc);
    return u;
}

const struct ota_role_keys *
ota_tuf_client_targets_keys(const struct ota_tuf_client *c)
{
    return ota_tuf_root_role(c->root, OTA_TUF_TARGETS);
}

long long
ota_tuf_client_version(const struct ota_tuf_client *c, const char *role)
{
    const struct ota_tuf_md *md = NULL;

    if (strcmp(role, "root") == 0)
        md = c->root;
    else if (strcmp(role, "timestamp") == 0)
        md = c->ts.md;
    else if (strcmp(role, "snapshot") == 0)
        md = c->snap.md;
    else if (strcmp(role, "targets") == 0)
        md = c->targets.md;
    return md ? ota_tuf_md_version(md) : 0;
}
