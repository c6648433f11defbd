/* Public keys, key ids, signature and threshold checks. See ota/keys.h. */
#include "ota/keys.h"

#include <sodium.h>
#include <string.h>

#include "ota/cjson.h"
#include "ota/fsutil.h"
#include "ota/hash.h"

static int
sodium_ready(void)
{
    static int ok = 0;

    if (!ok)
        ok = sodium_init() >= 0;
    return ok;
}

ota_err
ota_keyid_of(const json_t *keyobj, char out[OTA_KEYID_HEX], struct ota_diag *d)
{
    char   *canon = NULL;
    size_t  len = 0;
    ota_err rc;

    rc = ota_cjson_encode(keyobj, 1 << 16, &canon, &len, d);
    if (rc != OTA_OK)
        return rc;
    rc = ota_sha256_hex(canon, len, out);
    free(canon);
    if (rc != OTA_OK)
        return ota_diag_set(d, rc, "cannot hash key object");
    return OTA_OK;
}

json_t *
ota_pubkey_to_json(const struct ota_pubkey *k)
{
    char hex[2 * OTA_ED25519_PK + 1];

    ota_hex_encode(k->ed25519, OTA_ED25519_PK, hex);
    return json_pack("{s:s, s:s, s:{s:s}}", "keytype", "ed25519", "scheme", "ed25519", "keyval",
                     "public", hex);
}

ota_err
ota_pubkey_from_ed25519(const unsigned char pk[OTA_ED25519_PK], struct ota_pubkey *out,
                        struct ota_diag *d)
{
    struct ota_pubkey k;
    json_t           *obj;
    ota_err           rc;

    memset(&k, 0, sizeof k);
    k.type = OTA_KEY_ED25519;
    memcpy(k.ed25519, pk, OTA_ED25519_PK);
    obj = ota_pubkey_to_json(&k);
    if (obj == NULL)
        return ota_diag_set(d, OTA_E_NOMEM, "out of memory");
    rc = ota_keyid_of(obj, k.keyid, d);
    json_decref(obj);
    if (rc == OTA_OK)
        *out = k;
    return rc;
}

ota_err
ota_pubkey_from_json(const json_t *obj, const char *expect_keyid, struct ota_pubkey *out,
                     struct ota_diag *d)
{
    struct ota_pubkey k;
    const char       *keytype, *scheme, *pub;
    json_t           *keyval;
    ota_err           rc;

    memset(&k, 0, sizeof k);
    if (!json_is_object(obj))
        return ota_diag_set(d, OTA_E_FORMAT, "key must be an object");
    if ((rc = ota_json_get_str(obj, "keytype", 64, 1, &keytype, d)) != OTA_OK ||
        (rc = ota_json_get_str(obj, "scheme", 64, 1, &scheme, d)) != OTA_OK ||
        (rc = ota_json_get_obj(obj, "keyval", &keyval, d)) != OTA_OK ||
        (rc = ota_json_get_str(keyval, "public", 8192, 1, &pub, d)) != OTA_OK)
        return rc;
    if (strcmp(keytype, "ed25519") != 0 || strcmp(scheme, "ed25519") != 0)
        return ota_diag_set(d, OTA_E_FORMAT, "unsupported key type '%.32s' scheme '%.32s'",
                            keytype, scheme);
    k.type = OTA_KEY_ED25519;
    if (ota_hex_decode(pub, k.ed25519, OTA_ED25519_PK) != OTA_OK)
        return ota_diag_set(d, OTA_E_FORMAT, "ed25519 public key must be 64 hex digits");
    rc = ota_keyid_of(obj, k.keyid, d);
    if (rc != OTA_OK)
        return rc;
    if (expect_keyid != NULL && strcmp(expect_keyid, k.keyid) != 0)
        return ota_diag_set(d, OTA_E_KEY_UNKNOWN, "key listed as '%.16s...' has key id '%.16s...'",
                            expect_keyid, k.keyid);
    *out = k;
    return OTA_OK;
}

ota_err
ota_sig_verify(const struct ota_pubkey *k, const void *msg, size_t len, const char *sig_hex,
               struct ota_diag *d)
{
    unsigned char sig[OTA_ED25519_SIG];

    if (!sodium_ready())
        return ota_diag_set(d, OTA_E_CRYPTO, "cannot initialise libsodium");
    if (k->type != OTA_KEY_ED25519)
        return ota_diag_set(d, OTA_E_FORMAT, "unsupported key type");
    if (ota_hex_decode(sig_hex, sig, sizeof sig) != OTA_OK)
        return ota_diag_set(d, OTA_E_FORMAT, "ed25519 signature must be 128 hex digits");
    if (crypto_sign_verify_detached(sig, msg, len, k->ed25519) != 0)
        return ota_diag_set(d, OTA_E_SIG, "signature by key '%.16s...' does not verify", k->keyid);
    return OTA_OK;
}

ota_err
ota_threshold_verify(const struct ota_role_keys *role, const json_t *signatures, const void *msg,
                     size_t len, unsigned *valid, struct ota_diag *d)
{
    unsigned char counted[256];
    size_t        i, j;
    unsigned      count = 0;
    const char   *name = role->role ? role->role : "role";

    if (!json_is_array(signatures))
        return ota_diag_set(d, OTA_E_FORMAT, "%s: signatures must be an array", name);
    if (json_array_size(signatures) > 256)
        return ota_diag_set(d, OTA_E_FORMAT, "%s: more than 256 signatures", name);
    if (role->nkeys > sizeof counted)
        return ota_diag_set(d, OTA_E_FORMAT, "%s: more than 256 keys", name);
    if (role->threshold < 1)
        return ota_diag_set(d, OTA_E_FORMAT, "%s: threshold must be at least 1", name);
    memset(counted, 0, sizeof counted);
    for (i = 0; i < json_array_size(signatures); i++) {
        const json_t *s = json_array_get(signatures, i);
        const char   *keyid, *sig;
        if (!json_is_object(s) || ota_json_get_str(s, "keyid", 64, 1, &keyid, NULL) != OTA_OK ||
            ota_json_get_str(s, "sig", OTA_SIG_HEX_MAX, 0, &sig, NULL) != OTA_OK)
            return ota_diag_set(d, OTA_E_FORMAT, "%s: signature %zu is malformed", name, i);
        for (j = 0; j < role->nkeys; j++) {
            if (strcmp(role->keys[j].keyid, keyid) != 0)
                continue;
            /* A bad signature from a trusted key does not count; it does not fail the
             * document either, since a threshold of other keys may still be met. */
            if (!counted[j] && ota_sig_verify(&role->keys[j], msg, len, sig, NULL) == OTA_OK) {
                counted[j] = 1;
                count++;
            }
            break;
        }
    }
    if (valid != NULL)
        *valid = count;
    if (count < role->threshold)
        return ota_diag_set(d, OTA_E_THRESHOLD, "%s: %u of %u required signatures", name, count,
                            role->threshold);
    return OTA_OK;
}
