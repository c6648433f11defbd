/* Public keys, key ids, signature and threshold checks. See ota/keys.h and formats/keys.md.
 *
 * ed25519 goes through libsodium; the PEM key types (ECDSA P-256, RSASSA-PSS) through
 * libcrypto's EVP interface. Those keys are parsed and checked once, in ota_pubkey_from_json,
 * and kept as DER; each verification decodes the DER again, so a struct ota_pubkey owns no
 * libcrypto object and stays a plain value. */
#include "ota/keys.h"

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>
#include <sodium.h>
#include <string.h>

#include "ota/cjson.h"
#include "ota/fsutil.h"
#include "ota/hash.h"

int
ota_sodium_ready(void)
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

/* ---------------------------------------------------------------- PEM key types */

#define PEM_BEGIN "-----BEGIN PUBLIC KEY-----"
#define PEM_END "-----END PUBLIC KEY-----"
#define ECDSA_P256_SIG_MAX 72 /* SEQUENCE { INTEGER r, INTEGER s }, each at most 33 bytes */
#define RSA_BITS_MIN 2048
#define RSA_BITS_MAX 4096
#define PSS_SALT_LEN 32 /* the SHA-256 digest length, as securesystemslib and tuf-js sign */

/* The DER SubjectPublicKeyInfo of every P-256 key in named-curve form with an uncompressed
 * point starts with these 27 bytes (SEQUENCE, AlgorithmIdentifier {id-ecPublicKey,
 * prime256v1}, BIT STRING of 66 bytes, 0x04) and is followed by the 64 bytes of X and Y.
 * Matching them is how the curve is pinned: explicit curve parameters, compressed points and
 * every other curve are refused. */
static const unsigned char p256_spki_prefix[] = {
    0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06,
    0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00, 0x04,
};
#define P256_SPKI_LEN (sizeof p256_spki_prefix + 64)

static int
is_b64_char(char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '+' ||
           c == '/' || c == '=';
}

/* Skip one line break (LF or CRLF) at *p; 0 if there is none. */
static int
skip_eol(const char **p)
{
    if ((*p)[0] == '\n') {
        *p += 1;
        return 1;
    }
    if ((*p)[0] == '\r' && (*p)[1] == '\n') {
        *p += 2;
        return 1;
    }
    return 0;
}

/* Decode pem, which must be exactly one "PUBLIC KEY" block: the BEGIN line first, then lines
 * of base64 (any length, LF or CRLF breaks), then the END line at the start of a line and at
 * most one line break after it. Nothing before, between or after: no headers, no second
 * block, no other label ("RSA PUBLIC KEY", "PRIVATE KEY", ...). */
static ota_err
pem_decode(const char *pem, unsigned char der[OTA_PUBKEY_DER_MAX], size_t *der_len,
           struct ota_diag *d)
{
    const char *p = pem, *body, *end, *b64_end = NULL;
    size_t      n = 0;

    if (strncmp(p, PEM_BEGIN, strlen(PEM_BEGIN)) != 0)
        return ota_diag_set(d, OTA_E_FORMAT, "public key does not start with '" PEM_BEGIN "'");
    p += strlen(PEM_BEGIN);
    if (!skip_eol(&p))
        return ota_diag_set(d, OTA_E_FORMAT, "no line break after '" PEM_BEGIN "'");
    body = p;
    for (;;) {
        if (is_b64_char(*p))
            p++;
        else if (!skip_eol(&p))
            break;
    }
    end = p;
    if (end == body || end[-1] != '\n' || strncmp(end, PEM_END, strlen(PEM_END)) != 0)
        return ota_diag_set(d, OTA_E_FORMAT,
                            "public key is not base64 lines ending with '" PEM_END "'");
    p = end + strlen(PEM_END);
    (void)skip_eol(&p);
    if (*p != '\0')
        return ota_diag_set(d, OTA_E_FORMAT, "text after '" PEM_END "' in a public key");
    if (sodium_base642bin(der, OTA_PUBKEY_DER_MAX, body, (size_t)(end - body), "\r\n", &n, &b64_end,
                          sodium_base64_VARIANT_ORIGINAL) != 0 ||
        b64_end != end || n == 0)
        return ota_diag_set(d, OTA_E_FORMAT, "public key is not valid base64 of at most %d bytes",
                            OTA_PUBKEY_DER_MAX);
    *der_len = n;
    return OTA_OK;
}

