/* ota-publish library: workspace, metadata signing and every repository change.
 * See ota/publish.h and formats/repository.md. */
#include "ota/publish.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ota/cjson.h"
#include "ota/fsutil.h"
#include "ota/hash.h"
#include "ota/keys.h"

#define SPEC_VERSION "1.0.31"
/* Format a path into the local buffer `path`, returning from the function when too long. */
#define PATHF(...)                                                                      \
    do {                                                                                \
        if ((rc = ota_path_fmt(path, sizeof path, d, __VA_ARGS__)) != OTA_OK)           \
            return rc;                                                                  \
    } while (0)
#define META_MAX (64u << 20)
#define MAX_KEYFILES 256

const char *const ota_role_names[4] = { "root", "targets", "snapshot", "timestamp" };
static const unsigned default_days[4] = { 365, 90, 7, 1 };

struct md {
    json_t   *env;     /* {"signed":..., "signatures":[...]} */
    json_t   *sig;     /* borrowed: env["signed"] */
    long long version;
    int       dirty;   /* must be re-signed and written */
};

struct keyfile {
    char              path[PATH_MAX];
    struct ota_pubkey pub;
    struct ota_seckey *sec; /* loaded on first use */
};

struct ota_repo {
    char            dir[PATH_MAX];
    char            pub[PATH_MAX];
    char            meta[PATH_MAX];
    char            tdir[PATH_MAX];
    char            keys[PATH_MAX];
    int             lockfd;
    int64_t         now;
    unsigned        days[4];
    struct md       md[4];
    struct ota_pubkey *rolekeys[4]; /* malloc'd arrays, from root */
    size_t          nrolekeys[4];
    unsigned        threshold[4];
    struct keyfile *kf;
    size_t          nkf;
    const struct ota_passphrase_src *pass;
    char           *passphrase;     /* sodium memory, fetched on first need */
};

int
ota_role_from_name(const char *name)
{
    int i;

    for (i = 0; i < 4; i++)
        if (strcmp(name, ota_role_names[i]) == 0)
            return i;
    return -1;
}

const char *
ota_repo_public_dir(const struct ota_repo *r)
{
    return r->pub;
}

int64_t
ota_repo_now(const struct ota_repo *r)
{
    return r->now;
}

const json_t *
ota_repo_targets(const struct ota_repo *r)
{
    return json_object_get(r->md[OTA_ROLE_TARGETS].sig, "targets");
}

/* ---------------------------------------------------------------- keys and signing */

static ota_err
get_passphrase(struct ota_repo *r, int confirm, struct ota_diag *d)
{
    if (r->passphrase != NULL)
        return OTA_OK;
    return ota_passphrase_get(r->pass, "passphrase for the repository keys", confirm,
                              &r->passphrase, d);
}

static ota_err
add_keyfile(struct ota_repo *r, const char *path, struct ota_diag *d)
{
    struct keyfile *nk;
    ota_err         rc;
    size_t          i;

    if (r->nkf >= MAX_KEYFILES)
        return ota_diag_set(d, OTA_E_TOO_BIG, "more than %d key files", MAX_KEYFILES);
    nk = realloc(r->kf, (r->nkf + 1) * sizeof *nk);
    if (nk == NULL)
        return ota_diag_set(d, OTA_E_NOMEM, "out of memory");
    r->kf = nk;
    memset(&nk[r->nkf], 0, sizeof *nk);
    if (ota_path_fmt(nk[r->nkf].path, sizeof nk[r->nkf].path, d, "%s", path) != OTA_OK)
        return OTA_E_TOO_BIG;
    rc = ota_seckey_load_public(path, &nk[r->nkf].pub, d);
    if (rc != OTA_OK) {
        ota_diag_prefix(d, "key file '%s'", path);
        return rc;
    }
    for (i = 0; i < r->nkf; i++)
        if (strcmp(r->kf[i].pub.keyid, nk[r->nkf].pub.keyid) == 0)
            return OTA_OK; /* same key twice: keep the first */
    r->nkf++;
    return OTA_OK;
}

ota_err
ota_repo_add_key_file(struct ota_repo *r, const char *path, struct ota_diag *d)
{
    return add_keyfile(r, path, d);
}

static ota_err
scan_keys_dir(struct ota_repo *r, struct ota_diag *d)
{
    DIR           *dir = opendir(r->keys);
    struct dirent *e;
    ota_err        rc = OTA_OK;

    if (dir == NULL)
        return errno == ENOENT ? OTA_OK
                               : ota_diag_sys(d, OTA_E_IO, errno, "cannot read '%s'", r->keys);
    while ((e = readdir(dir)) != NULL) {
        char   path[PATH_MAX];
        size_t n = strlen(e->d_name);
        if (n < 5 || strcmp(e->d_name + n - 4, ".key") != 0)
            continue;
        if ((rc = ota_path_fmt(path, sizeof path, d, "%s/%s", r->keys, e->d_name)) != OTA_OK)
            break;
        if ((rc = add_keyfile(r, path, d)) != OTA_OK)
            break;
    }
    closedir(dir);
    return rc;
}

static struct keyfile *
find_keyfile(struct ota_repo *r, const char *keyid)
{
    size_t i;

    for (i = 0; i < r->nkf; i++)
        if (strcmp(r->kf[i].pub.keyid, keyid) == 0)
            return &r->kf[i];
    return NULL;
}

static ota_err
load_secret(struct ota_repo *r, struct keyfile *k, struct ota_diag *d)
{
    ota_err rc;

    if (k->sec != NULL)
        return OTA_OK;
    if (ota_seckey_file_encrypted(k->path) == 1) {
        rc = get_passphrase(r, 0, d);
        if (rc != OTA_OK)
            return rc;
    }
    rc = ota_seckey_load(k->path, r->passphrase, &k->sec, d);
    if (rc == OTA_OK && strcmp(ota_seckey_public(k->sec)->keyid, k->pub.keyid) != 0) {
        ota_seckey_free(k->sec);
        k->sec = NULL;
        rc = ota_diag_set(d, OTA_E_FORMAT, "key file '%s' changed while in use", k->path);
    }
    return rc;
}

/* Sign canonical bytes with up to threshold keys of the given key list that we hold. */
static ota_err
sign_with(struct ota_repo *r, const char *role, const struct ota_pubkey *keys, size_t nkeys,
          unsigned threshold, const void *msg, size_t len, json_t *sigs, struct ota_diag *d)
{
    unsigned signed_n = 0;
    size_t   i;
    ota_err  rc;

    for (i = 0; i < nkeys && signed_n < threshold; i++) {
        struct keyfile *k = find_keyfile(r, keys[i].keyid);
        size_t          j;
        int             dup = 0;
        if (k == NULL)
            continue;
        for (j = 0; j < json_array_size(sigs); j++) {
            const char *kid = json_string_value(json_object_get(json_array_get(sigs, j), "keyid"));
            if (kid != NULL && strcmp(kid, keys[i].keyid) == 0)
                dup = 1;
        }
        if (dup) {
            signed_n++;
            continue;
        }
        if ((rc = load_secret(r, k, d)) != OTA_OK)
            return rc;
        if ((rc = ota_seckey_sign(k->sec, msg, len, sigs, d)) != OTA_OK)
            return rc;
        signed_n++;
    }
    if (signed_n < threshold)
        return ota_diag_set(d, OTA_E_KEY_UNKNOWN,
                            "%s: only %u of the %u required keys are available (looked in '%s'; "
                            "pass offline keys with --key FILE)",
                            role, signed_n, threshold, r->keys);
    return OTA_OK;
}

static ota_err
canon_signed(const json_t *env, char **canon, size_t *len, struct ota_diag *d)
{
    return ota_cjson_encode(json_object_get(env, "signed"), META_MAX, canon, len, d);
}

ota_err
ota_repo_bundle_signer(void *repo, const void *msg, size_t len, json_t *sigs, struct ota_diag *d)
{
    struct ota_repo *r = repo;

    return sign_with(r, "targets", r->rolekeys[OTA_ROLE_TARGETS], r->nrolekeys[OTA_ROLE_TARGETS],
                     r->threshold[OTA_ROLE_TARGETS], msg, len, sigs, d);
}

ota_err
ota_repo_bundle_verifier(void *repo, const void *msg, size_t len, const json_t *sigs,
                         struct ota_diag *d)
{
    struct ota_repo     *r = repo;
    struct ota_role_keys rk = { "bundle manifest (targets keys)", r->rolekeys[OTA_ROLE_TARGETS],
                                r->nrolekeys[OTA_ROLE_TARGETS], r->threshold[OTA_ROLE_TARGETS] };

    return ota_threshold_verify(&rk, sigs, msg, len, NULL, d);
}

/* ---------------------------------------------------------------- roles from root */

static void
free_rolekeys(struct ota_repo *r)
{
    int i;

    for (i = 0; i < 4; i++) {
        free(r->rolekeys[i]);
        r->rolekeys[i] = NULL;
        r->nrolekeys[i] = 0;
    }
}

