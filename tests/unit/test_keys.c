/* The verify half of keys/: key id vectors, TUF key objects, single signatures and role
 * thresholds. Signatures are made with libsodium directly from fixed seeds, so every
 * signature in this file is byte-stable and the test does not depend on the signing half. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <sodium.h>

#include "ota/cjson.h"
#include "ota/fsutil.h"
#include "ota/keys.h"

/* RFC 8032 section 7.1, tests 1 and 2; key ids checked with Python's hashlib over the
 * canonical key objects. */
#define RFC1_PK "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a"
#define RFC1_ID "74c181c7ad8a0855d4b55e44d2ba87aabdddb196832571f15f92fece332e4916"
#define RFC1_SIG_EMPTY                                                                             \
    "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e3970"     \
    "1cf9b46bd25bf5f0595bbe24655141438e7a100b"
#define RFC2_PK "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c"
#define RFC2_ID "eaf1e23f6c823132f437a2eaa299a7950f7386631deff273db195bbd26209e2b"

/* A test key made from a seed of 32 copies of one byte. */
struct tkey {
    unsigned char     sk[crypto_sign_SECRETKEYBYTES];
    struct ota_pubkey pub;
};

static void
tkey_make(struct tkey *t, unsigned char fill)
{
    unsigned char seed[32], pk[32];

    memset(seed, fill, sizeof seed);
    assert_int_equal(crypto_sign_seed_keypair(pk, t->sk, seed), 0);
    assert_int_equal(ota_pubkey_from_ed25519(pk, &t->pub, NULL), OTA_OK);
}

static void
tkey_sign_hex(const struct tkey *t, const char *msg, char hex[2 * OTA_ED25519_SIG + 1])
{
    unsigned char sig[OTA_ED25519_SIG];

    assert_int_equal(
        crypto_sign_detached(sig, NULL, (const unsigned char *)msg, strlen(msg), t->sk), 0);
    ota_hex_encode(sig, sizeof sig, hex);
}

/* Append {"keyid": keyid, "sig": signature of msg by t} to arr. */
static void
add_sig(json_t *arr, const char *keyid, const struct tkey *t, const char *msg)
{
    char hex[2 * OTA_ED25519_SIG + 1];

    tkey_sign_hex(t, msg, hex);
    assert_int_equal(json_array_append_new(arr, json_pack("{s:s,s:s}", "keyid", keyid, "sig", hex)),
                     0);
}

static json_t *
parse(const char *text)
{
    json_t *v = NULL;

    assert_int_equal(ota_cjson_parse(text, strlen(text), OTA_JSON_MAX, &v, NULL), OTA_OK);
    return v;
}

static void
test_keyid_vectors(void **state)
{
    unsigned char     pk[32];
    struct ota_pubkey k;
    char              id[OTA_KEYID_HEX];
    json_t           *obj;

    (void)state;
    assert_int_equal(ota_hex_decode(RFC1_PK, pk, 32), OTA_OK);
    assert_int_equal(ota_pubkey_from_ed25519(pk, &k, NULL), OTA_OK);
    assert_string_equal(k.keyid, RFC1_ID);
    assert_int_equal(k.type, OTA_KEY_ED25519);
    assert_memory_equal(k.ed25519, pk, 32);

    assert_int_equal(ota_hex_decode(RFC2_PK, pk, 32), OTA_OK);
    assert_int_equal(ota_pubkey_from_ed25519(pk, &k, NULL), OTA_OK);
    assert_string_equal(k.keyid, RFC2_ID);

    /* Member order and whitespace in the source do not matter: the id is over canonical JSON. */
    obj = parse("{ \"keyval\": {\"public\": \"" RFC1_PK "\"}, \"scheme\": \"ed25519\",\n"
                "  \"keytype\": \"ed25519\" }");
    assert_int_equal(ota_keyid_of(obj, id, NULL), OTA_OK);
    assert_string_equal(id, RFC1_ID);
    json_decref(obj);

    /* The id is over the object as listed: an extra member (older python-tuf key objects
     * carry keyid_hash_algorithms) gives another id, computed the same way. */
    obj = parse("{\"keytype\":\"ed25519\",\"scheme\":\"ed25519\",\"keyid_hash_algorithms\":"
                "[\"sha256\",\"sha512\"],\"keyval\":{\"public\":\"" RFC1_PK "\"}}");
    assert_int_equal(ota_keyid_of(obj, id, NULL), OTA_OK);
    assert_string_equal(id, "01e8764eedab63b3593451765fc337b2cc6d2c66923845da255f448c19e2afc5");
    json_decref(obj);

    /* ota_pubkey_to_json gives back the object the id is computed from. */
    obj = ota_pubkey_to_json(&k);
    assert_non_null(obj);
    assert_int_equal(ota_keyid_of(obj, id, NULL), OTA_OK);
    assert_string_equal(id, RFC2_ID);
    json_decref(obj);
}

