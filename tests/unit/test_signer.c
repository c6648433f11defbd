/* The signing half of keys/: byte-stable signatures from fixed seeds, key file vectors and
 * round trips, the no-overwrite and mode rules, corrupted and hostile key files, and every
 * passphrase source (pipe, environment, terminal through a pseudo-terminal). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pty.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#include "keyfile.h"
#include "ota/cjson.h"
#include "ota/fsutil.h"
#include "ota/signer.h"

/* RFC 8032 section 7.1, tests 1 and 2 (signatures also reproduced with Python's
 * cryptography package). */
#define RFC1_SEED "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60"
#define RFC1_PK "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a"
#define RFC1_ID "74c181c7ad8a0855d4b55e44d2ba87aabdddb196832571f15f92fece332e4916"
#define RFC1_SIG_EMPTY                                                                             \
    "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e3970"     \
    "1cf9b46bd25bf5f0595bbe24655141438e7a100b"
#define RFC1_SIG_DOC                                                                               \
    "ac5020e058fb074cba69f218526db58cdcde897cdcbba06806de6dabe9e25a9daab30d18f56736876a92941f"     \
    "2e4b6128e245c93f2f1f364f8b77198c67a4780c"
#define RFC2_SEED "4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb"
#define RFC2_PK "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c"
#define RFC2_ID "eaf1e23f6c823132f437a2eaa299a7950f7386631deff273db195bbd26209e2b"
#define RFC2_SIG_72                                                                                \
    "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da085ac1e43e15996e458f3613"     \
    "d0f11d8c387b2eaeb4302aeeb00d291612bb0c00"

/* formats/keyfile.md test vector (ciphertext reproduced with an independent implementation). */
#define VEC_PASS "correct horse battery staple"
#define VEC_CT                                                                                     \
    "73592950a8de70465975cdbc665fa1fcb836a4ea58a0b3513252614137a8bbfb6762c26ec4878559a21ea9aa"     \
    "49ab3dab"
#define VEC_ENC_FILE                                                                               \
    "{\"cipher\":\"xchacha20poly1305-ietf\",\"ciphertext\":\"" VEC_CT "\",\"kdf\":{"               \
    "\"memlimit\":67108864,\"name\":\"argon2id\",\"opslimit\":2,\"salt\":"                         \
    "\"000102030405060708090a0b0c0d0e0f\"},\"keyid\":\"" RFC1_ID "\",\"keytype\":"                 \
    "\"ed25519\",\"nonce\":\"404142434445464748494a4b4c4d4e4f5051525354555657\",\"public\":"       \
    "\"" RFC1_PK "\",\"type\":\"ota-private-key\",\"version\":1}\n"
#define VEC_PLAIN_FILE                                                                             \
    "{\"cipher\":\"none\",\"kdf\":{\"name\":\"none\"},\"keyid\":\"" RFC1_ID "\",\"keytype\":"      \
    "\"ed25519\",\"public\":\"" RFC1_PK "\",\"seed\":\"" RFC1_SEED "\",\"type\":"                  \
    "\"ota-private-key\",\"version\":1}\n"

static const char DOC[] = "{\"_type\":\"targets\",\"version\":1}";

struct fixture {
    char dir[64];
    char path[128];
};

static int
setup(void **state)
{
    struct fixture *f = calloc(1, sizeof *f);

    if (f == NULL || sodium_init() < 0)
        return -1;
    strcpy(f->dir, "/tmp/ota-test-signer-XXXXXX");
    if (mkdtemp(f->dir) == NULL)
        return -1;
    snprintf(f->path, sizeof f->path, "%s/key.json", f->dir);
    ota_passphrase_forget();
    *state = f;
    return 0;
}

static int
teardown(void **state)
{
    struct fixture *f = *state;

    if (ota_rm_rf(f->dir, NULL) != OTA_OK)
        return -1;
    free(f);
    return 0;
}

static struct ota_seckey *
key_from_hex(const char *seed_hex)
{
    unsigned char      seed[32];
    struct ota_seckey *k = NULL;

    assert_int_equal(ota_hex_decode(seed_hex, seed, 32), OTA_OK);
    assert_int_equal(ota_seckey_from_seed(seed, &k, NULL), OTA_OK);
    return k;
}

static char *
slurp(const char *path, size_t *len)
{
    unsigned char *buf = NULL;
    size_t         n = 0;

    assert_int_equal(ota_read_file(path, 1 << 20, &buf, &n, NULL), OTA_OK);
    if (len != NULL)
        *len = n;
    return (char *)buf;
}

static void
put(const char *path, const char *text, size_t len)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);

    assert_true(fd >= 0);
    assert_int_equal(ota_write_all(fd, text, len, NULL), OTA_OK);
    assert_int_equal(close(fd), 0);
}

/* Number of entries in dir other than . and .. */
static int
entries(const char *dir)
{
    DIR           *d = opendir(dir);
    struct dirent *e;
    int            n = 0;

    assert_non_null(d);
    while ((e = readdir(d)) != NULL)
        if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0)
            n++;
    closedir(d);
    return n;
}