/* Fill role keys and thresholds from a root "signed" object. */
static ota_err
roles_from_root(const json_t *root, struct ota_pubkey *keys_out[4], size_t nkeys_out[4],
                unsigned thr_out[4], struct ota_diag *d)
{
    json_t *keys, *roles;
    int     i;
    ota_err rc;

    if ((rc = ota_json_get_obj(root, "keys", &keys, d)) != OTA_OK ||
        (rc = ota_json_get_obj(root, "roles", &roles, d)) != OTA_OK)
        return rc;
    for (i = 0; i < 4; i++) {
        json_t   *role, *ids;
        long long thr;
        size_t    j;
        if ((rc = ota_json_get_obj(roles, ota_role_names[i], &role, d)) != OTA_OK ||
            (rc = ota_json_get_arr(role, "keyids", 256, &ids, d)) != OTA_OK ||
            (rc = ota_json_get_int(role, "threshold", 1, 256, &thr, d)) != OTA_OK)
            return rc;
        keys_out[i] = calloc(json_array_size(ids) + 1, sizeof **keys_out);
        if (keys_out[i] == NULL)
            return ota_diag_set(d, OTA_E_NOMEM, "out of memory");
        nkeys_out[i] = 0;
        for (j = 0; j < json_array_size(ids); j++) {
            const char *id = json_string_value(json_array_get(ids, j));
            json_t     *ko = id ? json_object_get(keys, id) : NULL;
            if (ko == NULL)
                return ota_diag_set(d, OTA_E_FORMAT, "root: %s key '%.16s' is not listed in keys",
                                    ota_role_names[i], id ? id : "?");
            rc = ota_pubkey_from_json(ko, id, &keys_out[i][nkeys_out[i]], d);
            if (rc != OTA_OK)
                return rc;
            nkeys_out[i]++;
        }
        thr_out[i] = (unsigned)thr;
        if (thr_out[i] > nkeys_out[i])
            return ota_diag_set(d, OTA_E_FORMAT, "root: %s threshold %u is above its %zu keys",
                                ota_role_names[i], thr_out[i], nkeys_out[i]);
    }
    return OTA_OK;
}

static ota_err
verify_role(const struct ota_repo *r, int role, const json_t *env, struct ota_diag *d)
{
    struct ota_role_keys rk = { ota_role_names[role], r->rolekeys[role], r->nrolekeys[role],
                                r->threshold[role] };
    char   *canon = NULL;
    size_t  len = 0;
    ota_err rc = canon_signed(env, &canon, &len, d);

    if (rc == OTA_OK)
        rc = ota_threshold_verify(&rk, json_object_get(env, "signatures"), canon, len, NULL, d);
    free(canon);
    return rc;
}

/* ---------------------------------------------------------------- loading */

static ota_err
load_md(struct ota_repo *r, int role, const char *name, struct ota_diag *d)
{
    char           path[PATH_MAX];
    unsigned char *buf = NULL;
    size_t         len = 0;
    json_t        *env = NULL, *sig;
    const char    *type;
    long long      version;
    ota_err        rc;

    if ((rc = ota_path_fmt(path, sizeof path, d, "%s/%s", r->meta, name)) != OTA_OK)
        return rc;
    if ((rc = ota_read_file(path, META_MAX, &buf, &len, d)) != OTA_OK)
        return rc;
    rc = ota_cjson_parse(buf, len, META_MAX, &env, d);
    free(buf);
    if (rc != OTA_OK)
        goto fail;
    if ((rc = ota_json_get_obj(env, "signed", &sig, d)) != OTA_OK ||
        (rc = ota_json_get_str(sig, "_type", 32, 1, &type, d)) != OTA_OK ||
        (rc = ota_json_get_int(sig, "version", 1, (1LL << 53), &version, d)) != OTA_OK)
        goto fail;
    if (strcmp(type, ota_role_names[role]) != 0) {
        rc = ota_diag_set(d, OTA_E_FORMAT, "_type is '%.32s', expected '%s'", type,
                          ota_role_names[role]);
        goto fail;
    }
    json_decref(r->md[role].env);
    r->md[role].env = env;
    r->md[role].sig = sig;
    r->md[role].version = version;
    return OTA_OK;
fail:
    ota_diag_prefix(d, "'%s'", path);
    json_decref(env);
    return rc;
}

static long long
meta_version(const json_t *sig, const char *name)
{
    json_t *v = json_object_get(json_object_get(json_object_get(sig, "meta"), name), "version");

    return json_is_integer(v) ? (long long)json_integer_value(v) : -1;
}

static ota_err
load_all(struct ota_repo *r, struct ota_diag *d)
{
    char      name[64];
    long long v;
    int       i;
    ota_err   rc;

    if ((rc = load_md(r, OTA_ROLE_ROOT, "root.json", d)) != OTA_OK)
        return rc;
    free_rolekeys(r);
    rc = roles_from_root(r->md[OTA_ROLE_ROOT].sig, r->rolekeys, r->nrolekeys, r->threshold, d);
    if (rc != OTA_OK) {
        ota_diag_prefix(d, "root.json");
        return rc;
    }
    if ((rc = load_md(r, OTA_ROLE_TIMESTAMP, "timestamp.json", d)) != OTA_OK)
        return rc;
    v = meta_version(r->md[OTA_ROLE_TIMESTAMP].sig, "snapshot.json");
    if (v < 1)
        return ota_diag_set(d, OTA_E_FORMAT, "timestamp.json lists no snapshot.json version");
    snprintf(name, sizeof name, "%lld.snapshot.json", v);
    if ((rc = load_md(r, OTA_ROLE_SNAPSHOT, name, d)) != OTA_OK)
        return rc;
    v = meta_version(r->md[OTA_ROLE_SNAPSHOT].sig, "targets.json");
    if (v < 1)
        return ota_diag_set(d, OTA_E_FORMAT, "%s lists no targets.json version", name);
    snprintf(name, sizeof name, "%lld.targets.json", v);
    if ((rc = load_md(r, OTA_ROLE_TARGETS, name, d)) != OTA_OK)
        return rc;
    for (i = 0; i < 4; i++) {
        rc = verify_role(r, i, r->md[i].env, d);
        if (rc != OTA_OK) {
            ota_diag_prefix(d, "repository metadata %s", ota_role_names[i]);
            return rc;
        }
    }
    return OTA_OK;
}

static ota_err
load_config(struct ota_repo *r, struct ota_diag *d)
{
    char           path[PATH_MAX];
    unsigned char *buf = NULL;
    size_t         len = 0;
    json_t        *cfg = NULL, *days;
    ota_err        rc;
    int            i;
    static const char *const top[] = { "format", "expires_days", NULL };

    memcpy(r->days, default_days, sizeof r->days);
    if ((rc = ota_path_fmt(path, sizeof path, d, "%s/repo.json", r->dir)) != OTA_OK)
        return rc;
    if ((rc = ota_read_file(path, 1 << 16, &buf, &len, d)) != OTA_OK)
        return rc;
    rc = ota_cjson_parse(buf, len, 1 << 16, &cfg, d);
    free(buf);
    if (rc == OTA_OK && !json_is_object(cfg))
        rc = ota_diag_set(d, OTA_E_FORMAT, "must be an object");
    if (rc == OTA_OK)
        rc = ota_json_only_keys(cfg, top, d);
    if (rc == OTA_OK && (rc = ota_json_get_obj(cfg, "expires_days", &days, d)) == OTA_OK) {
        for (i = 0; i < 4 && rc == OTA_OK; i++) {
            long long v;
            rc = ota_json_get_int(days, ota_role_names[i], 1, 36500, &v, d);
            if (rc == OTA_OK)
                r->days[i] = (unsigned)v;
        }
    }
    json_decref(cfg);
    if (rc != OTA_OK)
        ota_diag_prefix(d, "'%s'", path);
    return rc;
}

static ota_err
set_paths(struct ota_repo *r, const char *dir, struct ota_diag *d)
{
    ota_err rc;

    if ((rc = ota_path_fmt(r->dir, sizeof r->dir, d, "%s", dir)) != OTA_OK ||
        (rc = ota_path_fmt(r->pub, sizeof r->pub, d, "%s/public", dir)) != OTA_OK ||
        (rc = ota_path_fmt(r->meta, sizeof r->meta, d, "%s/public/metadata", dir)) != OTA_OK ||
        (rc = ota_path_fmt(r->tdir, sizeof r->tdir, d, "%s/public/targets", dir)) != OTA_OK ||
        (rc = ota_path_fmt(r->keys, sizeof r->keys, d, "%s/keys", dir)) != OTA_OK)
        return rc;
    return OTA_OK;
}

static ota_err
lock_repo(struct ota_repo *r, struct ota_diag *d)
{
    char path[PATH_MAX];

    if (ota_path_fmt(path, sizeof path, d, "%s/.lock", r->dir) != OTA_OK)
        return OTA_E_TOO_BIG;
    r->lockfd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (r->lockfd < 0)
        return ota_diag_sys(d, OTA_E_IO, errno, "cannot open '%s'", path);
    if (flock(r->lockfd, LOCK_EX | LOCK_NB) != 0)
        return ota_diag_set(d, OTA_E_LOCKED, "repository '%s' is in use by another ota-publish",
                            r->dir);
    return OTA_OK;
}

static struct ota_repo *
repo_new(const struct ota_passphrase_src *pass)
{
    struct ota_repo *r = calloc(1, sizeof *r);

    if (r != NULL) {
        r->lockfd = -1;
        r->pass = pass;
        r->now = ota_now();
    }
    return r;
}