/* Decode a whole DER SubjectPublicKeyInfo into a libcrypto key; NULL if it is not one, or has
 * bytes after it. Callers hold an error-queue mark (ERR_set_mark) around libcrypto calls and
 * pop it, so what libcrypto queues while rejecting input never leaks to other users. */
static EVP_PKEY *
spki_decode(const unsigned char *der, size_t len)
{
    const unsigned char *p = der;
    EVP_PKEY            *pk = d2i_PUBKEY(NULL, &p, (long)len);

    if (pk != NULL && p != der + len) {
        EVP_PKEY_free(pk);
        pk = NULL;
    }
    return pk;
}

/* 1 if encoding pk gives back exactly der: the input was DER, not some looser BER form. */
static int
spki_is_canonical(EVP_PKEY *pk, const unsigned char *der, size_t len)
{
    unsigned char *enc = NULL;
    int            n = i2d_PUBKEY(pk, &enc);
    int            same = n > 0 && (size_t)n == len && memcmp(enc, der, len) == 0;

    OPENSSL_free(enc);
    return same;
}

/* 1 if the modulus is odd and the public exponent odd and above 1. Other keys can only come
 * from broken tooling (with an exponent of 1 every value is its own signature). The full
 * SP 800-56B public key check (EVP_PKEY_public_check) costs about 30 ms per RSA-4096 key,
 * on every load of a root; it is not worth that on a device. */
static int
rsa_numbers_sane(const EVP_PKEY *pk)
{
    BIGNUM *n = NULL, *e = NULL;
    int     ok;

    ok = EVP_PKEY_get_bn_param(pk, OSSL_PKEY_PARAM_RSA_N, &n) == 1 &&
         EVP_PKEY_get_bn_param(pk, OSSL_PKEY_PARAM_RSA_E, &e) == 1 && BN_is_odd(n) &&
         BN_is_odd(e) && !BN_is_one(e);
    BN_free(n);
    BN_free(e);
    return ok;
}

/* Check a decoded key against the type its keytype names. */
static ota_err
pem_key_check(enum ota_keytype type, const char *keytype, EVP_PKEY *pk, const unsigned char *der,
              size_t len, struct ota_diag *d)
{
    int base = EVP_PKEY_get_base_id(pk);

    if (type == OTA_KEY_ECDSA_P256) {
        char group[64] = "";
        if (base != EVP_PKEY_EC)
            return ota_diag_set(d, OTA_E_FORMAT, "keytype '%s' but the public key is not an ec key",
                                keytype);
        if (len != P256_SPKI_LEN || memcmp(der, p256_spki_prefix, sizeof p256_spki_prefix) != 0) {
            if (EVP_PKEY_get_group_name(pk, group, sizeof group, NULL) != 1)
                group[0] = '\0';
            if (strcmp(group, "prime256v1") == 0)
                return ota_diag_set(d, OTA_E_FORMAT,
                                    "ecdsa key is not in named-curve form with "
                                    "an uncompressed point");
            return ota_diag_set(d, OTA_E_FORMAT, "ecdsa key is on curve '%.32s', not p-256",
                                group[0] ? group : "unnamed");
        }
    } else {
        int bits;
        if (base != EVP_PKEY_RSA)
            return ota_diag_set(d, OTA_E_FORMAT,
                                "keytype '%s' but the public key is not an rsa key", keytype);
        bits = EVP_PKEY_get_bits(pk);
        if (bits < RSA_BITS_MIN || bits > RSA_BITS_MAX)
            return ota_diag_set(d, OTA_E_FORMAT, "rsa key has %d bits, not %d to %d", bits,
                                RSA_BITS_MIN, RSA_BITS_MAX);
        if (!rsa_numbers_sane(pk))
            return ota_diag_set(d, OTA_E_FORMAT,
                                "rsa key has an even modulus or an exponent "
                                "that is even or 1");
    }
    if (!spki_is_canonical(pk, der, len))
        return ota_diag_set(d, OTA_E_FORMAT, "public key is not in der form");
    return OTA_OK;
}

/* Fill k's PEM members from keyval.public. */
static ota_err
pem_key_parse(enum ota_keytype type, const char *keytype, const char *pem, struct ota_pubkey *k,
              struct ota_diag *d)
{
    size_t    pem_len = strlen(pem), der_len = 0;
    EVP_PKEY *pk;
    ota_err   rc;