static void
test_pubkey_from_json_good(void **state)
{
    struct ota_pubkey k;
    struct ota_diag   d;
    json_t           *obj;

    (void)state;
    obj = parse("{\"keytype\":\"ed25519\",\"scheme\":\"ed25519\",\"keyval\":{\"public\":\"" RFC2_PK
                "\"}}");
    memset(&k, 0, sizeof k);
    assert_int_equal(ota_pubkey_from_json(obj, NULL, &k, &d), OTA_OK);
    assert_string_equal(k.keyid, RFC2_ID);
    memset(&k, 0, sizeof k);
    assert_int_equal(ota_pubkey_from_json(obj, RFC2_ID, &k, &d), OTA_OK);
    assert_string_equal(k.keyid, RFC2_ID);
    assert_int_equal(k.type, OTA_KEY_ED25519);
    json_decref(obj);
}

/* from_json must fail with want and leave out untouched. */
static void
expect_pubkey_fails(const char *text, const char *expect_keyid, ota_err want)
{
    struct ota_pubkey k, before;
    struct ota_diag   d;
    json_t           *obj = parse(text);

    memset(&k, 0xa5, sizeof k);
    before = k;
    memset(&d, 0, sizeof d);
    assert_int_equal(ota_pubkey_from_json(obj, expect_keyid, &k, &d), want);
    assert_memory_equal(&k, &before, sizeof k);
    assert_true(strlen(d.msg) > 0);
    json_decref(obj);
}

static void
test_pubkey_from_json_bad(void **state)
{
    (void)state;
    /* listed under another key's id */
    expect_pubkey_fails(
        "{\"keytype\":\"ed25519\",\"scheme\":\"ed25519\",\"keyval\":{\"public\":\"" RFC2_PK "\"}}",
        RFC1_ID, OTA_E_KEY_UNKNOWN);
    /* bad hex: a non-hex digit, one byte short, one byte long */
    expect_pubkey_fails("{\"keytype\":\"ed25519\",\"scheme\":\"ed25519\",\"keyval\":{\"public\":"
                        "\"zz4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c\"}}",
                        NULL, OTA_E_FORMAT);
    expect_pubkey_fails("{\"keytype\":\"ed25519\",\"scheme\":\"ed25519\",\"keyval\":{\"public\":"
                        "\"4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c\"}}",
                        NULL, OTA_E_FORMAT);
    expect_pubkey_fails(
        "{\"keytype\":\"ed25519\",\"scheme\":\"ed25519\",\"keyval\":{\"public\":\"" RFC2_PK
        "00\"}}",
        NULL, OTA_E_FORMAT);
    /* unsupported key types and schemes */
    expect_pubkey_fails("{\"keytype\":\"rsa\",\"scheme\":\"rsassa-pss-sha256\",\"keyval\":"
                        "{\"public\":\"-----BEGIN PUBLIC KEY-----\"}}",
                        NULL, OTA_E_FORMAT);
    expect_pubkey_fails("{\"keytype\":\"ecdsa\",\"scheme\":\"ecdsa-sha2-nistp256\",\"keyval\":"
                        "{\"public\":\"" RFC2_PK "\"}}",
                        NULL, OTA_E_FORMAT);
    expect_pubkey_fails("{\"keytype\":\"ed25519\",\"scheme\":\"ecdsa-sha2-nistp256\",\"keyval\":"
                        "{\"public\":\"" RFC2_PK "\"}}",
                        NULL, OTA_E_FORMAT);
    /* structure */
    expect_pubkey_fails("[]", NULL, OTA_E_FORMAT);
    expect_pubkey_fails("{\"keytype\":\"ed25519\",\"scheme\":\"ed25519\"}", NULL, OTA_E_FORMAT);
    expect_pubkey_fails(
        "{\"keytype\":\"ed25519\",\"scheme\":\"ed25519\",\"keyval\":{\"public\":1}}", NULL,
        OTA_E_FORMAT);
    expect_pubkey_fails("{\"keytype\":1,\"scheme\":\"ed25519\",\"keyval\":{\"public\":\"" RFC2_PK
                        "\"}}",
                        NULL, OTA_E_FORMAT);
}

