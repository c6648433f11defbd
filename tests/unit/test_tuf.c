/* TUF metadata: parsing, signature thresholds, expiry, metafile checks, rollback rule, names
 * and path patterns, with the exact error code of every rejection. Keys come from fixed seeds
 * (tuf_fixture.h), so documents and signatures are byte-stable. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "ota/tuf.h"
#include "tuf_fixture.h"

#define FAR_FUTURE 4102444800 /* 2100-01-01T00:00:00Z */
#define NOW 1795521600        /* 2026-11-24T12:00:00Z */

static struct fx_key K[8];

static int
setup(void **state)
{
    unsigned char i;

    (void)state;
    for (i = 0; i < 8; i++)
        fx_key_init(&K[i], (unsigned char)(i + 1));
    return 0;
}

/* Root with K0 (root), K1 (timestamp), K2 (snapshot), K3 (targets), thresholds 1. */
static void
std_roles(struct fx_role r[4])
{
    memset(r, 0, 4 * sizeof *r);
    r[0] = (struct fx_role){{&K[0]}, 1, 1};
    r[1] = (struct fx_role){{&K[1]}, 1, 1};
    r[2] = (struct fx_role){{&K[2]}, 1, 1};
    r[3] = (struct fx_role){{&K[3]}, 1, 1};
}

/* Encode doc (stolen) and parse it as type; returns the code, *md set on success. */
static ota_err
parse_doc(json_t *doc, enum ota_tuf_type type, struct ota_tuf_md **md, struct ota_diag *d)
{
    size_t  len = 0;
    char   *bytes = fx_bytes(doc, &len);
    ota_err rc;

    *md = NULL;
    memset(d, 0, sizeof *d);
    rc = ota_tuf_parse(bytes, len, OTA_JSON_MAX, type, md, d);
    free(bytes);
    json_decref(doc);
    if (rc != OTA_OK) {
        assert_null(*md);
        assert_true(strlen(d->msg) > 0);
    }
    return rc;
}

static ota_err
parse_fail(json_t *doc, enum ota_tuf_type type)
{
    struct ota_tuf_md *md = NULL;
    struct ota_diag    d;
    ota_err            rc = parse_doc(doc, type, &md, &d);

    ota_tuf_md_free(md);
    return rc;
}

static json_t *
std_root_doc(void)
{
    struct fx_role       r[4];
    const struct fx_key *signer = &K[0];

    std_roles(r);
    return fx_sign(fx_root_signed(1, FAR_FUTURE, 1, r), &signer, 1);
}

static void
test_good_root(void **state)
{
    struct ota_tuf_md          *md = NULL;
    struct ota_diag             d;
    const struct ota_role_keys *rk;

    (void)state;
    assert_int_equal(parse_doc(std_root_doc(), OTA_TUF_ROOT, &md, &d), OTA_OK);
    assert_int_equal(ota_tuf_md_type(md), OTA_TUF_ROOT);
    assert_int_equal(ota_tuf_md_version(md), 1);
    assert_int_equal(ota_tuf_md_expires(md), FAR_FUTURE);
    assert_int_equal(ota_tuf_root_consistent_snapshot(md), 1);
    rk = ota_tuf_root_role(md, OTA_TUF_TARGETS);
    assert_non_null(rk);
    assert_int_equal(rk->nkeys, 1);
    assert_int_equal(rk->threshold, 1);
    assert_string_equal(rk->keys[0].keyid, K[3].keyid);
    assert_string_equal(rk->role, "targets");
    assert_int_equal(ota_tuf_md_verify(md, ota_tuf_root_role(md, OTA_TUF_ROOT), &d), OTA_OK);
    /* signed by the root key, not by the targets key */
    assert_int_equal(ota_tuf_md_verify(md, ota_tuf_root_role(md, OTA_TUF_TARGETS), &d),
                     OTA_E_THRESHOLD);
    assert_null(ota_tuf_timestamp_snapshot(md));
    assert_null(ota_tuf_snapshot_meta(md, "targets.json"));
    ota_tuf_md_free(md);
}

static void
test_good_timestamp_snapshot_targets(void **state)
{
    struct ota_tuf_md               *ts = NULL, *sn = NULL, *tg = NULL;
    struct ota_diag                  d;
    const struct ota_tuf_metafile   *mf;
    struct ota_tuf_targetinfo        ti;
    const struct ota_tuf_delegation *dl;
    const struct fx_key             *s1 = &K[1], *s2 = &K[2], *s3 = &K[3], *dk = &K[4];
    struct ota_role_keys             rk = {"x", NULL, 0, 1};
    struct ota_pubkey                pk[3];
    json_t                          *targets, *dlg;
    size_t                           n;

    (void)state;
    assert_int_equal(ota_pubkey_from_ed25519(K[1].pk, &pk[0], NULL), OTA_OK);
    assert_int_equal(ota_pubkey_from_ed25519(K[2].pk, &pk[1], NULL), OTA_OK);
    assert_int_equal(ota_pubkey_from_ed25519(K[3].pk, &pk[2], NULL), OTA_OK);

    assert_int_equal(
        parse_doc(fx_sign(fx_timestamp_signed(7, FAR_FUTURE, fx_meta_entry(3, "abc", 3)), &s1, 1),
                  OTA_TUF_TIMESTAMP, &ts, &d),
        OTA_OK);
    rk.keys = &pk[0];
    rk.nkeys = 1;
    assert_int_equal(ota_tuf_md_verify(ts, &rk, &d), OTA_OK);
    mf = ota_tuf_timestamp_snapshot(ts);
    assert_non_null(mf);
    assert_string_equal(mf->name, "snapshot.json");
    assert_int_equal(mf->version, 3);
    assert_int_equal(mf->length, 3);
    assert_true(mf->has_sha256);
    assert_int_equal(ota_tuf_metafile_check(mf, "abc", 3, &d), OTA_OK);

    assert_int_equal(
        parse_doc(fx_sign(fx_snapshot_signed(3, FAR_FUTURE,
                                             json_pack("{s:o, s:o}", "targets.json",
                                                       fx_meta_entry(2, NULL, 0), "apps.json",
                                                       fx_meta_entry(5, NULL, 0))),
                          &s2, 1),
                  OTA_TUF_SNAPSHOT, &sn, &d),
        OTA_OK);
    rk.keys = &pk[1];
    assert_int_equal(ota_tuf_md_verify(sn, &rk, &d), OTA_OK);
    mf = ota_tuf_snapshot_meta(sn, "targets.json");
    assert_non_null(mf);
    assert_int_equal(mf->version, 2);
    assert_int_equal(mf->length, -1);
    assert_false(mf->has_sha256);
    assert_int_equal(ota_tuf_snapshot_meta(sn, "apps.json")->version, 5);
    assert_null(ota_tuf_snapshot_meta(sn, "other.json"));

    targets = json_pack("{s:o, s:o}", "app/app-1.0.ota",
                        fx_target_entry("bundle", 6, json_pack("{s:{s:b}}", "ota", "yanked", 0)),
                        "notes.txt", fx_target_entry("", 0, NULL));
    dlg = json_pack("{s:{s:o}, s:[o]}", "keys", dk->keyid, fx_key_json(dk), "roles",
                    fx_delegated_role("apps", &dk, 1, 1, json_pack("[s]", "apps/*"), 1));
    assert_int_equal(parse_doc(fx_sign(fx_targets_signed(2, FAR_FUTURE, targets, dlg), &s3, 1),
                               OTA_TUF_TARGETS, &tg, &d),
                     OTA_OK);
    rk.keys = &pk[2];
    assert_int_equal(ota_tuf_md_verify(tg, &rk, &d), OTA_OK);
    assert_int_equal(ota_tuf_targets_get(tg, "app/app-1.0.ota", &ti, &d), OTA_OK);
    assert_string_equal(ti.path, "app/app-1.0.ota");
    assert_int_equal(ti.length, 6);
    assert_non_null(ti.custom);
    assert_true(json_is_false(json_object_get(json_object_get(ti.custom, "ota"), "yanked")));
    assert_int_equal(ota_tuf_targets_get(tg, "notes.txt", &ti, &d), OTA_OK);
    assert_int_equal(ti.length, 0);
    assert_null(ti.custom);
    assert_int_equal(ota_tuf_targets_get(tg, "missing", &ti, &d), OTA_E_NOT_FOUND);
    dl = ota_tuf_targets_delegations(tg, &n);
    assert_int_equal(n, 1);
    assert_string_equal(dl[0].name, "apps");
    assert_true(dl[0].terminating);
    assert_int_equal(dl[0].keys.nkeys, 1);
    assert_string_equal(dl[0].keys.keys[0].keyid, dk->keyid);
    assert_true(ota_tuf_delegation_matches(&dl[0], "apps/x.ota"));
    assert_false(ota_tuf_delegation_matches(&dl[0], "apps/x/y.ota"));
    assert_false(ota_tuf_delegation_matches(&dl[0], "other/x.ota"));
    ota_tuf_md_free(ts);
    ota_tuf_md_free(sn);
    ota_tuf_md_free(tg);
}