void
ota_repo_close(struct ota_repo *r)
{
    size_t i;

    if (r == NULL)
        return;
    for (i = 0; i < 4; i++)
        json_decref(r->md[i].env);
    free_rolekeys(r);
    for (i = 0; i < r->nkf; i++)
        ota_seckey_free(r->kf[i].sec);
    free(r->kf);
    ota_passphrase_free(r->passphrase);
    if (r->lockfd >= 0)
        close(r->lockfd);
    free(r);
}

ota_err
ota_repo_open(const char *dir, const struct ota_passphrase_src *pass, struct ota_repo **out,
              struct ota_diag *d)
{
    struct ota_repo *r = repo_new(pass);
    struct stat      st;
    ota_err          rc;

    if (r == NULL)
        return ota_diag_set(d, OTA_E_NOMEM, "out of memory");
    if ((rc = set_paths(r, dir, d)) != OTA_OK)
        goto fail;
    if (stat(r->meta, &st) != 0) {
        rc = ota_diag_set(d, OTA_E_NOT_FOUND,
                          "'%s' is not an ota repository (no public/metadata): run "
                          "'ota-publish init %s' first", dir, dir);
        goto fail;
    }
    if ((rc = lock_repo(r, d)) != OTA_OK || (rc = load_config(r, d)) != OTA_OK ||
        (rc = load_all(r, d)) != OTA_OK || (rc = scan_keys_dir(r, d)) != OTA_OK)
        goto fail;
    *out = r;
    return OTA_OK;
fail:
    ota_repo_close(r);
    return rc;
}

/* ---------------------------------------------------------------- writing */

static ota_err
write_json(const char *path, const json_t *v, int excl, struct ota_diag *d)
{
    /* Files carry jansson's compact JSON (valid JSON: control characters escaped); every
     * reader re-encodes "signed" canonically before checking signatures. */
    char   *s = json_dumps(v, JSON_COMPACT | JSON_SORT_KEYS);
    ota_err rc;

    if (s == NULL)
        return ota_diag_set(d, OTA_E_NOMEM, "out of memory");
    rc = ota_write_file_atomic(path, s, strlen(s), 0644, excl, d);
    free(s);
    return rc;
}

static ota_err
file_meta(const json_t *env, json_t **out, long long version, struct ota_diag *d)
{
    char  *s = json_dumps(env, JSON_COMPACT | JSON_SORT_KEYS);
    char   hex[OTA_SHA256_HEX];
    ota_err rc;

    if (s == NULL)
        return ota_diag_set(d, OTA_E_NOMEM, "out of memory");
    rc = ota_sha256_hex(s, strlen(s), hex);
    if (rc == OTA_OK) {
        *out = json_pack("{s:I, s:I, s:{s:s}}", "version", (json_int_t)version, "length",
                         (json_int_t)strlen(s), "hashes", "sha256", hex);
        if (*out == NULL)
            rc = ota_diag_set(d, OTA_E_NOMEM, "out of memory");
    }
    free(s);
    return rc;
}

static void
set_expiry(struct ota_repo *r, int role, json_t *sig)
{
    char when[21];

    ota_time_format(r->now + (int64_t)r->days[role] * 86400, when);
    json_object_set_new(sig, "expires", json_string(when));
}

/* Re-sign a role's envelope in place: version bumped once, new expiry, fresh signatures. */
static ota_err
resign(struct ota_repo *r, int role, struct ota_diag *d)
{
    json_t *sigs = json_array();
    char   *canon = NULL;
    size_t  len = 0;
    ota_err rc;

    if (sigs == NULL)
        return ota_diag_set(d, OTA_E_NOMEM, "out of memory");
    if (!r->md[role].dirty) {
        r->md[role].version++;
        r->md[role].dirty = 1;
    }
    json_object_set_new(r->md[role].sig, "version", json_integer(r->md[role].version));
    set_expiry(r, role, r->md[role].sig);
    rc = canon_signed(r->md[role].env, &canon, &len, d);
    if (rc == OTA_OK)
        rc = sign_with(r, ota_role_names[role], r->rolekeys[role], r->nrolekeys[role],
                       r->threshold[role], canon, len, sigs, d);
    free(canon);
    if (rc != OTA_OK) {
        json_decref(sigs);
        return rc;
    }
    json_object_set_new(r->md[role].env, "signatures", sigs);
    /* Check what we are about to publish with the same rule a device applies. */
    return verify_role(r, role, r->md[role].env, d);
}

/* Re-sign targets (if dirty), snapshot and timestamp, then write them in that order. */
static ota_err
commit(struct ota_repo *r, int targets_changed, struct ota_diag *d)
{
    char    path[PATH_MAX];
    json_t *m = NULL;
    ota_err rc;

    if (targets_changed && (rc = resign(r, OTA_ROLE_TARGETS, d)) != OTA_OK)
        return rc;
    if (targets_changed || r->md[OTA_ROLE_SNAPSHOT].dirty) {
        if ((rc = file_meta(r->md[OTA_ROLE_TARGETS].env, &m, r->md[OTA_ROLE_TARGETS].version, d)))
            return rc;
        json_object_set_new(json_object_get(r->md[OTA_ROLE_SNAPSHOT].sig, "meta"), "targets.json",
                            m);
        if ((rc = resign(r, OTA_ROLE_SNAPSHOT, d)) != OTA_OK)
            return rc;
    }
    if ((rc = file_meta(r->md[OTA_ROLE_SNAPSHOT].env, &m, r->md[OTA_ROLE_SNAPSHOT].version, d)))
        return rc;
    json_object_set_new(json_object_get(r->md[OTA_ROLE_TIMESTAMP].sig, "meta"), "snapshot.json", m);
    if ((rc = resign(r, OTA_ROLE_TIMESTAMP, d)) != OTA_OK)
        return rc;

    /* Everything is signed and re-verified: now write, timestamp last. */
    if (r->md[OTA_ROLE_TARGETS].dirty) {
        PATHF( "%s/%lld.targets.json", r->meta, r->md[OTA_ROLE_TARGETS].version);
        if ((rc = write_json(path, r->md[OTA_ROLE_TARGETS].env, 1, d)) != OTA_OK)
            return rc;
    }
    if (r->md[OTA_ROLE_SNAPSHOT].dirty) {
        PATHF( "%s/%lld.snapshot.json", r->meta,
                 r->md[OTA_ROLE_SNAPSHOT].version);
        if ((rc = write_json(path, r->md[OTA_ROLE_SNAPSHOT].env, 1, d)) != OTA_OK)
            return rc;
    }
    PATHF( "%s/timestamp.json", r->meta);
    if ((rc = write_json(path, r->md[OTA_ROLE_TIMESTAMP].env, 0, d)) != OTA_OK)
        return rc;
    r->md[OTA_ROLE_TARGETS].dirty = r->md[OTA_ROLE_SNAPSHOT].dirty = 0;
    r->md[OTA_ROLE_TIMESTAMP].dirty = 0;
    return OTA_OK;
}

static ota_err
write_root(struct ota_repo *r, struct ota_diag *d)
{
    char    path[PATH_MAX];
    ota_err rc;

    PATHF( "%s/%lld.root.json", r->meta, r->md[OTA_ROLE_ROOT].version);
    if ((rc = write_json(path, r->md[OTA_ROLE_ROOT].env, 1, d)) != OTA_OK)
        return rc;
    PATHF( "%s/root.json", r->meta);
    return write_json(path, r->md[OTA_ROLE_ROOT].env, 0, d);
}

/* ---------------------------------------------------------------- init */

static json_t *
new_env(const char *type, json_t *body)
{
    json_t *sig = body ? body : json_object();

    json_object_set_new(sig, "_type", json_string(type));
    json_object_set_new(sig, "spec_version", json_string(SPEC_VERSION));
    json_object_set_new(sig, "version", json_integer(0)); /* resign() makes it 1 */
    return json_pack("{s:o, s:[]}", "signed", sig, "signatures");
}

static ota_err
gen_key(struct ota_repo *r, const char *name, int encrypt, struct ota_diag *d)
{
    struct ota_seckey *k = NULL;
    char               path[PATH_MAX];
    ota_err            rc;

    if ((rc = ota_path_fmt(path, sizeof path, d, "%s/%s.key", r->keys, name)) != OTA_OK)
        return rc;
    if ((rc = ota_seckey_generate(&k, d)) != OTA_OK)
        return rc;
    rc = ota_seckey_save(k, path, encrypt ? r->passphrase : NULL, 0, d);
    ota_seckey_free(k);
    if (rc == OTA_OK)
        rc = add_keyfile(r, path, d);
    return rc;
}

static json_t *
role_json(struct ota_repo *r, const char *prefix, unsigned n, unsigned threshold, json_t *keys)
{
    json_t  *ids = json_array();
    unsigned i;
    size_t   j;

    for (i = 1; i <= n; i++) {
        char want[64];
        snprintf(want, sizeof want, "/%s-%u.key", prefix, i);
        for (j = 0; j < r->nkf; j++) {
            size_t pl = strlen(r->kf[j].path), wl = strlen(want);
            if (pl >= wl && strcmp(r->kf[j].path + pl - wl, want) == 0) {
                json_array_append_new(ids, json_string(r->kf[j].pub.keyid));
                json_object_set_new(keys, r->kf[j].pub.keyid, ota_pubkey_to_json(&r->kf[j].pub));
            }
        }
    }
    return json_pack("{s:o, s:i}", "keyids", ids, "threshold", (int)threshold);
}

