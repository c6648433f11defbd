/* ota-evil-meta: a TEST TOOL. Rewrites and re-signs TUF metadata the way an attacker holding
 * some keys would (a compromised online key, a rotated-away root key, a key of the wrong
 * role), so the integration tests can check that a device refuses what those keys cannot
 * authorise. Never use its output anywhere but in tests.
 *
 *   ota-evil-meta --in FILE --out FILE [--set PATH=JSON]... [--describe NAME=FILE]...
 *                 [--target PATH=FILE]... [--role-key ROLE=KEYFILE]... [--key KEYFILE]...
 *                 [--keep-signatures]
 *
 * Edits apply to the "signed" object of --in, in this order:
 *   --set a.b.c=JSON          set signed.a.b.c (objects created as needed) to the JSON value
 *   --describe NAME=FILE      signed.meta[NAME] = {version, length, hashes.sha256} of FILE
 *                             (a timestamp naming a snapshot, a snapshot naming targets)
 *   --target PATH=FILE        signed.targets[PATH] gets FILE's length and sha256 (its
 *                             custom member is kept)
 *   --role-key ROLE=KEYFILE   root: ROLE is given the key of KEYFILE (added to signed.keys);
 *                             the first --role-key of a role replaces the role's key list
 * Then the canonical bytes of "signed" are signed with every --key (key files as
 * ota-publish writes them; $OTA_PASSPHRASE for encrypted ones). The signatures of --in are
 * dropped unless --keep-signatures. The output is compact JSON with sorted keys. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ota/cjson.h"
#include "ota/fsutil.h"
#include "ota/hash.h"
#include "ota/keys.h"
#include "ota/signer.h"

#define ARGS_MAX 32
#define META_MAX (16u << 20)

static int
die(const char *what, const char *msg)
{
    fprintf(stderr, "ota-evil-meta: %s: %s\n", what, msg);
    return 1;
}

/* Split "LEFT=RIGHT" at the first '='. */
static int
split(char *arg, char **left, char **right)
{
    char *eq = strchr(arg, '=');

    if (eq == NULL || eq == arg)
        return -1;
    *eq = '\0';
    *left = arg;
    *right = eq + 1;
    return 0;
}

static json_t *
load_json(const char *path, unsigned char **bytes, size_t *len, struct ota_diag *d)
{
    unsigned char *buf = NULL;
    size_t         n = 0;
    json_t        *j = NULL;

    if (ota_read_file(path, META_MAX, &buf, &n, d) != OTA_OK)
        return NULL;
    if (ota_json_parse_data(buf, n, META_MAX, &j, d) != OTA_OK)
        j = NULL;
    if (bytes != NULL && j != NULL) {
        *bytes = buf;
        *len = n;
    } else {
        free(buf);
    }
    return j;
}

/* signed.a.b.c = value; intermediate objects are created. */
static int
set_path(json_t *root, char *path, json_t *value)
{
    json_t *o = root;
    char   *p = path, *dot;

    while ((dot = strchr(p, '.')) != NULL) {
        json_t *next;
        *dot = '\0';
        next = json_object_get(o, p);
        if (next == NULL) {
            next = json_object();
            json_object_set_new(o, p, next);
        }
        if (!json_is_object(next)) {
            json_decref(value);
            return -1;
        }
        o = next;
        p = dot + 1;
    }
    return json_object_set_new(o, p, value) == 0 ? 0 : -1;
}

/* {version, length, hashes.sha256} of a metadata file. */
static json_t *
describe(const char *path, struct ota_diag *d)
{
    unsigned char *bytes = NULL;
    size_t         len = 0;
    char           hex[OTA_SHA256_HEX];
    json_t        *doc = load_json(path, &bytes, &len, d), *v;

    if (doc == NULL)
        return NULL;
    v = json_object_get(json_object_get(doc, "signed"), "version");
    if (!json_is_integer(v) || ota_sha256_hex(bytes, len, hex) != OTA_OK) {
        ota_diag_set(d, OTA_E_FORMAT, "'%s' has no signed.version", path);
        json_decref(doc);
        free(bytes);
        return NULL;
    }
    v = json_pack("{s:I, s:I, s:{s:s}}", "version", json_integer_value(v), "length",
                  (json_int_t)len, "hashes", "sha256", hex);
    json_decref(doc);
    free(bytes);
    return v;
}

