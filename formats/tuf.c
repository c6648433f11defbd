/* TUF metadata parsing and checks. See ota/tuf.h and formats/tuf.md. */
#include "ota/tuf.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "ota/cjson.h"
#include "ota/fsutil.h"

struct ota_tuf_md {
    enum ota_tuf_type type;
    json_t           *doc;        /* owns everything borrowed below */
    json_t           *signed_obj; /* borrowed from doc */
    json_t           *signatures; /* borrowed from doc */
    char             *canon;      /* canonical bytes of "signed" */
    size_t            canon_len;
    long long         version;
    int64_t           expires;

    /* Keys of root or of targets' delegations, one array per role (all in keybuf). */
    struct ota_pubkey *keybuf;

    /* root */
    int                  consistent_snapshot;
    struct ota_role_keys roles[OTA_TUF_NTYPES];

    /* timestamp */
    struct ota_tuf_metafile snapshot_meta;

    /* snapshot: entries sorted by name */
    struct ota_tuf_metafile *meta;
    size_t                   nmeta;

    /* targets */
    json_t                    *targets; /* borrowed from doc, validated */
    struct ota_tuf_delegation *dlg;
    size_t                     ndlg;
};

static const char *const type_names[OTA_TUF_NTYPES] = {"root", "timestamp", "snapshot", "targets"};

const char *
ota_tuf_type_name(enum ota_tuf_type t)
{
    return (unsigned)t < OTA_TUF_NTYPES ? type_names[t] : "unknown";
}

/* ---- names ---------------------------------------------------------------------------- */

static int
is_unreserved(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' ||
           c == '.' || c == '-' || c == '~';
}

ota_err
ota_tuf_quote(const char *s, const char *safe, char *out, size_t cap, struct ota_diag *d)
{
    static const char hx[] = "0123456789ABCDEF";
    size_t            n = 0;

    for (; *s != '\0'; s++) {
        unsigned char c = (unsigned char)*s;
        if (is_unreserved(c) || (safe != NULL && strchr(safe, c) != NULL)) {
            if (n + 1 >= cap)
                goto too_big;
            out[n++] = (char)c;
        } else {
            if (n + 3 >= cap)
                goto too_big;
            out[n++] = '%';
            out[n++] = hx[c >> 4];
            out[n++] = hx[c & 15];
        }
    }
    if (n >= cap)
        goto too_big;
    out[n] = '\0';
    return OTA_OK;
too_big:
    return ota_diag_set(d, OTA_E_TOO_BIG, "encoded name longer than %zu bytes", cap - 1);
}

static int
has_control(const char *s)
{
    for (; *s != '\0'; s++)
        if ((unsigned char)*s < 0x20 || *s == 0x7f)
            return 1;
    return 0;
}

/* What any role name, top-level or delegated, must satisfy to get a file name. */
static ota_err
role_name_syntax(const char *name, char *fname, size_t cap, struct ota_diag *d)
{
    char tmp[OTA_TUF_FILENAME_MAX];

    if (fname == NULL) {
        fname = tmp;
        cap = sizeof tmp;
    }
    if (name[0] == '\0')
        return ota_diag_set(d, OTA_E_UNSAFE_PATH, "empty role name");
    if (has_control(name))
        return ota_diag_set(d, OTA_E_UNSAFE_PATH, "role name '%.64s' has a control character",
                            name);
    /* The name becomes one path component: 255 bytes at most once encoded, ".json" included. */
    if (cap > 256)
        cap = 256;
    if (ota_tuf_quote(name, "", fname, cap - 5, NULL) != OTA_OK)
        return ota_diag_set(d, OTA_E_UNSAFE_PATH, "role name '%.64s...' is too long", name);
    strcat(fname, ".json");
    return OTA_OK;
}

ota_err
ota_tuf_role_name_check(const char *name, struct ota_diag *d)
{
    ota_err rc = role_name_syntax(name, NULL, 0, d);
    int     i;

    if (rc != OTA_OK)
        return rc;
    for (i = 0; i < OTA_TUF_NTYPES; i++)
        if (strcmp(name, type_names[i]) == 0)
            return ota_diag_set(d, OTA_E_UNSAFE_PATH,
                                "delegated role may not use the top-level name '%s'", name);
    return OTA_OK;
}

ota_err
ota_tuf_role_filename(const char *role, char out[OTA_TUF_FILENAME_MAX], struct ota_diag *d)
{
    return role_name_syntax(role, out, OTA_TUF_FILENAME_MAX, d);
}