    if (pem_len > OTA_PUBKEY_PEM_MAX)
        return ota_diag_set(d, OTA_E_FORMAT, "public key is longer than %d bytes",
                            OTA_PUBKEY_PEM_MAX);
    rc = pem_decode(pem, k->der, &der_len, d);
    if (rc != OTA_OK)
        return rc;
    ERR_set_mark();
    pk = spki_decode(k->der, der_len);
    if (pk == NULL)
        rc = ota_diag_set(d, OTA_E_FORMAT, "public key is not a subjectpublickeyinfo");
    else
        rc = pem_key_check(type, keytype, pk, k->der, der_len, d);
    EVP_PKEY_free(pk);
    ERR_pop_to_mark();
    if (rc != OTA_OK)
        return rc;
    k->type = type;
    k->der_len = (unsigned short)der_len;
    memcpy(k->pem, pem, pem_len + 1);
    return OTA_OK;
}

json_t *
ota_pubkey_to_json(const struct ota_pubkey *k)
{
    char        hex[2 * OTA_ED25519_PK + 1];
    const char *keytype, *scheme, *pub = k->pem;

    switch (k->type) {
    case OTA_KEY_ED25519:
        ota_hex_encode(k->ed25519, OTA_ED25519_PK, hex);
        keytype = scheme = "ed25519";
        pub = hex;
        break;
    case OTA_KEY_ECDSA_P256:
        keytype = k->ecdsa_legacy ? "ecdsa-sha2-nistp256" : "ecdsa";
        scheme = "ecdsa-sha2-nistp256";
        break;
    case OTA_KEY_RSA_PSS:
        keytype = "rsa";
        scheme = "rsassa-pss-sha256";
        break;
    default:
        return NULL;
    }
    return json_pack("{s:s, s:s, s:{s:s}}", "keytype", keytype, "scheme", scheme, "keyval",
                     "public", pub);
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
        (rc = ota_json_get_str(keyval, "public", OTA_PUBKEY_PEM_MAX, 1, &pub, d)) != OTA_OK)
        return rc;
    if (strcmp(keytype, "ed25519") == 0 && strcmp(scheme, "ed25519") == 0) {
        k.type = OTA_KEY_ED25519;
        if (ota_hex_decode(pub, k.ed25519, OTA_ED25519_PK) != OTA_OK)
            return ota_diag_set(d, OTA_E_FORMAT, "ed25519 public key must be 64 hex digits");
    } else if ((strcmp(keytype, "ecdsa") == 0 || strcmp(keytype, "ecdsa-sha2-nistp256") == 0) &&
               strcmp(scheme, "ecdsa-sha2-nistp256") == 0) {
        /* Older securesystemslib releases wrote the scheme name as the keytype. */
        k.ecdsa_legacy = strcmp(keytype, "ecdsa") != 0;
        rc = pem_key_parse(OTA_KEY_ECDSA_P256, keytype, pub, &k, d);
    } else if (strcmp(keytype, "rsa") == 0 && strcmp(scheme, "rsassa-pss-sha256") == 0) {
        rc = pem_key_parse(OTA_KEY_RSA_PSS, keytype, pub, &k, d);
    } else {
        rc = ota_diag_set(d, OTA_E_FORMAT, "unsupported key type '%.32s' scheme '%.32s'", keytype,
                          scheme);
    }
    if (rc != OTA_OK)
        return rc;
    rc = ota_keyid_of(obj, k.keyid, d);
    if (rc != OTA_OK)
        return rc;
    if (expect_keyid != NULL && strcmp(expect_keyid, k.keyid) != 0)
        return ota_diag_set(d, OTA_E_KEY_UNKNOWN, "key listed as '%.16s...' has key id '%.16s...'",
                            expect_keyid, k.keyid);
    *out = k;
    return OTA_OK;
}

static ota_err
ed25519_verify(const struct ota_pubkey *k, const void *msg, size_t len, const char *sig_hex,
               struct ota_diag *d)
{
    unsigned char sig[OTA_ED25519_SIG];

    if (!ota_sodium_ready())
        return ota_diag_set(d, OTA_E_CRYPTO, "cannot initialise libsodium");
    if (ota_hex_decode(sig_hex, sig, sizeof sig) != OTA_OK)
        return ota_diag_set(d, OTA_E_FORMAT, "ed25519 signature must be 128 hex digits");
    if (crypto_sign_verify_detached(sig, msg, len, k->ed25519) != 0)
        return ota_diag_set(d, OTA_E_SIG, "signature by key '%.16s...' does not verify", k->keyid);
    return OTA_OK;
}