static int
set_target(json_t *signed_, const char *tpath, const char *file, struct ota_diag *d)
{
    unsigned char      sha[OTA_SHA256_LEN];
    char               hex[OTA_SHA256_HEX];
    unsigned long long len = 0;
    json_t            *targets = json_object_get(signed_, "targets"), *t;

    if (!json_is_object(targets) || ota_sha256_file(file, sha, &len, d) != OTA_OK)
        return -1;
    ota_hex_encode(sha, sizeof sha, hex);
    t = json_object_get(targets, tpath);
    if (t == NULL) {
        t = json_object();
        json_object_set_new(targets, tpath, t);
    }
    json_object_set_new(t, "length", json_integer((json_int_t)len));
    json_object_set_new(t, "hashes", json_pack("{s:s}", "sha256", hex));
    return 0;
}

static int
role_key(json_t *signed_, const char *role, const char *keyfile, int first, struct ota_diag *d)
{
    struct ota_pubkey pk;
    json_t           *r = json_object_get(json_object_get(signed_, "roles"), role);
    json_t           *keys = json_object_get(signed_, "keys");

    if (!json_is_object(r) || !json_is_object(keys)) {
        ota_diag_set(d, OTA_E_FORMAT, "not a root with role '%s'", role);
        return -1;
    }
    if (ota_seckey_load_public(keyfile, &pk, d) != OTA_OK)
        return -1;
    if (first)
        json_object_set_new(r, "keyids", json_array());
    json_array_append_new(json_object_get(r, "keyids"), json_string(pk.keyid));
    json_object_set_new(keys, pk.keyid, ota_pubkey_to_json(&pk));
    return 0;
}

static int
sign_with(json_t *sigs, const char *keyfile, const char *msg, size_t len, struct ota_diag *d)
{
    struct ota_passphrase_src src = {-1, "OTA_PASSPHRASE", 0};
    struct ota_seckey        *k = NULL;
    char                     *pw = NULL;
    int                       enc = ota_seckey_file_encrypted(keyfile);
    ota_err                   rc = OTA_OK;

    if (enc < 0)
        return ota_diag_set(d, OTA_E_IO, "cannot read key file '%s'", keyfile), -1;
    if (enc)
        rc = ota_passphrase_get(&src, "passphrase", 0, &pw, d);
    if (rc == OTA_OK)
        rc = ota_seckey_load(keyfile, pw, &k, d);
    if (rc == OTA_OK)
        rc = ota_seckey_sign(k, msg, len, sigs, d);
    ota_passphrase_free(pw);
    ota_seckey_free(k);
    return rc == OTA_OK ? 0 : -1;
}