ota_err
ota_tuf_target_path_check(const char *path, struct ota_diag *d)
{
    size_t      n = strlen(path);
    const char *p, *part;

    if (n == 0)
        return ota_diag_set(d, OTA_E_UNSAFE_PATH, "empty target path");
    if (n > OTA_TUF_PATH_MAX)
        return ota_diag_set(d, OTA_E_UNSAFE_PATH, "target path longer than %d bytes",
                            OTA_TUF_PATH_MAX);
    if (path[0] == '/')
        return ota_diag_set(d, OTA_E_UNSAFE_PATH, "target path '%.128s' is absolute", path);
    if (strchr(path, '\\') != NULL)
        return ota_diag_set(d, OTA_E_UNSAFE_PATH, "target path '%.128s' has a backslash", path);
    if (has_control(path))
        return ota_diag_set(d, OTA_E_UNSAFE_PATH, "target path '%.128s' has a control character",
                            path);
    for (part = path;; part = p + 1) {
        size_t len;
        p = strchr(part, '/');
        len = p ? (size_t)(p - part) : strlen(part);
        if (len == 0 || (len == 1 && part[0] == '.') ||
            (len == 2 && part[0] == '.' && part[1] == '.'))
            return ota_diag_set(d, OTA_E_UNSAFE_PATH,
                                "target path '%.128s' has an empty, '.' or '..' part", path);
        if (p == NULL)
            break;
    }
    return OTA_OK;
}

/* ---- path patterns -------------------------------------------------------------------- */

/* Decode one UTF-8 character of s[0..n) (already validated by the JSON parser; a stray byte
 * counts as one character). */
static size_t
u8_next(const char *s, size_t n, unsigned long *cp)
{
    const unsigned char *u = (const unsigned char *)s;
    size_t               len, i;

    if (u[0] < 0x80) {
        *cp = u[0];
        return 1;
    }
    len = u[0] >= 0xf0 ? 4 : u[0] >= 0xe0 ? 3 : u[0] >= 0xc0 ? 2 : 1;
    if (len > n)
        len = 1;
    *cp = len == 1 ? u[0] : (unsigned long)(u[0] & (0x3f >> (len - 1)));
    for (i = 1; i < len; i++)
        *cp = (*cp << 6) | (u[i] & 0x3f);
    return len;
}

/* Match character c against the bracket expression at p[0] == '['. Returns the length of the
 * expression, or 0 when it has no closing ']' (then '[' is a literal, as in fnmatch). */
static size_t
bracket(const char *p, size_t pn, unsigned long c, int *matched)
{
    size_t i = 1, start;
    int    neg = 0, hit = 0;

    if (i < pn && p[i] == '!') {
        neg = 1;
        i++;
    }
    start = i;
    while (i < pn && (p[i] != ']' || i == start)) {
        unsigned long lo, hi;
        i += u8_next(p + i, pn - i, &lo);
        hi = lo;
        if (i + 1 < pn && p[i] == '-' && p[i + 1] != ']')
            i += 1 + u8_next(p + i + 1, pn - i - 1, &hi);
        if (c >= lo && c <= hi)
            hit = 1;
    }
    if (i >= pn)
        return 0;
    *matched = hit != neg;
    return i + 1;
}

/* Glob match of one path part: iterative, with one remembered '*', so the time is bounded by
 * the product of the lengths whatever the pattern. */
static int
part_match(const char *p, size_t pn, const char *s, size_t sn)
{
    size_t pi = 0, si = 0, star_p = (size_t)-1, star_s = 0;

    while (si < sn) {
        unsigned long c;
        size_t        cl = u8_next(s + si, sn - si, &c);
        if (pi < pn && p[pi] == '*') {
            star_p = ++pi;
            star_s = si;
            continue;
        }
        if (pi < pn) {
            size_t adv = 0;
            int    ok = 0;
            if (p[pi] == '?') {
                adv = 1;
                ok = 1;
            } else if (p[pi] == '[' && (adv = bracket(p + pi, pn - pi, c, &ok)) != 0) {
                /* adv and ok set */
            } else {
                unsigned long pc;
                adv = u8_next(p + pi, pn - pi, &pc);
                ok = pc == c;
            }
            if (ok) {
                pi += adv;
                si += cl;
                continue;
            }
        }
        if (star_p == (size_t)-1)
            return 0;
        /* Let the last '*' swallow one more character and retry from there. */
        pi = star_p;
        star_s += u8_next(s + star_s, sn - star_s, &c);
        si = star_s;
    }
    while (pi < pn && p[pi] == '*')
        pi++;
    return pi == pn;
}

int
ota_tuf_path_match(const char *pattern, const char *path)
{
    const char *p = pattern, *s = path;

    for (;;) {
        const char *pe = strchr(p, '/'), *se = strchr(s, '/');
        size_t      pn = pe ? (size_t)(pe - p) : strlen(p);
        size_t      sn = se ? (size_t)(se - s) : strlen(s);
        if ((pe == NULL) != (se == NULL))
            return 0; /* different number of parts */
        if (!part_match(p, pn, s, sn))
            return 0;
        if (pe == NULL)
            return 1;
        p = pe + 1;
        s = se + 1;
    }
}

int
ota_tuf_delegation_matches(const struct ota_tuf_delegation *dl, const char *path)
{
    size_t i;

    if (dl->paths != NULL) {
        for (i = 0; i < json_array_size(dl->paths); i++)
            if (ota_tuf_path_match(json_string_value(json_array_get(dl->paths, i)), path))
                return 1;
        return 0;
    }
    if (dl->hash_prefixes != NULL) {
        char hex[OTA_SHA256_HEX];
        if (ota_sha256_hex(path, strlen(path), hex) != OTA_OK)
            return 0; /* cannot hash: not trusted */
        for (i = 0; i < json_array_size(dl->hash_prefixes); i++) {
            const char *pre = json_string_value(json_array_get(dl->hash_prefixes, i));
            if (strncmp(hex, pre, strlen(pre)) == 0)
                return 1;
        }
    }
    return 0;
}