ota_err
ota_repo_init(const char *dir, const struct ota_repo_init_opts *o,
              const struct ota_passphrase_src *pass, struct ota_diag *d)
{
    struct ota_repo *r = repo_new(pass);
    struct stat      st;
    json_t          *keys, *roles, *cfg = NULL;
    unsigned         nroot = o->root_keys ? o->root_keys : 1;
    unsigned         thr = o->root_threshold ? o->root_threshold : 1;
    char             path[PATH_MAX], name[32];
    unsigned         i;
    ota_err          rc;

    if (r == NULL)
        return ota_diag_set(d, OTA_E_NOMEM, "out of memory");
    if (nroot > 16 || thr > nroot) {
        rc = ota_diag_set(d, OTA_E_INVALID, "root threshold %u must be between 1 and the %u root "
                          "keys (at most 16)", thr, nroot);
        goto out;
    }
    if ((rc = set_paths(r, dir, d)) != OTA_OK)
        goto out;
    if (stat(r->meta, &st) == 0 || stat(r->keys, &st) == 0) {
        rc = ota_diag_set(d, OTA_E_EXISTS, "'%s' already holds a repository", dir);
        goto out;
    }
    for (i = 0; i < 4; i++)
        r->days[i] = o->expires_days[i] ? o->expires_days[i] : default_days[i];
    if ((rc = get_passphrase(r, 1, d)) != OTA_OK)
        goto out;
    if ((rc = ota_mkdir_p(dir, 0755, d)) != OTA_OK || (rc = lock_repo(r, d)) != OTA_OK ||
        (rc = ota_mkdir_p(r->keys, 0700, d)) != OTA_OK)
        goto out;
    for (i = 1; i <= nroot && rc == OTA_OK; i++) {
        snprintf(name, sizeof name, "root-%u", i);
        rc = gen_key(r, name, 1, d);
    }
    if (rc == OTA_OK)
        rc = gen_key(r, "targets-1", 1, d);
    if (rc == OTA_OK)
        rc = gen_key(r, "snapshot-1", !o->unencrypted_online, d);
    if (rc == OTA_OK)
        rc = gen_key(r, "timestamp-1", !o->unencrypted_online, d);
    if (rc != OTA_OK)
        goto out;

    keys = json_object();
    roles = json_object();
    json_object_set_new(roles, "root", role_json(r, "root", nroot, thr, keys));
    json_object_set_new(roles, "targets", role_json(r, "targets", 1, 1, keys));
    json_object_set_new(roles, "snapshot", role_json(r, "snapshot", 1, 1, keys));
    json_object_set_new(roles, "timestamp", role_json(r, "timestamp", 1, 1, keys));
    r->md[OTA_ROLE_ROOT].env = new_env("root", json_pack("{s:o, s:o, s:b}", "keys", keys, "roles",
                                                          roles, "consistent_snapshot", 1));
    r->md[OTA_ROLE_TARGETS].env = new_env("targets", json_pack("{s:{}}", "targets"));
    r->md[OTA_ROLE_SNAPSHOT].env = new_env("snapshot", json_pack("{s:{}}", "meta"));
    r->md[OTA_ROLE_TIMESTAMP].env = new_env("timestamp", json_pack("{s:{}}", "meta"));
    for (i = 0; i < 4; i++) {
        if (r->md[i].env == NULL) {
            rc = ota_diag_set(d, OTA_E_NOMEM, "out of memory");
            goto out;
        }
        r->md[i].sig = json_object_get(r->md[i].env, "signed");
    }
    if ((rc = roles_from_root(r->md[OTA_ROLE_ROOT].sig, r->rolekeys, r->nrolekeys, r->threshold,
                              d)) != OTA_OK ||
        (rc = resign(r, OTA_ROLE_ROOT, d)) != OTA_OK)
        goto out;
    if ((rc = ota_mkdir_p(r->meta, 0755, d)) != OTA_OK ||
        (rc = ota_mkdir_p(r->tdir, 0755, d)) != OTA_OK)
        goto out;
    cfg = json_pack("{s:i, s:{s:i, s:i, s:i, s:i}}", "format", 1, "expires_days", "root",
                    (int)r->days[0], "targets", (int)r->days[1], "snapshot", (int)r->days[2],
                    "timestamp", (int)r->days[3]);
    if ((rc = ota_path_fmt(path, sizeof path, d, "%s/repo.json", r->dir)) != OTA_OK ||
        (rc = write_json(path, cfg, 1, d)) != OTA_OK || (rc = write_root(r, d)) != OTA_OK)
        goto out;
    rc = commit(r, 1, d); /* targets, snapshot and timestamp version 1 */
out:
    json_decref(cfg);
    ota_repo_close(r);
    return rc;
}

/* ---------------------------------------------------------------- releases */

/* custom.ota of a target, or NULL. */
static json_t *
target_ota(const json_t *t)
{
    return json_object_get(json_object_get(t, "custom"), "ota");
}

static const char *
target_app(const json_t *t)
{
    return json_string_value(json_object_get(json_object_get(target_ota(t), "release"), "app"));
}

static int
target_version(const json_t *t, struct ota_version *v)
{
    const char *s =
        json_string_value(json_object_get(json_object_get(target_ota(t), "release"), "version"));

    return s != NULL && ota_version_parse(s, v) == OTA_OK;
}

/* Newest release of app (on channel if not NULL; yanked ones skipped unless with_yanked). */
static const char *
newest(const struct ota_repo *r, const char *app, const char *channel, int with_yanked,
       json_t **target_out)
{
    const json_t      *targets = ota_repo_targets(r);
    const char        *path, *best = NULL;
    json_t            *t;
    struct ota_version bv = { { 0 }, 0 }, v;

    json_object_foreach((json_t *)targets, path, t) {
        json_t *ota = target_ota(t);
        if (ota == NULL || target_app(t) == NULL || strcmp(target_app(t), app) != 0)
            continue;
        if (!with_yanked && json_is_true(json_object_get(ota, "yanked")))
            continue;
        if (channel != NULL && json_object_get(json_object_get(ota, "channels"), channel) == NULL)
            continue;
        if (!target_version(t, &v))
            continue;
        if (best == NULL || ota_version_cmp(&v, &bv) > 0) {
            best = path;
            bv = v;
            if (target_out)
                *target_out = t;
        }
    }
    return best;
}

static json_t *
find_release(const struct ota_repo *r, const char *app, const char *version)
{
    const json_t      *targets = ota_repo_targets(r);
    const char        *path;
    json_t            *t;
    struct ota_version want, v;

    if (ota_version_parse(version, &want) != OTA_OK)
        return NULL;
    json_object_foreach((json_t *)targets, path, t) {
        if (target_app(t) && strcmp(target_app(t), app) == 0 && target_version(t, &v) &&
            ota_version_cmp(&v, &want) == 0)
            return t;
    }
    return NULL;
}

/* The bridge-release rule: a release whose data model differs from the model of the
 * channel's current release must either read that model (reads_models) or be declared
 * breaking, which devices see and which makes their data gate sync first. */
static ota_err
bridge_check(const struct ota_repo *r, const struct ota_release *rel, const char *channel,
             int breaking, struct ota_diag *d)
{
    json_t            *cur = NULL;
    struct ota_release cr;
    ota_err            rc;

    if (newest(r, rel->app, channel, 0, &cur) == NULL || breaking)
        return OTA_OK;
    memset(&cr, 0, sizeof cr);
    rc = ota_release_from_json(json_object_get(target_ota(cur), "release"), &cr, d);
    if (rc != OTA_OK)
        return rc;
    if (strcmp(cr.model, rel->model) != 0 && !ota_release_reads_model(rel, cr.model))
        rc = ota_diag_set(d, OTA_E_BREAKING,
                          "data model changes from '%s' (release %s on '%s') to '%s': list '%s' "
                          "in reads_models if %s can still sync data written under it, or pass "
                          "--breaking so devices sync pending offline changes before they switch",
                          cr.model, cr.version, channel, rel->model, cr.model, rel->version);
    ota_release_clear(&cr);
    return rc;
}

static ota_err
copy_file(const char *src, const char *dst, struct ota_diag *d)
{
    char    tmp[PATH_MAX], *buf;
    int     in, out;
    ota_err rc = OTA_OK;

    in = open(src, O_RDONLY | O_CLOEXEC);
    if (in < 0)
        return ota_diag_sys(d, OTA_E_IO, errno, "cannot open '%s'", src);
    out = ota_tmpfile_beside(dst, 0644, tmp, sizeof tmp, d);
    buf = malloc(1 << 20);
    if (out < 0 || buf == NULL) {
        if (out >= 0) {
            close(out);
            unlink(tmp);
        }
        close(in);
        free(buf);
        return out < 0 ? OTA_E_IO : ota_diag_set(d, OTA_E_NOMEM, "out of memory");
    }
    for (;;) {
        ssize_t n = read(in, buf, 1 << 20);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            rc = ota_diag_sys(d, OTA_E_IO, errno, "cannot read '%s'", src);
            break;
        }
        if (n == 0)
            break;
        if ((rc = ota_write_all(out, buf, (size_t)n, d)) != OTA_OK)
            break;
    }
    free(buf);
    close(in);
    if (rc != OTA_OK) {
        close(out);
        unlink(tmp);
        return rc;
    }
    return ota_commit_tmpfile(out, tmp, dst, d);
}

