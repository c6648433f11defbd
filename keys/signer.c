/* Private keys, key files and passphrases. See ota/signer.h and formats/keyfile.md.
 *
 * Secrets (the ed25519 secret key, seeds, derived keys, passphrases, the text of an
 * unencrypted key file) only ever live in sodium_malloc'd memory, which has guard pages, is
 * kept out of swap where the system allows it, and is wiped when freed. */
#include "keyfile.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <sodium.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

#include "ota/cjson.h"
#include "ota/fsutil.h"

#define ARGON2ID_OPS_DEFAULT 2ull          /* crypto_pwhash_OPSLIMIT_INTERACTIVE */
#define ARGON2ID_MEM_DEFAULT (64ull << 20) /* crypto_pwhash_MEMLIMIT_INTERACTIVE */

struct ota_seckey {
    struct ota_pubkey pub;
    unsigned char    *sk; /* sodium_malloc'd seed || public key, read-only once set */
};

/* What a key file says, once its structure has been checked. */
struct keyfile {
    struct ota_pubkey  pub;
    int                encrypted;
    unsigned long long opslimit;
    size_t             memlimit;
    unsigned char      salt[OTA_KEYFILE_SALT];
    unsigned char      nonce[OTA_KEYFILE_NONCE];
    unsigned char      ct[OTA_KEYFILE_CT];
    const char        *seed_hex; /* unencrypted only; borrowed from the parsed tree */
};

static int
sodium_ready(void)
{
    static int ok = 0;

    if (!ok)
        ok = sodium_init() >= 0;
    return ok;
}

/* ---------------------------------------------------------------- keys */

ota_err
ota_seckey_from_seed(const unsigned char seed[32], struct ota_seckey **out, struct ota_diag *d)
{
    struct ota_seckey *k = NULL;
    unsigned char      pk[crypto_sign_PUBLICKEYBYTES];
    ota_err            rc;

    if (!sodium_ready())
        return ota_diag_set(d, OTA_E_CRYPTO, "cannot initialise libsodium");
    k = calloc(1, sizeof *k);
    if (k == NULL)
        return ota_diag_set(d, OTA_E_NOMEM, "out of memory");
    k->sk = sodium_malloc(crypto_sign_SECRETKEYBYTES);
    if (k->sk == NULL) {
        rc = ota_diag_set(d, OTA_E_NOMEM, "out of memory for a secret key");
        goto out;
    }
    if (crypto_sign_seed_keypair(pk, k->sk, seed) != 0) {
        rc = ota_diag_set(d, OTA_E_CRYPTO, "cannot derive an ed25519 key from its seed");
        goto out;
    }
    rc = ota_pubkey_from_ed25519(pk, &k->pub, d);
    if (rc != OTA_OK)
        goto out;
    sodium_mprotect_readonly(k->sk);
    *out = k;
    k = NULL;
out:
    ota_seckey_free(k);
    return rc;
}

ota_err
ota_seckey_generate(struct ota_seckey **out, struct ota_diag *d)
{
    unsigned char *seed;
    ota_err        rc;

    if (!sodium_ready())
        return ota_diag_set(d, OTA_E_CRYPTO, "cannot initialise libsodium");
    seed = sodium_malloc(OTA_KEYFILE_SEED);
    if (seed == NULL)
        return ota_diag_set(d, OTA_E_NOMEM, "out of memory for a secret key");
    randombytes_buf(seed, OTA_KEYFILE_SEED);
    rc = ota_seckey_from_seed(seed, out, d);
    sodium_free(seed);
    return rc;
}

const struct ota_pubkey *
ota_seckey_public(const struct ota_seckey *k)
{
    return &k->pub;
}

void
ota_seckey_free(struct ota_seckey *k)
{
    if (k == NULL)
        return;
    sodium_free(k->sk); /* wipes; accepts NULL */
    free(k);
}

ota_err
ota_seckey_sign(const struct ota_seckey *k, const void *msg, size_t len, json_t *sigs,
                struct ota_diag *d)
{
    unsigned char sig[crypto_sign_BYTES];
    char          hex[2 * crypto_sign_BYTES + 1];
    json_t       *entry;