static void
test_wrong_type_and_spec_version(void **state)
{
    struct fx_role       r[4];
    const struct fx_key *k0 = &K[0];
    json_t              *s;
    const char          *bad[] = {"2.0.0", "1", "1.0.x", "1..0", "v1.0.0", "1.0.0.0", "", NULL};
    size_t               i;
    struct ota_tuf_md   *md = NULL;
    struct ota_diag      d;

    (void)state;
    std_roles(r);
    /* a root is not a timestamp, and a timestamp is not a root */
    assert_int_equal(parse_fail(std_root_doc(), OTA_TUF_TIMESTAMP), OTA_E_FORMAT);
    assert_int_equal(
        parse_fail(fx_sign(fx_timestamp_signed(1, FAR_FUTURE, fx_meta_entry(1, NULL, 0)), &k0, 1),
                   OTA_TUF_ROOT),
        OTA_E_FORMAT);
    for (i = 0; bad[i] != NULL; i++) {
        s = fx_root_signed(1, FAR_FUTURE, 1, r);
        json_object_set_new(s, "spec_version", json_string(bad[i]));
        assert_int_equal(parse_fail(fx_sign(s, &k0, 1), OTA_TUF_ROOT), OTA_E_FORMAT);
    }
    /* 1.x of any minor, with or without patch, is accepted */
    s = fx_root_signed(1, FAR_FUTURE, 1, r);
    json_object_set_new(s, "spec_version", json_string("1.2"));
    assert_int_equal(parse_doc(fx_sign(s, &k0, 1), OTA_TUF_ROOT, &md, &d), OTA_OK);
    ota_tuf_md_free(md);
}

