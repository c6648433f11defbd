/* The PEM key types of keys/ (ECDSA P-256, RSASSA-PSS) against signatures made by other
 * tools: root metadata signed through @tufjs/models (tests/fixtures/keytypes/make.mjs) and
 * signatures made with the openssl command (make-openssl.sh). The fixtures are committed, so
 * this test needs neither node nor openssl; the scripts regenerate them.
 *
 * Fixtures are read from $OTA_TOP/tests/fixtures/keytypes (tests/run.sh sets OTA_TOP), or
 * from tests/fixtures/keytypes below the current directory. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <sodium.h>

#include "ota/cjson.h"
#include "ota/fsutil.h"
#include "ota/keys.h"

#define ECDSA "ecdsa"
#define ECDSA_LEGACY "ecdsa-sha2-nistp256"
#define ECDSA_SCHEME "ecdsa-sha2-nistp256"
#define RSA "rsa"
#define RSA_SCHEME "rsassa-pss-sha256"

/* Key ids of openssl-p256.pem under both keytypes (formats/keys.md), computed in Python
 * (hashlib over a ten-line canonical encoder: keys sorted, only '"' and '\' escaped, so the
 * PEM's line breaks are hashed raw, as securesystemslib hashes them). */
#define P256_ID "c1b17b2c197e6b5aecce24adc124a08a3b31f397081dcb1b2d4744bc5d55f905"
#define P256_LEGACY_ID "a006c125c6f0fe912bf0b47a563b1689b1520e212c3df56576351372722131e9"
/* The order n of P-256 (SEC 2). */
#define P256_N "FFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551"

/* ---------------------------------------------------------------- fixture helpers */

/* Whole fixture file, NUL-terminated; fails the test if it is missing. */
static char *
fixture(const char *name, size_t *len_out)
{
    const char     *top = getenv("OTA_TOP");
    char            path[4096];
    unsigned char  *buf = NULL;
    size_t          len = 0;
    struct ota_diag d;

    memset(&d, 0, sizeof d);
    assert_int_equal(ota_path_fmt(path, sizeof path, NULL, "%s/tests/fixtures/keytypes/%s",
                                  top != NULL && *top != '\0' ? top : ".", name),
                     OTA_OK);
    if (ota_read_file(path, 1 << 20, &buf, &len, &d) != OTA_OK)
        fail_msg("cannot read fixture '%s': %s", path, d.msg);
    if (len_out != NULL)
        *len_out = len;
    return (char *)buf;
}

/* A hex signature fixture, without the line break some editors add. */
static char *
sig_fixture(const char *name)
{
    char  *s = fixture(name, NULL);
    size_t n = strlen(s);

    while (n > 0 && (s[n - 1] == '\n' || s[n - 1] == '\r'))
        s[--n] = '\0';
    return s;
}

static json_t *
key_obj(const char *keytype, const char *scheme, const char *pub)
{
    json_t *o = json_pack("{s:s, s:s, s:{s:s}}", "keytype", keytype, "scheme", scheme, "keyval",
                          "public", pub);

    assert_non_null(o);
    return o;
}

/* Parse the key object {keytype, scheme, keyval: {public: pem}}; must succeed. */
static void
key_ok(const char *keytype, const char *scheme, const char *pem, struct ota_pubkey *k)
{
    json_t         *o = key_obj(keytype, scheme, pem);
    struct ota_diag d;
    char            id[OTA_KEYID_HEX];

    memset(&d, 0, sizeof d);
    if (ota_pubkey_from_json(o, NULL, k, &d) != OTA_OK)
        fail_msg("key '%s' '%s' refused: %s", keytype, scheme, d.msg);
    /* The key id is the one of the object as given. */
    assert_int_equal(ota_keyid_of(o, id, NULL), OTA_OK);
    assert_string_equal(k->keyid, id);
    json_decref(o);
}

static void
key_ok_file(const char *keytype, const char *scheme, const char *file, struct ota_pubkey *k)
{
    char *pem = fixture(file, NULL);

    key_ok(keytype, scheme, pem, k);
    free(pem);
}

/* Parsing must fail with OTA_E_FORMAT, leave out untouched and give a message that contains
 * why. */
static void
key_refused(const char *keytype, const char *scheme, const char *pem, const char *why)
{
    struct ota_pubkey k, before;
    struct ota_diag   d;
    json_t           *o = key_obj(keytype, scheme, pem);
    ota_err           rc;

    memset(&k, 0xa5, sizeof k);
    before = k;
    memset(&d, 0, sizeof d);
    rc = ota_pubkey_from_json(o, NULL, &k, &d);
    if (rc != OTA_E_FORMAT || strstr(d.msg, why) == NULL)
        fail_msg("key '%s' '%s' [%.60s...]: got %s '%s', want OTA_E_FORMAT '...%s...'", keytype,
                 scheme, pem, ota_err_name(rc), d.msg, why);
    assert_memory_equal(&k, &before, sizeof k);
    assert_int_equal(ERR_peek_error(), 0); /* nothing left in libcrypto's error queue */
    json_decref(o);
}

static void
key_refused_file(const char *keytype, const char *scheme, const char *file, const char *why)
{
    char *pem = fixture(file, NULL);

    key_refused(keytype, scheme, pem, why);
    free(pem);
}