/* The hex signature of the last entry in sigs, checking its key id. */
static const char *
last_sig(const json_t *sigs, const char *keyid)
{
    const json_t *e = json_array_get(sigs, json_array_size(sigs) - 1);

    assert_non_null(e);
    assert_int_equal(json_object_size(e), 2);
    assert_string_equal(json_string_value(json_object_get(e, "keyid")), keyid);
    return json_string_value(json_object_get(e, "sig"));
}

static void
test_from_seed_vectors(void **state)
{
    struct ota_seckey       *k1 = key_from_hex(RFC1_SEED), *k2 = key_from_hex(RFC2_SEED);
    const struct ota_pubkey *p;
    json_t                  *sigs = json_array();
    struct ota_diag          d;
    char                     pkhex[65];

    (void)state;
    p = ota_seckey_public(k1);
    ota_hex_encode(p->ed25519, 32, pkhex);
    assert_string_equal(pkhex, RFC1_PK);
    assert_string_equal(p->keyid, RFC1_ID);
    assert_string_equal(ota_seckey_public(k2)->keyid, RFC2_ID);

    assert_int_equal(ota_seckey_sign(k1, "", 0, sigs, &d), OTA_OK);
    assert_int_equal(json_array_size(sigs), 1);
    assert_string_equal(last_sig(sigs, RFC1_ID), RFC1_SIG_EMPTY);
    assert_int_equal(ota_seckey_sign(k2, "\x72", 1, sigs, &d), OTA_OK);
    assert_string_equal(last_sig(sigs, RFC2_ID), RFC2_SIG_72);
    assert_int_equal(ota_seckey_sign(k1, DOC, strlen(DOC), sigs, &d), OTA_OK);
    assert_string_equal(last_sig(sigs, RFC1_ID), RFC1_SIG_DOC);
    assert_int_equal(json_array_size(sigs), 3);
    /* and a device accepts it */
    assert_int_equal(ota_sig_verify(ota_seckey_public(k1), DOC, strlen(DOC), RFC1_SIG_DOC, &d),
                     OTA_OK);
    json_decref(sigs);

    /* signing into something that is not an array changes nothing */
    sigs = json_object();
    assert_int_equal(ota_seckey_sign(k1, DOC, strlen(DOC), sigs, &d), OTA_E_INVALID);
    assert_int_equal(json_object_size(sigs), 0);
    json_decref(sigs);
    ota_seckey_free(k1);
    ota_seckey_free(k2);
    ota_seckey_free(NULL);
}

static void
test_generate(void **state)
{
    struct fixture    *f = *state;
    struct ota_seckey *a = NULL, *b = NULL, *l = NULL;
    json_t            *sigs = json_array();
    struct ota_diag    d;

    assert_int_equal(ota_seckey_generate(&a, &d), OTA_OK);
    assert_int_equal(ota_seckey_generate(&b, &d), OTA_OK);
    assert_string_not_equal(ota_seckey_public(a)->keyid, ota_seckey_public(b)->keyid);
    assert_int_equal(ota_seckey_save(a, f->path, "generated", 0, &d), OTA_OK);
    assert_int_equal(ota_seckey_load(f->path, "generated", &l, &d), OTA_OK);
    assert_string_equal(ota_seckey_public(l)->keyid, ota_seckey_public(a)->keyid);
    assert_int_equal(ota_seckey_sign(l, DOC, strlen(DOC), sigs, &d), OTA_OK);
    assert_int_equal(ota_sig_verify(ota_seckey_public(a), DOC, strlen(DOC),
                                    last_sig(sigs, ota_seckey_public(a)->keyid), &d),
                     OTA_OK);
    json_decref(sigs);
    ota_seckey_free(a);
    ota_seckey_free(b);
    ota_seckey_free(l);
}

static void
test_keyfile_vectors(void **state)
{
    struct ota_seckey *k = key_from_hex(RFC1_SEED);
    unsigned char      seed[32], pk[32], salt[16], nonce[24], ct[48];
    char               cthex[97], buf[OTA_KEYFILE_TEXT_MAX];
    size_t             len = 0, clen = 0;
    json_t            *v = NULL;
    char              *canon = NULL;
    struct ota_diag    d;
    int                i;

    (void)state;
    for (i = 0; i < 16; i++)
        salt[i] = (unsigned char)i;
    for (i = 0; i < 24; i++)
        nonce[i] = (unsigned char)(0x40 + i);
    assert_int_equal(ota_hex_decode(RFC1_SEED, seed, 32), OTA_OK);
    assert_int_equal(ota_hex_decode(RFC1_PK, pk, 32), OTA_OK);
    assert_int_equal(ota_keyfile_seal(seed, pk, VEC_PASS, 2, 67108864, salt, nonce, ct, &d),
                     OTA_OK);
    ota_hex_encode(ct, sizeof ct, cthex);
    assert_string_equal(cthex, VEC_CT);

    assert_int_equal(
        ota_keyfile_format(k, VEC_PASS, 2, 67108864, salt, nonce, buf, sizeof buf, &len, &d),
        OTA_OK);
    assert_int_equal(len, strlen(VEC_ENC_FILE));
    assert_string_equal(buf, VEC_ENC_FILE);
    /* the file is canonical JSON and a newline */
    assert_int_equal(ota_cjson_parse(buf, len, OTA_JSON_MAX, &v, &d), OTA_OK);
    assert_int_equal(ota_cjson_encode(v, OTA_JSON_MAX, &canon, &clen, &d), OTA_OK);
    assert_int_equal(clen + 1, len);
    assert_memory_equal(canon, buf, clen);
    free(canon);
    json_decref(v);

    assert_int_equal(ota_keyfile_format(k, NULL, 0, 0, NULL, NULL, buf, sizeof buf, &len, &d),
                     OTA_OK);
    assert_string_equal(buf, VEC_PLAIN_FILE);
    assert_int_equal(ota_keyfile_format(k, "", 0, 0, NULL, NULL, buf, sizeof buf, &len, &d),
                     OTA_OK);
    assert_string_equal(buf, VEC_PLAIN_FILE);

    /* a buffer too small is refused, not truncated */
    assert_int_equal(ota_keyfile_format(k, NULL, 0, 0, NULL, NULL, buf, 100, &len, &d),
                     OTA_E_TOO_BIG);
    /* limits and passphrases outside what a reader accepts are refused when writing too */
    assert_int_equal(ota_keyfile_seal(seed, pk, "", 2, 67108864, salt, nonce, ct, &d),
                     OTA_E_INVALID);
    assert_int_equal(ota_keyfile_seal(seed, pk, VEC_PASS, 0, 67108864, salt, nonce, ct, &d),
                     OTA_E_INVALID);
    assert_int_equal(ota_keyfile_seal(seed, pk, VEC_PASS, 2, (size_t)1 << 30, salt, nonce, ct, &d),
                     OTA_E_INVALID);
    ota_seckey_free(k);
}