    if (!json_is_array(sigs))
        return ota_diag_set(d, OTA_E_INVALID, "signatures must be an array");
    if (crypto_sign_detached(sig, NULL, msg, len, k->sk) != 0)
        return ota_diag_set(d, OTA_E_CRYPTO, "cannot sign with key '%.16s...'", k->pub.keyid);
    ota_hex_encode(sig, sizeof sig, hex);
    /* Check the signature the way a device will, from the hex that is published: a fault in
     * the signer (bit flip, wrong key in memory) must never reach a repository. */
    if (ota_sig_verify(&k->pub, msg, len, hex, NULL) != OTA_OK)
        return ota_diag_set(d, OTA_E_CRYPTO, "signature by key '%.16s...' fails its own check",
                            k->pub.keyid);
    entry = json_pack("{s:s, s:s}", "keyid", k->pub.keyid, "sig", hex);
    if (entry == NULL || json_array_append_new(sigs, entry) != 0)
        return ota_diag_set(d, OTA_E_NOMEM, "out of memory");
    return OTA_OK;
}

/* ---------------------------------------------------------------- key files */

static ota_err
check_passphrase(const char *passphrase, struct ota_diag *d)
{
    size_t n = strnlen(passphrase, OTA_PASSPHRASE_MAX + 1);

    if (n == 0)
        return ota_diag_set(d, OTA_E_INVALID, "empty passphrase");
    if (n > OTA_PASSPHRASE_MAX)
        return ota_diag_set(d, OTA_E_INVALID, "passphrase longer than %d bytes",
                            OTA_PASSPHRASE_MAX);
    return OTA_OK;
}

static int
limits_ok(unsigned long long opslimit, unsigned long long memlimit)
{
    return opslimit >= OTA_KEYFILE_OPS_MIN && opslimit <= OTA_KEYFILE_OPS_MAX &&
           memlimit >= OTA_KEYFILE_MEM_MIN && memlimit <= OTA_KEYFILE_MEM_MAX;
}

/* key (32 bytes, caller's guarded memory) = Argon2id(passphrase, salt). */
static ota_err
derive_key(const char *passphrase, unsigned long long opslimit, size_t memlimit,
           const unsigned char salt[OTA_KEYFILE_SALT], unsigned char *key, struct ota_diag *d)
{
    if (crypto_pwhash(key, crypto_aead_xchacha20poly1305_ietf_KEYBYTES, passphrase,
                      strlen(passphrase), salt, opslimit, memlimit,
                      crypto_pwhash_ALG_ARGON2ID13) != 0)
        return ota_diag_set(d, OTA_E_CRYPTO,
                            "cannot derive a key from the passphrase (argon2id, %zu bytes)",
                            memlimit);
    return OTA_OK;
}

ota_err
ota_keyfile_seal(const unsigned char seed[OTA_KEYFILE_SEED], const unsigned char pk[32],
                 const char *passphrase, unsigned long long opslimit, size_t memlimit,
                 const unsigned char salt[OTA_KEYFILE_SALT],
                 const unsigned char nonce[OTA_KEYFILE_NONCE], unsigned char ct[OTA_KEYFILE_CT],
                 struct ota_diag *d)
{
    unsigned char     *key;
    unsigned long long ctlen = 0;
    ota_err            rc;

    if (!sodium_ready())
        return ota_diag_set(d, OTA_E_CRYPTO, "cannot initialise libsodium");
    rc = check_passphrase(passphrase, d);
    if (rc != OTA_OK)
        return rc;
    if (!limits_ok(opslimit, memlimit))
        return ota_diag_set(d, OTA_E_INVALID, "argon2id limits out of range");
    key = sodium_malloc(crypto_aead_xchacha20poly1305_ietf_KEYBYTES);
    if (key == NULL)
        return ota_diag_set(d, OTA_E_NOMEM, "out of memory for a key");
    rc = derive_key(passphrase, opslimit, memlimit, salt, key, d);
    if (rc != OTA_OK)
        goto out;
    if (crypto_aead_xchacha20poly1305_ietf_encrypt(ct, &ctlen, seed, OTA_KEYFILE_SEED, pk, 32, NULL,
                                                   nonce, key) != 0 ||
        ctlen != OTA_KEYFILE_CT)
        rc = ota_diag_set(d, OTA_E_CRYPTO, "cannot encrypt the key");
out:
    sodium_free(key);
    return rc;
}