/* ---- parsing helpers ------------------------------------------------------------------ */

static int
is_hex(const char *s)
{
    for (; *s != '\0'; s++)
        if (!((*s >= '0' && *s <= '9') || (*s >= 'a' && *s <= 'f') || (*s >= 'A' && *s <= 'F')))
            return 0;
    return 1;
}

/* spec_version "1.x" or "1.x.y" (digits only): major 1 is what we implement. */
static ota_err
check_spec_version(const json_t *sig, struct ota_diag *d)
{
    const char *sv, *p;
    int         parts = 1, digits = 0;
    ota_err     rc;

    rc = ota_json_get_str(sig, "spec_version", 32, 1, &sv, d);
    if (rc != OTA_OK)
        return rc;
    for (p = sv; *p != '\0'; p++) {
        if (*p == '.') {
            if (digits == 0)
                break;
            parts++;
            digits = 0;
        } else if (*p >= '0' && *p <= '9') {
            digits++;
        } else {
            break;
        }
    }
    if (*p != '\0' || digits == 0 || parts < 2 || parts > 3)
        return ota_diag_set(d, OTA_E_FORMAT, "bad spec_version '%s'", sv);
    if (strncmp(sv, "1.", 2) != 0)
        return ota_diag_set(d, OTA_E_FORMAT, "unsupported spec_version '%s' (major 1 is supported)",
                            sv);
    return OTA_OK;
}

static int
key_cmp(const void *a, const void *b)
{
    return strcmp(((const struct ota_pubkey *)a)->keyid, ((const struct ota_pubkey *)b)->keyid);
}

/* Parse a KEYS object ({keyid: key}) into a malloc'd array sorted by key id. Keys of a type
 * we cannot verify are kept (type 0) so that roles may list them; they never verify. */
static ota_err
parse_keys(const json_t *keys, struct ota_pubkey **out, size_t *nout, struct ota_diag *d)
{
    struct ota_pubkey *arr = NULL;
    const char        *id;
    json_t            *kv;
    size_t             n = 0;
    ota_err            rc = OTA_OK;

    if (!json_is_object(keys))
        return ota_diag_set(d, OTA_E_FORMAT, "'keys' must be an object");
    if (json_object_size(keys) > OTA_TUF_MAX_KEYS)
        return ota_diag_set(d, OTA_E_TOO_BIG, "more than %d keys", OTA_TUF_MAX_KEYS);
    arr = calloc(json_object_size(keys) + 1, sizeof *arr);
    if (arr == NULL)
        return ota_diag_set(d, OTA_E_NOMEM, "out of memory");
    json_object_foreach((json_t *)keys, id, kv)
    {
        const char *kt, *sc;
        json_t     *val;
        if (!json_is_object(kv)) {
            rc = ota_diag_set(d, OTA_E_FORMAT, "key '%.16s...' must be an object", id);
            goto out;
        }
        if ((rc = ota_json_get_str(kv, "keytype", 64, 1, &kt, d)) != OTA_OK ||
            (rc = ota_json_get_str(kv, "scheme", 64, 1, &sc, d)) != OTA_OK ||
            (rc = ota_json_get_obj(kv, "keyval", &val, d)) != OTA_OK) {
            ota_diag_prefix(d, "key '%.16s...'", id);
            goto out;
        }
        if (strcmp(kt, "ed25519") == 0 && strcmp(sc, "ed25519") == 0) {
            rc = ota_pubkey_from_json(kv, id, &arr[n], d);
            if (rc != OTA_OK)
                goto out;
        } else {
            /* rsa, ecdsa, ...: recognised by id, never trusted to sign. */
            char kid[OTA_KEYID_HEX];
            rc = ota_keyid_of(kv, kid, d);
            if (rc != OTA_OK)
                goto out;
            if (strcmp(kid, id) != 0) {
                rc = ota_diag_set(d, OTA_E_KEY_UNKNOWN,
                                  "key listed as '%.16s...' has key id '%.16s...'", id, kid);
                goto out;
            }
            memset(&arr[n], 0, sizeof arr[n]);
            memcpy(arr[n].keyid, kid, sizeof kid);
        }
        n++;
    }
    qsort(arr, n, sizeof *arr, key_cmp);
    *out = arr;
    *nout = n;
    arr = NULL;
out:
    free(arr);
    return rc;
}

static const struct ota_pubkey *
find_key(const struct ota_pubkey *keys, size_t n, const char *id)
{
    struct ota_pubkey probe;

    if (strlen(id) >= sizeof probe.keyid)
        return NULL;
    strcpy(probe.keyid, id);
    return bsearch(&probe, keys, n, sizeof *keys, key_cmp);
}

/* A role definition {keyids, threshold}: resolves key ids against keys into dst (room for
 * OTA_TUF_MAX_KEYIDS), fills rk. Ids without a key are skipped (they can never sign). */