static void
test_roundtrip_encrypted(void **state)
{
    struct fixture    *f = *state;
    struct ota_seckey *k = key_from_hex(RFC2_SEED), *l = (struct ota_seckey *)1;
    struct ota_pubkey  pub;
    json_t            *sigs = json_array();
    struct ota_diag    d;
    char               want[256];
    char              *text;

    assert_int_equal(ota_seckey_save(k, f->path, "pass phrase one", 0, &d), OTA_OK);
    assert_int_equal(ota_seckey_file_encrypted(f->path), 1);
    assert_int_equal(entries(f->dir), 1); /* no temp file left behind */
    text = slurp(f->path, NULL);
    assert_null(strstr(text, RFC2_SEED));
    free(text);

    /* wrong passphrase, no passphrase */
    assert_int_equal(ota_seckey_load(f->path, "pass phrase two", &l, &d), OTA_E_PASSPHRASE);
    snprintf(want, sizeof want, "wrong passphrase for key file '%s'", f->path);
    assert_string_equal(d.msg, want);
    assert_ptr_equal(l, (struct ota_seckey *)1);
    assert_int_equal(ota_seckey_load(f->path, NULL, &l, &d), OTA_E_PASSPHRASE);
    assert_int_equal(ota_seckey_load(f->path, "", &l, &d), OTA_E_PASSPHRASE);
    assert_ptr_equal(l, (struct ota_seckey *)1);

    /* the public half without a passphrase */
    memset(&pub, 0, sizeof pub);
    assert_int_equal(ota_seckey_load_public(f->path, &pub, &d), OTA_OK);
    assert_string_equal(pub.keyid, RFC2_ID);

    l = NULL;
    assert_int_equal(ota_seckey_load(f->path, "pass phrase one", &l, &d), OTA_OK);
    assert_string_equal(ota_seckey_public(l)->keyid, RFC2_ID);
    assert_int_equal(ota_seckey_sign(l, "\x72", 1, sigs, &d), OTA_OK);
    assert_string_equal(last_sig(sigs, RFC2_ID), RFC2_SIG_72);
    json_decref(sigs);
    ota_seckey_free(k);
    ota_seckey_free(l);
}

static void
test_roundtrip_plain(void **state)
{
    struct fixture    *f = *state;
    struct ota_seckey *k = key_from_hex(RFC1_SEED), *l = NULL;
    struct ota_pubkey  pub;
    json_t            *sigs = json_array();
    struct ota_diag    d;
    char              *text;

    assert_int_equal(ota_seckey_save(k, f->path, NULL, 0, &d), OTA_OK);
    assert_int_equal(ota_seckey_file_encrypted(f->path), 0);
    /* an unencrypted file is fully determined by the key */
    text = slurp(f->path, NULL);
    assert_string_equal(text, VEC_PLAIN_FILE);
    free(text);
    assert_int_equal(ota_seckey_load(f->path, NULL, &l, &d), OTA_OK);
    assert_int_equal(ota_seckey_sign(l, "", 0, sigs, &d), OTA_OK);
    assert_string_equal(last_sig(sigs, RFC1_ID), RFC1_SIG_EMPTY);
    ota_seckey_free(l);
    /* a passphrase given for an unencrypted file is not needed and does no harm */
    assert_int_equal(ota_seckey_load(f->path, "unused", &l, &d), OTA_OK);
    assert_string_equal(ota_seckey_public(l)->keyid, RFC1_ID);
    assert_int_equal(ota_seckey_load_public(f->path, &pub, &d), OTA_OK);
    assert_string_equal(pub.keyid, RFC1_ID);
    json_decref(sigs);
    ota_seckey_free(k);
    ota_seckey_free(l);

    /* the documented vector file loads as written */
    put(f->path, VEC_ENC_FILE, strlen(VEC_ENC_FILE));
    assert_int_equal(ota_seckey_load(f->path, VEC_PASS, &l, &d), OTA_OK);
    assert_string_equal(ota_seckey_public(l)->keyid, RFC1_ID);
    ota_seckey_free(l);
}