static ota_err
add_target(struct ota_repo *r, const char *bundle, const struct ota_release *rel,
           const unsigned char sha[OTA_SHA256_LEN], unsigned long long len, json_t *channels,
           int breaking, int mandatory, const char *republished_from, struct ota_diag *d)
{
    char    hex[OTA_SHA256_HEX], when[21], tpath[512], dir[PATH_MAX], file[PATH_MAX];
    json_t *ota, *target;
    ota_err rc;

    ota_hex_encode(sha, OTA_SHA256_LEN, hex);
    ota_time_format(r->now, when);
    snprintf(tpath, sizeof tpath, "%s/%s-%s.ota", rel->app, rel->app, rel->version);
    if ((rc = ota_path_fmt(dir, sizeof dir, d, "%s/%s", r->tdir, rel->app)) != OTA_OK ||
        (rc = ota_path_fmt(file, sizeof file, d, "%s/%s.%s-%s.ota", dir, hex, rel->app,
                           rel->version)) != OTA_OK)
        return rc;
    ota = json_pack("{s:o, s:o, s:b, s:b, s:b, s:s}", "release", ota_release_to_json(rel),
                    "channels", channels, "breaking", breaking, "mandatory",
                    mandatory || rel->mandatory, "yanked", 0, "published", when);
    if (ota != NULL && republished_from != NULL)
        json_object_set_new(ota, "republished_from", json_string(republished_from));
    target = json_pack("{s:I, s:{s:s}, s:{s:o}}", "length", (json_int_t)len, "hashes", "sha256",
                       hex, "custom", "ota", ota);
    if (target == NULL)
        return ota_diag_set(d, OTA_E_NOMEM, "out of memory");
    json_object_set_new(json_object_get(r->md[OTA_ROLE_TARGETS].sig, "targets"), tpath, target);
    /* Sign everything in memory before the first byte is written. */
    if ((rc = resign(r, OTA_ROLE_TARGETS, d)) != OTA_OK)
        return rc;
    if ((rc = ota_mkdir_p(dir, 0755, d)) != OTA_OK || (rc = copy_file(bundle, file, d)) != OTA_OK)
        return rc;
    return commit(r, 1, d);
}

/* Read a bundle, authenticate its manifest with the repository's targets keys and check
 * every file in it, without extracting; one pass gives the bundle's sha256 and length too. */
static ota_err
check_bundle(struct ota_repo *r, const char *bundle, unsigned char sha[OTA_SHA256_LEN],
             uint64_t *len, struct ota_manifest **m, struct ota_diag *d)
{
    struct ota_bundle_read_opts o;

    memset(&o, 0, sizeof o);
    o.verify = ota_repo_bundle_verifier;
    o.verify_ctx = r;
    o.got_sha256 = sha;
    o.got_length = len;
    return ota_bundle_read_file(bundle, &o, m, d);
}

static ota_err
check_new_version(const struct ota_repo *r, const struct ota_release *rel, struct ota_diag *d)
{
    json_t            *t = NULL;
    const char        *p = newest(r, rel->app, NULL, 1, &t);
    struct ota_version v;

    if (p != NULL && target_version(t, &v) && ota_version_cmp(&rel->v, &v) <= 0) {
        char have[OTA_VERSION_STR_MAX];
        ota_version_format(&v, have);
        return ota_diag_set(d, OTA_E_ROLLBACK,
                            "version %s is not higher than %s, the newest release of '%s' "
                            "(versions are never reused or lowered; use republish to ship old "
                            "content again)", rel->version, have, rel->app);
    }
    return OTA_OK;
}

ota_err
ota_repo_release(struct ota_repo *r, const char *bundle, const struct ota_release_opts *o,
                 struct ota_diag *d)
{
    struct ota_manifest *m = NULL;
    unsigned char        sha[OTA_SHA256_LEN];
    uint64_t             len = 0;
    json_t              *channels;
    ota_err              rc;

    if (!ota_id_valid(o->channel))
        return ota_diag_set(d, OTA_E_INVALID, "bad channel name '%.64s'", o->channel);
    if (o->rollout < 0 || o->rollout > 100)
        return ota_diag_set(d, OTA_E_INVALID, "rollout must be 0..100, not %d", o->rollout);
    rc = check_bundle(r, bundle, sha, &len, &m, d);
    if (rc != OTA_OK) {
        ota_diag_prefix(d, "bundle '%s'", bundle);
        return rc;
    }
    if ((rc = check_new_version(r, &m->release, d)) != OTA_OK ||
        (rc = bridge_check(r, &m->release, o->channel, o->breaking, d)) != OTA_OK)
        goto out;
    channels = json_pack("{s:i}", o->channel, o->rollout);
    rc = add_target(r, bundle, &m->release, sha, len, channels, o->breaking, o->mandatory, NULL,
                    d);
out:
    ota_manifest_free(m);
    return rc;
}

static ota_err
target_release(const json_t *t, struct ota_release *rel, struct ota_diag *d)
{
    memset(rel, 0, sizeof *rel);
    return ota_release_from_json(json_object_get(target_ota(t), "release"), rel, d);
}

ota_err
ota_repo_promote(struct ota_repo *r, const char *app, const char *from, const char *to,
                 const char *version, int rollout, int breaking, struct ota_diag *d)
{
    json_t            *t = NULL;
    struct ota_release rel;
    ota_err            rc;

    if (!ota_id_valid(to))
        return ota_diag_set(d, OTA_E_INVALID, "bad channel name '%.64s'", to);
    if (rollout < 0 || rollout > 100)
        return ota_diag_set(d, OTA_E_INVALID, "rollout must be 0..100, not %d", rollout);
    if (version != NULL)
        t = find_release(r, app, version);
    else if (from != NULL)
        newest(r, app, from, 0, &t);
    if (t == NULL)
        return ota_diag_set(d, OTA_E_NOT_FOUND, "no release of '%s' %s%s%s", app,
                            version ? version : "on channel", version ? "" : " ",
                            version ? "" : (from ? from : "?"));
    if (from != NULL && json_object_get(json_object_get(target_ota(t), "channels"), from) == NULL)
        return ota_diag_set(d, OTA_E_NOT_FOUND, "that release of '%s' is not on channel '%s'", app,
                            from);
    if (json_is_true(json_object_get(target_ota(t), "yanked")))
        return ota_diag_set(d, OTA_E_STATE, "that release of '%s' is yanked", app);
    if ((rc = target_release(t, &rel, d)) != OTA_OK)
        return rc;
    rc = bridge_check(r, &rel, to, breaking || json_is_true(json_object_get(target_ota(t),
                                                                               "breaking")), d);
    if (rc == OTA_OK) {
        if (ota_version_cmp(&rel.v, &rel.v) == 0 && newest(r, app, to, 0, NULL) != NULL) {
            json_t            *cur = NULL;
            struct ota_version cv;
            newest(r, app, to, 0, &cur);
            if (target_version(cur, &cv) && ota_version_cmp(&rel.v, &cv) < 0)
                rc = ota_diag_set(d, OTA_E_ROLLBACK,
                                  "channel '%s' already offers a newer release of '%s'", to, app);
        }
    }
    if (rc == OTA_OK) {
        json_object_set_new(json_object_get(target_ota(t), "channels"), to, json_integer(rollout));
        if (breaking)
            json_object_set_new(target_ota(t), "breaking", json_true());
        rc = commit(r, 1, d);
    }
    ota_release_clear(&rel);
    return rc;
}

ota_err
ota_repo_rollout(struct ota_repo *r, const char *app, const char *channel, const char *version,
                 int rollout, struct ota_diag *d)
{
    json_t *t = NULL;

    if (rollout < 0 || rollout > 100)
        return ota_diag_set(d, OTA_E_INVALID, "rollout must be 0..100, not %d", rollout);
    if (version != NULL)
        t = find_release(r, app, version);
    else
        newest(r, app, channel, 0, &t);
    if (t == NULL || json_object_get(json_object_get(target_ota(t), "channels"), channel) == NULL)
        return ota_diag_set(d, OTA_E_NOT_FOUND, "no release of '%s'%s%s on channel '%s'", app,
                            version ? " " : "", version ? version : "", channel);
    json_object_set_new(json_object_get(target_ota(t), "channels"), channel, json_integer(rollout));
    return commit(r, 1, d);
}

ota_err
ota_repo_yank(struct ota_repo *r, const char *app, const char *version, struct ota_diag *d)
{
    json_t *t = find_release(r, app, version);

    if (t == NULL)
        return ota_diag_set(d, OTA_E_NOT_FOUND, "no release %s of '%s'", version, app);
    if (json_is_true(json_object_get(target_ota(t), "yanked")))
        return ota_diag_set(d, OTA_E_STATE, "release %s of '%s' is already yanked", version, app);
    json_object_set_new(target_ota(t), "yanked", json_true());
    return commit(r, 1, d);
}