ota_err
ota_keyfile_format(const struct ota_seckey *k, const char *passphrase, unsigned long long opslimit,
                   size_t memlimit, const unsigned char salt[OTA_KEYFILE_SALT],
                   const unsigned char nonce[OTA_KEYFILE_NONCE], char *buf, size_t cap, size_t *len,
                   struct ota_diag *d)
{
    char          pub_hex[2 * OTA_ED25519_PK + 1];
    char          salt_hex[2 * OTA_KEYFILE_SALT + 1];
    char          nonce_hex[2 * OTA_KEYFILE_NONCE + 1];
    char          ct_hex[2 * OTA_KEYFILE_CT + 1];
    char         *seed_hex = NULL;
    unsigned char ct[OTA_KEYFILE_CT];
    int           n;
    ota_err       rc;

    ota_hex_encode(k->pub.ed25519, OTA_ED25519_PK, pub_hex);
    /* Written by hand rather than through jansson so that the seed of an unencrypted file
     * never sits in unguarded heap memory; the members are in canonical (sorted) order, and
     * the file is canonical JSON followed by a newline. */
    if (passphrase == NULL || passphrase[0] == '\0') {
        seed_hex = sodium_malloc(2 * OTA_KEYFILE_SEED + 1);
        if (seed_hex == NULL)
            return ota_diag_set(d, OTA_E_NOMEM, "out of memory for a key");
        ota_hex_encode(k->sk, OTA_KEYFILE_SEED, seed_hex);
        n = snprintf(buf, cap,
                     "{\"cipher\":\"none\",\"kdf\":{\"name\":\"none\"},\"keyid\":\"%s\","
                     "\"keytype\":\"ed25519\",\"public\":\"%s\",\"seed\":\"%s\","
                     "\"type\":\"ota-private-key\",\"version\":1}\n",
                     k->pub.keyid, pub_hex, seed_hex);
        sodium_free(seed_hex);
    } else {
        rc = ota_keyfile_seal(k->sk, k->pub.ed25519, passphrase, opslimit, memlimit, salt, nonce,
                              ct, d);
        if (rc != OTA_OK)
            return rc;
        ota_hex_encode(salt, OTA_KEYFILE_SALT, salt_hex);
        ota_hex_encode(nonce, OTA_KEYFILE_NONCE, nonce_hex);
        ota_hex_encode(ct, OTA_KEYFILE_CT, ct_hex);
        n = snprintf(buf, cap,
                     "{\"cipher\":\"xchacha20poly1305-ietf\",\"ciphertext\":\"%s\","
                     "\"kdf\":{\"memlimit\":%zu,\"name\":\"argon2id\",\"opslimit\":%llu,"
                     "\"salt\":\"%s\"},\"keyid\":\"%s\",\"keytype\":\"ed25519\","
                     "\"nonce\":\"%s\",\"public\":\"%s\",\"type\":\"ota-private-key\","
                     "\"version\":1}\n",
                     ct_hex, memlimit, opslimit, salt_hex, k->pub.keyid, nonce_hex, pub_hex);
    }
    if (n < 0 || (size_t)n >= cap) {
        sodium_memzero(buf, cap);
        return ota_diag_set(d, OTA_E_TOO_BIG, "key file text over %zu bytes", cap);
    }
    *len = (size_t)n;
    return OTA_OK;
}

ota_err
ota_seckey_save(const struct ota_seckey *k, const char *path, const char *passphrase, int force,
                struct ota_diag *d)
{
    unsigned char salt[OTA_KEYFILE_SALT], nonce[OTA_KEYFILE_NONCE];
    char         *buf;
    size_t        len = 0;
    ota_err       rc;