static ota_err
parse_role(const json_t *role, const char *name, const struct ota_pubkey *keys, size_t nkeys,
           struct ota_pubkey *dst, struct ota_role_keys *rk, struct ota_diag *d)
{
    json_t   *ids;
    long long thr;
    size_t    i, j, n = 0;
    ota_err   rc;

    if (!json_is_object(role))
        return ota_diag_set(d, OTA_E_FORMAT, "role '%.64s' must be an object", name);
    if ((rc = ota_json_get_arr(role, "keyids", OTA_TUF_MAX_KEYIDS, &ids, d)) != OTA_OK ||
        (rc = ota_json_get_int(role, "threshold", 1, OTA_TUF_MAX_KEYIDS, &thr, d)) != OTA_OK) {
        ota_diag_prefix(d, "role '%.64s'", name);
        return rc;
    }
    for (i = 0; i < json_array_size(ids); i++) {
        const json_t            *v = json_array_get(ids, i);
        const struct ota_pubkey *k;
        if (!json_is_string(v))
            return ota_diag_set(d, OTA_E_FORMAT, "role '%.64s': key ids must be strings", name);
        for (j = 0; j < i; j++)
            if (json_equal(json_array_get(ids, j), v))
                return ota_diag_set(d, OTA_E_FORMAT, "role '%.64s' lists key id '%.16s...' twice",
                                    name, json_string_value(v));
        k = find_key(keys, nkeys, json_string_value(v));
        if (k == NULL)
            continue;
        /* The same public key under two ids would let one signer count twice. */
        for (j = 0; j < n; j++)
            if (k->type == OTA_KEY_ED25519 && dst[j].type == OTA_KEY_ED25519 &&
                memcmp(k->ed25519, dst[j].ed25519, OTA_ED25519_PK) == 0)
                return ota_diag_set(d, OTA_E_FORMAT, "role '%.64s' lists one key under two key ids",
                                    name);
        dst[n++] = *k;
    }
    rk->role = name;
    rk->keys = dst;
    rk->nkeys = n;
    rk->threshold = (unsigned)thr;
    return OTA_OK;
}

/* METAFILES entry {version, length?, hashes?}. Only sha256 can be checked, so hashes that do
 * not include it are refused rather than ignored. */
static ota_err
parse_metafile(const char *name, const json_t *v, struct ota_tuf_metafile *mf, struct ota_diag *d)
{
    json_t *hashes;
    ota_err rc;

    memset(mf, 0, sizeof *mf);
    mf->name = name;
    mf->length = -1;
    if (!json_is_object(v))
        return ota_diag_set(d, OTA_E_FORMAT, "meta '%.64s' must be an object", name);
    rc = ota_json_get_int(v, "version", 1, LLONG_MAX, &mf->version, d);
    if (rc == OTA_OK && json_object_get(v, "length") != NULL)
        rc = ota_json_get_int(v, "length", 0, LLONG_MAX, &mf->length, d);
    if (rc != OTA_OK)
        goto bad;
    hashes = json_object_get(v, "hashes");
    if (hashes != NULL) {
        const char *sha;
        if (!json_is_object(hashes) || json_object_size(hashes) == 0 ||
            json_object_size(hashes) > 16) {
            rc = ota_diag_set(d, OTA_E_FORMAT, "'hashes' must be an object of 1..16 digests");
            goto bad;
        }
        rc = ota_json_get_str(hashes, "sha256", 64, 1, &sha, d);
        if (rc == OTA_OK && ota_hex_decode(sha, mf->sha256, OTA_SHA256_LEN) != OTA_OK)
            rc = ota_diag_set(d, OTA_E_FORMAT, "'sha256' must be 64 hex digits");
        if (rc != OTA_OK)
            goto bad;
        mf->has_sha256 = 1;
    }
    return OTA_OK;
bad:
    ota_diag_prefix(d, "meta '%.64s'", name);
    return rc;
}

static ota_err
target_decode(const char *path, const json_t *v, struct ota_tuf_targetinfo *t, struct ota_diag *d)
{
    json_t     *hashes, *custom;
    long long   len;
    const char *sha;
    ota_err     rc;

    memset(t, 0, sizeof *t);
    t->path = path;
    if (!json_is_object(v))
        return ota_diag_set(d, OTA_E_FORMAT, "target '%.128s' must be an object", path);
    if ((rc = ota_json_get_int(v, "length", 0, LLONG_MAX, &len, d)) != OTA_OK ||
        (rc = ota_json_get_obj(v, "hashes", &hashes, d)) != OTA_OK ||
        (rc = ota_json_get_str(hashes, "sha256", 64, 1, &sha, d)) != OTA_OK)
        goto bad;
    if (json_object_size(hashes) > 16) {
        rc = ota_diag_set(d, OTA_E_FORMAT, "'hashes' has more than 16 digests");
        goto bad;
    }
    if (ota_hex_decode(sha, t->sha256, OTA_SHA256_LEN) != OTA_OK) {
        rc = ota_diag_set(d, OTA_E_FORMAT, "'sha256' must be 64 hex digits");
        goto bad;
    }
    custom = json_object_get(v, "custom");
    if (custom != NULL && !json_is_object(custom)) {
        rc = ota_diag_set(d, OTA_E_FORMAT, "'custom' must be an object");
        goto bad;
    }
    t->length = (uint64_t)len;
    t->custom = custom;
    return OTA_OK;
bad:
    ota_diag_prefix(d, "target '%.128s'", path);
    return rc;
}

