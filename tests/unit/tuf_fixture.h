/* TUF test fixtures: ed25519 keys from fixed seeds (libsodium directly, so signatures are
 * byte-stable) and builders for signed root, timestamp, snapshot and targets documents.
 * Included by test_tuf.c and test_tufclient.c; everything is static. */
#ifndef OTA_TEST_TUF_FIXTURE_H
#define OTA_TEST_TUF_FIXTURE_H

#include <jansson.h>
#include <sodium.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ota/cjson.h"
#include "ota/fsutil.h"
#include "ota/hash.h"
#include "ota/keys.h"

struct fx_key {
    unsigned char pk[crypto_sign_PUBLICKEYBYTES];
    unsigned char sk[crypto_sign_SECRETKEYBYTES];
    char          keyid[OTA_KEYID_HEX];
};

/* Fixtures abort on impossible failures: a broken fixture is not a test result. */
#define FX_CHECK(x)                                                                                \
    do {                                                                                           \
        if (!(x)) {                                                                                \
            fprintf(stderr, "%s:%d: fixture failure: %s\n", __FILE__, __LINE__, #x);               \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

/* Key number n: seed = 32 bytes of value n. */
static void
fx_key_init(struct fx_key *k, unsigned char n)
{
    unsigned char     seed[crypto_sign_SEEDBYTES];
    struct ota_pubkey pub;

    FX_CHECK(sodium_init() >= 0);
    memset(seed, n, sizeof seed);
    FX_CHECK(crypto_sign_seed_keypair(k->pk, k->sk, seed) == 0);
    FX_CHECK(ota_pubkey_from_ed25519(k->pk, &pub, NULL) == OTA_OK);
    memcpy(k->keyid, pub.keyid, sizeof k->keyid);
}

static json_t *
fx_key_json(const struct fx_key *k)
{
    char hex[2 * crypto_sign_PUBLICKEYBYTES + 1];

    ota_hex_encode(k->pk, sizeof k->pk, hex);
    return json_pack("{s:s, s:s, s:{s:s}}", "keytype", "ed25519", "scheme", "ed25519", "keyval",
                     "public", hex);
}

static void
fx_time(int64_t t, char out[21])
{
    ota_time_format(t, out);
}

/* Signature of k over the canonical bytes of signed_obj, as a TUF signature object. */
static json_t *
fx_sig(const struct fx_key *k, const json_t *signed_obj)
{
    unsigned char sig[crypto_sign_BYTES];
    char          hex[2 * crypto_sign_BYTES + 1];
    char         *canon = NULL;
    size_t        len = 0;

    FX_CHECK(ota_cjson_encode(signed_obj, OTA_JSON_MAX, &canon, &len, NULL) == OTA_OK);
    crypto_sign_detached(sig, NULL, (const unsigned char *)canon, len, k->sk);
    free(canon);
    ota_hex_encode(sig, sizeof sig, hex);
    return json_pack("{s:s, s:s}", "keyid", k->keyid, "sig", hex);
}

/* Envelope {"signatures": [...], "signed": signed_obj}; signed_obj is stolen. */
static json_t *
fx_sign(json_t *signed_obj, const struct fx_key *const *keys, size_t n)
{
    json_t *sigs = json_array();
    size_t  i;

    FX_CHECK(signed_obj != NULL && sigs != NULL);
    for (i = 0; i < n; i++)
        FX_CHECK(json_array_append_new(sigs, fx_sig(keys[i], signed_obj)) == 0);
    return json_pack("{s:o, s:o}", "signatures", sigs, "signed", signed_obj);
}

/* Bytes of a document as a repository serves it (compact JSON, control characters escaped:
 * a signature covers the canonical form, not the served one); doc is kept. */
static char *
fx_bytes(const json_t *doc, size_t *len)
{
    char *out = json_dumps(doc, JSON_COMPACT | JSON_SORT_KEYS);

    FX_CHECK(out != NULL);
    *len = strlen(out);
    return out;
}

struct fx_role {
    const struct fx_key *keys[8];
    size_t               n;
    int                  threshold;
};

/* "signed" of a root; roles in the order root, timestamp, snapshot, targets. */
static json_t *
fx_root_signed(long long version, int64_t expires, int consistent, const struct fx_role r[4])
{
    static const char *const names[4] = {"root", "timestamp", "snapshot", "targets"};
    json_t                  *keys = json_object(), *roles = json_object();
    char                     exp[21];
    size_t                   i, j;

    for (i = 0; i < 4; i++) {
        json_t *ids = json_array();
        for (j = 0; j < r[i].n; j++) {
            FX_CHECK(json_object_set_new(keys, r[i].keys[j]->keyid, fx_key_json(r[i].keys[j])) ==
                     0);
            FX_CHECK(json_array_append_new(ids, json_string(r[i].keys[j]->keyid)) == 0);
        }
        FX_CHECK(json_object_set_new(
                     roles, names[i],
                     json_pack("{s:o, s:i}", "keyids", ids, "threshold", r[i].threshold)) == 0);
    }
    fx_time(expires, exp);
    return json_pack("{s:s, s:s, s:I, s:s, s:b, s:o, s:o}", "_type", "root", "spec_version",
                     "1.0.31", "version", (json_int_t)version, "expires", exp,
                     "consistent_snapshot", consistent, "keys", keys, "roles", roles);
}

/* A METAFILES entry; with content, also its length and sha256. */
static json_t *
fx_meta_entry(long long version, const void *content, size_t len)
{
    char hex[OTA_SHA256_HEX];

    if (content == NULL)
        return json_pack("{s:I}", "version", (json_int_t)version);
    FX_CHECK(ota_sha256_hex(content, len, hex) == OTA_OK);
    return json_pack("{s:I, s:I, s:{s:s}}", "version", (json_int_t)version, "length",
                     (json_int_t)len, "hashes", "sha256", hex);
}

static json_t *
fx_timestamp_signed(long long version, int64_t expires, json_t *snapshot_entry)
{
    char exp[21];

    fx_time(expires, exp);
    return json_pack("{s:s, s:s, s:I, s:s, s:{s:o}}", "_type", "timestamp", "spec_version",
                     "1.0.31", "version", (json_int_t)version, "expires", exp, "meta",
                     "snapshot.json", snapshot_entry);
}

/* meta is stolen. */
static json_t *
fx_snapshot_signed(long long version, int64_t expires, json_t *meta)
{
    char exp[21];

    fx_time(expires, exp);
    return json_pack("{s:s, s:s, s:I, s:s, s:o}", "_type", "snapshot", "spec_version", "1.0.31",
                     "version", (json_int_t)version, "expires", exp, "meta", meta);
}

static json_t *
fx_target_entry(const void *content, size_t len, json_t *custom)
{
    char    hex[OTA_SHA256_HEX];
    json_t *t;

    FX_CHECK(ota_sha256_hex(content, len, hex) == OTA_OK);
    t = json_pack("{s:I, s:{s:s}}", "length", (json_int_t)len, "hashes", "sha256", hex);
    if (custom != NULL)
        FX_CHECK(json_object_set_new(t, "custom", custom) == 0);
    return t;
}

/* targets and delegations (may be NULL) are stolen. */
static json_t *
fx_targets_signed(long long version, int64_t expires, json_t *targets, json_t *delegations)
{
    char    exp[21];
    json_t *s;

    fx_time(expires, exp);
    s = json_pack("{s:s, s:s, s:I, s:s, s:o}", "_type", "targets", "spec_version", "1.0.31",
                  "version", (json_int_t)version, "expires", exp, "targets",
                  targets ? targets : json_object());
    if (delegations != NULL)
        FX_CHECK(json_object_set_new(s, "delegations", delegations) == 0);
    return s;
}

/* One delegated role {name, keyids, threshold, paths, terminating}; paths is stolen. */
static json_t *
fx_delegated_role(const char *name, const struct fx_key *const *keys, size_t n, int threshold,
                  json_t *paths, int terminating)
{
    json_t *ids = json_array();
    size_t  i;

    for (i = 0; i < n; i++)
        FX_CHECK(json_array_append_new(ids, json_string(keys[i]->keyid)) == 0);
    return json_pack("{s:s, s:o, s:i, s:o, s:b}", "name", name, "keyids", ids, "threshold",
                     threshold, "paths", paths, "terminating", terminating);
}

#endif