static void
expect_verify(const struct ota_pubkey *k, const void *msg, size_t len, const char *sig,
              ota_err want)
{
    struct ota_diag d;
    ota_err         rc;

    memset(&d, 0, sizeof d);
    rc = ota_sig_verify(k, msg, len, sig, &d);
    if (rc != want)
        fail_msg("signature [%.24s...] by '%.16s': got %s, want %s (%s)", sig, k->keyid,
                 ota_err_name(rc), ota_err_name(want), d.msg);
    if (rc != OTA_OK)
        assert_true(strlen(d.msg) > 0);
    assert_int_equal(ERR_peek_error(), 0);
}

/* Copy of hex with byte i (not hex digit) xor'ed with mask. Caller frees. */
static char *
flip_byte(const char *hex, size_t i, unsigned mask)
{
    char         *s = strdup(hex);
    unsigned char b;
    char          two[3] = {hex[2 * i], hex[2 * i + 1], '\0'};

    assert_non_null(s);
    assert_true(2 * i + 1 < strlen(hex));
    assert_int_equal(ota_hex_decode(two, &b, 1), OTA_OK);
    b ^= (unsigned char)mask;
    ota_hex_encode(&b, 1, two);
    s[2 * i] = two[0];
    s[2 * i + 1] = two[1];
    return s;
}

/* Replace every "\n" of s by "\r\n". Caller frees. */
static char *
crlf(const char *s)
{
    char  *out = malloc(2 * strlen(s) + 1);
    size_t n = 0;

    assert_non_null(out);
    for (; *s != '\0'; s++) {
        if (*s == '\n')
            out[n++] = '\r';
        out[n++] = *s;
    }
    out[n] = '\0';
    return out;
}

/* PEM text of der under label, 64 columns, final newline. Caller frees. */
static char *
pem_of(const char *label, const unsigned char *der, size_t len)
{
    size_t b64_len = sodium_base64_ENCODED_LEN(len, sodium_base64_VARIANT_ORIGINAL);
    char  *b64 = malloc(b64_len), *out = malloc(b64_len + b64_len / 64 + 2 * strlen(label) + 64);
    size_t i, n;
    char  *p;

    assert_non_null(b64);
    assert_non_null(out);
    sodium_bin2base64(b64, b64_len, der, len, sodium_base64_VARIANT_ORIGINAL);
    n = strlen(b64);
    p = out + sprintf(out, "-----BEGIN %s-----\n", label);
    for (i = 0; i < n; i += 64)
        p += sprintf(p, "%.64s\n", b64 + i);
    sprintf(p, "-----END %s-----\n", label);
    free(b64);
    return out;
}

/* The DER inside a fixture PEM (checked loosely: the test's own decoder). */
static size_t
der_of_fixture(const char *file, unsigned char *der, size_t cap)
{
    char       *pem = fixture(file, NULL), *b = strchr(pem, '\n'), *e = strstr(pem, "-----END");
    size_t      len = 0;
    const char *end = NULL;

    assert_non_null(b);
    assert_non_null(e);
    assert_int_equal(sodium_base642bin(der, cap, b + 1, (size_t)(e - b - 1), "\n", &len, &end,
                                       sodium_base64_VARIANT_ORIGINAL),
                     0);
    free(pem);
    return len;
}

/* ---------------------------------------------------------------- signatures by openssl */

static void
test_openssl_good(void **state)
{
    struct ota_pubkey p256, p256_legacy, r2048, r4096;
    size_t            len;
    char             *msg = fixture("openssl-msg.bin", &len);
    char             *sig_ec = sig_fixture("openssl-p256.sig");
    char             *sig_2048 = sig_fixture("openssl-rsa2048.sig");
    char             *sig_4096 = sig_fixture("openssl-rsa4096.sig");

    (void)state;
    key_ok_file(ECDSA, ECDSA_SCHEME, "openssl-p256.pem", &p256);
    assert_int_equal(p256.type, OTA_KEY_ECDSA_P256);
    assert_int_equal(p256.der_len, 91);
    key_ok_file(ECDSA_LEGACY, ECDSA_SCHEME, "openssl-p256.pem", &p256_legacy);
    assert_int_equal(p256_legacy.type, OTA_KEY_ECDSA_P256);
    /* Same key, other keytype spelling: another key object, so another key id. */
    assert_string_equal(p256.keyid, P256_ID);
    assert_string_equal(p256_legacy.keyid, P256_LEGACY_ID);
    key_ok_file(RSA, RSA_SCHEME, "openssl-rsa2048.pem", &r2048);
    assert_int_equal(r2048.type, OTA_KEY_RSA_PSS);
    key_ok_file(RSA, RSA_SCHEME, "openssl-rsa4096.pem", &r4096);
    assert_int_equal(r4096.type, OTA_KEY_RSA_PSS);
    assert_true(strlen(sig_4096) == OTA_SIG_HEX_MAX);

    expect_verify(&p256, msg, len, sig_ec, OTA_OK);
    expect_verify(&p256_legacy, msg, len, sig_ec, OTA_OK);
    expect_verify(&r2048, msg, len, sig_2048, OTA_OK);
    expect_verify(&r4096, msg, len, sig_4096, OTA_OK);

    /* Hex digits in either case. */
    {
        char *up = strdup(sig_2048), *c;
        for (c = up; *c != '\0'; c++)
            if (*c >= 'a' && *c <= 'f')
                *c = (char)(*c - 'a' + 'A');
        expect_verify(&r2048, msg, len, up, OTA_OK);
        free(up);
    }

    /* A flipped message byte, a dropped one, an extra one. */
    msg[10] ^= 0x01;
    expect_verify(&p256, msg, len, sig_ec, OTA_E_SIG);
    expect_verify(&r2048, msg, len, sig_2048, OTA_E_SIG);
    expect_verify(&r4096, msg, len, sig_4096, OTA_E_SIG);
    msg[10] ^= 0x01;
    expect_verify(&p256, msg, len - 1, sig_ec, OTA_E_SIG);
    expect_verify(&r2048, msg, len - 1, sig_2048, OTA_E_SIG);
    expect_verify(&p256, msg, len + 1, sig_ec, OTA_E_SIG); /* the NUL after the fixture */
    expect_verify(&r4096, msg, len + 1, sig_4096, OTA_E_SIG);

    /* A signature checked with the wrong key of the same or another type. */
    expect_verify(&r4096, msg, len, sig_2048, OTA_E_FORMAT); /* not the modulus length */
    expect_verify(&r2048, msg, len, sig_ec, OTA_E_FORMAT);
    expect_verify(&p256, msg, len, sig_2048, OTA_E_FORMAT);
    {
        struct ota_pubkey other;
        key_ok_file(ECDSA, ECDSA_SCHEME, "openssl-p256-b.pem", &other);
        expect_verify(&other, msg, len, sig_ec, OTA_E_SIG);
    }
    free(msg);
    free(sig_ec);
    free(sig_2048);
    free(sig_4096);
}