static void
test_bad_fields(void **state)
{
    struct fx_role       r[4];
    const struct fx_key *k0 = &K[0];
    json_t              *s;

    (void)state;
    std_roles(r);
    s = fx_root_signed(1, FAR_FUTURE, 1, r);
    json_object_set_new(s, "version", json_integer(0));
    assert_int_equal(parse_fail(fx_sign(s, &k0, 1), OTA_TUF_ROOT), OTA_E_FORMAT);
    s = fx_root_signed(1, FAR_FUTURE, 1, r);
    json_object_set_new(s, "expires", json_string("2030-01-01 00:00:00"));
    assert_int_equal(parse_fail(fx_sign(s, &k0, 1), OTA_TUF_ROOT), OTA_E_FORMAT);
    s = fx_root_signed(1, FAR_FUTURE, 1, r);
    json_object_set_new(s, "consistent_snapshot", json_string("yes"));
    assert_int_equal(parse_fail(fx_sign(s, &k0, 1), OTA_TUF_ROOT), OTA_E_FORMAT);
    s = fx_root_signed(1, FAR_FUTURE, 1, r);
    json_object_set_new(json_object_get(json_object_get(s, "roles"), "targets"), "threshold",
                        json_integer(0));
    assert_int_equal(parse_fail(fx_sign(s, &k0, 1), OTA_TUF_ROOT), OTA_E_FORMAT);
    s = fx_root_signed(1, FAR_FUTURE, 1, r);
    json_object_del(json_object_get(s, "roles"), "snapshot");
    assert_int_equal(parse_fail(fx_sign(s, &k0, 1), OTA_TUF_ROOT), OTA_E_FORMAT);
    s = fx_root_signed(1, FAR_FUTURE, 1, r);
    json_object_set_new(json_object_get(s, "roles"), "mirrors",
                        json_pack("{s:[], s:i}", "keyids", "threshold", 1));
    assert_int_equal(parse_fail(fx_sign(s, &k0, 1), OTA_TUF_ROOT), OTA_E_FORMAT);
    /* envelope */
    assert_int_equal(parse_fail(json_pack("{s:[]}", "signatures"), OTA_TUF_ROOT), OTA_E_FORMAT);
    assert_int_equal(parse_fail(json_pack("[]"), OTA_TUF_ROOT), OTA_E_FORMAT);
    s = json_pack("{s:{}, s:o}", "signatures", "signed", fx_root_signed(1, FAR_FUTURE, 1, r));
    assert_int_equal(parse_fail(s, OTA_TUF_ROOT), OTA_E_FORMAT);
    /* timestamp meta: only snapshot.json, sha256 required among hashes */
    s = fx_timestamp_signed(1, FAR_FUTURE, fx_meta_entry(1, NULL, 0));
    json_object_set_new(json_object_get(s, "meta"), "targets.json", fx_meta_entry(1, NULL, 0));
    assert_int_equal(parse_fail(fx_sign(s, &k0, 1), OTA_TUF_TIMESTAMP), OTA_E_FORMAT);
    s = fx_timestamp_signed(1, FAR_FUTURE,
                            json_pack("{s:i, s:{s:s}}", "version", 1, "hashes", "sha512", "00"));
    assert_int_equal(parse_fail(fx_sign(s, &k0, 1), OTA_TUF_TIMESTAMP), OTA_E_FORMAT);
    s = fx_timestamp_signed(1, FAR_FUTURE,
                            json_pack("{s:i, s:{s:s}}", "version", 1, "hashes", "sha256", "abcd"));
    assert_int_equal(parse_fail(fx_sign(s, &k0, 1), OTA_TUF_TIMESTAMP), OTA_E_FORMAT);
    s = fx_timestamp_signed(1, FAR_FUTURE, json_pack("{s:i}", "version", 0));
    assert_int_equal(parse_fail(fx_sign(s, &k0, 1), OTA_TUF_TIMESTAMP), OTA_E_FORMAT);
    /* snapshot must list targets.json */
    s = fx_snapshot_signed(1, FAR_FUTURE, json_pack("{s:o}", "a.json", fx_meta_entry(1, NULL, 0)));
    assert_int_equal(parse_fail(fx_sign(s, &k0, 1), OTA_TUF_SNAPSHOT), OTA_E_FORMAT);
    /* a target needs a length and a sha256 */
    s = fx_targets_signed(1, FAR_FUTURE, json_pack("{s:{s:i}}", "a", "length", 1), NULL);
    assert_int_equal(parse_fail(fx_sign(s, &k0, 1), OTA_TUF_TARGETS), OTA_E_FORMAT);
    s = fx_targets_signed(
        1, FAR_FUTURE, json_pack("{s:{s:i, s:{s:s}}}", "a", "length", 1, "hashes", "sha512", "00"),
        NULL);
    assert_int_equal(parse_fail(fx_sign(s, &k0, 1), OTA_TUF_TARGETS), OTA_E_FORMAT);
    s = fx_targets_signed(1, FAR_FUTURE, json_pack("{s:o}", "a", fx_target_entry("x", 1, NULL)),
                          NULL);
    json_object_set_new(json_object_get(json_object_get(s, "targets"), "a"), "length",
                        json_integer(-1));
    assert_int_equal(parse_fail(fx_sign(s, &k0, 1), OTA_TUF_TARGETS), OTA_E_FORMAT);
    /* real numbers are not JSON TUF accepts */
    {
        static const char  doc[] = "{\"signatures\":[],\"signed\":{\"_type\":\"root\",\"v\":1.5}}";
        struct ota_tuf_md *md = NULL;
        assert_int_equal(ota_tuf_parse(doc, strlen(doc), OTA_JSON_MAX, OTA_TUF_ROOT, &md, NULL),
                         OTA_E_FORMAT);
        assert_null(md);
    }
}

static void
test_expiry(void **state)
{
    struct ota_tuf_md   *md = NULL;
    struct ota_diag      d;
    const struct fx_key *k1 = &K[1];

    (void)state;
    assert_int_equal(
        parse_doc(fx_sign(fx_timestamp_signed(1, NOW, fx_meta_entry(1, NULL, 0)), &k1, 1),
                  OTA_TUF_TIMESTAMP, &md, &d),
        OTA_OK);
    assert_int_equal(ota_tuf_md_check_expiry(md, NOW - 1, &d), OTA_OK);
    assert_int_equal(ota_tuf_md_check_expiry(md, NOW, &d), OTA_E_EXPIRED); /* at = expired */
    assert_non_null(strstr(d.msg, "2026-11-24T12:00:00Z"));
    assert_int_equal(ota_tuf_md_check_expiry(md, NOW + 86400, &d), OTA_E_EXPIRED);
    ota_tuf_md_free(md);
}

static void
test_threshold(void **state)
{
    struct fx_role       r[4];
    const struct fx_key *one[] = {&K[0]}, *two[] = {&K[0], &K[5]}, *twice[] = {&K[0], &K[0]};
    const struct fx_key *outsider[] = {&K[0], &K[6]};
    struct ota_tuf_md   *md = NULL;
    struct ota_diag      d;
    json_t              *doc;
    size_t               len;
    char                *bytes;

    (void)state;
    std_roles(r);
    r[0] = (struct fx_role){{&K[0], &K[5]}, 2, 2};
    /* 1 of 2 */
    assert_int_equal(
        parse_doc(fx_sign(fx_root_signed(1, FAR_FUTURE, 1, r), one, 1), OTA_TUF_ROOT, &md, &d),
        OTA_OK);
    assert_int_equal(ota_tuf_md_verify(md, ota_tuf_root_role(md, OTA_TUF_ROOT), &d),
                     OTA_E_THRESHOLD);
    assert_non_null(strstr(d.msg, "1 of 2"));
    ota_tuf_md_free(md);
    /* the same key signing twice counts once */
    assert_int_equal(
        parse_doc(fx_sign(fx_root_signed(1, FAR_FUTURE, 1, r), twice, 2), OTA_TUF_ROOT, &md, &d),
        OTA_OK);
    assert_int_equal(ota_tuf_md_verify(md, ota_tuf_root_role(md, OTA_TUF_ROOT), &d),
                     OTA_E_THRESHOLD);
    ota_tuf_md_free(md);
    /* a key outside the role does not count */
    assert_int_equal(
        parse_doc(fx_sign(fx_root_signed(1, FAR_FUTURE, 1, r), outsider, 2), OTA_TUF_ROOT, &md, &d),
        OTA_OK);
    assert_int_equal(ota_tuf_md_verify(md, ota_tuf_root_role(md, OTA_TUF_ROOT), &d),
                     OTA_E_THRESHOLD);
    ota_tuf_md_free(md);
    /* 2 of 2 */
    assert_int_equal(
        parse_doc(fx_sign(fx_root_signed(1, FAR_FUTURE, 1, r), two, 2), OTA_TUF_ROOT, &md, &d),
        OTA_OK);
    assert_int_equal(ota_tuf_md_verify(md, ota_tuf_root_role(md, OTA_TUF_ROOT), &d), OTA_OK);
    ota_tuf_md_free(md);
    /* content changed after signing: signatures no longer verify */
    doc = fx_sign(fx_root_signed(1, FAR_FUTURE, 1, r), two, 2);
    json_object_set_new(json_object_get(doc, "signed"), "version", json_integer(2));
    bytes = fx_bytes(doc, &len);
    json_decref(doc);
    assert_int_equal(ota_tuf_parse(bytes, len, OTA_JSON_MAX, OTA_TUF_ROOT, &md, &d), OTA_OK);
    free(bytes);
    assert_int_equal(ota_tuf_md_verify(md, ota_tuf_root_role(md, OTA_TUF_ROOT), &d),
                     OTA_E_THRESHOLD);
    ota_tuf_md_free(md);
}