static void
test_sig_verify(void **state)
{
    struct tkey       t;
    struct ota_pubkey rfc1;
    unsigned char     pk[32];
    char              hex[2 * OTA_ED25519_SIG + 1];
    char              bad[2 * OTA_ED25519_SIG + 3];
    struct ota_diag   d;

    (void)state;
    /* An outside vector: RFC 8032's signature of the empty message. */
    assert_int_equal(ota_hex_decode(RFC1_PK, pk, 32), OTA_OK);
    assert_int_equal(ota_pubkey_from_ed25519(pk, &rfc1, NULL), OTA_OK);
    assert_int_equal(ota_sig_verify(&rfc1, "", 0, RFC1_SIG_EMPTY, &d), OTA_OK);
    assert_int_equal(ota_sig_verify(&rfc1, "x", 1, RFC1_SIG_EMPTY, &d), OTA_E_SIG);

    tkey_make(&t, 0x11);
    tkey_sign_hex(&t, "signed bytes", hex);
    assert_int_equal(ota_sig_verify(&t.pub, "signed bytes", 12, hex, &d), OTA_OK);
    /* tampered message: one byte changed, one byte dropped */
    assert_int_equal(ota_sig_verify(&t.pub, "signed bytez", 12, hex, &d), OTA_E_SIG);
    assert_int_equal(ota_sig_verify(&t.pub, "signed byte", 11, hex, &d), OTA_E_SIG);
    /* tampered signature */
    memcpy(bad, hex, sizeof hex);
    bad[10] = bad[10] == '0' ? '1' : '0';
    assert_int_equal(ota_sig_verify(&t.pub, "signed bytes", 12, bad, &d), OTA_E_SIG);
    /* another key's signature */
    assert_int_equal(ota_sig_verify(&rfc1, "signed bytes", 12, hex, &d), OTA_E_SIG);
    /* malformed signatures */
    memcpy(bad, hex, sizeof hex);
    bad[0] = 'g';
    assert_int_equal(ota_sig_verify(&t.pub, "signed bytes", 12, bad, &d), OTA_E_FORMAT);
    assert_int_equal(ota_sig_verify(&t.pub, "signed bytes", 12, "", &d), OTA_E_FORMAT);
    memcpy(bad, hex, sizeof hex);
    strcat(bad, "00");
    assert_int_equal(ota_sig_verify(&t.pub, "signed bytes", 12, bad, &d), OTA_E_FORMAT);
}

static struct tkey K[4];

static int
setup_keys(void **state)
{
    (void)state;
    if (sodium_init() < 0)
        return -1;
    tkey_make(&K[0], 0x01);
    tkey_make(&K[1], 0x02);
    tkey_make(&K[2], 0x03);
    tkey_make(&K[3], 0x04);
    return 0;
}

static const char MSG[] = "{\"_type\":\"targets\",\"version\":1}";

static ota_err
check(const struct ota_pubkey *keys, size_t n, unsigned threshold, const json_t *sigs,
      unsigned *valid, struct ota_diag *d)
{
    struct ota_role_keys role = {"targets", keys, n, threshold};

    return ota_threshold_verify(&role, sigs, MSG, strlen(MSG), valid, d);
}

static void
test_threshold(void **state)
{
    struct ota_pubkey three[3] = {K[0].pub, K[1].pub, K[2].pub};
    struct ota_pubkey two[2] = {K[0].pub, K[1].pub};
    struct ota_diag   d;
    unsigned          valid;
    json_t           *sigs;

    (void)state;
    /* 2 of 3 met */
    sigs = json_array();
    add_sig(sigs, K[0].pub.keyid, &K[0], MSG);
    add_sig(sigs, K[2].pub.keyid, &K[2], MSG);
    valid = 99;
    assert_int_equal(check(three, 3, 2, sigs, &valid, &d), OTA_OK);
    assert_int_equal(valid, 2);
    /* ... and 3 of 3 is not */
    assert_int_equal(check(three, 3, 3, sigs, &valid, &d), OTA_E_THRESHOLD);
    assert_int_equal(valid, 2);
    json_decref(sigs);

    /* 1 of 2 fails, with the count in the message */
    sigs = json_array();
    add_sig(sigs, K[1].pub.keyid, &K[1], MSG);
    valid = 99;
    assert_int_equal(check(two, 2, 2, sigs, &valid, &d), OTA_E_THRESHOLD);
    assert_int_equal(valid, 1);
    assert_string_equal(d.msg, "targets: 1 of 2 required signatures");
    /* the same key signing again counts once */
    add_sig(sigs, K[1].pub.keyid, &K[1], MSG);
    assert_int_equal(check(two, 2, 2, sigs, &valid, &d), OTA_E_THRESHOLD);
    assert_int_equal(valid, 1);
    /* a key outside the role is ignored, even when its signature is good */
    add_sig(sigs, K[3].pub.keyid, &K[3], MSG);
    assert_int_equal(check(two, 2, 2, sigs, &valid, &d), OTA_E_THRESHOLD);
    assert_int_equal(valid, 1);
    /* a role key's id on another key's signature does not count */
    add_sig(sigs, K[0].pub.keyid, &K[3], MSG);
    assert_int_equal(check(two, 2, 2, sigs, &valid, &d), OTA_E_THRESHOLD);
    assert_int_equal(valid, 1);
    /* a signature over other bytes does not count */
    add_sig(sigs, K[0].pub.keyid, &K[0], "{\"_type\":\"targets\",\"version\":2}");
    assert_int_equal(check(two, 2, 2, sigs, &valid, &d), OTA_E_THRESHOLD);
    assert_int_equal(valid, 1);
    /* a bad signature by a role key does not stop a later good one by the same key */
    add_sig(sigs, K[0].pub.keyid, &K[0], MSG);
    assert_int_equal(check(two, 2, 2, sigs, &valid, &d), OTA_OK);
    assert_int_equal(valid, 2);
    json_decref(sigs);

    /* no signatures at all */
    sigs = json_array();
    assert_int_equal(check(two, 2, 1, sigs, &valid, &d), OTA_E_THRESHOLD);
    assert_int_equal(valid, 0);
    /* valid may be NULL */
    add_sig(sigs, K[0].pub.keyid, &K[0], MSG);
    assert_int_equal(check(two, 2, 1, sigs, NULL, &d), OTA_OK);
    json_decref(sigs);
}