static void
test_ecdsa_sig_tampered(void **state)
{
    struct ota_pubkey k;
    size_t            len, n, i;
    char             *msg = fixture("openssl-msg.bin", &len);
    char             *sig = sig_fixture("openssl-p256.sig");
    char             *bad, raw[2 * 64 + 1];

    (void)state;
    key_ok_file(ECDSA, ECDSA_SCHEME, "openssl-p256.pem", &k);
    n = strlen(sig) / 2;
    /* A byte inside s changed: well-formed, does not verify. Inside r: the same. */
    bad = flip_byte(sig, n - 1, 0x01);
    expect_verify(&k, msg, len, bad, OTA_E_SIG);
    free(bad);
    bad = flip_byte(sig, 10, 0x01);
    expect_verify(&k, msg, len, bad, OTA_E_SIG);
    free(bad);
    /* The DER structure broken: a malformed signature. */
    bad = flip_byte(sig, 0, 0x01); /* SEQUENCE tag */
    expect_verify(&k, msg, len, bad, OTA_E_FORMAT);
    free(bad);
    bad = flip_byte(sig, 1, 0x01); /* SEQUENCE length */
    expect_verify(&k, msg, len, bad, OTA_E_FORMAT);
    free(bad);
    bad = flip_byte(sig, 2, 0x01); /* INTEGER tag of r */
    expect_verify(&k, msg, len, bad, OTA_E_FORMAT);
    free(bad);
    /* Truncated, and with a byte after the DER value. */
    bad = strdup(sig);
    bad[strlen(bad) - 2] = '\0';
    expect_verify(&k, msg, len, bad, OTA_E_FORMAT);
    free(bad);
    bad = malloc(strlen(sig) + 3);
    sprintf(bad, "%s00", sig);
    expect_verify(&k, msg, len, bad, OTA_E_FORMAT);
    free(bad);
    /* Every bit of every byte flipped in turn: never accepted, never anything but a bad or
     * malformed signature (and, under the sanitizers, never a bad read). */
    for (i = 0; i < n; i++) {
        unsigned bit;
        for (bit = 0; bit < 8; bit++) {
            struct ota_diag d;
            ota_err         rc;
            bad = flip_byte(sig, i, 1u << bit);
            rc = ota_sig_verify(&k, msg, len, bad, &d);
            if (rc != OTA_E_SIG && rc != OTA_E_FORMAT)
                fail_msg("byte %zu bit %u: %s", i, bit, ota_err_name(rc));
            free(bad);
        }
    }
    /* Every truncation. */
    for (i = 2; i < strlen(sig); i += 2) {
        bad = strndup(sig, i);
        expect_verify(&k, msg, len, bad, OTA_E_FORMAT);
        free(bad);
    }
    /* Random byte strings of every length up to 80. */
    {
        unsigned char rnd[80];
        char          hex[2 * sizeof rnd + 1];
        size_t        l;
        for (l = 1; l <= sizeof rnd; l++) {
            struct ota_diag d;
            ota_err         rc;
            randombytes_buf(rnd, l);
            if (l > 2) { /* sometimes a plausible header */
                rnd[0] = 0x30;
                rnd[1] = (unsigned char)(l - 2);
            }
            ota_hex_encode(rnd, l, hex);
            rc = ota_sig_verify(&k, msg, len, hex, &d);
            if (rc != OTA_E_SIG && rc != OTA_E_FORMAT)
                fail_msg("random %zu bytes: %s", l, ota_err_name(rc));
        }
    }
    /* r || s as 64 raw bytes (IEEE P1363, as WebCrypto writes it) is not the TUF form. */
    memset(raw, 0, sizeof raw);
    memset(raw, '1', 2 * 64);
    expect_verify(&k, msg, len, raw, OTA_E_FORMAT);
    /* Not hex, odd length, empty, over the bound. */
    bad = strdup(sig);
    bad[5] = 'g';
    expect_verify(&k, msg, len, bad, OTA_E_FORMAT);
    free(bad);
    bad = strdup(sig);
    bad[strlen(bad) - 1] = '\0';
    expect_verify(&k, msg, len, bad, OTA_E_FORMAT);
    free(bad);
    expect_verify(&k, msg, len, "", OTA_E_FORMAT);
    bad = malloc(OTA_SIG_HEX_MAX + 3);
    memset(bad, '0', OTA_SIG_HEX_MAX + 2);
    bad[OTA_SIG_HEX_MAX + 2] = '\0';
    expect_verify(&k, msg, len, bad, OTA_E_FORMAT);
    free(bad);
    free(msg);
    free(sig);
}