static ota_err
target_file(const struct ota_repo *r, const char *app, const json_t *t, char *out, size_t cap,
            struct ota_diag *d)
{
    const char *hex = json_string_value(json_object_get(json_object_get(t, "hashes"), "sha256"));
    const char *ver =
        json_string_value(json_object_get(json_object_get(target_ota(t), "release"), "version"));

    if (hex == NULL || ver == NULL)
        return ota_diag_set(d, OTA_E_FORMAT, "target of '%s' has no sha256 or version", app);
    return ota_path_fmt(out, cap, d, "%s/%s/%s.%s-%s.ota", r->tdir, app, hex, app, ver);
}

/* Unpack a published bundle (authenticated with the verifier given: the current targets keys,
 * or the old ones during a rotation) and pack its content again with release rel, signed
 * with the current targets keys, into out. */
static ota_err
repack(struct ota_repo *r, const char *src, ota_verify_fn verify, void *verify_ctx,
       const struct ota_release *rel_or_null, struct ota_release *rel_out, const char *out,
       struct ota_pack_result *res, struct ota_diag *d)
{
    struct ota_manifest        *m = NULL;
    struct ota_bundle_read_opts ro;
    struct ota_pack_opts        po;
    char                        tmpdir[PATH_MAX];
    ota_err                     rc;

    if ((rc = ota_path_fmt(tmpdir, sizeof tmpdir, d, "%s/.repack.XXXXXX", r->dir)) != OTA_OK)
        return rc;
    if (mkdtemp(tmpdir) == NULL)
        return ota_diag_sys(d, OTA_E_IO, errno, "cannot create '%s'", tmpdir);
    memset(&ro, 0, sizeof ro);
    ro.verify = verify;
    ro.verify_ctx = verify_ctx;
    ro.dest_dir = tmpdir;
    if ((rc = ota_bundle_read_file(src, &ro, &m, d)) != OTA_OK)
        goto out;
    if ((rc = ota_release_copy(rel_out, rel_or_null ? rel_or_null : &m->release, d)) != OTA_OK)
        goto out;
    memset(&po, 0, sizeof po);
    po.src_dir = tmpdir;
    po.out_path = out;
    po.release = rel_out;
    po.sign = ota_repo_bundle_signer;
    po.sign_ctx = r;
    po.force = 1;
    rc = ota_bundle_pack(&po, res, d);
out:
    if (ota_rm_rf(tmpdir, NULL) != OTA_OK)
        fprintf(stderr, "warning: cannot remove '%s'\n", tmpdir);
    ota_manifest_free(m);
    return rc;
}

ota_err
ota_repo_republish(struct ota_repo *r, const char *app, const char *old_version,
                   const char *new_version, const char *channel, int rollout, struct ota_diag *d)
{
    json_t                *t = find_release(r, app, old_version), *channels;
    struct ota_release     rel, old;
    struct ota_pack_result res;
    char                   src[PATH_MAX], out[PATH_MAX];
    int                    breaking = 0;
    ota_err                rc;

    memset(&rel, 0, sizeof rel);
    memset(&old, 0, sizeof old);
    if (t == NULL)
        return ota_diag_set(d, OTA_E_NOT_FOUND, "no release %s of '%s'", old_version, app);
    if (!ota_id_valid(channel))
        return ota_diag_set(d, OTA_E_INVALID, "bad channel name '%.64s'", channel);
    if ((rc = target_file(r, app, t, src, sizeof src, d)) != OTA_OK ||
        (rc = target_release(t, &old, d)) != OTA_OK)
        return rc;
    rc = ota_release_copy(&rel, &old, d);
    ota_release_clear(&old);
    if (rc != OTA_OK)
        return rc;
    if (ota_version_parse(new_version, &rel.v) != OTA_OK) {
        rc = ota_diag_set(d, OTA_E_INVALID, "bad version '%.48s'", new_version);
        goto out;
    }
    ota_version_format(&rel.v, rel.version);
    if ((rc = check_new_version(r, &rel, d)) != OTA_OK)
        goto out;
    /* Going back to an older model is a model change like any other: devices must sync what
     * the newer release wrote before they switch, so mark it breaking when the rule asks. */
    if (bridge_check(r, &rel, channel, 0, NULL) == OTA_E_BREAKING)
        breaking = 1;
    if ((rc = ota_path_fmt(out, sizeof out, d, "%s/.republish-%s.ota", r->dir, rel.version)))
        goto out;
    {
        struct ota_release packed;
        memset(&packed, 0, sizeof packed);
        rc = repack(r, src, ota_repo_bundle_verifier, r, &rel, &packed, out, &res, d);
        ota_release_clear(&packed);
    }
    if (rc != OTA_OK)
        goto out;
    channels = json_pack("{s:i}", channel, rollout);
    rc = add_target(r, out, &rel, res.sha256, res.length, channels, breaking, 0, old_version, d);
    unlink(out);
out:
    ota_release_clear(&rel);
    return rc;
}

struct old_targets {
    const struct ota_pubkey *keys;
    size_t                   n;
    unsigned                 thr;
};

static ota_err
verify_old_targets(void *ctx, const void *msg, size_t len, const json_t *sigs, struct ota_diag *d)
{
    struct old_targets  *o = ctx;
    struct ota_role_keys rk = { "bundle manifest (previous targets keys)", o->keys, o->n, o->thr };

    return ota_threshold_verify(&rk, sigs, msg, len, NULL, d);
}

/* After a targets key rotation, every bundle manifest is signed again with the new keys (a
 * manifest signed by a rotated-away key must not verify on a device: the key may have been
 * rotated because it leaked). New bundle files get new content-addressed names; the old ones
 * stay for clients still on older metadata. */
static ota_err
resign_bundles(struct ota_repo *r, const struct old_targets *old, struct ota_diag *d)
{
    json_t     *targets = json_object_get(r->md[OTA_ROLE_TARGETS].sig, "targets");
    const char *path;
    json_t     *t;
    ota_err     rc = OTA_OK;

    json_object_foreach(targets, path, t) {
        struct ota_release     rel;
        struct ota_pack_result res;
        const char            *app = target_app(t);
        char                   src[PATH_MAX], tmp[PATH_MAX], dst[PATH_MAX], hex[OTA_SHA256_HEX];
        if (app == NULL)
            continue;
        memset(&rel, 0, sizeof rel);
        if ((rc = target_file(r, app, t, src, sizeof src, d)) != OTA_OK ||
            (rc = ota_path_fmt(tmp, sizeof tmp, d, "%s/.resign.ota", r->dir)) != OTA_OK)
            break;
        rc = repack(r, src, verify_old_targets, (void *)old, NULL, &rel, tmp, &res, d);
        if (rc == OTA_OK) {
            ota_hex_encode(res.sha256, sizeof res.sha256, hex);
            rc = ota_path_fmt(dst, sizeof dst, d, "%s/%s/%s.%s-%s.ota", r->tdir, app, hex, app,
                              rel.version);
        }
        if (rc == OTA_OK && rename(tmp, dst) != 0)
            rc = ota_diag_sys(d, OTA_E_IO, errno, "cannot rename '%s' to '%s'", tmp, dst);
        if (rc == OTA_OK)
            rc = ota_fsync_parent(dst, d);
        ota_release_clear(&rel);
        if (rc != OTA_OK) {
            unlink(tmp);
            ota_diag_prefix(d, "re-signing '%s'", path);
            break;
        }
        json_object_set_new(t, "length", json_integer((json_int_t)res.length));
        json_object_set_new(json_object_get(t, "hashes"), "sha256", json_string(hex));
    }
    return rc;
}

ota_err
ota_repo_refresh(struct ota_repo *r, int with_snapshot, struct ota_diag *d)
{
    if (with_snapshot) {
        ota_err rc = resign(r, OTA_ROLE_SNAPSHOT, d);
        if (rc != OTA_OK)
            return rc;
    }
    return commit(r, 0, d);
}