static void
test_exists_and_force(void **state)
{
    struct fixture    *f = *state;
    struct ota_seckey *k1 = key_from_hex(RFC1_SEED), *k2 = key_from_hex(RFC2_SEED), *l = NULL;
    struct ota_diag    d;
    struct stat        st1, st2;
    char              *before, *after, want[256];
    size_t             nb = 0, na = 0;

    assert_int_equal(ota_seckey_save(k1, f->path, "first", 0, &d), OTA_OK);
    before = slurp(f->path, &nb);
    assert_int_equal(stat(f->path, &st1), 0);

    assert_int_equal(ota_seckey_save(k2, f->path, "second", 0, &d), OTA_E_EXISTS);
    snprintf(want, sizeof want, "key file '%s' already exists (use --force)", f->path);
    assert_string_equal(d.msg, want);
    assert_int_equal(ota_seckey_save(k2, f->path, NULL, 0, &d), OTA_E_EXISTS);
    after = slurp(f->path, &na);
    assert_int_equal(na, nb);
    assert_memory_equal(after, before, nb);
    assert_int_equal(stat(f->path, &st2), 0);
    assert_int_equal(st2.st_ino, st1.st_ino);
    assert_int_equal(entries(f->dir), 1);
    free(after);

    /* a dangling symlink is an existing name too: nothing is created through it */
    {
        char link_path[160], target[160];
        snprintf(link_path, sizeof link_path, "%s/link.json", f->dir);
        snprintf(target, sizeof target, "%s/elsewhere.json", f->dir);
        assert_int_equal(symlink(target, link_path), 0);
        assert_int_equal(ota_seckey_save(k2, link_path, NULL, 0, &d), OTA_E_EXISTS);
        assert_int_equal(access(target, F_OK), -1);
        assert_int_equal(unlink(link_path), 0);
    }

    /* force replaces, atomically, with the new key */
    assert_int_equal(ota_seckey_save(k2, f->path, "second", 1, &d), OTA_OK);
    after = slurp(f->path, &na);
    assert_true(na != nb || memcmp(after, before, nb) != 0);
    assert_int_equal(ota_seckey_load(f->path, "second", &l, &d), OTA_OK);
    assert_string_equal(ota_seckey_public(l)->keyid, RFC2_ID);
    assert_int_equal(stat(f->path, &st2), 0);
    assert_int_equal(st2.st_mode & 07777, 0600);
    assert_int_equal(entries(f->dir), 1);
    free(after);
    free(before);
    ota_seckey_free(k1);
    ota_seckey_free(k2);
    ota_seckey_free(l);
}

static void
test_mode_whatever_umask(void **state)
{
    struct fixture     *f = *state;
    struct ota_seckey  *k = key_from_hex(RFC1_SEED);
    static const mode_t masks[] = {0, 022, 077, 0777};
    struct ota_diag     d;
    struct stat         st;
    size_t              i;
    mode_t              old = umask(0);

    for (i = 0; i < sizeof masks / sizeof masks[0]; i++) {
        umask(masks[i]);
        assert_int_equal(ota_seckey_save(k, f->path, NULL, 0, &d), OTA_OK);
        assert_int_equal(lstat(f->path, &st), 0);
        assert_true(S_ISREG(st.st_mode));
        assert_int_equal(st.st_mode & 07777, 0600);
        assert_int_equal(ota_seckey_save(k, f->path, NULL, 1, &d), OTA_OK); /* force path */
        assert_int_equal(lstat(f->path, &st), 0);
        assert_int_equal(st.st_mode & 07777, 0600);
        assert_int_equal(unlink(f->path), 0);
    }
    umask(old);
    ota_seckey_free(k);
}

/* text with the first occurrence of from replaced by to; malloc'd */
static char *
replace(const char *text, const char *from, const char *to)
{
    const char *at = strstr(text, from);
    size_t      n = strlen(text) - strlen(from) + strlen(to);
    char       *out;

    assert_non_null(at);
    out = malloc(n + 1);
    assert_non_null(out);
    memcpy(out, text, (size_t)(at - text));
    strcpy(out + (at - text), to);
    strcat(out, at + strlen(from));
    return out;
}

/* Write text to the fixture path and expect ota_seckey_load to give want; with public_too,
 * the readers that do not decrypt must refuse it as malformed as well. */
static void
expect_load_ex(struct fixture *f, const char *text, size_t len, const char *pass, ota_err want,
               int public_too)
{
    struct ota_seckey *l = NULL;
    struct ota_pubkey  pub, before;
    struct ota_diag    d;

    put(f->path, text, len);
    memset(&d, 0, sizeof d);
    assert_int_equal(ota_seckey_load(f->path, pass, &l, &d), want);
    if (want == OTA_OK) {
        assert_non_null(l);
        ota_seckey_free(l);
        return;
    }
    assert_null(l);
    assert_true(strlen(d.msg) > 0);
    if (public_too) {
        memset(&pub, 0x5a, sizeof pub);
        before = pub;
        assert_int_equal(ota_seckey_load_public(f->path, &pub, &d), OTA_E_FORMAT);
        assert_memory_equal(&pub, &before, sizeof pub);
        assert_int_equal(ota_seckey_file_encrypted(f->path), -1);
    }
}