    if (!sodium_ready())
        return ota_diag_set(d, OTA_E_CRYPTO, "cannot initialise libsodium");
    /* Refuse before the slow key derivation; the exclusive link below is what guarantees
     * that a file appearing meanwhile is not overwritten either. */
    if (!force && access(path, F_OK) == 0)
        return ota_diag_set(d, OTA_E_EXISTS, "key file '%s' already exists (use --force)", path);
    buf = sodium_malloc(OTA_KEYFILE_TEXT_MAX);
    if (buf == NULL)
        return ota_diag_set(d, OTA_E_NOMEM, "out of memory for a key file");
    randombytes_buf(salt, sizeof salt);
    randombytes_buf(nonce, sizeof nonce);
    rc = ota_keyfile_format(k, passphrase, ARGON2ID_OPS_DEFAULT, ARGON2ID_MEM_DEFAULT, salt, nonce,
                            buf, OTA_KEYFILE_TEXT_MAX, &len, d);
    if (rc != OTA_OK)
        goto out;
    rc = ota_write_file_atomic(path, buf, len, 0600, !force, d);
    if (rc == OTA_E_EXISTS)
        ota_diag_set(d, rc, "key file '%s' already exists (use --force)", path);
out:
    sodium_free(buf);
    return rc;
}

static ota_err
get_hex(const json_t *obj, const char *key, unsigned char *out, size_t n, struct ota_diag *d)
{
    const char *s;
    ota_err     rc;

    rc = ota_json_get_str(obj, key, 2 * n, 1, &s, d);
    if (rc != OTA_OK)
        return rc;
    if (ota_hex_decode(s, out, n) != OTA_OK)
        return ota_diag_set(d, OTA_E_FORMAT, "'%s' must be %zu hex digits", key, 2 * n);
    return OTA_OK;
}

static ota_err
get_const(const json_t *obj, const char *key, const char *want, struct ota_diag *d)
{
    const char *s;
    ota_err     rc;

    rc = ota_json_get_str(obj, key, 64, 1, &s, d);
    if (rc != OTA_OK)
        return rc;
    if (strcmp(s, want) != 0)
        return ota_diag_set(d, OTA_E_FORMAT, "unsupported %s '%.32s' (want '%s')", key, s, want);
    return OTA_OK;
}

/* Check the structure of a parsed key file and fill kf; nothing secret is decoded. */
static ota_err
keyfile_check(const json_t *root, struct keyfile *kf, struct ota_diag *d)
{
    static const char *const enc_keys[] = {"cipher", "ciphertext", "kdf",  "keyid",   "keytype",
                                           "nonce",  "public",     "type", "version", NULL};
    static const char *const raw_keys[] = {"cipher", "kdf",  "keyid",   "keytype", "public",
                                           "seed",   "type", "version", NULL};
    static const char *const argon_keys[] = {"memlimit", "name", "opslimit", "salt", NULL};
    static const char *const none_keys[] = {"name", NULL};
    unsigned char            pk[OTA_ED25519_PK];
    const char              *keyid, *kdfname;
    json_t                  *kdf;
    long long                version, ops, mem;
    ota_err                  rc;

    memset(kf, 0, sizeof *kf);
    if (!json_is_object(root))
        return ota_diag_set(d, OTA_E_FORMAT, "not a key file (not a JSON object)");
    if ((rc = get_const(root, "type", "ota-private-key", d)) != OTA_OK)
        return rc;
    if ((rc = ota_json_get_int(root, "version", 0, 1000000, &version, d)) != OTA_OK)
        return rc;
    if (version != 1)
        return ota_diag_set(d, OTA_E_FORMAT, "unsupported key file version %lld", version);
    if ((rc = get_const(root, "keytype", "ed25519", d)) != OTA_OK ||
        (rc = get_hex(root, "public", pk, sizeof pk, d)) != OTA_OK ||
        (rc = ota_json_get_str(root, "keyid", 64, 1, &keyid, d)) != OTA_OK ||
        (rc = ota_json_get_obj(root, "kdf", &kdf, d)) != OTA_OK ||
        (rc = ota_json_get_str(kdf, "name", 64, 1, &kdfname, d)) != OTA_OK)
        return rc;
    rc = ota_pubkey_from_ed25519(pk, &kf->pub, d);
    if (rc != OTA_OK)
        return rc;
    if (strcmp(keyid, kf->pub.keyid) != 0)
        return ota_diag_set(d, OTA_E_FORMAT, "key id '%.16s...' does not match the public key",
                            keyid);
    if (strcmp(kdfname, "argon2id") == 0) {
        kf->encrypted = 1;
        if ((rc = ota_json_only_keys(root, enc_keys, d)) != OTA_OK ||
            (rc = ota_json_only_keys(kdf, argon_keys, d)) != OTA_OK ||
            (rc = ota_json_get_int(kdf, "opslimit", (long long)OTA_KEYFILE_OPS_MIN,
                                   (long long)OTA_KEYFILE_OPS_MAX, &ops, d)) != OTA_OK ||
            (rc = ota_json_get_int(kdf, "memlimit", (long long)OTA_KEYFILE_MEM_MIN,
                                   (long long)OTA_KEYFILE_MEM_MAX, &mem, d)) != OTA_OK ||
            (rc = get_hex(kdf, "salt", kf->salt, sizeof kf->salt, d)) != OTA_OK ||
            (rc = get_const(root, "cipher", "xchacha20poly1305-ietf", d)) != OTA_OK ||
            (rc = get_hex(root, "nonce", kf->nonce, sizeof kf->nonce, d)) != OTA_OK ||
            (rc = get_hex(root, "ciphertext", kf->ct, sizeof kf->ct, d)) != OTA_OK)
            return rc;
        kf->opslimit = (unsigned long long)ops;
        kf->memlimit = (size_t)mem;
    } else if (strcmp(kdfname, "none") == 0) {
        if ((rc = ota_json_only_keys(root, raw_keys, d)) != OTA_OK ||
            (rc = ota_json_only_keys(kdf, none_keys, d)) != OTA_OK ||
            (rc = get_const(root, "cipher", "none", d)) != OTA_OK ||
            (rc = ota_json_get_str(root, "seed", 2 * OTA_KEYFILE_SEED, 1, &kf->seed_hex, d)) !=
                OTA_OK)
            return rc;
        /* Checked here without decoding, so that a reader of the public half refuses the
         * same files; the seed is decoded only into guarded memory, by ota_seckey_load. */
        if (strlen(kf->seed_hex) != 2 * OTA_KEYFILE_SEED ||
            strspn(kf->seed_hex, "0123456789abcdefABCDEF") != 2 * OTA_KEYFILE_SEED)
            return ota_diag_set(d, OTA_E_FORMAT, "'seed' must be %d hex digits",
                                2 * OTA_KEYFILE_SEED);
    } else {
        return ota_diag_set(d, OTA_E_FORMAT, "unsupported kdf '%.32s'", kdfname);
    }
    return OTA_OK;
}