static void
expect_malformed(const struct ota_pubkey *keys, size_t n, json_t *sigs)
{
    struct ota_diag d;
    unsigned        valid = 77;

    memset(&d, 0, sizeof d);
    assert_int_equal(check(keys, n, 1, sigs, &valid, &d), OTA_E_FORMAT);
    assert_int_equal(valid, 77); /* out-parameter untouched on failure */
    assert_true(strncmp(d.msg, "targets: ", 9) == 0);
    json_decref(sigs);
}

static void
test_threshold_malformed(void **state)
{
    struct ota_pubkey two[2] = {K[0].pub, K[1].pub};
    char              hex[2 * OTA_ED25519_SIG + 1];
    json_t           *sigs;
    int               i;

    (void)state;
    tkey_sign_hex(&K[0], MSG, hex);
    expect_malformed(two, 2, json_object());
    expect_malformed(two, 2, json_null());
    expect_malformed(two, 2, parse("[\"not an object\"]"));
    expect_malformed(two, 2, json_pack("[{s:s}]", "keyid", K[0].pub.keyid));
    expect_malformed(two, 2, json_pack("[{s:s}]", "sig", hex));
    expect_malformed(two, 2, json_pack("[{s:i,s:s}]", "keyid", 5, "sig", hex));
    expect_malformed(two, 2, json_pack("[{s:s,s:b}]", "keyid", K[0].pub.keyid, "sig", 1));
    expect_malformed(two, 2, json_pack("[{s:s,s:s}]", "keyid", "", "sig", hex));
    /* a good signature first does not excuse a malformed one after it */
    sigs = json_array();
    add_sig(sigs, K[0].pub.keyid, &K[0], MSG);
    json_array_append_new(sigs, json_integer(1));
    expect_malformed(two, 2, sigs);
    /* over 256 entries */
    sigs = json_array();
    for (i = 0; i < 257; i++)
        add_sig(sigs, K[0].pub.keyid, &K[0], MSG);
    expect_malformed(two, 2, sigs);
    /* a key id longer than any key id */
    sigs = json_array();
    add_sig(sigs, RFC1_ID "00", &K[0], MSG);
    expect_malformed(two, 2, sigs);
}

static void
test_threshold_zero(void **state)
{
    struct ota_pubkey two[2] = {K[0].pub, K[1].pub};
    struct ota_diag   d;
    unsigned          valid = 77;
    json_t           *sigs = json_array();

    (void)state;
    /* A threshold of 0 is a configuration error, never "trust anything". */
    assert_int_equal(check(two, 2, 0, sigs, &valid, &d), OTA_E_FORMAT);
    assert_int_equal(valid, 77);
    json_decref(sigs);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_keyid_vectors),
        cmocka_unit_test(test_pubkey_from_json_good),
        cmocka_unit_test(test_pubkey_from_json_bad),
        cmocka_unit_test(test_sig_verify),
        cmocka_unit_test(test_threshold),
        cmocka_unit_test(test_threshold_malformed),
        cmocka_unit_test(test_threshold_zero),
    };

    return cmocka_run_group_tests(tests, setup_keys, NULL);
}