static void
expect_load(struct fixture *f, const char *text, size_t len, const char *pass, ota_err want)
{
    expect_load_ex(f, text, len, pass, want, want == OTA_E_FORMAT);
}

static void
expect_format_variant(struct fixture *f, const char *base, const char *from, const char *to)
{
    char *text = replace(base, from, to);

    expect_load(f, text, strlen(text), VEC_PASS, OTA_E_FORMAT);
    free(text);
}

static void
test_corrupted(void **state)
{
    struct fixture    *f = *state;
    struct ota_seckey *l = NULL;
    struct ota_pubkey  pub;
    struct ota_diag    d;
    char              *big;

    /* the untouched files load: the variants below fail for the change alone */
    expect_load(f, VEC_PLAIN_FILE, strlen(VEC_PLAIN_FILE), NULL, OTA_OK);
    expect_load(f, VEC_ENC_FILE, strlen(VEC_ENC_FILE), VEC_PASS, OTA_OK);

    expect_load(f, "", 0, NULL, OTA_E_FORMAT);
    expect_load(f, VEC_PLAIN_FILE, 60, NULL, OTA_E_FORMAT);
    expect_load(f, "not json\n", 9, NULL, OTA_E_FORMAT);
    expect_load(f, "[]\n", 3, NULL, OTA_E_FORMAT);
    expect_format_variant(f, VEC_PLAIN_FILE, "ota-private-key", "ota-public-key");
    expect_format_variant(f, VEC_PLAIN_FILE, "\"version\":1", "\"version\":2");
    expect_format_variant(f, VEC_PLAIN_FILE, "\"version\":1", "\"version\":1.0");
    expect_format_variant(f, VEC_PLAIN_FILE, "\"version\":1", "\"version\":1,\"extra\":1");
    expect_format_variant(f, VEC_PLAIN_FILE, "\"version\":1", "\"version\":1,\"version\":1");
    expect_format_variant(f, VEC_PLAIN_FILE, "\"keytype\":\"ed25519\"", "\"keytype\":\"rsa\"");
    expect_format_variant(f, VEC_PLAIN_FILE, "\"public\":\"d7", "\"public\":\"z7");
    expect_format_variant(f, VEC_PLAIN_FILE, "\"public\":\"d7", "\"public\":\"");
    expect_format_variant(f, VEC_PLAIN_FILE, RFC1_ID, RFC2_ID); /* id of another key */
    {
        /* the seed of another key: well-formed, so only loading the secret notices */
        char *text = replace(VEC_PLAIN_FILE, RFC1_SEED, RFC2_SEED);
        expect_load_ex(f, text, strlen(text), NULL, OTA_E_FORMAT, 0);
        assert_int_equal(ota_seckey_load(f->path, NULL, &l, &d), OTA_E_FORMAT);
        assert_non_null(strstr(d.msg, "does not match its public key"));
        free(text);
    }
    expect_format_variant(f, VEC_PLAIN_FILE, "\"seed\":\"9d", "\"seed\":\"");
    expect_format_variant(f, VEC_PLAIN_FILE, "\"seed\":\"9d", "\"seed\":\"x9");
    expect_format_variant(f, VEC_PLAIN_FILE, "\"cipher\":\"none\"",
                          "\"cipher\":\"xchacha20poly1305-ietf\"");
    expect_format_variant(f, VEC_PLAIN_FILE, "\"name\":\"none\"", "\"name\":\"scrypt\"");
    expect_format_variant(f, VEC_PLAIN_FILE, "\"name\":\"none\"", "\"name\":\"none\",\"x\":1");
    expect_format_variant(f, VEC_ENC_FILE, "\"cipher\":\"xchacha20poly1305-ietf\"",
                          "\"cipher\":\"aes-256-gcm\"");
    expect_format_variant(f, VEC_ENC_FILE, "\"nonce\":\"40", "\"nonce\":\"");
    expect_format_variant(f, VEC_ENC_FILE, "\"ciphertext\":\"73", "\"ciphertext\":\"");
    expect_format_variant(f, VEC_ENC_FILE, "\"salt\":\"00", "\"salt\":\"q0");
    expect_format_variant(f, VEC_ENC_FILE, "\"version\":1",
                          "\"version\":1,\"seed\":\"" RFC1_SEED "\"");
    expect_format_variant(f, VEC_ENC_FILE, "\"kdf\":{", "\"kdf\":{\"p\":1,");
    expect_format_variant(f, VEC_ENC_FILE, "\"keyid\":\"" RFC1_ID "\",", "");

    /* over 64 KiB: no key file is that large */
    big = malloc(70001);
    assert_non_null(big);
    memset(big, ' ', 70000);
    memcpy(big, VEC_PLAIN_FILE, strlen(VEC_PLAIN_FILE));
    expect_load(f, big, 70000, NULL, OTA_E_FORMAT);
    free(big);

    /* a directory, and a missing file */
    assert_int_equal(ota_seckey_load(f->dir, NULL, &l, &d), OTA_E_FORMAT);
    assert_null(l);
    assert_int_equal(unlink(f->path), 0);
    assert_int_equal(ota_seckey_load(f->path, NULL, &l, &d), OTA_E_NOT_FOUND);
    assert_int_equal(ota_seckey_load_public(f->path, &pub, &d), OTA_E_NOT_FOUND);
    assert_int_equal(ota_seckey_file_encrypted(f->path), -1);
    assert_null(l);
}