/* Wipe a string held by a parsed tree (the seed of an unencrypted file) before the tree is
 * freed. jansson owns the buffer and it is writable; only the accessor returns const. */
static void
wipe_json_string(const char *s)
{
    if (s != NULL)
        sodium_memzero((char *)(uintptr_t)s, strlen(s));
}

/* Read and check a key file. *root_out owns the strings kf borrows. */
static ota_err
keyfile_read(const char *path, json_t **root_out, struct keyfile *kf, struct ota_diag *d)
{
    unsigned char *buf = NULL;
    size_t         len = 0;
    json_t        *root = NULL;
    ota_err        rc;

    rc = ota_read_file(path, OTA_KEYFILE_MAX, &buf, &len, d);
    if (rc != OTA_OK) {
        if (rc == OTA_E_TOO_BIG)
            rc = OTA_E_FORMAT; /* no key file is that large */
        ota_diag_prefix(d, "key file");
        return rc;
    }
    rc = ota_cjson_parse(buf, len, OTA_KEYFILE_MAX, &root, d);
    sodium_memzero(buf, len); /* may hold an unencrypted seed */
    free(buf);
    if (rc == OTA_OK)
        rc = keyfile_check(root, kf, d);
    if (rc != OTA_OK) {
        if (root != NULL)
            wipe_json_string(json_string_value(json_object_get(root, "seed")));
        json_decref(root);
        ota_diag_prefix(d, "key file '%s'", path);
        return rc;
    }
    *root_out = root;
    return OTA_OK;
}

static void
keyfile_release(json_t *root, struct keyfile *kf)
{
    wipe_json_string(kf->seed_hex);
    json_decref(root);
    sodium_memzero(kf, sizeof *kf);
}