static void
test_rsa_sig_tampered(void **state)
{
    struct ota_pubkey k;
    size_t            len, n, i;
    char             *msg = fixture("openssl-msg.bin", &len);
    char             *sig = sig_fixture("openssl-rsa2048.sig");
    char             *bad, *p;

    (void)state;
    key_ok_file(RSA, RSA_SCHEME, "openssl-rsa2048.pem", &k);
    n = strlen(sig) / 2;
    assert_int_equal(n, 256);
    /* Any byte changed: the right length, does not verify. */
    for (i = 0; i < n; i++) {
        bad = flip_byte(sig, i, 0x01 << (i % 8));
        expect_verify(&k, msg, len, bad, OTA_E_SIG);
        free(bad);
    }
    /* All zeros; all ones (a value above the modulus). */
    bad = strdup(sig);
    memset(bad, '0', strlen(bad));
    expect_verify(&k, msg, len, bad, OTA_E_SIG);
    memset(bad, 'f', strlen(bad));
    expect_verify(&k, msg, len, bad, OTA_E_SIG);
    free(bad);
    /* One byte short, one byte long: not an RSA-2048 signature. */
    bad = strdup(sig);
    bad[strlen(bad) - 2] = '\0';
    expect_verify(&k, msg, len, bad, OTA_E_FORMAT);
    free(bad);
    bad = malloc(strlen(sig) + 3);
    sprintf(bad, "00%s", sig);
    expect_verify(&k, msg, len, bad, OTA_E_FORMAT);
    free(bad);
    /* Not hex. */
    bad = strdup(sig);
    p = bad + 100;
    *p = 'x';
    expect_verify(&k, msg, len, bad, OTA_E_FORMAT);
    free(bad);
    free(msg);
    free(sig);
}

static void
test_rsa_other_paddings_refused(void **state)
{
    struct ota_pubkey        k;
    size_t                   len;
    char                    *msg = fixture("openssl-msg.bin", &len);
    static const char *const files[] = {
        "openssl-rsa2048-pkcs1v15.sig", /* RSASSA-PKCS1-v1_5 */
        "openssl-rsa2048-saltmax.sig",  /* PSS, salt of 222 bytes */
        "openssl-rsa2048-mgf1sha1.sig", /* PSS, MGF1 with SHA-1 */
    };
    size_t i;

    (void)state;
    key_ok_file(RSA, RSA_SCHEME, "openssl-rsa2048.pem", &k);
    for (i = 0; i < sizeof files / sizeof *files; i++) {
        char *sig = sig_fixture(files[i]);
        expect_verify(&k, msg, len, sig, OTA_E_SIG);
        free(sig);
    }
    free(msg);
}

/* (r, n - s) is as valid as (r, s): TUF sets no low-s rule, and neither does ota. */
static void
test_ecdsa_high_s(void **state)
{
    struct ota_pubkey    k;
    size_t               len, slen, i;
    char                *msg = fixture("openssl-msg.bin", &len);
    char                *sig = sig_fixture("openssl-p256.sig");
    unsigned char        der[80], *enc = NULL;
    const unsigned char *p = der;
    char                 hex[2 * 80 + 1];
    ECDSA_SIG           *es;
    const BIGNUM        *r, *s;
    BIGNUM              *n = NULL, *ns = BN_new(), *r2;
    int                  enc_len;

    (void)state;
    key_ok_file(ECDSA, ECDSA_SCHEME, "openssl-p256.pem", &k);
    slen = strlen(sig) / 2;
    assert_true(slen <= sizeof der);
    assert_int_equal(ota_hex_decode(sig, der, slen), OTA_OK);
    es = d2i_ECDSA_SIG(NULL, &p, (long)slen);
    assert_non_null(es);
    ECDSA_SIG_get0(es, &r, &s);
    assert_true(BN_hex2bn(&n, P256_N) > 0);
    assert_non_null(ns);
    assert_int_equal(BN_sub(ns, n, s), 1);
    r2 = BN_dup(r);
    assert_non_null(r2);
    assert_int_equal(ECDSA_SIG_set0(es, r2, ns), 1); /* es owns r2 and ns now */
    enc_len = i2d_ECDSA_SIG(es, &enc);
    assert_true(enc_len > 0 && (size_t)enc_len <= sizeof der);
    ota_hex_encode(enc, (size_t)enc_len, hex);
    assert_string_not_equal(hex, sig);
    expect_verify(&k, msg, len, hex, OTA_OK);
    /* ... and still bound to the message. */
    for (i = 0; i < len; i += 17) {
        msg[i] ^= 0x04;
        expect_verify(&k, msg, len, hex, OTA_E_SIG);
        msg[i] ^= 0x04;
    }
    OPENSSL_free(enc);
    ECDSA_SIG_free(es);
    BN_free(n);
    free(msg);
    free(sig);
}