static void
test_tampered_ciphertext(void **state)
{
    struct fixture *f = *state;
    char           *text;

    /* AEAD: any change to what it covers reads as a wrong passphrase, never as a key */
    text = replace(VEC_ENC_FILE, "\"ciphertext\":\"73", "\"ciphertext\":\"74");
    expect_load(f, text, strlen(text), VEC_PASS, OTA_E_PASSPHRASE);
    free(text);
    text = replace(VEC_ENC_FILE, "3dab\"", "3dac\""); /* the tag */
    expect_load(f, text, strlen(text), VEC_PASS, OTA_E_PASSPHRASE);
    free(text);
    text = replace(VEC_ENC_FILE, "\"nonce\":\"40", "\"nonce\":\"41");
    expect_load(f, text, strlen(text), VEC_PASS, OTA_E_PASSPHRASE);
    free(text);
    text = replace(VEC_ENC_FILE, "\"salt\":\"00", "\"salt\":\"01");
    expect_load(f, text, strlen(text), VEC_PASS, OTA_E_PASSPHRASE);
    free(text);
    text = replace(VEC_ENC_FILE, "\"opslimit\":2", "\"opslimit\":1");
    expect_load(f, text, strlen(text), VEC_PASS, OTA_E_PASSPHRASE);
    free(text);
    /* another public key with its own, consistent id: the public key is associated data */
    {
        char *a = replace(VEC_ENC_FILE, RFC1_ID, RFC2_ID);
        text = replace(a, RFC1_PK, RFC2_PK);
        free(a);
        expect_load(f, text, strlen(text), VEC_PASS, OTA_E_PASSPHRASE);
        free(text);
    }
}

static void
test_hostile_kdf(void **state)
{
    struct fixture    *f = *state;
    struct ota_seckey *k = key_from_hex(RFC1_SEED), *l = NULL;
    unsigned char      salt[16] = {0}, nonce[24] = {0};
    char               buf[OTA_KEYFILE_TEXT_MAX];
    size_t             len = 0;
    struct ota_diag    d;
    static const char *hostile[][2] = {
        {"\"memlimit\":67108864", "\"memlimit\":4294967296"}, /* 4 GiB */
        {"\"memlimit\":67108864", "\"memlimit\":268435457"},  /* one byte over the cap */
        {"\"memlimit\":67108864", "\"memlimit\":9223372036854775807"},
        {"\"memlimit\":67108864", "\"memlimit\":-1"},
        {"\"memlimit\":67108864", "\"memlimit\":1024"}, /* under Argon2's minimum */
        {"\"memlimit\":67108864", "\"memlimit\":\"64M\""},
        {"\"opslimit\":2", "\"opslimit\":4294967295"},
        {"\"opslimit\":2", "\"opslimit\":17"},
        {"\"opslimit\":2", "\"opslimit\":0"},
    };
    size_t i;

    for (i = 0; i < sizeof hostile / sizeof hostile[0]; i++) {
        char *text = replace(VEC_ENC_FILE, hostile[i][0], hostile[i][1]);
        put(f->path, text, strlen(text));
        memset(&d, 0, sizeof d);
        assert_int_equal(ota_seckey_load(f->path, VEC_PASS, &l, &d), OTA_E_FORMAT);
        assert_null(l);
        assert_non_null(strstr(d.msg, i < 6 ? "memlimit" : "opslimit"));
        free(text);
    }

    /* the limits are read from the file: other values within the caps work */
    assert_int_equal(
        ota_keyfile_format(k, "cheap", 1, 8192, salt, nonce, buf, sizeof buf, &len, &d), OTA_OK);
    assert_non_null(strstr(buf, "\"memlimit\":8192,\"name\":\"argon2id\",\"opslimit\":1,"));
    put(f->path, buf, len);
    assert_int_equal(ota_seckey_load(f->path, "cheap", &l, &d), OTA_OK);
    assert_string_equal(ota_seckey_public(l)->keyid, RFC1_ID);
    ota_seckey_free(l);
    ota_seckey_free(k);
}

/* ------------------------------------------------------------- passphrases */