ota_err
ota_seckey_load(const char *path, const char *passphrase, struct ota_seckey **out,
                struct ota_diag *d)
{
    struct keyfile     kf;
    struct ota_seckey *k = NULL;
    json_t            *root = NULL;
    unsigned char     *seed = NULL, *key = NULL;
    unsigned long long seedlen = 0;
    ota_err            rc;

    if (!sodium_ready())
        return ota_diag_set(d, OTA_E_CRYPTO, "cannot initialise libsodium");
    rc = keyfile_read(path, &root, &kf, d);
    if (rc != OTA_OK)
        return rc;
    seed = sodium_malloc(OTA_KEYFILE_SEED);
    key = sodium_malloc(crypto_aead_xchacha20poly1305_ietf_KEYBYTES);
    if (seed == NULL || key == NULL) {
        rc = ota_diag_set(d, OTA_E_NOMEM, "out of memory for a key");
        goto out;
    }
    if (kf.encrypted) {
        if (passphrase == NULL || passphrase[0] == '\0') {
            rc = ota_diag_set(d, OTA_E_PASSPHRASE, "key file '%s' is encrypted: no passphrase",
                              path);
            goto out;
        }
        rc = check_passphrase(passphrase, d);
        if (rc == OTA_OK)
            rc = derive_key(passphrase, kf.opslimit, kf.memlimit, kf.salt, key, d);
        if (rc != OTA_OK) {
            ota_diag_prefix(d, "key file '%s'", path);
            goto out;
        }
        /* The tag covers the public key too, so a file whose public half was swapped does not
         * decrypt; a wrong passphrase and a tampered ciphertext look the same from here. */
        if (crypto_aead_xchacha20poly1305_ietf_decrypt(seed, &seedlen, NULL, kf.ct, sizeof kf.ct,
                                                       kf.pub.ed25519, OTA_ED25519_PK, kf.nonce,
                                                       key) != 0 ||
            seedlen != OTA_KEYFILE_SEED) {
            rc = ota_diag_set(d, OTA_E_PASSPHRASE, "wrong passphrase for key file '%s'", path);
            goto out;
        }
    } else if (ota_hex_decode(kf.seed_hex, seed, OTA_KEYFILE_SEED) != OTA_OK) {
        rc = ota_diag_set(d, OTA_E_FORMAT, "key file '%s': 'seed' must be %d hex digits", path,
                          2 * OTA_KEYFILE_SEED);
        goto out;
    }
    rc = ota_seckey_from_seed(seed, &k, d);
    if (rc != OTA_OK)
        goto out;
    if (memcmp(k->pub.ed25519, kf.pub.ed25519, OTA_ED25519_PK) != 0 ||
        strcmp(k->pub.keyid, kf.pub.keyid) != 0) {
        rc = ota_diag_set(d, OTA_E_FORMAT, "key file '%s': the seed does not match its public key",
                          path);
        goto out;
    }
    *out = k;
    k = NULL;
out:
    ota_seckey_free(k);
    sodium_free(seed);
    sodium_free(key);
    keyfile_release(root, &kf);
    return rc;
}

ota_err
ota_seckey_load_public(const char *path, struct ota_pubkey *out, struct ota_diag *d)
{
    struct keyfile kf;
    json_t        *root = NULL;
    ota_err        rc;

    rc = keyfile_read(path, &root, &kf, d);
    if (rc != OTA_OK)
        return rc;
    *out = kf.pub;
    keyfile_release(root, &kf);
    return OTA_OK;
}

int
ota_seckey_file_encrypted(const char *path)
{
    struct keyfile kf;
    json_t        *root = NULL;
    int            enc;

    if (keyfile_read(path, &root, &kf, NULL) != OTA_OK)
        return -1;
    enc = kf.encrypted;
    keyfile_release(root, &kf);
    return enc;
}

/* ---------------------------------------------------------------- passphrases */

/* The passphrase read from a file descriptor, kept (read-only, guarded) for the life of the
 * process: the descriptor is a pipe that can be read only once, and one run may open several
 * keys. Passphrase functions are meant for a CLI's main thread. */
static char *fd_pass = NULL;
static int   fd_pass_fd = -1;

static volatile sig_atomic_t tty_signal = 0;

static void
on_tty_signal(int sig)
{
    tty_signal = sig;
}

void
ota_passphrase_free(char *p)
{
    sodium_free(p); /* wipes; accepts NULL */
}