/* ---------------------------------------------------------------- refused keys */

static void
test_refused_keys(void **state)
{
    (void)state;
    /* Other curves and EC encodings. */
    key_refused_file(ECDSA, ECDSA_SCHEME, "openssl-p384.pem", "not p-256");
    key_refused_file(ECDSA_LEGACY, ECDSA_SCHEME, "openssl-p384.pem", "not p-256");
    key_refused_file(ECDSA, ECDSA_SCHEME, "openssl-p256-explicit.pem", "named-curve form");
    key_refused_file(ECDSA, ECDSA_SCHEME, "openssl-p256-compressed.pem", "named-curve form");
    /* RSA sizes outside 2048..4096, and broken numbers. */
    key_refused_file(RSA, RSA_SCHEME, "openssl-rsa1024.pem", "has 1024 bits");
    key_refused_file(RSA, RSA_SCHEME, "openssl-rsa4608.pem", "has 4608 bits");
    key_refused_file(RSA, RSA_SCHEME, "openssl-rsa2048-e1.pem", "exponent");
    key_refused_file(RSA, RSA_SCHEME, "openssl-rsa2048-evenn.pem", "even modulus");
    /* The RSA-2048 key with its outer length in a longer form than DER allows (BER, which
     * libcrypto decodes): 30 82 01 22 written as 30 83 00 01 22. */
    {
        unsigned char der[1200], ber[1201];
        size_t        len = der_of_fixture("openssl-rsa2048.pem", der, sizeof der);
        char         *pem;
        assert_memory_equal(der, "\x30\x82\x01\x22", 4);
        memcpy(ber, "\x30\x83\x00", 3);
        memcpy(ber + 3, der + 2, len - 2);
        pem = pem_of("PUBLIC KEY", ber, len + 1);
        key_refused(RSA, RSA_SCHEME, pem, "not in der form");
        free(pem);
    }
    /* An RSA key with the id-RSASSA-PSS algorithm, and PKCS#1 "RSA PUBLIC KEY" text. */
    key_refused_file(RSA, RSA_SCHEME, "openssl-rsapss.pem", "not an rsa key");
    key_refused_file(RSA, RSA_SCHEME, "openssl-rsa2048-pkcs1.pem", "does not start with");
}

static void
test_keytype_mismatch(void **state)
{
    static const unsigned char ed_spki_prefix[] = {0x30, 0x2a, 0x30, 0x05, 0x06, 0x03,
                                                   0x2b, 0x65, 0x70, 0x03, 0x21, 0x00};
    unsigned char              der[sizeof ed_spki_prefix + 32];
    char                      *ed_pem, *rsa_pem = fixture("openssl-rsa2048.pem", NULL);
    char                      *ec_pem = fixture("openssl-p256.pem", NULL);
    struct ota_pubkey          k;

    (void)state;
    /* An RSA key listed as ecdsa, an EC key listed as rsa. */
    key_refused(ECDSA, ECDSA_SCHEME, rsa_pem, "not an ec key");
    key_refused(ECDSA_LEGACY, ECDSA_SCHEME, rsa_pem, "not an ec key");
    key_refused(RSA, RSA_SCHEME, ec_pem, "not an rsa key");
    key_refused_file(RSA, RSA_SCHEME, "openssl-p384.pem", "not an rsa key");
    /* An ed25519 key in PEM form under either type, and PEM under ed25519. */
    memcpy(der, ed_spki_prefix, sizeof ed_spki_prefix);
    memset(der + sizeof ed_spki_prefix, 0x42, 32);
    ed_pem = pem_of("PUBLIC KEY", der, sizeof der);
    key_refused(ECDSA, ECDSA_SCHEME, ed_pem, "not an ec key");
    key_refused(RSA, RSA_SCHEME, ed_pem, "not an rsa key");
    key_refused("ed25519", "ed25519", ed_pem, "64 hex digits");
    key_refused("ed25519", "ed25519", ec_pem, "64 hex digits");
    /* A scheme that does not go with the keytype, or that ota does not verify. */
    key_refused(ECDSA, RSA_SCHEME, ec_pem, "unsupported key type");
    key_refused(RSA, ECDSA_SCHEME, rsa_pem, "unsupported key type");
    key_refused(ECDSA, "ecdsa-sha2-nistp384", ec_pem, "unsupported key type");
    key_refused("ecdsa-sha2-nistp384", ECDSA_SCHEME, ec_pem, "unsupported key type");
    key_refused(RSA, "rsa-pkcs1v15-sha256", rsa_pem, "unsupported key type");
    key_refused(RSA, "rsassa-pss-sha384", rsa_pem, "unsupported key type");
    key_refused("RSA", RSA_SCHEME, rsa_pem, "unsupported key type");
    /* ... while the right pairs load. */
    key_ok(ECDSA, ECDSA_SCHEME, ec_pem, &k);
    key_ok(RSA, RSA_SCHEME, rsa_pem, &k);
    free(ed_pem);
    free(rsa_pem);
    free(ec_pem);
}

