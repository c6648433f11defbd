/* Private keys: the signing half of keys/. Only the publisher links this; devices never do.
 *
 * Secret key material lives in sodium_malloc'd memory (guard pages, wiped on free). Key files
 * are JSON (formats/keyfile.md): the public key in clear, the 32-byte ed25519 seed encrypted
 * with XChaCha20-Poly1305 under a key derived from a passphrase with Argon2id. They are
 * created with O_EXCL and mode 0600 and never overwritten unless force is set. */
#ifndef OTA_SIGNER_H
#define OTA_SIGNER_H

#include <jansson.h>
#include <stddef.h>

#include "ota/err.h"
#include "ota/keys.h"

struct ota_seckey; /* opaque */

/** Generate a fresh ed25519 key. */
ota_err ota_seckey_generate(struct ota_seckey **out, struct ota_diag *d) OTA_MUST_CHECK;

/** Derive a key from a fixed 32-byte seed (test fixtures: byte-stable signatures). */
ota_err ota_seckey_from_seed(const unsigned char seed[32], struct ota_seckey **out,
                             struct ota_diag *d) OTA_MUST_CHECK;

/** The public half (borrowed; valid until ota_seckey_free). */
const struct ota_pubkey *ota_seckey_public(const struct ota_seckey *k);

/** Sign msg and append {"keyid","sig"} to the TUF signatures array sigs. The signature is
 * verified with the public key before it is appended (a faulty signer never publishes). */
ota_err ota_seckey_sign(const struct ota_seckey *k, const void *msg, size_t len, json_t *sigs,
                        struct ota_diag *d) OTA_MUST_CHECK;

/** Write k to path. passphrase NULL or "" writes the seed unencrypted (marked so in the
 * file; meant for an online timestamp key on a locked-down host). force: replace an existing
 * file (atomically); otherwise OTA_E_EXISTS and nothing changes. */
ota_err ota_seckey_save(const struct ota_seckey *k, const char *path, const char *passphrase,
                        int force, struct ota_diag *d) OTA_MUST_CHECK;

/** Load a key file. passphrase may be NULL for an unencrypted file. OTA_E_PASSPHRASE when
 * the file is encrypted and the passphrase is missing or wrong; OTA_E_FORMAT for a malformed
 * file; OTA_E_NOT_FOUND when missing. */
ota_err ota_seckey_load(const char *path, const char *passphrase, struct ota_seckey **out,
                        struct ota_diag *d) OTA_MUST_CHECK;

/** Read only the public key of a key file (no passphrase needed). */
ota_err ota_seckey_load_public(const char *path, struct ota_pubkey *out,
                               struct ota_diag *d) OTA_MUST_CHECK;

/** 1 if the key file at path is encrypted, 0 if not; <0 if it cannot be read. */
int ota_seckey_file_encrypted(const char *path);

/** Wipe and free; accepts NULL. */
void ota_seckey_free(struct ota_seckey *k);

/* Passphrases: from a file descriptor (first line, for CI), an environment variable, or the
 * controlling terminal (echo off), in that order of preference. */
struct ota_passphrase_src {
    int         fd;       /* -1: none */
    const char *env;      /* variable name, NULL: none (callers pass "OTA_PASSPHRASE") */
    int         use_tty;  /* 1: prompt on /dev/tty when fd and env give nothing */
};

/** Get a passphrase. With confirm set, a TTY prompt asks twice and the two must match.
 * *out is sodium_malloc'd, NUL-terminated; free it with ota_passphrase_free. The fd source is
 * read once per process and remembered, so several keys can be opened with it.
 * OTA_E_PASSPHRASE when no source gives one (message says how to supply it). */
ota_err ota_passphrase_get(const struct ota_passphrase_src *src, const char *prompt, int confirm,
                           char **out, struct ota_diag *d) OTA_MUST_CHECK;

/** Wipe and free a passphrase; accepts NULL. */
void ota_passphrase_free(char *p);

#endif