void
ota_passphrase_forget(void)
{
    sodium_free(fd_pass);
    fd_pass = NULL;
    fd_pass_fd = -1;
}

static ota_err
pass_dup(const char *s, char **out, struct ota_diag *d)
{
    size_t n = strlen(s);
    char  *p = sodium_malloc(n + 1);

    if (p == NULL)
        return ota_diag_set(d, OTA_E_NOMEM, "out of memory for a passphrase");
    memcpy(p, s, n + 1);
    *out = p;
    return OTA_OK;
}

/* Read one line from fd into buf (cap bytes), a byte at a time so that nothing after the
 * newline is consumed. The newline and a preceding CR are dropped. Returns 0 on success,
 * -1 with errno on a read error (EINTR when a signal in tty_signal interrupted it), -2 when
 * the line does not fit. */
static int
read_line(int fd, char *buf, size_t cap, size_t *len)
{
    size_t n = 0;

    for (;;) {
        char    c;
        ssize_t r = read(fd, &c, 1);
        if (r < 0 && errno == EINTR && tty_signal == 0)
            continue;
        if (r < 0)
            return -1;
        if (r == 0 || c == '\n')
            break;
        if (n + 1 >= cap) {
            sodium_memzero(buf, cap);
            return -2;
        }
        buf[n++] = c;
    }
    if (n > 0 && buf[n - 1] == '\r')
        n--;
    buf[n] = '\0';
    *len = n;
    return 0;
}

static ota_err
from_fd(int fd, char **out, struct ota_diag *d)
{
    char   *buf;
    size_t  len = 0;
    int     r;
    ota_err rc = OTA_OK;

    if (fd_pass != NULL && fd_pass_fd == fd)
        return pass_dup(fd_pass, out, d);
    buf = sodium_malloc(OTA_PASSPHRASE_MAX + 1);
    if (buf == NULL)
        return ota_diag_set(d, OTA_E_NOMEM, "out of memory for a passphrase");
    r = read_line(fd, buf, OTA_PASSPHRASE_MAX + 1, &len);
    if (r == -1)
        rc = ota_diag_sys(d, OTA_E_IO, errno, "cannot read the passphrase from fd %d", fd);
    else if (r == -2)
        rc = ota_diag_set(d, OTA_E_TOO_BIG, "passphrase on fd %d is longer than %d bytes", fd,
                          OTA_PASSPHRASE_MAX);
    else if (len == 0)
        rc = ota_diag_set(d, OTA_E_PASSPHRASE, "no passphrase on fd %d (empty first line)", fd);
    if (rc == OTA_OK)
        rc = pass_dup(buf, out, d);
    if (rc != OTA_OK) {
        sodium_free(buf);
        return rc;
    }
    ota_passphrase_forget();
    sodium_mprotect_readonly(buf);
    fd_pass = buf;
    fd_pass_fd = fd;
    return OTA_OK;
}

/* Prompt on the terminal with echo off and read one line into buf. OTA_E_NOT_FOUND when
 * there is no controlling terminal. A signal while echo is off restores the terminal first,
 * then is delivered as usual. */