ota_err
ota_repo_rotate(struct ota_repo *r, int role, const char *const *new_key_files, size_t nnew,
                unsigned threshold, struct ota_diag *d)
{
    struct ota_pubkey *oldkeys[4] = { 0 }, *newkeys[4] = { 0 };
    size_t             noldk[4], nnewk[4];
    unsigned           oldthr[4], newthr[4];
    json_t            *root = r->md[OTA_ROLE_ROOT].sig, *keys, *ids, *roleobj;
    json_t            *sigs = NULL;
    char              *canon = NULL;
    size_t             len = 0, i;
    int                k;
    ota_err            rc;

    if (role < 0 || role > 3)
        return ota_diag_set(d, OTA_E_INVALID, "unknown role");
    if (nnew > 0 && (threshold < 1 || threshold > nnew))
        return ota_diag_set(d, OTA_E_INVALID, "threshold %u must be between 1 and the %zu new keys",
                            threshold, nnew);
    memcpy(oldthr, r->threshold, sizeof oldthr);
    for (k = 0; k < 4; k++) {
        oldkeys[k] = r->rolekeys[k];
        noldk[k] = r->nrolekeys[k];
    }
    keys = json_object_get(root, "keys");
    roleobj = json_object_get(json_object_get(root, "roles"), ota_role_names[role]);
    if (nnew > 0) {
        ids = json_array();
        for (i = 0; i < nnew; i++) {
            if ((rc = add_keyfile(r, new_key_files[i], d)) != OTA_OK) {
                json_decref(ids);
                return rc;
            }
            {
                struct ota_pubkey pk;
                if ((rc = ota_seckey_load_public(new_key_files[i], &pk, d)) != OTA_OK) {
                    json_decref(ids);
                    return rc;
                }
                json_array_append_new(ids, json_string(pk.keyid));
                json_object_set_new(keys, pk.keyid, ota_pubkey_to_json(&pk));
            }
        }
        json_object_set_new(roleobj, "keyids", ids);
        json_object_set_new(roleobj, "threshold", json_integer(threshold));
        /* Drop keys no role uses any more: a rotated-away key is no longer trusted. */
        {
            const char *kid;
            json_t     *kv, *tmp;
            json_object_foreach_safe(keys, tmp, kid, kv) {
                int used = 0, q;
                for (q = 0; q < 4; q++) {
                    json_t *rids = json_object_get(
                        json_object_get(json_object_get(root, "roles"), ota_role_names[q]),
                        "keyids");
                    size_t x;
                    for (x = 0; x < json_array_size(rids); x++)
                        if (strcmp(json_string_value(json_array_get(rids, x)), kid) == 0)
                            used = 1;
                }
                if (!used)
                    json_object_del(keys, kid);
            }
        }
    }
    rc = roles_from_root(root, newkeys, nnewk, newthr, d);
    if (rc != OTA_OK)
        goto out;
    r->md[OTA_ROLE_ROOT].version++;
    json_object_set_new(root, "version", json_integer(r->md[OTA_ROLE_ROOT].version));
    set_expiry(r, OTA_ROLE_ROOT, root);
    if ((rc = canon_signed(r->md[OTA_ROLE_ROOT].env, &canon, &len, d)) != OTA_OK)
        goto out;
    sigs = json_array();
    /* A new root must be signed by the old root threshold and by its own. */
    if ((rc = sign_with(r, "root (old keys)", oldkeys[OTA_ROLE_ROOT], noldk[OTA_ROLE_ROOT],
                        oldthr[OTA_ROLE_ROOT], canon, len, sigs, d)) != OTA_OK ||
        (rc = sign_with(r, "root (new keys)", newkeys[OTA_ROLE_ROOT], nnewk[OTA_ROLE_ROOT],
                        newthr[OTA_ROLE_ROOT], canon, len, sigs, d)) != OTA_OK)
        goto out;
    json_object_set_new(r->md[OTA_ROLE_ROOT].env, "signatures", sigs);
    sigs = NULL;
    {
        struct ota_role_keys ro = { "root (old)", oldkeys[0], noldk[0], oldthr[0] };
        struct ota_role_keys rn = { "root (new)", newkeys[0], nnewk[0], newthr[0] };
        json_t *s = json_object_get(r->md[OTA_ROLE_ROOT].env, "signatures");
        if ((rc = ota_threshold_verify(&ro, s, canon, len, NULL, d)) != OTA_OK ||
            (rc = ota_threshold_verify(&rn, s, canon, len, NULL, d)) != OTA_OK)
            goto out;
    }
    for (k = 0; k < 4; k++) {
        r->rolekeys[k] = newkeys[k];
        r->nrolekeys[k] = nnewk[k];
        r->threshold[k] = newthr[k];
        newkeys[k] = NULL;
    }
    /* Metadata of the rotated role is re-signed by its new keys, in memory, before root is
     * written; then root, then the role files with the timestamp last. */
    if (role == OTA_ROLE_TARGETS) {
        struct old_targets ot = { oldkeys[OTA_ROLE_TARGETS], noldk[OTA_ROLE_TARGETS],
                                  oldthr[OTA_ROLE_TARGETS] };
        if ((rc = resign_bundles(r, &ot, d)) != OTA_OK ||
            (rc = resign(r, OTA_ROLE_TARGETS, d)) != OTA_OK)
            goto out_new;
    }
    if (role == OTA_ROLE_SNAPSHOT && (rc = resign(r, OTA_ROLE_SNAPSHOT, d)) != OTA_OK)
        goto out_new;
    if ((rc = write_root(r, d)) != OTA_OK)
        goto out_new;
    rc = commit(r, role == OTA_ROLE_TARGETS, d);
out_new:
    for (k = 0; k < 4; k++)
        free(oldkeys[k]);
    free(canon);
    return rc;
out:
    for (k = 0; k < 4; k++)
        free(newkeys[k]);
    json_decref(sigs);
    free(canon);
    return rc;
}

json_t *
ota_repo_summary(const struct ota_repo *r)
{
    json_t     *o = json_object(), *rels = json_array();
    const char *path;
    json_t     *t;
    int         i;

    for (i = 0; i < 4; i++) {
        json_t *e = json_object_get(r->md[i].sig, "expires");
        json_object_set_new(o, ota_role_names[i],
                            json_pack("{s:I, s:O}", "version", (json_int_t)r->md[i].version,
                                      "expires", e ? e : json_null()));
    }
    json_object_foreach((json_t *)ota_repo_targets(r), path, t) {
        json_t *ota = target_ota(t), *rel = json_object_get(ota, "release");
        if (ota == NULL)
            continue;
        json_array_append_new(
            rels, json_pack("{s:s, s:O, s:O, s:O, s:O, s:O, s:O, s:O, s:O}", "path", path, "app",
                            json_object_get(rel, "app"), "version", json_object_get(rel, "version"),
                            "model", json_object_get(rel, "model"), "channels",
                            json_object_get(ota, "channels"), "breaking",
                            json_object_get(ota, "breaking"), "yanked",
                            json_object_get(ota, "yanked"), "length",
                            json_object_get(t, "length"), "published",
                            json_object_get(ota, "published")));
    }
    json_object_set_new(o, "releases", rels);
    return o;
}

/* ---------------------------------------------------------------- verify */

static void
report_add(json_t *report, const char *check, ota_err rc, const char *detail)
{
    if (report != NULL)
        json_array_append_new(report, json_pack("{s:s, s:b, s:s}", "check", check, "ok",
                                                rc == OTA_OK, "detail", detail ? detail : ""));
}

/* Load metadata/<name>, check _type and signatures (role keys of root), optional length and
 * sha256 from the referring metadata, and expiry against now. */
static ota_err
verify_file(const char *meta, const char *name, const char *type, const struct ota_role_keys *rk,
            const json_t *ref, int64_t now, json_t **env_out, struct ota_diag *d)
{
    char           path[PATH_MAX];
    unsigned char *buf = NULL;
    size_t         len = 0;
    json_t        *env = NULL, *sig;
    char          *canon = NULL;
    size_t         clen = 0;
    const char    *t, *exp;
    int64_t        when;
    ota_err        rc;

    PATHF("%s/%s", meta, name);
    if ((rc = ota_read_file(path, META_MAX, &buf, &len, d)) != OTA_OK)
        return rc;
    if (ref != NULL) {
        json_t *l = json_object_get(ref, "length");
        const char *h = json_string_value(json_object_get(json_object_get(ref, "hashes"), "sha256"));
        char hex[OTA_SHA256_HEX];
        if (json_is_integer(l) && (size_t)json_integer_value(l) != len) {
            rc = ota_diag_set(d, OTA_E_LENGTH, "'%s' is %zu bytes, its metadata says %lld", name,
                              len, (long long)json_integer_value(l));
            goto out;
        }
        if (h != NULL && (ota_sha256_hex(buf, len, hex) != OTA_OK || strcmp(h, hex) != 0)) {
            rc = ota_diag_set(d, OTA_E_DIGEST, "'%s' does not match the sha256 in its metadata",
                              name);
            goto out;
        }
    }
    if ((rc = ota_cjson_parse(buf, len, META_MAX, &env, d)) != OTA_OK ||
        (rc = ota_json_get_obj(env, "signed", &sig, d)) != OTA_OK ||
        (rc = ota_json_get_str(sig, "_type", 32, 1, &t, d)) != OTA_OK ||
        (rc = ota_json_get_str(sig, "expires", 32, 1, &exp, d)) != OTA_OK)
        goto out;
    if (strcmp(t, type) != 0) {
        rc = ota_diag_set(d, OTA_E_FORMAT, "'%s' has _type '%.32s', expected '%s'", name, t, type);
        goto out;
    }
    if ((rc = ota_cjson_encode(sig, META_MAX, &canon, &clen, d)) != OTA_OK ||
        (rc = ota_threshold_verify(rk, json_object_get(env, "signatures"), canon, clen, NULL, d)))
        goto out;
    if (ota_time_parse(exp, &when) != OTA_OK) {
        rc = ota_diag_set(d, OTA_E_FORMAT, "'%s' has a bad expiry '%.32s'", name, exp);
        goto out;
    }
    if (when <= now) {
        rc = ota_diag_set(d, OTA_E_EXPIRED, "'%s' expired on %s", name, exp);
        goto out;
    }
    *env_out = env;
    env = NULL;
out:
    if (rc != OTA_OK)
        ota_diag_prefix(d, "%s", name);
    free(buf);
    free(canon);
    json_decref(env);
    return rc;
}

struct vstate {
    struct ota_pubkey *keys[4];
    size_t             nkeys[4];
    unsigned           thr[4];
};

static void
vstate_free(struct vstate *v)
{
    int i;

    for (i = 0; i < 4; i++) {
        free(v->keys[i]);
        v->keys[i] = NULL;
    }
}