/* 1 if sig is exactly one DER ECDSA-Sig-Value (SEQUENCE of two INTEGERs, minimal lengths,
 * nothing after it). libcrypto checks this too, but would report it as a failed signature. */
static int
ecdsa_sig_is_der(const unsigned char *sig, size_t len)
{
    const unsigned char *p = sig;
    unsigned char       *enc = NULL;
    ECDSA_SIG           *s = d2i_ECDSA_SIG(NULL, &p, (long)len);
    int                  ok = 0, n;

    if (s != NULL && p == sig + len) {
        n = i2d_ECDSA_SIG(s, &enc);
        ok = n > 0 && (size_t)n == len && memcmp(enc, sig, len) == 0;
    }
    OPENSSL_free(enc);
    ECDSA_SIG_free(s);
    return ok;
}

static ota_err
pem_verify(const struct ota_pubkey *k, const void *msg, size_t len, const char *sig_hex,
           struct ota_diag *d)
{
    unsigned char sig[OTA_SIG_HEX_MAX / 2];
    size_t        hex_len = strnlen(sig_hex, OTA_SIG_HEX_MAX + 1), sig_len = hex_len / 2;
    EVP_PKEY     *pk = NULL;
    EVP_MD_CTX   *ctx = NULL;
    EVP_PKEY_CTX *pctx = NULL; /* owned by ctx */
    ota_err       rc;

    ERR_set_mark();
    if (hex_len == 0 || hex_len > OTA_SIG_HEX_MAX || hex_len % 2 != 0 ||
        ota_hex_decode(sig_hex, sig, sig_len) != OTA_OK) {
        rc = ota_diag_set(d, OTA_E_FORMAT,
                          "signature must be an even number of hex digits, "
                          "at most %d",
                          OTA_SIG_HEX_MAX);
        goto out;
    }
    pk = spki_decode(k->der, k->der_len);
    if (pk == NULL) {
        rc = ota_diag_set(d, OTA_E_CRYPTO, "cannot load key '%.16s...'", k->keyid);
        goto out;
    }
    if (k->type == OTA_KEY_ECDSA_P256 &&
        (sig_len > ECDSA_P256_SIG_MAX || !ecdsa_sig_is_der(sig, sig_len))) {
        rc = ota_diag_set(d, OTA_E_FORMAT, "ecdsa signature is not a der sequence of two integers");
        goto out;
    }
    if (k->type == OTA_KEY_RSA_PSS && sig_len != (size_t)EVP_PKEY_get_size(pk)) {
        rc = ota_diag_set(d, OTA_E_FORMAT, "rsa signature has %zu bytes, not the %d of the modulus",
                          sig_len, EVP_PKEY_get_size(pk));
        goto out;
    }
    ctx = EVP_MD_CTX_new();
    if (ctx == NULL) {
        rc = ota_diag_set(d, OTA_E_NOMEM, "out of memory");
        goto out;
    }
    if (EVP_DigestVerifyInit(ctx, &pctx, EVP_sha256(), NULL, pk) != 1 ||
        (k->type == OTA_KEY_RSA_PSS &&
         (EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING) != 1 ||
          EVP_PKEY_CTX_set_rsa_mgf1_md(pctx, EVP_sha256()) != 1 ||
          EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, PSS_SALT_LEN) != 1))) {
        rc = ota_diag_set(d, OTA_E_CRYPTO, "cannot set up verification with key '%.16s...'",
                          k->keyid);
        goto out;
    }
    /* Anything but 1 is a signature that does not verify: 0, or an error such as an RSA
     * signature whose value is not below the modulus. */
    if (EVP_DigestVerify(ctx, sig, sig_len, msg, len) != 1) {
        rc = ota_diag_set(d, OTA_E_SIG, "signature by key '%.16s...' does not verify", k->keyid);
        goto out;
    }
    rc = OTA_OK;
out:
    EVP_MD_CTX_free(ctx);
    EVP_PKEY_free(pk);
    ERR_pop_to_mark();
    return rc;
}

ota_err
ota_sig_verify(const struct ota_pubkey *k, const void *msg, size_t len, const char *sig_hex,
               struct ota_diag *d)
{
    switch (k->type) {
    case OTA_KEY_ED25519:
        return ed25519_verify(k, msg, len, sig_hex, d);
    case OTA_KEY_ECDSA_P256:
    case OTA_KEY_RSA_PSS:
        return pem_verify(k, msg, len, sig_hex, d);
    default:
        return ota_diag_set(d, OTA_E_FORMAT, "unsupported key type");
    }
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