static void
test_keyid_mismatch(void **state)
{
    struct fx_role       r[4];
    const struct fx_key *k0 = &K[0];
    json_t              *s, *keys;

    (void)state;
    std_roles(r);
    /* K3's key object listed under K4's id */
    s = fx_root_signed(1, FAR_FUTURE, 1, r);
    keys = json_object_get(s, "keys");
    json_object_set_new(keys, K[4].keyid, fx_key_json(&K[3]));
    assert_int_equal(parse_fail(fx_sign(s, &k0, 1), OTA_TUF_ROOT), OTA_E_KEY_UNKNOWN);
    /* the same for an algorithm we do not verify */
    s = fx_root_signed(1, FAR_FUTURE, 1, r);
    json_object_set_new(json_object_get(s, "keys"), K[4].keyid,
                        json_pack("{s:s, s:s, s:{s:s}}", "keytype", "rsa", "scheme",
                                  "rsassa-pss-sha256", "keyval", "public", "PEM"));
    assert_int_equal(parse_fail(fx_sign(s, &k0, 1), OTA_TUF_ROOT), OTA_E_KEY_UNKNOWN);
    /* and in delegations */
    s = fx_targets_signed(
        1, FAR_FUTURE, NULL,
        json_pack("{s:{s:o}, s:[]}", "keys", K[4].keyid, fx_key_json(&K[5]), "roles"));
    assert_int_equal(parse_fail(fx_sign(s, &k0, 1), OTA_TUF_TARGETS), OTA_E_KEY_UNKNOWN);
}

static void
test_unsupported_key_never_verifies(void **state)
{
    struct fx_role       r[4];
    const struct fx_key *k0 = &K[0];
    json_t              *s, *rsa, *ids;
    char                 kid[OTA_KEYID_HEX];
    struct ota_tuf_md   *md = NULL;
    struct ota_diag      d;

    (void)state;
    std_roles(r);
    rsa = json_pack("{s:s, s:s, s:{s:s}}", "keytype", "rsa", "scheme", "rsassa-pss-sha256",
                    "keyval", "public", "-----BEGIN PUBLIC KEY-----");
    assert_int_equal(ota_keyid_of(rsa, kid, NULL), OTA_OK);
    s = fx_root_signed(1, FAR_FUTURE, 1, r);
    json_object_set_new(json_object_get(s, "keys"), kid, rsa);
    ids = json_object_get(json_object_get(json_object_get(s, "roles"), "targets"), "keyids");
    json_array_clear(ids);
    json_array_append_new(ids, json_string(kid));
    assert_int_equal(parse_doc(fx_sign(s, &k0, 1), OTA_TUF_ROOT, &md, &d), OTA_OK);
    assert_int_equal(ota_tuf_root_role(md, OTA_TUF_TARGETS)->nkeys, 1);
    assert_string_equal(ota_tuf_root_role(md, OTA_TUF_TARGETS)->keys[0].keyid, kid);
    ota_tuf_md_free(md);
    /* a targets document "signed" under that id does not verify */
    {
        struct ota_pubkey    pk;
        struct ota_role_keys rk = {"targets", &pk, 1, 1};
        json_t              *t = fx_targets_signed(1, FAR_FUTURE, NULL, NULL);
        json_t *doc = json_pack("{s:[{s:s, s:s}], s:o}", "signatures", "keyid", kid, "sig", "00",
                                "signed", t);
        memset(&pk, 0, sizeof pk);
        strcpy(pk.keyid, kid);
        assert_int_equal(parse_doc(doc, OTA_TUF_TARGETS, &md, &d), OTA_OK);
        assert_int_equal(ota_tuf_md_verify(md, &rk, &d), OTA_E_THRESHOLD);
        ota_tuf_md_free(md);
    }
}

static void
test_duplicate_keys(void **state)
{
    struct fx_role       r[4];
    const struct fx_key *k0 = &K[0], *dk = &K[4];
    json_t              *s, *alias, *ids;
    char                 kid[OTA_KEYID_HEX];
    static const char    dup_json[] =
        "{\"signatures\":[],\"signed\":{\"_type\":\"root\",\"_type\":\"root\"}}";
    struct ota_tuf_md *md = NULL;

    (void)state;
    std_roles(r);
    /* the same key id twice in one role */
    s = fx_root_signed(1, FAR_FUTURE, 1, r);
    ids = json_object_get(json_object_get(json_object_get(s, "roles"), "root"), "keyids");
    json_array_append_new(ids, json_string(K[0].keyid));
    json_object_set_new(json_object_get(json_object_get(s, "roles"), "root"), "threshold",
                        json_integer(2));
    assert_int_equal(parse_fail(fx_sign(s, &k0, 1), OTA_TUF_ROOT), OTA_E_FORMAT);
    /* the same public key under a second id (an extra member changes the id): one signer
     * must not count as two */
    alias = fx_key_json(&K[0]);
    json_object_set_new(alias, "keyid_hash_algorithms", json_pack("[s]", "sha256"));
    assert_int_equal(ota_keyid_of(alias, kid, NULL), OTA_OK);
    assert_string_not_equal(kid, K[0].keyid);
    s = fx_root_signed(1, FAR_FUTURE, 1, r);
    json_object_set_new(json_object_get(s, "keys"), kid, alias);
    ids = json_object_get(json_object_get(json_object_get(s, "roles"), "root"), "keyids");
    json_array_append_new(ids, json_string(kid));
    assert_int_equal(parse_fail(fx_sign(s, &k0, 1), OTA_TUF_ROOT), OTA_E_FORMAT);
    /* a JSON member given twice */
    assert_int_equal(
        ota_tuf_parse(dup_json, strlen(dup_json), OTA_JSON_MAX, OTA_TUF_ROOT, &md, NULL),
        OTA_E_FORMAT);
    assert_null(md);
    /* a role delegated twice */
    s = fx_targets_signed(1, FAR_FUTURE, NULL,
                          json_pack("{s:{s:o}, s:[o, o]}", "keys", dk->keyid, fx_key_json(dk),
                                    "roles",
                                    fx_delegated_role("a", &dk, 1, 1, json_pack("[s]", "*"), 0),
                                    fx_delegated_role("a", &dk, 1, 1, json_pack("[s]", "*"), 0)));
    assert_int_equal(parse_fail(fx_sign(s, &k0, 1), OTA_TUF_TARGETS), OTA_E_FORMAT);
}