static void
test_pem_text(void **state)
{
    char             *ec = fixture("openssl-p256.pem", NULL), *t, *u;
    unsigned char     der[1200];
    size_t            der_len = der_of_fixture("openssl-p256.pem", der, sizeof der);
    struct ota_pubkey k;
    json_t           *o;
    size_t            n = strlen(ec);

    (void)state;
    /* Accepted: LF or CRLF line breaks, with or without a final one (securesystemslib writes
     * none), lines of any length. */
    t = crlf(ec);
    key_ok(ECDSA, ECDSA_SCHEME, t, &k);
    free(t);
    t = strndup(ec, n - 1);
    key_ok(ECDSA, ECDSA_SCHEME, t, &k);
    o = ota_pubkey_to_json(&k); /* written back as given */
    assert_string_equal(json_string_value(json_object_get(json_object_get(o, "keyval"), "public")),
                        t);
    json_decref(o);
    free(t);
    {
        char b64[200];
        sodium_bin2base64(b64, sizeof b64, der, der_len, sodium_base64_VARIANT_ORIGINAL);
        t = malloc(strlen(b64) + 64);
        sprintf(t, "-----BEGIN PUBLIC KEY-----\n%s\n-----END PUBLIC KEY-----", b64);
        key_ok(ECDSA, ECDSA_SCHEME, t, &k);
        free(t);
    }

    /* Refused: garbage and near misses. */
    key_refused(ECDSA, ECDSA_SCHEME, "not a key", "does not start with");
    key_refused(ECDSA, ECDSA_SCHEME, "", "must not be empty");
    key_refused(RSA, RSA_SCHEME, "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c",
                "does not start with");
    key_refused(ECDSA, ECDSA_SCHEME, "-----BEGIN PUBLIC KEY-----", "no line break");
    key_refused(ECDSA, ECDSA_SCHEME, "-----BEGIN PUBLIC KEY-----\n-----END PUBLIC KEY-----\n",
                "base64 lines ending");
    key_refused(ECDSA, ECDSA_SCHEME,
                "-----BEGIN PUBLIC KEY-----\n!!!!notbase64!!!!\n-----END PUBLIC KEY-----\n",
                "base64 lines ending");
    key_refused(ECDSA, ECDSA_SCHEME,
                "-----BEGIN PUBLIC KEY-----\nAAAA=AAA\n-----END PUBLIC KEY-----\n", "valid base64");
    key_refused(ECDSA, ECDSA_SCHEME, "-----BEGIN PUBLIC KEY-----\nAB\n-----END PUBLIC KEY-----\n",
                "valid base64"); /* no padding */
    key_refused(ECDSA, ECDSA_SCHEME,
                "-----BEGIN PUBLIC KEY-----\nAAAAAAAA\n-----END PUBLIC KEY-----\n",
                "not a subjectpublickeyinfo"); /* valid base64, not DER */
    /* Text before the block, after it, a second block. */
    t = malloc(2 * n + 8);
    sprintf(t, " %s", ec);
    key_refused(ECDSA, ECDSA_SCHEME, t, "does not start with");
    sprintf(t, "\n%s", ec);
    key_refused(ECDSA, ECDSA_SCHEME, t, "does not start with");
    sprintf(t, "%s\n", ec);
    key_refused(ECDSA, ECDSA_SCHEME, t, "text after");
    sprintf(t, "%sx", ec);
    key_refused(ECDSA, ECDSA_SCHEME, t, "text after");
    sprintf(t, "%s%s", ec, ec);
    key_refused(ECDSA, ECDSA_SCHEME, t, "text after");
    /* No line break after BEGIN; END not at the start of a line; a lone CR; a header line. */
    strcpy(t, ec);
    t[strlen("-----BEGIN PUBLIC KEY-----")] = ' ';
    key_refused(ECDSA, ECDSA_SCHEME, t, "no line break");
    strcpy(t, ec);
    u = strstr(t, "\n-----END");
    *u = 'A';
    key_refused(ECDSA, ECDSA_SCHEME, t, "base64 lines ending");
    strcpy(t, ec);
    u = strchr(t + strlen("-----BEGIN PUBLIC KEY-----\n"), '\n');
    *u = '\r';
    key_refused(ECDSA, ECDSA_SCHEME, t, "base64 lines ending");
    sprintf(t, "-----BEGIN PUBLIC KEY-----\nProc-Type: 4,ENCRYPTED\n%s",
            ec + strlen("-----BEGIN PUBLIC KEY-----\n"));
    key_refused(ECDSA, ECDSA_SCHEME, t, "base64 lines ending");
    free(t);
    /* Other labels around the same bytes. */
    t = pem_of("PRIVATE KEY", der, der_len);
    key_refused(ECDSA, ECDSA_SCHEME, t, "does not start with");
    free(t);
    t = pem_of("EC PUBLIC KEY", der, der_len);
    key_refused(ECDSA, ECDSA_SCHEME, t, "does not start with");
    free(t);
    /* The key with a byte after its DER value, and with its last byte dropped. */
    der[der_len] = 0x00;
    t = pem_of("PUBLIC KEY", der, der_len + 1);
    key_refused(ECDSA, ECDSA_SCHEME, t, "not a subjectpublickeyinfo");
    free(t);
    t = pem_of("PUBLIC KEY", der, der_len - 1);
    key_refused(ECDSA, ECDSA_SCHEME, t, "not a subjectpublickeyinfo");
    free(t);
    /* The point moved off the curve. */
    der[der_len - 1] ^= 0x01;
    t = pem_of("PUBLIC KEY", der, der_len);
    key_refused(ECDSA, ECDSA_SCHEME, t, "not a subjectpublickeyinfo");
    free(t);
    /* Over the bounds: 2 KiB of PEM text, more than 1 KiB of DER. */
    {
        unsigned char big[1100];
        memset(big, 0x30, sizeof big);
        t = pem_of("PUBLIC KEY", big, sizeof big);
        assert_true(strlen(t) < OTA_PUBKEY_PEM_MAX);
        key_refused(RSA, RSA_SCHEME, t, "valid base64 of at most 1024");
        free(t);
        t = malloc(OTA_PUBKEY_PEM_MAX + 2);
        memset(t, 'A', OTA_PUBKEY_PEM_MAX + 1);
        memcpy(t, "-----BEGIN PUBLIC KEY-----\n", 27);
        t[OTA_PUBKEY_PEM_MAX + 1] = '\0';
        key_refused(RSA, RSA_SCHEME, t, "longer than 2048");
        free(t);
    }
    /* A key object whose keyval.public is not a string. */
    {
        struct ota_pubkey before;
        o = json_pack("{s:s, s:s, s:{s:i}}", "keytype", ECDSA, "scheme", ECDSA_SCHEME, "keyval",
                      "public", 1);
        memset(&k, 0x5a, sizeof k);
        before = k;
        assert_int_equal(ota_pubkey_from_json(o, NULL, &k, NULL), OTA_E_FORMAT);
        assert_memory_equal(&k, &before, sizeof k);
        json_decref(o);
    }
    free(ec);
}