int
main(int argc, char **argv)
{
    const char     *in = NULL, *out = NULL, *keys[ARGS_MAX];
    char           *sets[ARGS_MAX], *descs[ARGS_MAX], *targets[ARGS_MAX], *rkeys[ARGS_MAX];
    size_t          nk = 0, ns = 0, nd = 0, nt = 0, nr = 0, canon_len = 0;
    int             keep = 0, status = 1;
    json_t         *doc = NULL, *signed_, *sigs;
    char           *canon = NULL, *text = NULL, *l, *r;
    struct ota_diag d;

    memset(&d, 0, sizeof d);
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        char       *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--keep-signatures") == 0) {
            keep = 1;
            continue;
        }
        if (v == NULL)
            goto usage;
        i++;
        if (strcmp(a, "--in") == 0)
            in = v;
        else if (strcmp(a, "--out") == 0)
            out = v;
        else if (strcmp(a, "--key") == 0 && nk < ARGS_MAX)
            keys[nk++] = v;
        else if (strcmp(a, "--set") == 0 && ns < ARGS_MAX)
            sets[ns++] = v;
        else if (strcmp(a, "--describe") == 0 && nd < ARGS_MAX)
            descs[nd++] = v;
        else if (strcmp(a, "--target") == 0 && nt < ARGS_MAX)
            targets[nt++] = v;
        else if (strcmp(a, "--role-key") == 0 && nr < ARGS_MAX)
            rkeys[nr++] = v;
        else
            goto usage;
    }
    if (in == NULL || out == NULL)
        goto usage;
    doc = load_json(in, NULL, NULL, &d);
    if (doc == NULL)
        return die(in, d.msg);
    signed_ = json_object_get(doc, "signed");
    if (!json_is_object(signed_)) {
        die(in, "no 'signed' object");
        goto out;
    }
    for (size_t i = 0; i < ns; i++) {
        json_t *v = NULL;
        if (split(sets[i], &l, &r) != 0 ||
            ota_json_parse_data(r, strlen(r), META_MAX, &v, &d) != OTA_OK ||
            set_path(signed_, l, v) != 0) {
            die("--set", d.msg[0] ? d.msg : "want PATH=JSON through objects");
            goto out;
        }
    }
    for (size_t i = 0; i < nd; i++) {
        json_t *mf;
        if (split(descs[i], &l, &r) != 0 || (mf = describe(r, &d)) == NULL) {
            die("--describe", d.msg[0] ? d.msg : "want NAME=FILE");
            goto out;
        }
        if (!json_is_object(json_object_get(signed_, "meta")))
            json_object_set_new(signed_, "meta", json_object());
        json_object_set_new(json_object_get(signed_, "meta"), l, mf);
    }
    for (size_t i = 0; i < nt; i++) {
        if (split(targets[i], &l, &r) != 0 || set_target(signed_, l, r, &d) != 0) {
            die("--target", d.msg[0] ? d.msg : "want PATH=FILE in a targets document");
            goto out;
        }
    }
    for (size_t i = 0; i < nr; i++) {
        int first = 1;
        if (split(rkeys[i], &l, &r) != 0) {
            die("--role-key", "want ROLE=KEYFILE");
            goto out;
        }
        for (size_t j = 0; j < i; j++)
            if (strcmp(rkeys[j], l) == 0) /* split left the role name alone in rkeys[j] */
                first = 0;
        if (role_key(signed_, l, r, first, &d) != 0) {
            die("--role-key", d.msg);
            goto out;
        }
    }
    if (ota_cjson_encode(signed_, META_MAX, &canon, &canon_len, &d) != OTA_OK) {
        die("signed", d.msg);
        goto out;
    }
    sigs = json_object_get(doc, "signatures");
    if (!keep || !json_is_array(sigs)) {
        sigs = json_array();
        json_object_set_new(doc, "signatures", sigs);
    }
    for (size_t i = 0; i < nk; i++) {
        if (sign_with(sigs, keys[i], canon, canon_len, &d) != 0) {
            die(keys[i], d.msg);
            goto out;
        }
    }
    text = json_dumps(doc, JSON_COMPACT | JSON_SORT_KEYS);
    if (text == NULL) {
        die(out, "out of memory");
        goto out;
    }
    if (ota_write_file_atomic(out, text, strlen(text), 0644, 0, &d) != OTA_OK) {
        die(out, d.msg);
        goto out;
    }
    status = 0;
out:
    free(text);
    free(canon);
    json_decref(doc);
    return status;
usage:
    fputs("usage: ota-evil-meta --in FILE --out FILE [--set PATH=JSON]...\n"
          "                     [--describe NAME=FILE]... [--target PATH=FILE]...\n"
          "                     [--role-key ROLE=KEYFILE]... [--key KEYFILE]...\n"
          "                     [--keep-signatures]\n"
          "A test tool: rewrites and re-signs TUF metadata (see its source).\n",
          stderr);
    return 2;
}