static json_t *
many(size_t n, json_t *(*make)(size_t i))
{
    json_t *a = json_array();
    size_t  i;

    for (i = 0; i < n; i++)
        json_array_append_new(a, make(i));
    return a;
}

static json_t *
mk_str(size_t i)
{
    char b[32];

    snprintf(b, sizeof b, "p%zu/*", i);
    return json_string(b);
}

static json_t *
mk_sig(size_t i)
{
    (void)i;
    return json_pack("{s:s, s:s}", "keyid", "00", "sig", "00");
}

static json_t *
mk_role(size_t i)
{
    char b[32];

    snprintf(b, sizeof b, "r%zu", i);
    return json_pack("{s:s, s:[], s:i, s:[s], s:b}", "name", b, "keyids", "threshold", 1, "paths",
                     "*", "terminating", 0);
}

static void
test_oversized(void **state)
{
    struct fx_role       r[4];
    const struct fx_key *k0 = &K[0];
    json_t              *s, *keys, *targets, *doc;
    size_t               i, len;
    char                *bytes;
    struct ota_tuf_md   *md = NULL;
    struct ota_diag      d;

    (void)state;
    std_roles(r);
    /* whole document over its cap */
    doc = std_root_doc();
    bytes = fx_bytes(doc, &len);
    json_decref(doc);
    assert_int_equal(ota_tuf_parse(bytes, len, len - 1, OTA_TUF_ROOT, &md, &d), OTA_E_TOO_BIG);
    assert_null(md);
    assert_int_equal(ota_tuf_parse(bytes, len, len, OTA_TUF_ROOT, &md, &d), OTA_OK);
    ota_tuf_md_free(md);
    free(bytes);
    /* 257 keys */
    s = fx_root_signed(1, FAR_FUTURE, 1, r);
    keys = json_object_get(s, "keys");
    for (i = 0; json_object_size(keys) <= OTA_TUF_MAX_KEYS; i++) {
        char id[32];
        snprintf(id, sizeof id, "k%zu", i);
        json_object_set_new(keys, id, json_object());
    }
    assert_int_equal(parse_fail(fx_sign(s, &k0, 1), OTA_TUF_ROOT), OTA_E_TOO_BIG);
    /* 257 key ids in a role */
    s = fx_root_signed(1, FAR_FUTURE, 1, r);
    json_object_set_new(json_object_get(json_object_get(s, "roles"), "root"), "keyids",
                        many(OTA_TUF_MAX_KEYIDS + 1, mk_str));
    assert_int_equal(parse_fail(fx_sign(s, &k0, 1), OTA_TUF_ROOT), OTA_E_TOO_BIG);
    /* 257 signatures */
    doc = json_pack("{s:o, s:o}", "signatures", many(OTA_TUF_MAX_SIGNATURES + 1, mk_sig), "signed",
                    fx_root_signed(1, FAR_FUTURE, 1, r));
    assert_int_equal(parse_fail(doc, OTA_TUF_ROOT), OTA_E_TOO_BIG);
    /* 257 delegated roles */
    s = fx_targets_signed(
        1, FAR_FUTURE, NULL,
        json_pack("{s:{}, s:o}", "keys", "roles", many(OTA_TUF_MAX_ROLES + 1, mk_role)));
    assert_int_equal(parse_fail(fx_sign(s, &k0, 1), OTA_TUF_TARGETS), OTA_E_TOO_BIG);
    /* 257 paths in a role */
    s = fx_targets_signed(1, FAR_FUTURE, NULL,
                          json_pack("{s:{}, s:[{s:s, s:[], s:i, s:o, s:b}]}", "keys", "roles",
                                    "name", "a", "keyids", "threshold", 1, "paths",
                                    many(OTA_TUF_MAX_PATHS + 1, mk_str), "terminating", 0));
    assert_int_equal(parse_fail(fx_sign(s, &k0, 1), OTA_TUF_TARGETS), OTA_E_TOO_BIG);
    /* 100001 targets */
    targets = json_object();
    for (i = 0; i <= OTA_TUF_MAX_TARGETS; i++) {
        char p[32];
        snprintf(p, sizeof p, "t%zu", i);
        json_object_set_new(targets, p, json_object());
    }
    s = fx_targets_signed(1, FAR_FUTURE, targets, NULL);
    assert_int_equal(parse_fail(fx_sign(s, &k0, 1), OTA_TUF_TARGETS), OTA_E_TOO_BIG);
}

static void
test_unsafe_target_paths(void **state)
{
    static const char *const bad[] = {"",     "/etc/passwd", "../x",  "a/../b", "a/..",
                                      "..",   ".",           "./a",   "a//b",   "a/",
                                      "a\\b", "a\nb",        "a\x7f", NULL};
    static const char *const good[] = {"a",     "app/app-1.2.0.ota", "...", "a/.hidden",
                                       "a b/c", "\xc3\xa9t\xc3\xa9", NULL};
    const struct fx_key     *k0 = &K[0];
    size_t                   i;
    struct ota_diag          d;

    (void)state;
    for (i = 0; bad[i] != NULL; i++) {
        assert_int_equal(ota_tuf_target_path_check(bad[i], &d), OTA_E_UNSAFE_PATH);
        if (bad[i][0] != '\0') {
            json_t *t = json_object();
            json_object_set_new(t, bad[i], fx_target_entry("x", 1, NULL));
            assert_int_equal(parse_fail(fx_sign(fx_targets_signed(1, FAR_FUTURE, t, NULL), &k0, 1),
                                        OTA_TUF_TARGETS),
                             OTA_E_UNSAFE_PATH);
        }
    }
    for (i = 0; good[i] != NULL; i++)
        assert_int_equal(ota_tuf_target_path_check(good[i], &d), OTA_OK);
    {
        char long_path[OTA_TUF_PATH_MAX + 2];
        memset(long_path, 'a', sizeof long_path - 1);
        long_path[sizeof long_path - 1] = '\0';
        assert_int_equal(ota_tuf_target_path_check(long_path, &d), OTA_E_UNSAFE_PATH);
        long_path[OTA_TUF_PATH_MAX] = '\0';
        assert_int_equal(ota_tuf_target_path_check(long_path, &d), OTA_OK);
    }
}