/* ---------------------------------------------------------------- metadata by @tufjs/models */

struct doc {
    json_t *env;
    char   *canon; /* canonical bytes of "signed" */
    size_t  len;
};

static void
doc_load(const char *file, struct doc *doc)
{
    size_t len;
    char  *text = fixture(file, &len);

    assert_int_equal(ota_cjson_parse(text, len, OTA_JSON_MAX, &doc->env, NULL), OTA_OK);
    assert_int_equal(ota_cjson_encode(json_object_get(doc->env, "signed"), OTA_JSON_MAX,
                                      &doc->canon, &doc->len, NULL),
                     OTA_OK);
    free(text);
}

static void
doc_free(struct doc *doc)
{
    json_decref(doc->env);
    free(doc->canon);
}

/* Keys of a role of the root in doc, parsed under their listed ids. keys must hold 8. */
static struct ota_role_keys
role_of(const struct doc *doc, const char *role, struct ota_pubkey keys[8])
{
    json_t              *signed_ = json_object_get(doc->env, "signed");
    json_t              *r = json_object_get(json_object_get(signed_, "roles"), role);
    json_t              *ids = json_object_get(r, "keyids");
    struct ota_role_keys rk;
    size_t               i;

    assert_non_null(ids);
    assert_true(json_array_size(ids) <= 8);
    for (i = 0; i < json_array_size(ids); i++) {
        const char     *id = json_string_value(json_array_get(ids, i));
        json_t         *ko = json_object_get(json_object_get(signed_, "keys"), id);
        struct ota_diag d;
        json_t         *back;
        if (ota_pubkey_from_json(ko, id, &keys[i], &d) != OTA_OK)
            fail_msg("%s key %s: %s", role, id, d.msg);
        /* Written back, the object is the one listed, with the same id. */
        back = ota_pubkey_to_json(&keys[i]);
        assert_non_null(back);
        assert_true(json_equal(back, ko));
        json_decref(back);
    }
    rk.role = role;
    rk.keys = keys;
    rk.nkeys = json_array_size(ids);
    rk.threshold = (unsigned)json_integer_value(json_object_get(r, "threshold"));
    return rk;
}

static void
test_tufjs_single(void **state)
{
    static const char *const      files[] = {"tufjs-ecdsa.json", "tufjs-rsa.json"};
    static const enum ota_keytype types[] = {OTA_KEY_ECDSA_P256, OTA_KEY_RSA_PSS};
    size_t                        f;

    (void)state;
    for (f = 0; f < 2; f++) {
        struct doc           doc;
        struct ota_pubkey    keys[8];
        struct ota_role_keys rk;
        json_t              *sigs;
        const char          *sig;
        char                *bad;
        unsigned             valid = 0;

        doc_load(files[f], &doc);
        rk = role_of(&doc, "root", keys);
        assert_int_equal(rk.nkeys, 1);
        assert_int_equal(keys[0].type, types[f]);
        sigs = json_object_get(doc.env, "signatures");
        assert_int_equal(json_array_size(sigs), 1);
        sig = json_string_value(json_object_get(json_array_get(sigs, 0), "sig"));
        expect_verify(&keys[0], doc.canon, doc.len, sig, OTA_OK);
        assert_int_equal(ota_threshold_verify(&rk, sigs, doc.canon, doc.len, &valid, NULL), OTA_OK);
        assert_int_equal(valid, 1);
        /* One byte of the signed bytes changed. */
        doc.canon[doc.len / 2] ^= 0x20;
        expect_verify(&keys[0], doc.canon, doc.len, sig, OTA_E_SIG);
        assert_int_equal(ota_threshold_verify(&rk, sigs, doc.canon, doc.len, &valid, NULL),
                         OTA_E_THRESHOLD);
        assert_int_equal(valid, 0);
        doc.canon[doc.len / 2] ^= 0x20;
        /* The last byte of the signature changed (inside s for ECDSA). */
        bad = flip_byte(sig, strlen(sig) / 2 - 1, 0x80);
        expect_verify(&keys[0], doc.canon, doc.len, bad, OTA_E_SIG);
        free(bad);
        doc_free(&doc);
    }
}