static void
test_passphrase_fd(void **state)
{
    struct ota_passphrase_src src = {-1, "OTA_PASSPHRASE", 0};
    struct ota_diag           d;
    char                     *p = NULL, rest[64], longline[OTA_PASSPHRASE_MAX + 2];
    int                       fds[2];
    ssize_t                   n;

    (void)state;
    assert_int_equal(pipe(fds), 0);
    assert_int_equal(write(fds[1], "from fd\r\nrest of stream", 23), 23);
    assert_int_equal(close(fds[1]), 0);
    setenv("OTA_PASSPHRASE", "from env", 1); /* the descriptor comes first */
    src.fd = fds[0];
    assert_int_equal(ota_passphrase_get(&src, NULL, 0, &p, &d), OTA_OK);
    assert_string_equal(p, "from fd");
    ota_passphrase_free(p);
    /* remembered: a second key opens without reading the descriptor again */
    p = NULL;
    assert_int_equal(ota_passphrase_get(&src, NULL, 1, &p, &d), OTA_OK);
    assert_string_equal(p, "from fd");
    ota_passphrase_free(p);
    /* and only the first line was consumed */
    n = read(fds[0], rest, sizeof rest);
    assert_int_equal(n, 14);
    assert_memory_equal(rest, "rest of stream", 14);
    close(fds[0]);
    unsetenv("OTA_PASSPHRASE");

    /* an empty first line, or nothing at all, is an error, not a fallback */
    ota_passphrase_forget();
    setenv("OTA_PASSPHRASE", "from env", 1);
    assert_int_equal(pipe(fds), 0);
    assert_int_equal(write(fds[1], "\nsecond line\n", 13), 13);
    close(fds[1]);
    src.fd = fds[0];
    p = NULL;
    assert_int_equal(ota_passphrase_get(&src, NULL, 0, &p, &d), OTA_E_PASSPHRASE);
    assert_null(p);
    close(fds[0]);
    unsetenv("OTA_PASSPHRASE");
    assert_int_equal(pipe(fds), 0);
    close(fds[1]);
    src.fd = fds[0];
    assert_int_equal(ota_passphrase_get(&src, NULL, 0, &p, &d), OTA_E_PASSPHRASE);
    assert_null(p);
    close(fds[0]);

    /* over the length cap */
    assert_int_equal(pipe(fds), 0);
    memset(longline, 'x', sizeof longline);
    longline[sizeof longline - 1] = '\n';
    assert_int_equal(write(fds[1], longline, sizeof longline), (ssize_t)sizeof longline);
    close(fds[1]);
    src.fd = fds[0];
    assert_int_equal(ota_passphrase_get(&src, NULL, 0, &p, &d), OTA_E_TOO_BIG);
    assert_null(p);
    close(fds[0]);
    /* exactly at the cap is fine */
    assert_int_equal(pipe(fds), 0);
    longline[sizeof longline - 2] = '\n';
    assert_int_equal(write(fds[1], longline, sizeof longline - 1), (ssize_t)sizeof longline - 1);
    close(fds[1]);
    src.fd = fds[0];
    assert_int_equal(ota_passphrase_get(&src, NULL, 0, &p, &d), OTA_OK);
    assert_int_equal(strlen(p), OTA_PASSPHRASE_MAX);
    ota_passphrase_free(p);
    close(fds[0]);
    ota_passphrase_forget();

    /* a descriptor that is not open */
    src.fd = fds[0];
    p = NULL;
    assert_int_equal(ota_passphrase_get(&src, NULL, 0, &p, &d), OTA_E_IO);
    assert_int_equal(d.sys_errno, EBADF);
    assert_null(p);
}

static void
test_passphrase_env(void **state)
{
    struct ota_passphrase_src src = {-1, "OTA_PASSPHRASE", 0};
    struct ota_diag           d;
    char                     *p = NULL;

    (void)state;
    setenv("OTA_PASSPHRASE", "from env", 1);
    assert_int_equal(ota_passphrase_get(&src, NULL, 1, &p, &d), OTA_OK);
    assert_string_equal(p, "from env");
    ota_passphrase_free(p);
    ota_passphrase_free(NULL);

    p = NULL;
    setenv("OTA_PASSPHRASE", "", 1);
    assert_int_equal(ota_passphrase_get(&src, NULL, 0, &p, &d), OTA_E_PASSPHRASE);
    assert_string_equal(d.msg, "no passphrase: set OTA_PASSPHRASE, pass --passphrase-fd N, "
                               "or run on a terminal");
    assert_null(p);
    unsetenv("OTA_PASSPHRASE");
    assert_int_equal(ota_passphrase_get(&src, NULL, 0, &p, &d), OTA_E_PASSPHRASE);
    assert_null(p);
    /* the variable named by the caller is the one read */
    setenv("OTA_TEST_OTHER_PASS", "other", 1);
    assert_int_equal(ota_passphrase_get(&src, NULL, 0, &p, &d), OTA_E_PASSPHRASE);
    src.env = "OTA_TEST_OTHER_PASS";
    assert_int_equal(ota_passphrase_get(&src, NULL, 0, &p, &d), OTA_OK);
    assert_string_equal(p, "other");
    ota_passphrase_free(p);
    unsetenv("OTA_TEST_OTHER_PASS");
}

/* Read from the pty master into buf (appending at *n) until want appears, the child closes
 * the terminal, or 10 s pass. Returns 1 when want was seen. */
static int
read_until(int master, char *buf, size_t cap, size_t *n, const char *want)
{
    for (;;) {
        struct pollfd pfd = {master, POLLIN, 0};
        ssize_t       r;

        buf[*n] = '\0';
        if (want != NULL && strstr(buf, want) != NULL)
            return 1;
        if (*n + 1 >= cap || poll(&pfd, 1, 10000) != 1)
            return 0;
        r = read(master, buf + *n, cap - 1 - *n);
        if (r <= 0)
            return 0; /* EIO once the child has closed the terminal */
        *n += (size_t)r;
    }
}