static void
test_role_names(void **state)
{
    static const char *const bad[] = {"",        "root", "timestamp", "snapshot",
                                      "targets", "a\tb", "a\nb",      NULL};
    const struct fx_key     *k0 = &K[0], *dk = &K[4];
    char                     fname[OTA_TUF_FILENAME_MAX], big[100];
    size_t                   i;
    struct ota_diag          d;

    (void)state;
    for (i = 0; bad[i] != NULL; i++) {
        json_t *s = fx_targets_signed(
            1, FAR_FUTURE, NULL,
            json_pack("{s:{s:o}, s:[o]}", "keys", dk->keyid, fx_key_json(dk), "roles",
                      fx_delegated_role(bad[i], &dk, 1, 1, json_pack("[s]", "*"), 0)));
        assert_int_equal(ota_tuf_role_name_check(bad[i], &d), OTA_E_UNSAFE_PATH);
        assert_int_equal(parse_fail(fx_sign(s, &k0, 1), OTA_TUF_TARGETS), OTA_E_UNSAFE_PATH);
    }
    /* every other character is encoded into one file name that stays in its directory */
    assert_int_equal(ota_tuf_role_name_check("../delegatedrole", &d), OTA_OK);
    assert_int_equal(ota_tuf_role_filename("../delegatedrole", fname, &d), OTA_OK);
    assert_string_equal(fname, "..%2Fdelegatedrole.json");
    assert_int_equal(ota_tuf_role_filename("/etc/passwd", fname, &d), OTA_OK);
    assert_string_equal(fname, "%2Fetc%2Fpasswd.json");
    assert_int_equal(ota_tuf_role_filename("a\\b?#", fname, &d), OTA_OK);
    assert_string_equal(fname, "a%5Cb%3F%23.json");
    assert_int_equal(ota_tuf_role_filename("..", fname, &d), OTA_OK);
    assert_string_equal(fname, "...json");
    assert_int_equal(ota_tuf_role_filename("targets", fname, &d), OTA_OK);
    assert_string_equal(fname, "targets.json");
    /* 250 bytes is the longest encoded name (".json" makes 255) */
    memset(big, '%', 83);
    big[83] = '\0'; /* encodes to 249 bytes */
    assert_int_equal(ota_tuf_role_filename(big, fname, &d), OTA_OK);
    assert_int_equal(strlen(fname), 254);
    memset(big, '%', 84);
    big[84] = '\0'; /* 252 bytes */
    assert_int_equal(ota_tuf_role_filename(big, fname, &d), OTA_E_UNSAFE_PATH);
    assert_int_equal(ota_tuf_role_name_check(big, &d), OTA_E_UNSAFE_PATH);
}

static void
test_quote(void **state)
{
    char            out[64];
    struct ota_diag d;

    (void)state;
    assert_int_equal(ota_tuf_quote("a/b c~_.-Z9", "", out, sizeof out, &d), OTA_OK);
    assert_string_equal(out, "a%2Fb%20c~_.-Z9");
    assert_int_equal(ota_tuf_quote("a/b c", "/", out, sizeof out, &d), OTA_OK);
    assert_string_equal(out, "a/b%20c");
    assert_int_equal(ota_tuf_quote("\xc3\xa9%", "", out, sizeof out, &d), OTA_OK);
    assert_string_equal(out, "%C3%A9%25");
    assert_int_equal(ota_tuf_quote("abc", "", out, 4, &d), OTA_OK);
    assert_int_equal(ota_tuf_quote("abc", "", out, 3, &d), OTA_E_TOO_BIG);
    assert_int_equal(ota_tuf_quote("/", "", out, 3, &d), OTA_E_TOO_BIG);
}

static void
test_path_match(void **state)
{
    char   s[4001];
    char   p[64];
    time_t t0;

    (void)state;
    /* the examples of the specification */
    assert_true(ota_tuf_path_match("targets/*.tgz", "targets/foo.tgz"));
    assert_true(ota_tuf_path_match("targets/*.tgz", "targets/bar.tgz"));
    assert_false(ota_tuf_path_match("targets/*.tgz", "targets/foo.txt"));
    assert_true(ota_tuf_path_match("foo-version-?.tgz", "foo-version-2.tgz"));
    assert_true(ota_tuf_path_match("foo-version-?.tgz", "foo-version-a.tgz"));
    assert_false(ota_tuf_path_match("foo-version-?.tgz", "foo-version-alpha.tgz"));
    assert_true(ota_tuf_path_match("*.tgz", "foo.tgz"));
    assert_false(ota_tuf_path_match("*.tgz", "targets/foo.tgz"));
    assert_true(ota_tuf_path_match("foo.tgz", "foo.tgz"));
    assert_false(ota_tuf_path_match("foo.tgz", "bar.tgz"));
    /* a separator is never matched by a wildcard */
    assert_true(ota_tuf_path_match("*", "a"));
    assert_false(ota_tuf_path_match("*", "a/b"));
    assert_true(ota_tuf_path_match("*/*", "a/b"));
    assert_false(ota_tuf_path_match("a/?", "a//"));
    assert_false(ota_tuf_path_match("a*b", "a/b"));
    assert_true(ota_tuf_path_match("app/*", "app/app-1.0.ota"));
    assert_false(ota_tuf_path_match("app/*", "app2/app-1.0.ota"));
    /* sets */
    assert_true(ota_tuf_path_match("file[0-9].txt", "file7.txt"));
    assert_false(ota_tuf_path_match("file[0-9].txt", "filex.txt"));
    assert_true(ota_tuf_path_match("file[!0-9].txt", "filex.txt"));
    assert_false(ota_tuf_path_match("file[!0-9].txt", "file7.txt"));
    assert_true(ota_tuf_path_match("[]]", "]"));
    assert_true(ota_tuf_path_match("a[", "a["));      /* unclosed: literal */
    assert_true(ota_tuf_path_match("?", "\xc3\xa9")); /* one character, two bytes */
    assert_true(ota_tuf_path_match("*", ""));
    assert_true(ota_tuf_path_match("**", "abc"));
    assert_true(ota_tuf_path_match("a*c*e", "abcde"));
    assert_false(ota_tuf_path_match("a*c*e", "abcdf"));
    /* a hostile pattern finishes quickly */
    memset(s, 'a', sizeof s - 1);
    s[sizeof s - 1] = '\0';
    snprintf(p, sizeof p, "*a*a*a*a*a*a*a*a*a*a*a*a*b");
    t0 = time(NULL);
    assert_false(ota_tuf_path_match(p, s));
    assert_true(time(NULL) - t0 < 2);
}