static void
test_threshold_mixed(void **state)
{
    struct doc           doc;
    struct ota_pubkey    root_keys[8], targets_keys[8], ts_keys[8], copies[8];
    struct ota_role_keys root, targets, ts;
    json_t              *sigs, *fewer;
    struct ota_diag      d;
    unsigned             valid;
    size_t               i;

    (void)state;
    doc_load("tufjs-mixed.json", &doc);
    root = role_of(&doc, "root", root_keys);
    targets = role_of(&doc, "targets", targets_keys);
    ts = role_of(&doc, "timestamp", ts_keys);
    assert_int_equal(root.nkeys, 3);
    assert_int_equal(root.threshold, 3);
    assert_int_equal(root_keys[0].type, OTA_KEY_ED25519);
    assert_int_equal(root_keys[1].type, OTA_KEY_ECDSA_P256);
    assert_int_equal(root_keys[2].type, OTA_KEY_RSA_PSS);
    assert_int_equal(targets_keys[0].type, OTA_KEY_ECDSA_P256);
    assert_int_equal(targets_keys[0].ecdsa_legacy, 1);
    sigs = json_object_get(doc.env, "signatures");
    assert_int_equal(json_array_size(sigs), 4);

    /* All three root keys signed; the fourth signature is by a key outside the role. */
    valid = 0;
    assert_int_equal(ota_threshold_verify(&root, sigs, doc.canon, doc.len, &valid, &d), OTA_OK);
    assert_int_equal(valid, 3);
    /* The targets keys (legacy-keytype ecdsa and rsa) also signed these bytes. */
    assert_int_equal(ota_threshold_verify(&targets, sigs, doc.canon, doc.len, &valid, &d), OTA_OK);
    assert_int_equal(valid, 2);
    assert_int_equal(ota_threshold_verify(&ts, sigs, doc.canon, doc.len, &valid, &d), OTA_OK);
    assert_int_equal(valid, 1);

    /* Without any one of the root signatures, 2 of 3. */
    for (i = 0; i < 3; i++) {
        fewer = json_deep_copy(sigs);
        assert_int_equal(json_array_remove(fewer, i), 0);
        valid = 99;
        assert_int_equal(ota_threshold_verify(&root, fewer, doc.canon, doc.len, &valid, &d),
                         OTA_E_THRESHOLD);
        assert_int_equal(valid, 2);
        assert_string_equal(d.msg, "root: 2 of 3 required signatures");
        json_decref(fewer);
    }
    /* One root signature tampered with, each in turn (ed25519, ecdsa, rsa). */
    for (i = 0; i < 3; i++) {
        json_t     *e;
        const char *s;
        char       *bad;
        fewer = json_deep_copy(sigs);
        e = json_array_get(fewer, i);
        s = json_string_value(json_object_get(e, "sig"));
        bad = flip_byte(s, strlen(s) / 2 - 1, 0x01);
        json_object_set_new(e, "sig", json_string(bad));
        free(bad);
        assert_int_equal(ota_threshold_verify(&root, fewer, doc.canon, doc.len, &valid, &d),
                         OTA_E_THRESHOLD);
        assert_int_equal(valid, 2);
        json_decref(fewer);
    }
    /* Changed signed bytes: no key counts. */
    doc.canon[5] ^= 0x01;
    assert_int_equal(ota_threshold_verify(&root, sigs, doc.canon, doc.len, &valid, &d),
                     OTA_E_THRESHOLD);
    assert_int_equal(valid, 0);
    doc.canon[5] ^= 0x01;

    /* Keys are plain values: copies verify after the originals are wiped. */
    for (i = 0; i < root.nkeys; i++)
        copies[i] = root_keys[i];
    memset(root_keys, 0, sizeof root_keys);
    root.keys = copies;
    assert_int_equal(ota_threshold_verify(&root, sigs, doc.canon, doc.len, &valid, &d), OTA_OK);
    assert_int_equal(valid, 3);
    /* A zeroed key verifies nothing. */
    expect_verify(&root_keys[0], doc.canon, doc.len, "00", OTA_E_FORMAT);
    doc_free(&doc);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_openssl_good),
        cmocka_unit_test(test_ecdsa_sig_tampered),
        cmocka_unit_test(test_rsa_sig_tampered),
        cmocka_unit_test(test_rsa_other_paddings_refused),
        cmocka_unit_test(test_ecdsa_high_s),
        cmocka_unit_test(test_refused_keys),
        cmocka_unit_test(test_keytype_mismatch),
        cmocka_unit_test(test_pem_text),
        cmocka_unit_test(test_tufjs_single),
        cmocka_unit_test(test_threshold_mixed),
    };

    if (sodium_init() < 0)
        return 1;
    return cmocka_run_group_tests(tests, NULL, NULL);
}