static ota_err
tty_ask(int tty, const char *prompt, char *buf, size_t cap, struct ota_diag *d)
{
    static const int sigs[] = {SIGINT, SIGHUP, SIGQUIT, SIGTERM};
    struct sigaction sa, old_sa[sizeof sigs / sizeof sigs[0]];
    struct termios   old, quiet;
    size_t           len = 0, i;
    int              r, err;
    ota_err          rc = OTA_OK;

    if (tcgetattr(tty, &old) != 0)
        return ota_diag_sys(d, OTA_E_NOT_FOUND, errno, "no terminal");
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_tty_signal; /* no SA_RESTART: the read returns EINTR */
    sigemptyset(&sa.sa_mask);
    tty_signal = 0;
    for (i = 0; i < sizeof sigs / sizeof sigs[0]; i++)
        sigaction(sigs[i], &sa, &old_sa[i]);
    quiet = old;
    quiet.c_lflag &= ~(tcflag_t)ECHO;
    quiet.c_lflag |= ECHONL | ICANON;
    if (tcsetattr(tty, TCSAFLUSH, &quiet) != 0) {
        rc = ota_diag_sys(d, OTA_E_IO, errno, "cannot turn off echo on the terminal");
        goto restore;
    }
    if (ota_write_all(tty, prompt, strlen(prompt), NULL) != OTA_OK) {
        rc = ota_diag_sys(d, OTA_E_IO, errno, "cannot write to the terminal");
        goto restore;
    }
    r = read_line(tty, buf, cap, &len);
    err = errno;
    if (r == -1 && tty_signal == 0)
        rc = ota_diag_sys(d, OTA_E_IO, err, "cannot read from the terminal");
    else if (r == -1)
        rc = ota_diag_set(d, OTA_E_PASSPHRASE, "passphrase prompt interrupted");
    else if (r == -2)
        rc = ota_diag_set(d, OTA_E_TOO_BIG, "passphrase longer than %d bytes", OTA_PASSPHRASE_MAX);
restore:
    tcsetattr(tty, TCSAFLUSH, &old);
    for (i = 0; i < sizeof sigs / sizeof sigs[0]; i++)
        sigaction(sigs[i], &old_sa[i], NULL);
    if (tty_signal != 0) {
        sodium_memzero(buf, cap);
        raise(tty_signal);
    }
    return rc;
}

static ota_err
from_tty(const char *prompt, int confirm, char **out, struct ota_diag *d)
{
    char   *a = NULL, *b = NULL;
    int     tty;
    ota_err rc;

    tty = open("/dev/tty", O_RDWR | O_NOCTTY | O_CLOEXEC);
    if (tty < 0)
        return ota_diag_sys(d, OTA_E_NOT_FOUND, errno, "no terminal");
    a = sodium_malloc(OTA_PASSPHRASE_MAX + 1);
    b = sodium_malloc(OTA_PASSPHRASE_MAX + 1);
    if (a == NULL || b == NULL) {
        rc = ota_diag_set(d, OTA_E_NOMEM, "out of memory for a passphrase");
        goto out;
    }
    rc = tty_ask(tty, prompt, a, OTA_PASSPHRASE_MAX + 1, d);
    if (rc != OTA_OK)
        goto out;
    if (a[0] == '\0') {
        rc = ota_diag_set(d, OTA_E_PASSPHRASE, "empty passphrase");
        goto out;
    }
    if (confirm) {
        rc = tty_ask(tty, "repeat passphrase: ", b, OTA_PASSPHRASE_MAX + 1, d);
        if (rc != OTA_OK)
            goto out;
        if (strlen(a) != strlen(b) || sodium_memcmp(a, b, strlen(a)) != 0) {
            rc = ota_diag_set(d, OTA_E_PASSPHRASE, "passphrases do not match");
            goto out;
        }
    }
    rc = pass_dup(a, out, d);
out:
    sodium_free(a);
    sodium_free(b);
    close(tty);
    return rc;
}

ota_err
ota_passphrase_get(const struct ota_passphrase_src *src, const char *prompt, int confirm,
                   char **out, struct ota_diag *d)
{
    const char *env = src->env != NULL ? src->env : "OTA_PASSPHRASE";
    const char *v;
    ota_err     rc;

    if (!sodium_ready())
        return ota_diag_set(d, OTA_E_CRYPTO, "cannot initialise libsodium");
    /* An explicit descriptor that gives nothing is an error, not a reason to fall back. */
    if (src->fd >= 0)
        return from_fd(src->fd, out, d);
    if (src->env != NULL && (v = getenv(src->env)) != NULL && v[0] != '\0') {
        if (strnlen(v, OTA_PASSPHRASE_MAX + 1) > OTA_PASSPHRASE_MAX)
            return ota_diag_set(d, OTA_E_TOO_BIG, "passphrase in %s is longer than %d bytes",
                                src->env, OTA_PASSPHRASE_MAX);
        return pass_dup(v, out, d);
    }
    if (src->use_tty) {
        rc = from_tty(prompt != NULL ? prompt : "passphrase: ", confirm, out, d);
        if (rc != OTA_E_NOT_FOUND)
            return rc;
    }
    return ota_diag_set(d, OTA_E_PASSPHRASE,
                        "no passphrase: set %s, pass --passphrase-fd N, or run on a terminal", env);
}