static void
test_hash_prefixes(void **state)
{
    const struct fx_key             *k0 = &K[0], *dk = &K[4];
    char                             hex[OTA_SHA256_HEX], pre[8];
    json_t                          *role, *s;
    struct ota_tuf_md               *md = NULL;
    struct ota_diag                  d;
    const struct ota_tuf_delegation *dl;
    size_t                           n;

    (void)state;
    assert_int_equal(ota_sha256_hex("bins/file.txt", 13, hex), OTA_OK);
    memcpy(pre, hex, 2);
    pre[2] = '\0';
    role = fx_delegated_role("bin", &dk, 1, 1, json_array(), 0);
    json_object_del(role, "paths");
    json_object_set_new(role, "path_hash_prefixes", json_pack("[s]", pre));
    s = fx_targets_signed(
        1, FAR_FUTURE, NULL,
        json_pack("{s:{s:o}, s:[o]}", "keys", dk->keyid, fx_key_json(dk), "roles", role));
    assert_int_equal(parse_doc(fx_sign(s, &k0, 1), OTA_TUF_TARGETS, &md, &d), OTA_OK);
    dl = ota_tuf_targets_delegations(md, &n);
    assert_int_equal(n, 1);
    assert_null(dl[0].paths);
    assert_true(ota_tuf_delegation_matches(&dl[0], "bins/file.txt"));
    /* another path whose digest starts differently */
    {
        char other[32];
        int  i;
        for (i = 0;; i++) {
            snprintf(other, sizeof other, "other%d", i);
            assert_int_equal(ota_sha256_hex(other, strlen(other), hex), OTA_OK);
            if (strncmp(hex, pre, 2) != 0)
                break;
        }
        assert_false(ota_tuf_delegation_matches(&dl[0], other));
    }
    ota_tuf_md_free(md);
    /* both paths and prefixes, or neither, or prefixes that are not hex */
    role = fx_delegated_role("bin", &dk, 1, 1, json_pack("[s]", "*"), 0);
    json_object_set_new(role, "path_hash_prefixes", json_pack("[s]", "ab"));
    s = fx_targets_signed(1, FAR_FUTURE, NULL, json_pack("{s:{}, s:[o]}", "keys", "roles", role));
    assert_int_equal(parse_fail(fx_sign(s, &k0, 1), OTA_TUF_TARGETS), OTA_E_FORMAT);
    role = fx_delegated_role("bin", &dk, 1, 1, json_array(), 0);
    json_object_del(role, "paths");
    s = fx_targets_signed(1, FAR_FUTURE, NULL, json_pack("{s:{}, s:[o]}", "keys", "roles", role));
    assert_int_equal(parse_fail(fx_sign(s, &k0, 1), OTA_TUF_TARGETS), OTA_E_FORMAT);
    role = fx_delegated_role("bin", &dk, 1, 1, json_array(), 0);
    json_object_del(role, "paths");
    json_object_set_new(role, "path_hash_prefixes", json_pack("[s]", "xy"));
    s = fx_targets_signed(1, FAR_FUTURE, NULL, json_pack("{s:{}, s:[o]}", "keys", "roles", role));
    assert_int_equal(parse_fail(fx_sign(s, &k0, 1), OTA_TUF_TARGETS), OTA_E_FORMAT);
    /* succinct delegations are refused, not ignored */
    s = fx_targets_signed(1, FAR_FUTURE, NULL,
                          json_pack("{s:{}, s:{s:[], s:i, s:i, s:s}}", "keys", "succinct_roles",
                                    "keyids", "threshold", 1, "bit_length", 8, "name_prefix",
                                    "bin"));
    assert_int_equal(parse_fail(fx_sign(s, &k0, 1), OTA_TUF_TARGETS), OTA_E_FORMAT);
}

static void
test_metafile_and_rollback(void **state)
{
    struct ota_tuf_metafile mf;
    struct ota_tuf_md      *a = NULL, *b = NULL;
    struct ota_diag         d;
    const struct fx_key    *k2 = &K[2];

    (void)state;
    memset(&mf, 0, sizeof mf);
    mf.name = "snapshot.json";
    mf.version = 1;
    mf.length = 5;
    assert_int_equal(ota_tuf_metafile_check(&mf, "abcde", 5, &d), OTA_OK);
    assert_int_equal(ota_tuf_metafile_check(&mf, "abcd", 4, &d), OTA_E_LENGTH);
    mf.has_sha256 = 1;
    assert_int_equal(ota_sha256_buf("abcde", 5, mf.sha256), OTA_OK);
    assert_int_equal(ota_tuf_metafile_check(&mf, "abcde", 5, &d), OTA_OK);
    assert_int_equal(ota_tuf_metafile_check(&mf, "abcdX", 5, &d), OTA_E_DIGEST);
    mf.length = -1; /* no length: only the digest */
    assert_int_equal(ota_tuf_metafile_check(&mf, "abcdX", 5, &d), OTA_E_DIGEST);

    assert_int_equal(
        parse_doc(fx_sign(fx_snapshot_signed(1, FAR_FUTURE,
                                             json_pack("{s:o, s:o}", "targets.json",
                                                       fx_meta_entry(3, NULL, 0), "a.json",
                                                       fx_meta_entry(2, NULL, 0))),
                          &k2, 1),
                  OTA_TUF_SNAPSHOT, &a, &d),
        OTA_OK);
    /* same and higher versions: fine */
    assert_int_equal(
        parse_doc(fx_sign(fx_snapshot_signed(2, FAR_FUTURE,
                                             json_pack("{s:o, s:o, s:o}", "targets.json",
                                                       fx_meta_entry(4, NULL, 0), "a.json",
                                                       fx_meta_entry(2, NULL, 0), "b.json",
                                                       fx_meta_entry(1, NULL, 0))),
                          &k2, 1),
                  OTA_TUF_SNAPSHOT, &b, &d),
        OTA_OK);
    assert_int_equal(ota_tuf_snapshot_check_rollback(a, b, &d), OTA_OK);
    /* b -> a drops b.json and lowers targets.json */
    assert_int_equal(ota_tuf_snapshot_check_rollback(b, a, &d), OTA_E_ROLLBACK);
    ota_tuf_md_free(b);
    assert_int_equal(parse_doc(fx_sign(fx_snapshot_signed(2, FAR_FUTURE,
                                                          json_pack("{s:o}", "targets.json",
                                                                    fx_meta_entry(3, NULL, 0))),
                                       &k2, 1),
                               OTA_TUF_SNAPSHOT, &b, &d),
                     OTA_OK);
    assert_int_equal(ota_tuf_snapshot_check_rollback(a, b, &d), OTA_E_ROLLBACK);
    assert_non_null(strstr(d.msg, "a.json"));
    ota_tuf_md_free(a);
    ota_tuf_md_free(b);
}