struct tty_result {
    int  rc;
    int  echo_after; /* ECHO flag on the terminal after the call returned */
    char pass[64];
};

/* Run ota_passphrase_get with the terminal source in a child on a new pseudo-terminal, type
 * the given lines after the prompts, and collect what the terminal showed. */
static void
run_tty(int confirm, const char *line1, const char *line2, struct tty_result *res, char *screen,
        size_t cap)
{
    int    master = -1, fds[2], status = 0;
    pid_t  pid;
    size_t n = 0;

    assert_int_equal(pipe(fds), 0);
    pid = forkpty(&master, NULL, NULL, NULL);
    assert_true(pid >= 0);
    if (pid == 0) {
        struct ota_passphrase_src src = {-1, NULL, 1};
        struct tty_result         r;
        struct termios            t;
        char                     *p = NULL;

        memset(&r, 0, sizeof r);
        close(fds[0]);
        ota_passphrase_forget();
        r.rc = ota_passphrase_get(&src, "key passphrase: ", confirm, &p, NULL);
        if (r.rc == OTA_OK)
            snprintf(r.pass, sizeof r.pass, "%s", p);
        r.echo_after = tcgetattr(0, &t) == 0 && (t.c_lflag & ECHO) != 0;
        ota_passphrase_free(p);
        if (write(fds[1], &r, sizeof r) != (ssize_t)sizeof r)
            _exit(3);
        _exit(0);
    }
    close(fds[1]);
    assert_true(read_until(master, screen, cap, &n, "key passphrase: "));
    assert_int_equal(write(master, line1, strlen(line1)), (ssize_t)strlen(line1));
    if (line2 != NULL) {
        assert_true(read_until(master, screen, cap, &n, "repeat passphrase: "));
        assert_int_equal(write(master, line2, strlen(line2)), (ssize_t)strlen(line2));
    }
    read_until(master, screen, cap, &n, NULL);
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    assert_int_equal(read(fds[0], res, sizeof *res), (ssize_t)sizeof *res);
    close(fds[0]);
    close(master);
}

static void
test_passphrase_tty(void **state)
{
    struct tty_result res;
    char              screen[4096];

    (void)state;
    /* asked twice, echo off while typing, echo back on afterwards */
    memset(screen, 0, sizeof screen);
    run_tty(1, "tty secret\n", "tty secret\n", &res, screen, sizeof screen);
    assert_int_equal(res.rc, OTA_OK);
    assert_string_equal(res.pass, "tty secret");
    assert_null(strstr(screen, "tty secret"));
    assert_non_null(strstr(screen, "repeat passphrase: "));
    assert_int_equal(res.echo_after, 1);

    /* the two do not match */
    memset(screen, 0, sizeof screen);
    run_tty(1, "tty secret\n", "tty secreT\n", &res, screen, sizeof screen);
    assert_int_equal(res.rc, OTA_E_PASSPHRASE);
    assert_int_equal(res.echo_after, 1);

    /* asked once when not confirming */
    memset(screen, 0, sizeof screen);
    run_tty(0, "just once\n", NULL, &res, screen, sizeof screen);
    assert_int_equal(res.rc, OTA_OK);
    assert_string_equal(res.pass, "just once");
    assert_null(strstr(screen, "repeat"));

    /* an empty answer is not a passphrase */
    memset(screen, 0, sizeof screen);
    run_tty(0, "\n", NULL, &res, screen, sizeof screen);
    assert_int_equal(res.rc, OTA_E_PASSPHRASE);
}

static void
test_passphrase_no_tty(void **state)
{
    int   status = 0;
    pid_t pid;

    (void)state;
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        struct ota_passphrase_src src = {-1, "OTA_PASSPHRASE", 1};
        struct ota_diag           d;
        char                     *p = NULL;
        ota_err                   rc;

        setsid(); /* no controlling terminal from here on */
        unsetenv("OTA_PASSPHRASE");
        rc = ota_passphrase_get(&src, NULL, 0, &p, &d);
        _exit(rc == OTA_E_PASSPHRASE && p == NULL &&
                      strcmp(d.msg, "no passphrase: set OTA_PASSPHRASE, pass --passphrase-fd N, "
                                    "or run on a terminal") == 0
                  ? 0
                  : 1);
    }
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_from_seed_vectors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_generate, setup, teardown),
        cmocka_unit_test_setup_teardown(test_keyfile_vectors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_roundtrip_encrypted, setup, teardown),
        cmocka_unit_test_setup_teardown(test_roundtrip_plain, setup, teardown),
        cmocka_unit_test_setup_teardown(test_exists_and_force, setup, teardown),
        cmocka_unit_test_setup_teardown(test_mode_whatever_umask, setup, teardown),
        cmocka_unit_test_setup_teardown(test_corrupted, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tampered_ciphertext, setup, teardown),
        cmocka_unit_test_setup_teardown(test_hostile_kdf, setup, teardown),
        cmocka_unit_test_setup_teardown(test_passphrase_fd, setup, teardown),
        cmocka_unit_test_setup_teardown(test_passphrase_env, setup, teardown),
        cmocka_unit_test_setup_teardown(test_passphrase_tty, setup, teardown),
        cmocka_unit_test_setup_teardown(test_passphrase_no_tty, setup, teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