static struct ota_role_keys
rk_of(const struct vstate *v, int role)
{
    struct ota_role_keys rk = { ota_role_names[role], v->keys[role], v->nkeys[role], v->thr[role] };

    return rk;
}

static ota_err
verify_bundle_cb(void *ctx, const void *msg, size_t len, const json_t *sigs, struct ota_diag *d)
{
    struct ota_role_keys rk = rk_of(ctx, OTA_ROLE_TARGETS);

    rk.role = "bundle manifest (targets keys)";
    return ota_threshold_verify(&rk, sigs, msg, len, NULL, d);
}

static ota_err
verify_targets(const char *pub, const json_t *targets, struct vstate *vs, json_t *report,
               struct ota_diag *d)
{
    const char *tpath;
    json_t     *t;
    ota_err     first = OTA_OK;

    json_object_foreach((json_t *)targets, tpath, t) {
        char                        file[PATH_MAX], what[600];
        const char                 *hex = json_string_value(
            json_object_get(json_object_get(t, "hashes"), "sha256"));
        const char                 *slash = strrchr(tpath, '/');
        unsigned char               want[OTA_SHA256_LEN];
        struct ota_bundle_read_opts o;
        struct ota_manifest        *m = NULL;
        struct ota_diag             d1;
        ota_err                     rc;

        snprintf(what, sizeof what, "bundle %s", tpath);
        if (hex == NULL || ota_hex_decode(hex, want, sizeof want) != OTA_OK || slash == NULL ||
            strstr(tpath, "..") != NULL) {
            rc = ota_diag_set(&d1, OTA_E_FORMAT, "target '%s' has no valid sha256 or path", tpath);
        } else {
            rc = ota_path_fmt(file, sizeof file, &d1, "%s/targets/%.*s/%s.%s", pub,
                              (int)(slash - tpath), tpath, hex, slash + 1);
        }
        if (rc == OTA_OK) {
            /* A separate digest pass first, so a corrupted file is reported as such rather
             * than as whatever the decompressor trips over. */
            unsigned char      got[OTA_SHA256_LEN];
            unsigned long long len = 0;
            rc = ota_sha256_file(file, got, &len, &d1);
            if (rc == OTA_OK &&
                len != (unsigned long long)json_integer_value(json_object_get(t, "length")))
                rc = ota_diag_set(&d1, OTA_E_LENGTH, "'%s' is %llu bytes, targets metadata says "
                                  "%lld", file, len,
                                  (long long)json_integer_value(json_object_get(t, "length")));
            else if (rc == OTA_OK && memcmp(got, want, sizeof want) != 0)
                rc = ota_diag_set(&d1, OTA_E_DIGEST, "'%s' does not match the sha256 in the "
                                  "targets metadata", file);
        }
        if (rc == OTA_OK) {
            memset(&o, 0, sizeof o);
            o.verify = verify_bundle_cb;
            o.verify_ctx = vs;
            o.expect_sha256 = want;
            o.expect_length = (uint64_t)json_integer_value(json_object_get(t, "length"));
            rc = ota_bundle_read_file(file, &o, &m, &d1);
        }
        if (rc == OTA_OK) {
            json_t *mine = ota_release_to_json(&m->release);
            if (!json_equal(mine, json_object_get(target_ota(t), "release")))
                rc = ota_diag_set(&d1, OTA_E_FORMAT, "release metadata in the bundle differs "
                                  "from the target's custom metadata");
            json_decref(mine);
        }
        ota_manifest_free(m);
        report_add(report, what, rc, rc == OTA_OK ? "length, sha256, manifest signature and "
                                                    "every file digest verified" : d1.msg);
        if (rc != OTA_OK && first == OTA_OK) {
            first = rc;
            if (d != NULL)
                *d = d1;
        }
    }
    return first;
}

ota_err
ota_repo_verify(const char *dir, json_t *report, struct ota_diag *d)
{
    char          meta[PATH_MAX], pub[PATH_MAX], name[64], msg[300];
    struct vstate vs, nv;
    json_t       *root = NULL, *next = NULL, *ts = NULL, *snap = NULL, *tg = NULL;
    int64_t       now = ota_now();
    long long     n;
    ota_err       rc;

    memset(&vs, 0, sizeof vs);
    memset(&nv, 0, sizeof nv);
    if ((rc = ota_path_fmt(pub, sizeof pub, d, "%s/public", dir)) != OTA_OK ||
        (rc = ota_path_fmt(meta, sizeof meta, d, "%s/public/metadata", dir)) != OTA_OK)
        return rc;
    /* Root chain: version 1 is trusted as shipped with devices; every next version must be
     * signed by the previous root threshold and by its own. */
    {
        unsigned char *buf = NULL;
        size_t         len = 0;
        char           path[PATH_MAX];
        PATHF("%s/1.root.json", meta);
        if ((rc = ota_read_file(path, META_MAX, &buf, &len, d)) != OTA_OK)
            goto out;
        rc = ota_cjson_parse(buf, len, META_MAX, &root, d);
        free(buf);
        if (rc != OTA_OK || (rc = roles_from_root(json_object_get(root, "signed"), vs.keys,
                                                  vs.nkeys, vs.thr, d)) != OTA_OK)
            goto out;
        json_decref(root);
        root = NULL;
        {
            struct ota_role_keys rk = rk_of(&vs, OTA_ROLE_ROOT);
            if ((rc = verify_file(meta, "1.root.json", "root", &rk, NULL, INT64_MIN, &root, d)))
                goto out;
        }
    }
    for (n = 2; n < 100000; n++) {
        struct ota_role_keys rk = rk_of(&vs, OTA_ROLE_ROOT), nrk;
        struct stat          st;
        char                 path[PATH_MAX];
        snprintf(name, sizeof name, "%lld.root.json", n);
        PATHF("%s/%s", meta, name);
        if (stat(path, &st) != 0)
            break;
        if ((rc = verify_file(meta, name, "root", &rk, NULL, INT64_MIN, &next, d)) != OTA_OK ||
            (rc = roles_from_root(json_object_get(next, "signed"), nv.keys, nv.nkeys, nv.thr, d)))
            goto out;
        nrk = rk_of(&nv, OTA_ROLE_ROOT);
        json_decref(next);
        next = NULL;
        if ((rc = verify_file(meta, name, "root", &nrk, NULL, INT64_MIN, &next, d)) != OTA_OK)
            goto out;
        if (json_integer_value(json_object_get(json_object_get(next, "signed"), "version")) != n) {
            rc = ota_diag_set(d, OTA_E_FORMAT, "'%s' does not carry version %lld", name, n);
            goto out;
        }
        vstate_free(&vs);
        vs = nv;
        memset(&nv, 0, sizeof nv);
        json_decref(root);
        root = next;
        next = NULL;
    }
    snprintf(msg, sizeof msg, "%lld root version(s), each signed by its predecessor's threshold",
             n - 1);
    report_add(report, "root chain", OTA_OK, msg);
    {
        const char *exp = json_string_value(json_object_get(json_object_get(root, "signed"),
                                                            "expires"));
        int64_t     when = 0;
        if (exp == NULL || ota_time_parse(exp, &when) != OTA_OK || when <= now) {
            rc = ota_diag_set(d, OTA_E_EXPIRED, "root version %lld expired on %s (renew it: "
                              "ota-publish rotate REPO --role root)", n - 1, exp ? exp : "?");
            goto out;
        }
    }
    {
        struct ota_role_keys rk = rk_of(&vs, OTA_ROLE_TIMESTAMP);
        json_t              *ref;
        long long            v;
        if ((rc = verify_file(meta, "timestamp.json", "timestamp", &rk, NULL, now, &ts, d)))
            goto out;
        report_add(report, "timestamp", OTA_OK, "signed and current");
        ref = json_object_get(json_object_get(json_object_get(ts, "signed"), "meta"),
                              "snapshot.json");
        v = json_integer_value(json_object_get(ref, "version"));
        snprintf(name, sizeof name, "%lld.snapshot.json", v);
        rk = rk_of(&vs, OTA_ROLE_SNAPSHOT);
        if ((rc = verify_file(meta, name, "snapshot", &rk, ref, now, &snap, d)) != OTA_OK)
            goto out;
        report_add(report, "snapshot", OTA_OK, "signed, current, matches the timestamp");
        ref = json_object_get(json_object_get(json_object_get(snap, "signed"), "meta"),
                              "targets.json");
        v = json_integer_value(json_object_get(ref, "version"));
        snprintf(name, sizeof name, "%lld.targets.json", v);
        rk = rk_of(&vs, OTA_ROLE_TARGETS);
        if ((rc = verify_file(meta, name, "targets", &rk, ref, now, &tg, d)) != OTA_OK)
            goto out;
        report_add(report, "targets", OTA_OK, "signed, current, matches the snapshot");
    }
    rc = verify_targets(pub, json_object_get(json_object_get(tg, "signed"), "targets"), &vs,
                        report, d);
out:
    if (rc != OTA_OK && d != NULL)
        report_add(report, "repository", rc, d->msg);
    vstate_free(&vs);
    vstate_free(&nv);
    json_decref(root);
    json_decref(next);
    json_decref(ts);
    json_decref(snap);
    json_decref(tg);
    return rc;
}