static void
test_role_changed(void **state)
{
    struct fx_role       r[4];
    const struct fx_key *k0 = &K[0];
    struct ota_tuf_md   *a = NULL, *b = NULL;
    struct ota_diag      d;

    (void)state;
    std_roles(r);
    assert_int_equal(
        parse_doc(fx_sign(fx_root_signed(1, FAR_FUTURE, 1, r), &k0, 1), OTA_TUF_ROOT, &a, &d),
        OTA_OK);
    r[1] = (struct fx_role){{&K[6]}, 1, 1}; /* new timestamp key */
    assert_int_equal(
        parse_doc(fx_sign(fx_root_signed(2, FAR_FUTURE, 1, r), &k0, 1), OTA_TUF_ROOT, &b, &d),
        OTA_OK);
    assert_true(ota_tuf_root_role_changed(a, b, OTA_TUF_TIMESTAMP));
    assert_false(ota_tuf_root_role_changed(a, b, OTA_TUF_SNAPSHOT));
    assert_false(ota_tuf_root_role_changed(a, b, OTA_TUF_TARGETS));
    ota_tuf_md_free(b);
    std_roles(r);
    r[2] = (struct fx_role){{&K[2]}, 1, 2}; /* same key, new threshold */
    assert_int_equal(
        parse_doc(fx_sign(fx_root_signed(2, FAR_FUTURE, 1, r), &k0, 1), OTA_TUF_ROOT, &b, &d),
        OTA_OK);
    assert_true(ota_tuf_root_role_changed(a, b, OTA_TUF_SNAPSHOT));
    assert_false(ota_tuf_root_role_changed(a, b, OTA_TUF_TIMESTAMP));
    ota_tuf_md_free(a);
    ota_tuf_md_free(b);
}

/* formats/tuf.md "Test vector", served indented. */
#define VEC_KEYID "7ab6b86cb2c9684b0ddc10896153aa2595decf4d4327a5ff1a8ab7422c828b12"
#define VEC_SIG                                                                                    \
    "70ad4fc7c9ee928fdf86577ed816b70c20d2ead003109ad78ae7a831e9c01e3b76a710812d04a1a77239afa5"     \
    "79000bd699758810b94bc6975640d1cbbfa7d407"
#define VEC_ROLE "{ \"keyids\": [ \"" VEC_KEYID "\" ], \"threshold\": 1 }"
static const char vector_doc[] =
    "{\n  \"signatures\": [ { \"keyid\": \"" VEC_KEYID "\",\n    \"sig\": \"" VEC_SIG "\" } ],\n"
    "  \"signed\": {\n    \"_type\": \"root\",\n    \"spec_version\": \"1.0.31\",\n"
    "    \"version\": 1,\n    \"expires\": \"2030-01-01T00:00:00Z\",\n"
    "    \"consistent_snapshot\": true,\n"
    "    \"keys\": { \"" VEC_KEYID "\": { \"keytype\": \"ed25519\", \"scheme\": \"ed25519\",\n"
    "      \"keyval\": { \"public\": "
    "\"8a88e3dd7409f195fd52db2d3cba5d72ca6709bf1d94121bf3748801b40f6f5c\" } } },\n"
    "    \"roles\": { \"root\": " VEC_ROLE ", \"timestamp\": " VEC_ROLE ",\n"
    "      \"snapshot\": " VEC_ROLE ", \"targets\": " VEC_ROLE " }\n  }\n}\n";

static void
test_vector(void **state)
{
    struct ota_tuf_md *md = NULL;
    struct ota_diag    d;
    char              *canon = NULL, hex[OTA_SHA256_HEX], *tampered, *p;
    size_t             len = 0;
    json_t            *sig;

    (void)state;
    assert_int_equal(
        ota_tuf_parse(vector_doc, strlen(vector_doc), OTA_JSON_MAX, OTA_TUF_ROOT, &md, &d), OTA_OK);
    assert_int_equal(ota_tuf_md_verify(md, ota_tuf_root_role(md, OTA_TUF_ROOT), &d), OTA_OK);
    assert_string_equal(ota_tuf_root_role(md, OTA_TUF_ROOT)->keys[0].keyid, VEC_KEYID);
    assert_string_equal(K[0].keyid, VEC_KEYID); /* key 1 of the fixtures is the vector's key */
    assert_int_equal(ota_tuf_md_expires(md), 1893456000);
    assert_int_equal(ota_cjson_encode(ota_tuf_md_signed(md), OTA_JSON_MAX, &canon, &len, NULL),
                     OTA_OK);
    assert_int_equal(len, 742);
    assert_int_equal(ota_sha256_hex(canon, len, hex), OTA_OK);
    assert_string_equal(hex, "25174596360ce44104acaf0c46c5ae4a9954a82d2febb7bee4464bb333d4d5bf");
    /* our signer reproduces the signature byte for byte */
    sig = fx_sig(&K[0], ota_tuf_md_signed(md));
    assert_string_equal(json_string_value(json_object_get(sig, "sig")), VEC_SIG);
    json_decref(sig);
    free(canon);
    ota_tuf_md_free(md);
    /* one changed byte in "signed" and the signature no longer holds */
    tampered = strdup(vector_doc);
    p = strstr(tampered, "2030-01-01");
    p[3] = '1';
    assert_int_equal(ota_tuf_parse(tampered, strlen(tampered), OTA_JSON_MAX, OTA_TUF_ROOT, &md, &d),
                     OTA_OK);
    assert_int_equal(ota_tuf_md_verify(md, ota_tuf_root_role(md, OTA_TUF_ROOT), &d),
                     OTA_E_THRESHOLD);
    ota_tuf_md_free(md);
    free(tampered);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_vector),
        cmocka_unit_test(test_good_root),
        cmocka_unit_test(test_good_timestamp_snapshot_targets),
        cmocka_unit_test(test_wrong_type_and_spec_version),
        cmocka_unit_test(test_bad_fields),
        cmocka_unit_test(test_expiry),
        cmocka_unit_test(test_threshold),
        cmocka_unit_test(test_keyid_mismatch),
        cmocka_unit_test(test_unsupported_key_never_verifies),
        cmocka_unit_test(test_duplicate_keys),
        cmocka_unit_test(test_oversized),
        cmocka_unit_test(test_unsafe_target_paths),
        cmocka_unit_test(test_role_names),
        cmocka_unit_test(test_quote),
        cmocka_unit_test(test_path_match),
        cmocka_unit_test(test_hash_prefixes),
        cmocka_unit_test(test_metafile_and_rollback),
        cmocka_unit_test(test_role_changed),
    };

    return cmocka_run_group_tests(tests, setup, NULL);
}