/* ---- per-type parsing ----------------------------------------------------------------- */

static ota_err
parse_root(struct ota_tuf_md *md, struct ota_diag *d)
{
    struct ota_pubkey *keys = NULL;
    size_t             nkeys = 0, i;
    json_t            *kobj, *roles, *cs, *r;
    const char        *name;
    ota_err            rc;

    if ((rc = ota_json_get_obj(md->signed_obj, "keys", &kobj, d)) != OTA_OK ||
        (rc = ota_json_get_obj(md->signed_obj, "roles", &roles, d)) != OTA_OK)
        return rc;
    cs = json_object_get(md->signed_obj, "consistent_snapshot");
    if (cs != NULL && !json_is_boolean(cs))
        return ota_diag_set(d, OTA_E_FORMAT, "'consistent_snapshot' must be true or false");
    md->consistent_snapshot = json_is_true(cs);
    rc = parse_keys(kobj, &keys, &nkeys, d);
    if (rc != OTA_OK)
        return rc;
    json_object_foreach(roles, name, r)
    {
        for (i = 0; i < OTA_TUF_NTYPES; i++)
            if (strcmp(name, type_names[i]) == 0)
                break;
        if (i == OTA_TUF_NTYPES) {
            rc = ota_diag_set(d, OTA_E_FORMAT, "unknown top-level role '%.64s'", name);
            goto out;
        }
    }
    md->keybuf = calloc((size_t)OTA_TUF_NTYPES * OTA_TUF_MAX_KEYIDS, sizeof *md->keybuf);
    if (md->keybuf == NULL) {
        rc = ota_diag_set(d, OTA_E_NOMEM, "out of memory");
        goto out;
    }
    for (i = 0; i < OTA_TUF_NTYPES; i++) {
        r = json_object_get(roles, type_names[i]);
        if (r == NULL) {
            rc = ota_diag_set(d, OTA_E_FORMAT, "root defines no '%s' role", type_names[i]);
            goto out;
        }
        rc = parse_role(r, type_names[i], keys, nkeys, md->keybuf + i * OTA_TUF_MAX_KEYIDS,
                        &md->roles[i], d);
        if (rc != OTA_OK)
            goto out;
    }
out:
    free(keys);
    return rc;
}

static ota_err
parse_timestamp(struct ota_tuf_md *md, struct ota_diag *d)
{
    json_t *meta, *snap;
    ota_err rc;

    rc = ota_json_get_obj(md->signed_obj, "meta", &meta, d);
    if (rc != OTA_OK)
        return rc;
    snap = json_object_get(meta, "snapshot.json");
    if (snap == NULL)
        return ota_diag_set(d, OTA_E_FORMAT, "timestamp meta does not list 'snapshot.json'");
    if (json_object_size(meta) != 1)
        return ota_diag_set(d, OTA_E_FORMAT, "timestamp meta lists more than 'snapshot.json'");
    return parse_metafile(json_object_iter_key(json_object_iter_at(meta, "snapshot.json")), snap,
                          &md->snapshot_meta, d);
}

static int
meta_cmp(const void *a, const void *b)
{
    return strcmp(((const struct ota_tuf_metafile *)a)->name,
                  ((const struct ota_tuf_metafile *)b)->name);
}

static ota_err
parse_snapshot(struct ota_tuf_md *md, struct ota_diag *d)
{
    json_t     *meta, *v;
    const char *name;
    size_t      n = 0;
    ota_err     rc;

    rc = ota_json_get_obj(md->signed_obj, "meta", &meta, d);
    if (rc != OTA_OK)
        return rc;
    if (json_object_size(meta) > OTA_TUF_MAX_META)
        return ota_diag_set(d, OTA_E_TOO_BIG, "snapshot meta has more than %d entries",
                            OTA_TUF_MAX_META);
    if (json_object_get(meta, "targets.json") == NULL)
        return ota_diag_set(d, OTA_E_FORMAT, "snapshot meta does not list 'targets.json'");
    md->meta = calloc(json_object_size(meta) + 1, sizeof *md->meta);
    if (md->meta == NULL)
        return ota_diag_set(d, OTA_E_NOMEM, "out of memory");
    json_object_foreach(meta, name, v)
    {
        if (strlen(name) > OTA_TUF_FILENAME_MAX * 3)
            return ota_diag_set(d, OTA_E_FORMAT, "snapshot meta name '%.64s...' is too long", name);
        rc = parse_metafile(name, v, &md->meta[n], d);
        if (rc != OTA_OK)
            return rc;
        n++;
    }
    qsort(md->meta, n, sizeof *md->meta, meta_cmp);
    md->nmeta = n;
    return OTA_OK;
}

