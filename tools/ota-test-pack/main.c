/* ota-test-pack: packs a bundle for tests, signing its manifest with an ed25519 key made from
 * a fixed seed (so a test repository built with the same seed trusts it). Not for production
 * use: the seed is given on the command line.
 *
 *   ota-test-pack --seed HEX64 --src DIR --out FILE --release JSON */
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ota/bundle.h"
#include "ota/cjson.h"
#include "ota/fsutil.h"
#include "ota/keys.h"
#include "ota/release.h"

struct signer {
    unsigned char     sk[crypto_sign_SECRETKEYBYTES];
    struct ota_pubkey pk;
};

static ota_err
sign_cb(void *ctx, const void *msg, size_t len, json_t *sigs, struct ota_diag *d)
{
    struct signer *s = ctx;
    unsigned char  sig[crypto_sign_BYTES];
    char           hex[2 * crypto_sign_BYTES + 1];

    crypto_sign_detached(sig, NULL, msg, len, s->sk);
    ota_hex_encode(sig, sizeof(sig), hex);
    if (json_array_append_new(sigs, json_pack("{s:s, s:s}", "keyid", s->pk.keyid, "sig", hex)))
        return ota_diag_set(d, OTA_E_NOMEM, "out of memory");
    return OTA_OK;
}

int
main(int argc, char **argv)
{
    const char            *seed_hex = NULL, *src = NULL, *out = NULL, *rel_json = NULL;
    unsigned char          seed[32], pk[crypto_sign_PUBLICKEYBYTES];
    struct signer          s;
    struct ota_release     rel;
    struct ota_pack_opts   o;
    struct ota_pack_result res;
    struct ota_diag        d;
    json_t                *j = NULL;
    ota_err                rc;

    for (int i = 1; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--seed") == 0)
            seed_hex = argv[i + 1];
        else if (strcmp(argv[i], "--src") == 0)
            src = argv[i + 1];
        else if (strcmp(argv[i], "--out") == 0)
            out = argv[i + 1];
        else if (strcmp(argv[i], "--release") == 0)
            rel_json = argv[i + 1];
    }
    if (seed_hex == NULL || src == NULL || out == NULL || rel_json == NULL) {
        fprintf(stderr, "usage: ota-test-pack --seed HEX64 --src DIR --out FILE --release JSON\n");
        return 2;
    }
    if (sodium_init() < 0 || ota_hex_decode(seed_hex, seed, sizeof(seed)) != OTA_OK) {
        fprintf(stderr, "ota-test-pack: bad seed\n");
        return 2;
    }
    memset(&rel, 0, sizeof(rel));
    crypto_sign_seed_keypair(pk, s.sk, seed);
    rc = ota_pubkey_from_ed25519(pk, &s.pk, &d);
    if (rc == OTA_OK)
        rc = ota_cjson_parse(rel_json, strlen(rel_json), OTA_JSON_MAX, &j, &d);
    if (rc == OTA_OK)
        rc = ota_release_from_json(j, &rel, &d);
    if (rc == OTA_OK) {
        memset(&o, 0, sizeof(o));
        o.src_dir = src;
        o.out_path = out;
        o.release = &rel;
        o.sign = sign_cb;
        o.sign_ctx = &s;
        o.level = 3;
        o.threads = 1;
        o.force = 1;
        rc = ota_bundle_pack(&o, &res, &d);
    }
    sodium_memzero(&s, sizeof(s));
    ota_release_clear(&rel);
    json_decref(j);
    if (rc != OTA_OK) {
        fprintf(stderr, "ota-test-pack: %s\n", d.msg);
        return 1;
    }
    return 0;
}
