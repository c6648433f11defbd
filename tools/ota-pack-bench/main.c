/* ota-pack-bench: packs a tree with ota_bundle_pack (the function behind `ota-publish pack`)
 * using a throwaway key from a fixed seed, for the pack benchmark (tools/bench/bench-pack.sh).
 *
 *   ota-pack-bench SRC_DIR OUT [LEVEL [THREADS]]   pack (default level 3, 2 threads)
 *   ota-pack-bench --unpack BUNDLE DEST_DIR        verify with the same key and extract
 *
 * Prints "<bytes> <sha256>" of the bundle on success. Exit status 0 ok, 1 failed, 2 usage. */
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ota/bundle.h"
#include "ota/fsutil.h"
#include "ota/keys.h"

struct bench_key {
    unsigned char     sk[crypto_sign_SECRETKEYBYTES];
    struct ota_pubkey pub;
};

static ota_err
bench_sign(void *ctx, const void *msg, size_t len, json_t *sigs, struct ota_diag *d)
{
    struct bench_key *k = ctx;
    unsigned char     sig[crypto_sign_BYTES];
    char              hex[2 * crypto_sign_BYTES + 1];

    crypto_sign_detached(sig, NULL, msg, len, k->sk);
    ota_hex_encode(sig, sizeof sig, hex);
    if (json_array_append_new(sigs, json_pack("{s:s, s:s}", "keyid", k->pub.keyid, "sig", hex)))
        return ota_diag_set(d, OTA_E_NOMEM, "out of memory");
    return OTA_OK;
}

static ota_err
bench_verify(void *ctx, const void *msg, size_t len, const json_t *sigs, struct ota_diag *d)
{
    struct bench_key          *k = ctx;
    const struct ota_role_keys role = { "targets", &k->pub, 1, 1 };

    return ota_threshold_verify(&role, sigs, msg, len, NULL, d);
}

int
main(int argc, char **argv)
{
    static struct bench_key key;
    unsigned char           seed[crypto_sign_SEEDBYTES], pk[crypto_sign_PUBLICKEYBYTES];
    struct ota_diag         d;
    ota_err                 rc;

    if (argc < 3 || argc > 5 || (strcmp(argv[1], "--unpack") == 0 && argc != 4)) {
        fprintf(stderr, "usage: ota-pack-bench SRC_DIR OUT [LEVEL [THREADS]]\n"
                        "       ota-pack-bench --unpack BUNDLE DEST_DIR\n");
        return 2;
    }
    if (sodium_init() < 0) {
        fprintf(stderr, "ota-pack-bench: cannot initialise libsodium\n");
        return 1;
    }
    memset(seed, 0x42, sizeof seed);
    crypto_sign_seed_keypair(pk, key.sk, seed);
    if (ota_pubkey_from_ed25519(pk, &key.pub, &d) != OTA_OK) {
        fprintf(stderr, "ota-pack-bench: %s\n", d.msg);
        return 1;
    }
    if (strcmp(argv[1], "--unpack") == 0) {
        struct ota_bundle_read_opts ro;
        memset(&ro, 0, sizeof ro);
        ro.verify = bench_verify;
        ro.verify_ctx = &key;
        ro.dest_dir = argv[3];
        rc = ota_bundle_read_file(argv[2], &ro, NULL, &d);
        if (rc != OTA_OK) {
            fprintf(stderr, "ota-pack-bench: %s: %s\n", ota_err_name(rc), d.msg);
            return 1;
        }
        return 0;
    } else {
        struct ota_release     rel;
        struct ota_pack_opts   po;
        struct ota_pack_result res;
        char                   hex[OTA_SHA256_HEX];

        memset(&rel, 0, sizeof rel);
        strcpy(rel.app, "bench");
        strcpy(rel.version, "1.0");
        if (ota_version_parse(rel.version, &rel.v) != OTA_OK)
            return 1;
        strcpy(rel.model, "m1");
        strcpy(rel.runtime_min, "1");
        strcpy(rel.min_agent, "0");
        memset(&po, 0, sizeof po);
        po.src_dir = argv[1];
        po.out_path = argv[2];
        po.release = &rel;
        po.sign = bench_sign;
        po.sign_ctx = &key;
        po.level = argc > 3 ? atoi(argv[3]) : 3;
        po.threads = argc > 4 ? atoi(argv[4]) : 2;
        po.force = 1;
        rc = ota_bundle_pack(&po, &res, &d);
        if (rc != OTA_OK) {
            fprintf(stderr, "ota-pack-bench: %s: %s\n", ota_err_name(rc), d.msg);
            return 1;
        }
        ota_hex_encode(res.sha256, sizeof res.sha256, hex);
        printf("%llu %s\n", (unsigned long long)res.length, hex);
    }
    return 0;
}