static ota_err
parse_delegations(struct ota_tuf_md *md, const json_t *dl, struct ota_diag *d)
{
    struct ota_pubkey *keys = NULL;
    size_t             nkeys = 0, i, j, total = 0;
    size_t             off[OTA_TUF_MAX_ROLES];
    json_t            *kobj, *roles;
    ota_err            rc;

    if (!json_is_object(dl))
        return ota_diag_set(d, OTA_E_FORMAT, "'delegations' must be an object");
    if (json_object_get(dl, "succinct_roles") != NULL)
        return ota_diag_set(d, OTA_E_FORMAT, "succinct_roles delegations are not supported");
    if ((rc = ota_json_get_obj(dl, "keys", &kobj, d)) != OTA_OK ||
        (rc = ota_json_get_arr(dl, "roles", OTA_TUF_MAX_ROLES, &roles, d)) != OTA_OK) {
        ota_diag_prefix(d, "delegations");
        return rc;
    }
    rc = parse_keys(kobj, &keys, &nkeys, d);
    if (rc != OTA_OK) {
        ota_diag_prefix(d, "delegations");
        return rc;
    }
    /* One key array per role, each as long as the role's list of ids (bounded by parse_role). */
    md->ndlg = json_array_size(roles);
    for (i = 0; i < md->ndlg; i++) {
        size_t k = json_array_size(json_object_get(json_array_get(roles, i), "keyids"));
        off[i] = total;
        total += k < OTA_TUF_MAX_KEYIDS ? k : OTA_TUF_MAX_KEYIDS;
    }
    md->dlg = calloc(md->ndlg + 1, sizeof *md->dlg);
    md->keybuf = calloc(total + 1, sizeof *md->keybuf);
    if (md->dlg == NULL || md->keybuf == NULL) {
        rc = ota_diag_set(d, OTA_E_NOMEM, "out of memory");
        goto out;
    }
    for (i = 0; i < md->ndlg; i++) {
        struct ota_tuf_delegation *g = &md->dlg[i];
        const json_t              *r = json_array_get(roles, i);
        json_t                    *paths, *pre;
        json_t                    *list;
        if (!json_is_object(r)) {
            rc = ota_diag_set(d, OTA_E_FORMAT, "delegated role %zu must be an object", i);
            goto out;
        }
        if ((rc = ota_json_get_str(r, "name", OTA_TUF_FILENAME_MAX * 3, 0, &g->name, d)) !=
                OTA_OK ||
            (rc = ota_json_get_bool(r, "terminating", &g->terminating, d)) != OTA_OK) {
            ota_diag_prefix(d, "delegated role %zu", i);
            goto out;
        }
        rc = ota_tuf_role_name_check(g->name, d);
        if (rc != OTA_OK)
            goto out;
        for (j = 0; j < i; j++)
            if (strcmp(md->dlg[j].name, g->name) == 0) {
                rc = ota_diag_set(d, OTA_E_FORMAT, "role '%.64s' is delegated twice", g->name);
                goto out;
            }
        rc = parse_role(r, g->name, keys, nkeys, md->keybuf + off[i], &g->keys, d);
        if (rc != OTA_OK)
            goto out;
        paths = json_object_get(r, "paths");
        pre = json_object_get(r, "path_hash_prefixes");
        if ((paths == NULL) == (pre == NULL)) {
            rc = ota_diag_set(d, OTA_E_FORMAT,
                              "role '%.64s' needs exactly one of 'paths' and 'path_hash_prefixes'",
                              g->name);
            goto out;
        }
        rc = ota_json_get_arr(r, paths ? "paths" : "path_hash_prefixes", OTA_TUF_MAX_PATHS, &list,
                              d);
        if (rc != OTA_OK) {
            ota_diag_prefix(d, "role '%.64s'", g->name);
            goto out;
        }
        for (j = 0; j < json_array_size(list); j++) {
            const json_t *s = json_array_get(list, j);
            if (!json_is_string(s) || json_string_length(s) > OTA_TUF_PATH_MAX ||
                strlen(json_string_value(s)) != json_string_length(s) ||
                (pre != NULL && (json_string_length(s) > 64 || !is_hex(json_string_value(s))))) {
                rc = ota_diag_set(d, OTA_E_FORMAT, "role '%.64s': bad %s entry %zu", g->name,
                                  paths ? "paths" : "path_hash_prefixes", j);
                goto out;
            }
        }
        if (paths != NULL)
            g->paths = list;
        else
            g->hash_prefixes = list;
    }
out:
    free(keys);
    return rc;
}

static ota_err
parse_targets(struct ota_tuf_md *md, struct ota_diag *d)
{
    json_t     *targets, *v, *dl;
    const char *path;
    ota_err     rc;

    rc = ota_json_get_obj(md->signed_obj, "targets", &targets, d);
    if (rc != OTA_OK)
        return rc;
    if (json_object_size(targets) > OTA_TUF_MAX_TARGETS)
        return ota_diag_set(d, OTA_E_TOO_BIG, "more than %d targets", OTA_TUF_MAX_TARGETS);
    json_object_foreach(targets, path, v)
    {
        struct ota_tuf_targetinfo t;
        rc = ota_tuf_target_path_check(path, d);
        if (rc == OTA_OK)
            rc = target_decode(path, v, &t, d);
        if (rc != OTA_OK)
            return rc;
    }
    md->targets = targets;
    dl = json_object_get(md->signed_obj, "delegations");
    if (dl != NULL)
        return parse_delegations(md, dl, d);
    return OTA_OK;
}

/* ---- documents ------------------------------------------------------------------------ */

void
ota_tuf_md_free(struct ota_tuf_md *md)
{
    if (md == NULL)
        return;
    json_decref(md->doc);
    free(md->canon);
    free(md->keybuf);
    free(md->meta);
    free(md->dlg);
    free(md);
}

ota_err
ota_tuf_parse(const void *buf, size_t len, size_t max, enum ota_tuf_type type,
              struct ota_tuf_md **out, struct ota_diag *d)
{
    struct ota_tuf_md *md;
    const char        *t, *exp;
    ota_err            rc;

    if ((unsigned)type >= OTA_TUF_NTYPES)
        return ota_diag_set(d, OTA_E_INVALID, "unknown metadata type %d", (int)type);
    md = calloc(1, sizeof *md);
    if (md == NULL)
        return ota_diag_set(d, OTA_E_NOMEM, "out of memory");
    md->type = type;
    rc = ota_cjson_parse(buf, len, max, &md->doc, d);
    if (rc != OTA_OK)
        goto out;
    if (!json_is_object(md->doc)) {
        rc = ota_diag_set(d, OTA_E_FORMAT, "metadata must be a JSON object");
        goto out;
    }
    if ((rc = ota_json_get_obj(md->doc, "signed", &md->signed_obj, d)) != OTA_OK ||
        (rc = ota_json_get_arr(md->doc, "signatures", OTA_TUF_MAX_SIGNATURES, &md->signatures,
                               d)) != OTA_OK)
        goto out;
    rc = ota_cjson_encode(md->signed_obj, max, &md->canon, &md->canon_len, d);
    if (rc != OTA_OK)
        goto out;
    rc = ota_json_get_str(md->signed_obj, "_type", 32, 1, &t, d);
    if (rc != OTA_OK)
        goto out;
    if (strcmp(t, type_names[type]) != 0) {
        rc = ota_diag_set(d, OTA_E_FORMAT, "'_type' is '%s', expected '%s'", t, type_names[type]);
        goto out;
    }
    if ((rc = check_spec_version(md->signed_obj, d)) != OTA_OK ||
        (rc = ota_json_get_int(md->signed_obj, "version", 1, LLONG_MAX, &md->version, d)) !=
            OTA_OK ||
        (rc = ota_json_get_str(md->signed_obj, "expires", 32, 1, &exp, d)) != OTA_OK)
        goto out;
    if (ota_time_parse(exp, &md->expires) != OTA_OK) {
        rc = ota_diag_set(d, OTA_E_FORMAT, "'expires' is not YYYY-MM-DDTHH:MM:SSZ: '%s'", exp);
        goto out;
    }
    switch (type) {
    case OTA_TUF_ROOT:
        rc = parse_root(md, d);
        break;
    case OTA_TUF_TIMESTAMP:
        rc = parse_timestamp(md, d);
        break;
    case OTA_TUF_SNAPSHOT:
        rc = parse_snapshot(md, d);
        break;
    case OTA_TUF_TARGETS:
        rc = parse_targets(md, d);
        break;
    }
    if (rc != OTA_OK)
        goto out;
    *out = md;
    md = NULL;
out:
    if (rc != OTA_OK)
        ota_diag_prefix(d, "%s metadata", type_names[type]);
    ota_tuf_md_free(md);
    return rc;
}

ota_err
ota_tuf_md_verify(const struct ota_tuf_md *md, const struct ota_role_keys *role, struct ota_diag *d)
{
    return ota_threshold_verify(role, md->signatures, md->canon, md->canon_len, NULL, d);
}

ota_err
ota_tuf_md_check_expiry(const struct ota_tuf_md *md, int64_t now, struct ota_diag *d)
{
    char when[21];

    if (now < md->expires)
        return OTA_OK;
    ota_time_format(md->expires, when);
    return ota_diag_set(d, OTA_E_EXPIRED, "%s metadata version %lld expired at %s",
                        type_names[md->type], md->version, when);
}

enum ota_tuf_type
ota_tuf_md_type(const struct ota_tuf_md *md)
{
    return md->type;
}

long long
ota_tuf_md_version(const struct ota_tuf_md *md)
{
    return md->version;
}

int64_t
ota_tuf_md_expires(const struct ota_tuf_md *md)
{
    return md->expires;
}

const json_t *
ota_tuf_md_signed(const struct ota_tuf_md *md)
{
    return md->signed_obj;
}

const struct ota_role_keys *
ota_tuf_root_role(const struct ota_tuf_md *root, enum ota_tuf_type role)
{
    if (root->type != OTA_TUF_ROOT || (unsigned)role >= OTA_TUF_NTYPES)
        return NULL;
    return &root->roles[role];
}

int
ota_tuf_root_consistent_snapshot(const struct ota_tuf_md *root)
{
    return root->consistent_snapshot;
}

int
ota_tuf_root_role_changed(const struct ota_tuf_md *a, const struct ota_tuf_md *b,
                          enum ota_tuf_type role)
{
    const struct ota_role_keys *ra = ota_tuf_root_role(a, role), *rb = ota_tuf_root_role(b, role);
    size_t                      i, j;

    if (ra == NULL || rb == NULL)
        return 1;
    if (ra->threshold != rb->threshold || ra->nkeys != rb->nkeys)
        return 1;
    for (i = 0; i < ra->nkeys; i++) {
        for (j = 0; j < rb->nkeys; j++)
            if (strcmp(ra->keys[i].keyid, rb->keys[j].keyid) == 0)
                break;
        if (j == rb->nkeys)
            return 1;
    }
    return 0;
}

const struct ota_tuf_metafile *
ota_tuf_timestamp_snapshot(const struct ota_tuf_md *ts)
{
    return ts->type == OTA_TUF_TIMESTAMP ? &ts->snapshot_meta : NULL;
}

const struct ota_tuf_metafile *
ota_tuf_snapshot_meta(const struct ota_tuf_md *snap, const char *name)
{
    struct ota_tuf_metafile probe;

    if (snap->type != OTA_TUF_SNAPSHOT)
        return NULL;
    probe.name = name;
    return bsearch(&probe, snap->meta, snap->nmeta, sizeof probe, meta_cmp);
}

ota_err
ota_tuf_snapshot_check_rollback(const struct ota_tuf_md *old_snap,
                                const struct ota_tuf_md *new_snap, struct ota_diag *d)
{
    size_t i;

    if (old_snap->type != OTA_TUF_SNAPSHOT || new_snap->type != OTA_TUF_SNAPSHOT)
        return ota_diag_set(d, OTA_E_INVALID, "not snapshot metadata");
    for (i = 0; i < old_snap->nmeta; i++) {
        const struct ota_tuf_metafile *o = &old_snap->meta[i];
        const struct ota_tuf_metafile *n = ota_tuf_snapshot_meta(new_snap, o->name);
        if (n == NULL)
            return ota_diag_set(d, OTA_E_ROLLBACK, "snapshot version %lld no longer lists '%.64s'",
                                new_snap->version, o->name);
        if (n->version < o->version)
            return ota_diag_set(d, OTA_E_ROLLBACK,
                                "snapshot version %lld lists '%.64s' version %lld, below the "
                                "trusted %lld",
                                new_snap->version, o->name, n->version, o->version);
    }
    return OTA_OK;
}

ota_err
ota_tuf_metafile_check(const struct ota_tuf_metafile *mf, const void *buf, size_t len,
                       struct ota_diag *d)
{
    unsigned char h[OTA_SHA256_LEN];

    if (mf->length >= 0 && (unsigned long long)mf->length != len)
        return ota_diag_set(d, OTA_E_LENGTH, "'%.64s' is %zu bytes, expected %lld", mf->name, len,
                            mf->length);
    if (mf->has_sha256) {
        if (ota_sha256_buf(buf, len, h) != OTA_OK)
            return ota_diag_set(d, OTA_E_CRYPTO, "cannot hash '%.64s'", mf->name);
        if (memcmp(h, mf->sha256, sizeof h) != 0)
            return ota_diag_set(d, OTA_E_DIGEST, "'%.64s' does not match its sha256 in the %s",
                                mf->name,
                                strcmp(mf->name, "snapshot.json") == 0 ? "timestamp" : "snapshot");
    }
    return OTA_OK;
}

ota_err
ota_tuf_targets_get(const struct ota_tuf_md *md, const char *path, struct ota_tuf_targetinfo *out,
                    struct ota_diag *d)
{
    struct ota_tuf_targetinfo t;
    json_t                   *v;
    void                     *it;
    ota_err                   rc;

    if (md->type != OTA_TUF_TARGETS)
        return ota_diag_set(d, OTA_E_INVALID, "not targets metadata");
    it = json_object_iter_at(md->targets, path);
    if (it == NULL)
        return ota_diag_set(d, OTA_E_NOT_FOUND, "no target '%.128s'", path);
    v = json_object_iter_value(it);
    rc = target_decode(json_object_iter_key(it), v, &t, d);
    if (rc == OTA_OK)
        *out = t;
    return rc;
}

size_t
ota_tuf_targets_foreach(const struct ota_tuf_md *md,
                        int (*cb)(void *ctx, const struct ota_tuf_targetinfo *t), void *ctx)
{
    const char *path;
    json_t     *v;
    size_t      n = 0;

    if (md->type != OTA_TUF_TARGETS)
        return 0;
    json_object_foreach(md->targets, path, v)
    {
        struct ota_tuf_targetinfo t;
        if (target_decode(path, v, &t, NULL) != OTA_OK)
            continue; /* cannot happen: validated by ota_tuf_parse */
        n++;
        if (cb(ctx, &t) != 0)
            break;
    }
    return n;
}

const struct ota_tuf_delegation *
ota_tuf_targets_delegations(const struct ota_tuf_md *md, size_t *n)
{
    *n = md->type == OTA_TUF_TARGETS ? md->ndlg : 0;
    return *n ? md->dlg : NULL;
}
